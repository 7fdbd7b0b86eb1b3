import select
import time

import psycopg


def terminate_backend(connection, pid: int) -> None:
    """Ends a PostgreSQL backend as a restart would, and waits until its goodbye (the FATAL
    message, then EOF) has reached `connection`'s socket: it arrives asynchronously."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    poller = select.poll()
    poller.register(connection.connection.pgconn.socket, select.POLLIN)
    deadline = time.monotonic() + 5
    while not poller.poll(50) and time.monotonic() < deadline:
        pass
