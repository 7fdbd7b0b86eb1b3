"""A database the server cannot reach is a 503 problem with Retry-After, logged once: nothing
the client did, and a retry a little later goes through (a 500 said the server was broken)."""

import asyncio
import logging
import os
import socket

import orjson
import pytest
from django.db import InterfaceError, OperationalError, connection
from django.test import AsyncClient

from accounts.tokens import RefreshToken
from tasks import services
from tasks.models import IdempotencyRecord
from tasks.tests.test_fast_lane import call
from todo_project import idempotency, wsgi
from todo_project.problems import is_database_unavailable

PROBLEM = "application/problem+json"


@pytest.fixture
def database_down(user, monkeypatch):
    """A token and a task of `user`; then the default connection pointed at a port nothing
    listens on, as after a crash: every new connection is refused. Put back afterwards."""
    token = str(RefreshToken.for_user(user).access_token)
    task = services.task_create(user=user, data={"title": "Pay rent"})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "HOST", "127.0.0.1")
    monkeypatch.setitem(connection.settings_dict, "PORT", str(port))
    yield token, task
    connection.close()


def console_lines(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    """The records the configured console handler writes (its filters applied)."""
    console = logging.getLogger().handlers[0]
    return [record for record in records if console.filter(record)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/tasks/", None),  # the fast lane's list, then Django's stack
        ("GET", "/api/v1/tasks/{task}/", None),  # the fast lane's one task
        ("GET", "/api/v1/lists/", None),  # DRF's authentication
        ("PATCH", "/api/v1/tasks/{task}/", b'{"title": "x"}'),
        ("POST", "/api/v1/auth/token/", b'{"email": "a@example.com", "password": "p"}'),
    ],
)
def test_a_request_is_a_503_problem_to_retry_logged_once(database_down, caplog, method, path, body):
    token, task = database_down
    path = path.format(task=task.pk)
    data = {"data": body, "content_type": "application/json"} if body else {}

    with caplog.at_level(logging.INFO):
        status, headers, content = call(wsgi.application, path, token, method, **data)

    named = dict(headers)
    assert status.startswith("503"), content
    assert (named["Content-Type"], named["Retry-After"]) == (PROBLEM, "5")
    problem = orjson.loads(content)
    assert (problem["status"], problem["title"], problem["instance"]) == (
        503,
        "Service unavailable",
        path,
    )
    assert problem["detail"].startswith("The database is unavailable. Send the request again")
    errors = [r for r in console_lines(caplog.records) if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(": ")[0] for r in errors] == [
        f"Database unavailable on {method} {path}"
    ]
    assert errors[0].exc_info is None


@pytest.mark.django_db(transaction=True)
def test_the_liveness_probe_still_answers_and_readiness_says_why(database_down):
    assert call(wsgi.application, "/healthz")[0].startswith("200")
    status, _, content = call(wsgi.application, "/readyz")
    assert status.startswith("503") and b"database" in content


@pytest.mark.django_db
def test_misuse_and_query_errors_are_not_an_outage():
    # psycopg 3's InterfaceError is misuse ("the cursor is closed"), a bug: a 500 with its
    # traceback, not a 503 telling the client to retry.
    cursor = connection.cursor()
    cursor.close()
    with pytest.raises(InterfaceError) as closed:
        cursor.execute("SELECT 1")
    assert not is_database_unavailable(closed.value)
    # 57014, query_canceled
    with pytest.raises(OperationalError) as timeout, connection.cursor() as timed:
        timed.execute("SET LOCAL statement_timeout = 1")
        timed.execute("SELECT pg_sleep(1)")
    assert not is_database_unavailable(timeout.value)
    # No SQLSTATE, the connection still good: a statement libpq refuses to send. manage.py
    # said "Cannot use the database of DATABASE_URL" of it (review 29f).
    with pytest.raises(OperationalError) as too_many, connection.cursor() as cursor:
        cursor.execute("SELECT %s" + ", %s" * 65_535, list(range(65_536)))
    assert "65535" in str(too_many.value)
    assert not is_database_unavailable(too_many.value)


def _drop_the_connection_under_the_request() -> None:
    """What a proxy, a PgBouncer restart or a network blip does to an established connection:
    the socket is gone while PostgreSQL itself stays up (a new connection succeeds)."""
    fd = connection.connection.pgconn.socket
    with socket.socket(fileno=os.dup(fd)) as dup:
        dup.shutdown(socket.SHUT_RDWR)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("idempotency_key", [None, "lost-1"])
