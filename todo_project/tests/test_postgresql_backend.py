"""Our PostgreSQL backend (todo_project/postgresql/base.py): the per-request health check polls
the socket (no `SELECT 1`) and still replaces a dead connection; timestamps load natively."""

import os
from datetime import UTC, datetime

import psycopg
import pytest
from django.db import close_old_connections, connections
from psycopg import pq

from accounts.models import User
from todo_project.postgresql.base import TIMESTAMPTZ_OID, UtcTimestamptzLoader
from todo_project.tests.helpers import terminate_backend

pytestmark = pytest.mark.django_db(transaction=True)
connection = connections["default"]


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def start_request() -> None:
    """What Django does when a request starts: its next query runs the health check."""
    close_old_connections()


def terminate(pid: int) -> None:
    terminate_backend(connection, pid)


def test_a_live_connection_is_kept_without_a_round_trip(monkeypatch):
    pid = backend_pid()
    calls = []
    monkeypatch.setattr(type(connection), "is_usable", lambda self: calls.append(1) or True)
    start_request()
    assert backend_pid() == pid
    assert calls == []  # no SELECT 1


def test_a_connection_the_server_ended_is_replaced_before_the_request_uses_it():
    pid = backend_pid()
    terminate(pid)
    start_request()
    assert User.objects.count() >= 0  # would raise OperationalError on the dead connection
    assert backend_pid() != pid


def test_without_the_check_the_dead_connection_fails():
    # The control: the same termination, no request start, so no check: the query fails.
    terminate(backend_pid())
    with pytest.raises(Exception, match="terminat|closed|server"):
        User.objects.count()
    connection.close()


def test_timestamps_come_back_aware_in_utc_through_psycopgs_own_loader():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT '2026-11-22 10:30:05.123456+01'::timestamptz, NULL::timestamptz, now()"
        )
        moment, missing, current = cursor.fetchone()
        loader = cursor.cursor.adapters.get_loader(TIMESTAMPTZ_OID, pq.Format.TEXT)
    assert moment == datetime(2026, 11, 22, 9, 30, 5, 123456, tzinfo=UTC)
    assert moment.tzinfo is UTC
    assert missing is None
    assert current.tzinfo is UTC
    assert loader is UtcTimestamptzLoader


def test_statements_are_bound_as_db_prepared_statements_says():
    # `make test` runs the API's tests a second time with DB_PREPARED_STATEMENTS=0 (PgBouncer
    # before 1.21): that pass means something only if it really binds on the client.
    client_side = os.environ.get("DB_PREPARED_STATEMENTS") == "0"
    with connections["default"].cursor() as cursor:
        assert isinstance(cursor.cursor, psycopg.ClientCursor) == client_side
