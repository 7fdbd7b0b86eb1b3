import os
import select
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import psycopg
from django.db import connection, connections


def database_url_for_this_test() -> str:
    """DATABASE_URL of this run, pointed at the test database: for a subprocess (a server, a
    management command) that must see what the test wrote."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def connection_of_its_own(connection) -> psycopg.Connection:
    """A new autocommit psycopg connection to `connection`'s database: another client, whose
    writes the test's own connection sees as a concurrent request's."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params, autocommit=True)


def terminate_backend(connection, pid: int) -> None:
    """Ends a PostgreSQL backend as a restart would, and waits until its goodbye (the FATAL
    message, then EOF) has reached `connection`'s socket: it arrives asynchronously."""
    with connection_of_its_own(connection) as admin:
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


def lock_waiters(connection) -> int:
    """How many backends of this database are waiting for a lock (row or advisory)."""
    with connection.cursor() as cursor:
        # pg_stat_activity is read once per transaction unless its snapshot is dropped, and
        # callers poll it from inside one.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0]


def wait_for_lock_waiters(connection, count: int, timeout: float = 10) -> bool:
    """Whether `count` backends came to wait for a lock within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while lock_waiters(connection) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def start_in_thread(target: Callable[[], object]) -> Callable[[], object]:
    """Starts `target` in its own thread (so on its own database connection); the returned
    function waits for it and gives what it returned, or raises what it raised."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = target()
        except Exception as error:  # noqa: BLE001 - re-raised by the caller's join()
            outcome["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()

    def join() -> object:
        thread.join(timeout=30)
        if thread.is_alive():
            raise TimeoutError("The thread is still running.")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    return join
