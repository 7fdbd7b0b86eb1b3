"""A request the fast lane leaves to Django (todo_project/fast_lane.py) is not read again by the
same fast read in the view (tasks/fast_read.py, `_with_fast_answer`): a statement timeout ran
twice and outlasted gunicorn's timeout (the worker killed), an unreachable database was tried
twice, and a refused token or a client over its limit cost 3 queries and 3 counts."""

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from accounts.tokens import RefreshToken
from tasks import services
from tasks.tests.test_fast_lane import _connections_kept, call  # noqa: F401 (a fixture)
from todo_project import ratelimit, wsgi
from todo_project.tests.test_database_unavailable import database_down  # noqa: F401 (a fixture)

# --- a fast read that failed in the lane is not run again ------------------------------------


@pytest.fixture
def database_refusing(request, monkeypatch):
    """database_down's token and task, and a list of the connection attempts made."""
    token, task = request.getfixturevalue("database_down")
    attempts = []
    connect = connection.get_new_connection

    def counted(*args, **kwargs):
        attempts.append(1)
        return connect(*args, **kwargs)

    monkeypatch.setattr(connection, "get_new_connection", counted)
    yield token, task, attempts


def counting_rate_limits(monkeypatch) -> list[str]:
    """The groups of the rate limits counted from now on, in order."""
    counted = []
    count_request = ratelimit.count_request

    def spy(request, group, *args, **kwargs):
        counted.append(group)
        return count_request(request, group, *args, **kwargs)

    monkeypatch.setattr(ratelimit, "count_request", spy)
    monkeypatch.setattr("tasks.fast_read.count_request", spy)
    return counted


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/api/v1/lists/", "/api/v1/tasks/", "/api/v1/tasks/{task}/"])
def test_an_unreachable_database_is_tried_once_per_request(database_refusing, path):
    """With PostgreSQL not answering (a host that drops packets), each attempt waits
    DB_CONNECT_TIMEOUT: the lane's list and task GETs waited twice as long for their 503
    (measured: 4.02 s against 2.04 s for GET lists/ with the default 2 s)."""
    token, task, attempts = database_refusing
    status, _, _ = call(wsgi.application, path.format(task=task.pk), token)

    assert status.startswith("503")
    assert len(attempts) == 1, f"{len(attempts)} connection attempts for one request"


@pytest.fixture
def tasks_table_locked(user, monkeypatch):
    """The tasks table locked by another session (a migration, say) and a statement_timeout
    of 300 ms on the app's connections (DB_STATEMENT_TIMEOUT's `-c statement_timeout`)."""
    token = str(RefreshToken.for_user(user).access_token)
    services.task_create(user=user, data={"title": "Pay rent"})
    params = connection.get_connection_params()
    for name in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(name, None)
    other = psycopg.connect(**params)
    other.execute("LOCK TABLE tasks_task IN ACCESS EXCLUSIVE MODE")
    connection.close()
    options = dict(connection.settings_dict.get("OPTIONS", {}))
    options["options"] = (options.get("options", "") + " -c statement_timeout=300").strip()
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)
    yield token
    other.rollback()
    other.close()
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_list_page_cancelled_by_the_statement_timeout_runs_once_and_counts_once(
    tasks_table_locked, monkeypatch
):
    """The lane's page query ran into statement_timeout, then Django ran the same fast list
    again: twice the database time and twice DB_STATEMENT_TIMEOUT of the worker's (measured
    2.04 s against 1.03 s for ?format=json with a 1 s timeout), and the request counted twice
    against the user's rate limit."""
    cancelled = []

    def watch(execute, sql, params, many, context):
        try:
            return execute(sql, params, many, context)
        except Exception as error:
            if "statement timeout" in str(error):
                cancelled.append(sql)
            raise

    counted = counting_rate_limits(monkeypatch)
    with connection.execute_wrapper(watch):
        status, _, _ = call(wsgi.application, "/api/v1/tasks/", tasks_table_locked)

    assert status.startswith("5")
    assert len(cancelled) == 1, f"the page query ran into the timeout {len(cancelled)} times"
    assert counted == ["api-user"]


# --- nor one the lane declined -----------------------------------------------------------------


@pytest.fixture
def token(user) -> str:
    return str(RefreshToken.for_user(user).access_token)


def queries_and_counts(monkeypatch, path: str, token: str) -> tuple[str, int, list]:
    counted = counting_rate_limits(monkeypatch)
    with CaptureQueriesContext(connection) as queries:
        status, _, _ = call(wsgi.application, path, token)
    return status, len(queries), counted


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/tasks/", "/api/v1/tasks/{task}/"])
def test_a_revoked_token_is_checked_at_most_twice(user, token, monkeypatch, path):
    """Refused by the lane's statement, then by the same statement again in Django's view
    wrapper, then by DRF's authentication: 3 queries per 401 (DRF alone: 1)."""
    task = services.task_create(user=user, data={"title": "Pay rent"})
    user.revoke_tokens()
    user.save()
    status, queries, _ = queries_and_counts(monkeypatch, path.format(task=task.pk), token)

    assert status.startswith("401")
    assert queries <= 2, f"{queries} queries for one 401"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/tasks/", "/api/v1/tasks/{task}/"])
@override_settings(RATE_LIMIT_USER="1/m")
def test_a_request_over_the_limit_costs_at_most_two_queries_and_counts(
    user, token, monkeypatch, path
):
    """A client over its limit: each 429 ran the token statement and counted in Redis in the
    lane, again in Django's view wrapper, and again in DRF: 3 queries and 3 counts (DRF alone:
    1 and 1), exactly when a client hammers the API."""
    task = services.task_create(user=user, data={"title": "Pay rent"})
    path = path.format(task=task.pk)
    cache.clear()
    assert call(wsgi.application, path, token)[0].startswith("200")
    status, queries, counted = queries_and_counts(monkeypatch, path, token)

    assert status.startswith("429")
    assert queries <= 2 and len(counted) <= 2, (queries, counted)
