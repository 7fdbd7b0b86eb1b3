import select
import threading
import time
from collections.abc import Callable

import psycopg
from django.db import connections


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


def run_in_threads(*targets: Callable[[], object]) -> list[Exception]:
    """Runs each target in its own thread (so on its own database connection), all released
    at once by a barrier; the exceptions they raised."""
    errors: list[Exception] = []
    barrier = threading.Barrier(len(targets))

    def run(target) -> None:
        try:
            barrier.wait()
            target()
        except Exception as error:  # noqa: BLE001 - any failure is reported to the caller
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return errors
