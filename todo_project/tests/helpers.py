import functools
import os
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import hypothesis
import psycopg
import pytest
from django.conf import settings
from django.db import connection, connections, transaction

from tasks.models import Task


def database_url_for_this_test() -> str:
    """DATABASE_URL of this run, pointed at the test database: for a subprocess (a server, a
    management command) that must see what the test wrote."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(command: list[str], port: int, logs: Path, **env: str) -> Iterator[str]:
    """Runs a server process (`command`, listening on `port`) on this test's database and
    Redis, production settings; yields its base URL once /healthz answers, stops it after."""
    environment = {
        **os.environ,
        "DATABASE_URL": database_url_for_this_test(),
        "CONN_MAX_AGE": "0",  # no connection left open to the test database afterwards
        "SECRET_KEY": settings.SECRET_KEY,
        "JWT_SIGNING_KEY": settings.SIMPLE_JWT["SIGNING_KEY"],
        "DEBUG": "0",
        "HTTPS": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "FRONTEND_URL": "https://app.example.com",
        "CACHE_KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", ""),
        "LOG_LEVEL": "warning",
        **env,
    }
    error_log = logs / "error.log"
    with error_log.open("wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                    pass
            except OSError:
                pass
            else:
                # Answered by this process, not by another that took the port meanwhile.
                if process.poll() is None:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{command[0]} did not start:\n{error_log.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def coverage_paused() -> Iterator[None]:
    """Coverage's tracer off for what runs inside: an oracle of code that is not measured.
    Under Python 3.11 coverage traces every call, dateutil's too: test_recurrence_cost's
    plain-dateutil oracle walks day by day, and the test took 30 s with it traced, 10 s
    without (review 41a). The project's code must not run inside: its lines would go
    uncounted. The thread's trace function itself, not Coverage.stop(): an xdist worker runs
    several Coverage instances (pytest-cov's, the subprocess patch's), and stopping the last
    one resumes the one before it."""
    tracer = sys.gettrace()
    sys.settrace(None)
    try:
        yield
    finally:
        sys.settrace(tracer)


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


def outcomes_in_threads(count: int, target: Callable[[int], object]) -> list:
    """target(0) ... target(count - 1), each in its own thread as run_in_threads runs them: what
    each returned, or the exception it raised, in that order."""
    outcomes: list = [None] * count

    def keep(n: int) -> None:
        try:
            outcomes[n] = target(n)
        except Exception as error:  # noqa: BLE001 - the caller asserts on it
            outcomes[n] = error

    run_in_threads(*(functools.partial(keep, n) for n in range(count)))
    return outcomes


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


def run_holding_the_first_row(write: Callable[[], object], held: Any, free: Any) -> object:
    """Runs `write` while this test holds task `held` (as another write would), checks that
    while `write` waits for it, task `free` is not locked yet (rows locked in ROW_LOCK_ORDER,
    `held` first), then lets it go on; what `write` returned."""
    with transaction.atomic():
        Task.objects.select_for_update().get(pk=held)
        join = start_in_thread(write)
        waits = wait_for_lock_waiters(connection, 1)
        with connection_of_its_own(connection) as other:
            locked = other.execute(
                "SELECT id FROM tasks_task WHERE id = %s FOR UPDATE SKIP LOCKED", [free]
            ).fetchone()
    outcome = join()
    assert waits, "the write never waited for the held row"
    assert locked == (free,), "the write locked a later row before the held one"
    return outcome


def deadlocks_run_again(caplog) -> list[str]:
    """The deadlocks (40P01) a request ran into and was run again after (todo.retry's lines)."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "todo.retry" and "40P01" in record.getMessage()
    ]


# Every table of the test database, autovacuum_enabled = false: a plan test sets its statistics
# itself (ANALYZE, or statistics_of_an_emptied_table) and then EXPLAINs, and an autovacuum in
# between replaced them at random. With the rows deleted and analyzed, a VACUUM before the refill
# truncates the table (relpages 0: the planner then takes its pages for full ones), and
# test_tag_name_plans saw a Bitmap Heap Scan, 3 of 3 failed (review 41f; seen once in a run of
# the whole suite). autovacuum is a server setting (no ALTER DATABASE): per table, then;
# and again for the tables a migration test drops and creates anew (migrate_to).
_AUTOVACUUM_OFF = """
    DO $$
    DECLARE name regclass;
    BEGIN
        FOR name IN
            SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'm')
        LOOP
            EXECUTE format('ALTER TABLE %s SET (autovacuum_enabled = false)', name);
        END LOOP;
    END
    $$
"""


def autovacuum_off(connection) -> None:
    """No autovacuum on any table of the test database (_AUTOVACUUM_OFF)."""
    with connection.cursor() as cursor:
        cursor.execute(_AUTOVACUUM_OFF)


def statistics_of_an_emptied_table(
    connection, insert: str, params: list, *tables: str, emptied: int = 1
) -> None:
    """Runs `insert` on tables[0] (and the next ones up to `emptied`), deletes every row of
    them, in that order, and ANALYZEs `tables`: the statistics a purge that emptied the table
    leaves (pages, no rows), from which the planner believes one row. ANALYZE writes them in
    place, beyond a rollback: use it in a transaction=True test, whose flush (TRUNCATE) resets
    them to "never analyzed" for the tests after it."""
    with connection.cursor() as cursor:
        cursor.execute(insert, params)
        for table in tables[:emptied]:
            cursor.execute(f"DELETE FROM {table}")
        cursor.execute(f"ANALYZE {', '.join(tables)}")


@contextmanager
def statement_timeout(connection, limit: str) -> Iterator[None]:
    """Each statement of the connection bounded by `limit` (a session setting: the test may
    commit), reset afterwards."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET statement_timeout = '{limit}'")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")


def one_gunicorn_worker(port: int, timeout: int, app: str = "todo_project.wsgi:application"):
    """The command of a gunicorn with the project's configuration, one worker on `port` and
    gunicorn's `timeout` (its kill of a request) in seconds: for served()."""
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    return [gunicorn, app, "--config", "gunicorn.conf.py", "--workers", "1",
            "--bind", f"127.0.0.1:{port}", "--timeout", str(timeout)]  # fmt: skip


def state_machine_settings(steps: int) -> hypothesis.settings:
    """Hypothesis settings of the suite's state machines: 12 examples of `steps` steps,
    derandomized (the same examples on every run: CI fails only for a change of the code);
    STATEFUL_EXAMPLES (and STATEFUL_STEPS) hunt with random ones."""
    return hypothesis.settings(
        max_examples=int(os.environ.get("STATEFUL_EXAMPLES", "12")),
        stateful_step_count=int(os.environ.get("STATEFUL_STEPS", str(steps))),
        derandomize="STATEFUL_EXAMPLES" not in os.environ,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
