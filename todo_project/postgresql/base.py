"""Django's PostgreSQL backend, its per-request health check made a poll of the socket.

With CONN_HEALTH_CHECKS, Django sends `SELECT 1` before the first query of every request on a
reused connection: a whole round trip to find out whether PostgreSQL is still there, ~20 % of
a one-task GET under load (bench/README.md). An idle connection has nothing to read until the
server ends it: a restart, `pg_terminate_backend` or an idle timeout sends an error and closes
the socket, and both make it readable. So a quiet socket is a live connection, and anything to
read (or a broken socket) closes it and the request connects afresh — what Django does when
`SELECT 1` fails. After a database error in a request Django still checks with `SELECT 1`.
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
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
