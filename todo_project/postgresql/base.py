"""Django's PostgreSQL backend, its per-request health check made a poll of the socket.

With CONN_HEALTH_CHECKS, Django sends `SELECT 1` before the first query of every request on a
reused connection: a whole round trip to find out whether PostgreSQL is still there, ~20 % of
a one-task GET under load (bench/README.md). An idle connection has nothing to read until the
server ends it: a restart, `pg_terminate_backend` or an idle timeout sends an error and closes
the socket, and both make it readable. So a quiet socket is a live connection, and anything to
read (or a broken socket) closes it and the request connects afresh — what Django does when
`SELECT 1` fails. After a database error in a request Django still checks with `SELECT 1`.
What neither check can catch is a server that goes away after the check and before the query
(with the poll, before its goodbye has reached the socket): that request fails, as it did.

And timestamps are read by psycopg's own loader (C, with psycopg[binary]) when the session is
in UTC: Django's loader parses them in Python (~10 µs a value, and a page of 50 tasks has ~120)
only to set the tzinfo that psycopg's sets already.

And an error without SQLSTATE notes whether it lost the connection, while the connection is
still the one that failed (todo_project.problems.is_database_unavailable reads it).
"""

import datetime
import select

import psycopg
from django.db.backends.postgresql import base
from django.db.utils import DatabaseErrorWrapper
from django.utils.functional import cached_property
from psycopg import abc, adapt, pq

TIMESTAMPTZ_OID = psycopg.adapters.types["timestamptz"].oid
NATIVE_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(TIMESTAMPTZ_OID, pq.Format.TEXT)


class UtcTimestamptzLoader(adapt.Loader):
    """psycopg's timestamptz loader, with the `timezone` Django's create_cursor() compares."""

    timezone = datetime.UTC

    def __init__(self, oid: int, context: abc.AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        # It reads the session's TimeZone (UTC: Django sets it) and returns datetime.UTC.
        self._native = NATIVE_TIMESTAMPTZ_LOADER(oid, context)

    def load(self, data: abc.Buffer) -> datetime.datetime:
        return self._native.load(data)


class _ErrorWrapper(DatabaseErrorWrapper):
    """Django's, noting on a psycopg error without SQLSTATE whether its connection was lost
    (`connection_lost`). Read later it misleads: Django reconnects on the way out of an atomic
    block (its autocommit is set on a new connection), and so does an idempotency key's
    release, and the new connection looks healthy: a connection PostgreSQL ended mid-request
    was answered as a 500 with a traceback (review 36a)."""

    def __exit__(self, exc_type, exc_value, traceback):
        if isinstance(exc_value, psycopg.OperationalError) and exc_value.sqlstate is None:
            held = self.wrapper.connection
            exc_value.connection_lost = held is None or held.broken or held.closed
        return super().__exit__(exc_type, exc_value, traceback)


class DatabaseWrapper(base.DatabaseWrapper):
    @cached_property
    def wrap_database_errors(self) -> DatabaseErrorWrapper:
        return _ErrorWrapper(self)

    def get_connection_params(self) -> dict:
        params = super().get_connection_params()
        if self.timezone is datetime.UTC:
            # A copy: Django caches and shares the map it built.
            params["context"] = adapt.AdaptersMap(params["context"])
            params["context"].register_loader(TIMESTAMPTZ_OID, UtcTimestamptzLoader)
        return params

    def close_if_health_check_failed(self) -> None:
        if self.connection is None or not self.health_check_enabled or self.health_check_done:
            return
        if not self._idle_connection_is_quiet():
            self.close()
        self.health_check_done = True

    def _idle_connection_is_quiet(self) -> bool:
        pgconn = self.connection.pgconn
        if pgconn.status != pq.ConnStatus.OK:
            return False
        try:
            poller = select.poll()
            poller.register(pgconn.socket, select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError, pq.PGError):
            return False
