"""A statement PostgreSQL cancels (past DB_STATEMENT_TIMEOUT, typically waiting behind a stuck
request's lock) is a 503 problem with Retry-After: the request was rolled back, and a retry a
little later goes through. It was a 500, which tells a client the server is broken."""

import logging

import orjson
import pytest
from django.db import connection

from accounts.models import User
from accounts.tokens import RefreshToken
from tasks import services
from tasks.models import IdempotencyRecord, OwnerTaskCount, Task, TaskList
from tasks.tests.test_fast_lane import call
from todo_project import wsgi
from todo_project.tests.helpers import connection_of_its_own, statement_timeout

PROBLEM = "application/problem+json"


def _assert_a_problem_to_retry(status, headers, content, path, caplog, method):
    named = dict(headers)
    assert status.startswith("503"), content
    assert (named["Content-Type"], named["Retry-After"]) == (PROBLEM, "5")
    problem = orjson.loads(content)
    assert (problem["status"], problem["instance"]) == (503, path)
    assert problem["detail"].startswith("A database statement ran past this server's time")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    # One line, with the traceback: it names the statement the operator has to look at.
    assert [r.getMessage().split(": ")[0] for r in errors] == [
        f"Statement cancelled on {method} {path}"
    ]
    assert errors[0].exc_info is not None


@pytest.mark.django_db(transaction=True)
def test_an_update_waiting_past_the_timeout_is_a_503_and_changes_nothing(user, caplog):
    token = str(RefreshToken.for_user(user).access_token)
    task = services.task_create(user=user, data={"title": "Pay rent"})
    path = f"/api/v1/tasks/{task.pk}/"
    with connection_of_its_own(connection) as other, other.transaction():
        other.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR UPDATE", [task.pk])
        with statement_timeout(connection, "300ms"), caplog.at_level(logging.INFO):
            status, headers, content = call(
                wsgi.application,
                path,
                token,
                "PATCH",
                data=b'{"title": "Pay the rent"}',
                content_type="application/json",
            )
    _assert_a_problem_to_retry(status, headers, content, path, caplog, "PATCH")
    task.refresh_from_db()
    assert (task.title, task.version) == ("Pay rent", 1)


@pytest.mark.django_db(transaction=True)
def test_a_create_with_a_key_cancelled_is_a_503_and_the_key_is_free_again(user, caplog):
    token = str(RefreshToken.for_user(user).access_token)
    services.task_create(user=user, data={"title": "Pay rent"})  # makes the owner's count row
    path = "/api/v1/tasks/"
    body = {"data": b'{"title": "Call mum"}', "content_type": "application/json"}
    key = {"HTTP_IDEMPOTENCY_KEY": "cancelled-1"}
    with connection_of_its_own(connection) as other, other.transaction():
        other.execute(
            f"SELECT 1 FROM {OwnerTaskCount._meta.db_table} WHERE owner_id = %s FOR UPDATE",
            [user.pk],
        )
        with statement_timeout(connection, "300ms"), caplog.at_level(logging.INFO):
            status, headers, content = call(wsgi.application, path, token, "POST", **body, **key)
    _assert_a_problem_to_retry(status, headers, content, path, caplog, "POST")
    assert not Task.objects.filter(title="Call mum").exists()
    assert not IdempotencyRecord.objects.exists()
    # The retry the answer asks for creates the task, once.
    status, _, content = call(wsgi.application, path, token, "POST", **body, **key)
    assert status.startswith("201"), content
    assert Task.objects.filter(title="Call mum").count() == 1


# Review 37f: views whose write committed before a later statement; now one transaction.


@pytest.mark.django_db(transaction=True)
def test_a_list_create_cancelled_in_its_answer_creates_no_list(user, caplog):
    """The create commits, then its answer's read (the task counts, from tasks_task) waits past
    the statement timeout behind a lock on tasks_task (0023's reversal, README: 71-83 s): the
    503 says "not carried out", and the client's retry (no key) made a second list."""
    token = str(RefreshToken.for_user(user).access_token)
    body = {"data": b'{"name": "Groceries"}', "content_type": "application/json"}
    with connection_of_its_own(connection) as other, other.transaction():
        other.execute(f"LOCK TABLE {Task._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        with statement_timeout(connection, "300ms"), caplog.at_level(logging.INFO):
            status, _, content = call(wsgi.application, "/api/v1/lists/", token, "POST", **body)
    assert status.startswith("503"), content
    assert b"not carried out" in content
    assert TaskList.objects.filter(owner=user).count() == 0, "the 503 left a list created"
    status, _, content = call(wsgi.application, "/api/v1/lists/", token, "POST", **body)
    assert status.startswith("201"), content
    assert TaskList.objects.filter(owner=user).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_register_cancelled_at_its_token_creates_no_account(caplog):
    """The account commits, then its first refresh token's INSERT (token_blacklist_
    outstandingtoken) waits past the timeout (a lock on that table): the 503 says "not carried
    out; send it again", and the retry was a 400 "An account with this email already exists"."""
    data = {"email": "new@example.com", "password": "correct-horse-battery-9"}
    body = {"data": orjson.dumps(data), "content_type": "application/json"}
    path = "/api/v1/auth/register/"
    with connection_of_its_own(connection) as other, other.transaction():
        other.execute("LOCK TABLE token_blacklist_outstandingtoken IN SHARE MODE")
        with statement_timeout(connection, "300ms"), caplog.at_level(logging.INFO):
            status, _, content = call(wsgi.application, path, None, "POST", **body)
    assert status.startswith("503"), content
    assert not User.objects.filter(email=data["email"]).exists(), "the 503 left an account"
    status, _, content = call(wsgi.application, path, None, "POST", **body)
    assert status.startswith("201"), content