def test_a_connection_lost_mid_request_is_a_503_though_django_reconnected(
    user, monkeypatch, caplog, idempotency_key
):
    # Django reconnects on the way out of the atomic block (and the key's release with it):
    # judged by the new, healthy connection, the lost one was a 500 with a traceback (3 of 7
    # errors under pg_terminate_backend, review 36a).
    token = str(RefreshToken.for_user(user).access_token)
    real = services._lock_group_and_count

    def lost_midway(*args, **kwargs):
        _drop_the_connection_under_the_request()
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "_lock_group_and_count", lost_midway)
    key = {"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key else {}
    with caplog.at_level(logging.INFO):
        status, headers, content = call(
            wsgi.application,
            "/api/v1/tasks/",
            token,
            "POST",
            data=b'{"title": "Pay rent"}',
            content_type="application/json",
            **key,
        )
    assert status.startswith("503"), content
    assert dict(headers)["Retry-After"] == "5"
    assert orjson.loads(content)["title"] == "Service unavailable"
    errors = [r for r in console_lines(caplog.records) if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(": ")[0] for r in errors] == [
        "Database unavailable on POST /api/v1/tasks/"
    ]
    monkeypatch.undo()
    assert not services.Task.objects.filter(owner=user).exists()  # nothing half-written


@pytest.mark.django_db(transaction=True)
def test_a_key_whose_release_failed_with_the_database_is_free_once_it_is_back(user, monkeypatch):
    # PostgreSQL went away after the key's claim committed: the create is a 503, and the claim's
    # release failed too. Nothing runs for the key any more, yet every retry was a 409 "still
    # being processed" for IDEMPOTENCY_STALE_AFTER (70 over 35 s after a 3 s restart, review
    # 36a). The worker releases it at its next request.
    token = str(RefreshToken.for_user(user).access_token)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = str(probe.getsockname()[1])
    real_settings = dict(connection.settings_dict)

    def the_database_goes_away(*args, **kwargs):
        connection.settings_dict.update(HOST="127.0.0.1", PORT=dead_port)
        _drop_the_connection_under_the_request()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    monkeypatch.setattr(services, "task_create", the_database_goes_away)
    body = {"data": b'{"title": "Pay rent"}', "content_type": "application/json"}
    key = {"HTTP_IDEMPOTENCY_KEY": "outage-1"}
    try:
        first = call(wsgi.application, "/api/v1/tasks/", token, "POST", **body, **key)
        assert first[0].startswith("503"), first
        # Still away: a probe leaves it alone (no database for /healthz), the claim stays owed.
        assert call(wsgi.application, "/healthz")[0].startswith("200")
    finally:
        connection.close()
        connection.settings_dict.update(real_settings)
    monkeypatch.undo()
    assert IdempotencyRecord.objects.filter(owner=user, key="outage-1").exists()

    retry = call(wsgi.application, "/api/v1/tasks/", token, "POST", **body, **key)
    assert retry[0].startswith("201"), retry
    assert services.Task.objects.filter(owner=user).count() == 1


class _OwedClaim:
    """Stands in for a claim whose release failed; the database is still away."""

    def __init__(self, attempts: list) -> None:
        self.records = self
        self.attempts = attempts

    def delete(self):
        self.attempts.append(1)
        raise idempotency.DatabaseError("the database is still away")


@pytest.mark.django_db(transaction=True)
def test_an_owed_release_is_tried_once_a_request(user, monkeypatch):
    attempts = []
    monkeypatch.setattr(idempotency, "_unreleased", [_OwedClaim(attempts)])
    token = str(RefreshToken.for_user(user).access_token)
    # A task that is not there: the fast lane's answer is not its 200, Django answers the 404.
    status, _, _ = call(
        wsgi.application, "/api/v1/tasks/00000000-0000-0000-0000-000000000000/", token
    )
    assert status.startswith("404")
    assert len(attempts) == 1


@pytest.mark.django_db(transaction=True)
def test_asgi_liveness_probe_touches_no_database_while_a_release_is_owed(monkeypatch, settings):
    # F4. Under uvicorn request_started has `scope`, not `environ`: the probe check never matches.
    settings.ALLOWED_HOSTS = ["testserver"]
    attempts = []
    monkeypatch.setattr(idempotency, "_unreleased", [_OwedClaim(attempts)])

    async def probe():
        return await AsyncClient().get("/healthz")

    response = asyncio.run(probe())
    assert response.status_code == 200
    assert attempts == [], "/healthz under ASGI tried the database"
