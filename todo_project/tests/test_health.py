import contextlib
import json
import logging
import socket
import threading
import time
import types
import uuid

import pytest
from django.db import connection
from django.test import Client

from todo_project import health
from todo_project.tests.helpers import (
    connection_of_its_own,
    terminate_backend,
)


def database_checks_running() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "readyz-database"]


@pytest.fixture(autouse=True)
def _no_database_check_left_running():
    """A /readyz database check still running (todo_project/health.py) would be the one in flight
    for the next test's probes, and its connection a session on the test database."""
    yield
    left_running = database_checks_running()
    for thread in left_running:
        thread.join(timeout=10)
    health._check_in_flight = None  # the next test's first probe starts a check of its own
    assert not [thread for thread in left_running if thread.is_alive()]


def test_healthz_answers_without_touching_the_database(anon_client):
    # No django_db mark: any database access in this test raises.
    response = anon_client.get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_a_probe_with_another_method_is_405_naming_get_and_head(path, method):
    # CSRF checks on, as a real server has them: a POST used to get CSRF's 403 HTML page.
    response = getattr(Client(enforce_csrf_checks=True), method)(path)
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    # In the words of the API's own 405s (DRF's), not a second wording of its own.
    assert json.loads(response.content)["detail"] == f'Method "{method.upper()}" not allowed.'


def test_healthz_answers_head():
    response = Client().head("/healthz")
    assert response.status_code == 200


@pytest.mark.django_db
def test_readyz_is_200_when_database_and_cache_answer(anon_client):
    response = anon_client.get("/readyz")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok", "database": "ok", "cache": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_problem_when_the_cache_is_down(anon_client, settings):
    from django.core.cache import caches

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    try:
        response = anon_client.get("/readyz")
    finally:
        caches.close_all()
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert json.loads(response.content)["detail"] == "Not ready: cache unavailable."


@pytest.mark.django_db(transaction=True)
def test_a_killed_database_connection_does_not_fail_the_next_probe(anon_client):
    """What a PostgreSQL restart does to the worker's persistent connection. The probe checks on
    a connection of its own, opened and closed by each check, so it is 200; the worker's own
    connection is replaced at its next request (test_postgresql_backend.py)."""
    assert anon_client.get("/readyz").status_code == 200
    connection.ensure_connection()
    terminate_backend(connection, connection.connection.info.backend_pid)
    try:
        response = anon_client.get("/readyz")
    finally:
        connection.close()  # the dead one: the test database's flush needs a live connection
    assert response.status_code == 200


@contextlib.contextmanager
def a_role_of_one_session():
    """The test's connection made a role's that PostgreSQL allows one session (CONNECTION
    LIMIT 1), as a role whose limit, or max_connections, the workers' sessions have taken;
    closed. Put back afterwards, the check's thread done before its role goes."""

    role = f"readyz_{uuid.uuid4().hex[:8]}"
    admin = connection_of_its_own(connection)
    admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
    admin.execute(f"GRANT pg_read_all_data TO {role}")
    user = connection.settings_dict["USER"]
    connection.close()
    connection.settings_dict["USER"] = role
    try:
        yield
        for thread in database_checks_running():
            thread.join(timeout=10)
    finally:
        connection.close()
        connection.settings_dict["USER"] = user
        admin.execute(f"DROP ROLE {role}")
        admin.close()


@pytest.mark.django_db(transaction=True)
def test_readyz_is_ready_while_the_workers_hold_every_session_postgresql_allows(
    anon_client, caplog
):
    """The probe's own new session refused with "too many connections" (the role's CONNECTION
    LIMIT, or max_connections, taken by the workers' persistent connections) was a 503 from
    every replica, so the load balancer took them all out while each worker served on the
    connection it held; and each probe logged a 4 kB traceback."""
    with a_role_of_one_session():
        connection.ensure_connection()  # the worker's connection: the role's one session
        response = anon_client.get("/readyz")
        with connection.cursor() as cursor:  # it serves
            cursor.execute("SELECT count(*) FROM accounts_user")
    assert response.status_code == 200, response.content
    (record,) = [r for r in caplog.records if r.name == "todo.health"]
    assert record.getMessage().startswith("readiness check: no spare session, ready on the")
    assert record.exc_info is None


@pytest.mark.django_db(transaction=True)
def test_readyz_is_not_ready_when_no_session_is_spare_and_the_worker_holds_none(anon_client):
    """The slots taken by others (another replica's workers): this worker, holding no
    connection (new, restarted, CONN_MAX_AGE=0), would answer every request 503 (review 29g:
    /readyz said ready all the same)."""

    # Another replica's worker holds the role's one session.
    with a_role_of_one_session(), connection_of_its_own(connection):
        response = anon_client.get("/readyz")
    assert response.status_code == 503, response.content


@pytest.mark.django_db
def test_readyz_is_503_within_seconds_when_the_database_accepts_and_never_answers(anon_client):
    """A hung server (or a half-open path to it): the probe gives up after its 2 s budget (and
    the connect after DB_CONNECT_TIMEOUT) instead of holding the worker until gunicorn kills it."""
    silent = socket.create_server(("127.0.0.1", 0))
    held = []  # accepted, never answered

    def listen() -> None:
        with contextlib.suppress(OSError):  # shut down before any connection came
            held.append(silent.accept()[0])

    listening = threading.Thread(target=listen, daemon=True)
    listening.start()
    # The check connects afresh, on its own thread: point new connections at the silent server.
    address = {"HOST": connection.settings_dict["HOST"], "PORT": connection.settings_dict["PORT"]}
    connection.settings_dict.update(HOST="127.0.0.1", PORT=silent.getsockname()[1])
    started = time.monotonic()
    try:
        response = anon_client.get("/readyz")
    finally:
        connection.settings_dict.update(address)
        # A shutdown, not just a close, ends an accept() still waiting on another thread; and the
        # check gives up as soon as its connection is hung up on.
        shut_down_and_close(silent, *held)
        listening.join(timeout=5)
    assert not listening.is_alive()
    assert response.status_code == 503
    assert json.loads(response.content)["detail"] == "Not ready: database unavailable."
    assert time.monotonic() - started < 4
    assert held  # it did reach the listener


def shut_down_and_close(*sockets: socket.socket) -> None:
    """Closing a socket does not wake a thread blocked in its accept() or recv(), and while one
    is, the kernel keeps the socket open: the peer (PostgreSQL's session) never sees it end. A
    shutdown does both."""
    for sock in sockets:
        with contextlib.suppress(OSError):  # not connected, or already shut down
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def test_a_probe_answers_once_the_check_has_closed_its_connection(anon_client, monkeypatch):
    """The check's connection is closed before its outcome is set: a probe that answers leaves
    no session behind it, and no next check can start beside a connection still closing."""
    closed = threading.Event()

    def close_all() -> None:
        time.sleep(0.2)  # a slow close: the probe must wait for it
        closed.set()

    monkeypatch.setattr(health, "_database_answers", lambda: None)
    monkeypatch.setattr(health, "connections", types.SimpleNamespace(close_all=close_all))
    assert anon_client.get("/readyz").status_code == 200
    assert closed.is_set()


def test_a_failing_close_still_settles_the_check(anon_client, monkeypatch, caplog):
    """Were the outcome left unset, every later probe would share a check that never ends."""

    def close_all() -> None:
        raise RuntimeError("the close failed")

    monkeypatch.setattr(health, "_database_answers", lambda: None)
    monkeypatch.setattr(health, "connections", types.SimpleNamespace(close_all=close_all))
    started = time.monotonic()
    assert anon_client.get("/readyz").status_code == 200
    assert anon_client.get("/readyz").status_code == 200
    assert time.monotonic() - started < 1
    assert "readiness check: closing its database connection failed" in caplog.messages


class PartitionedDatabase:
    """A TCP proxy to the test database. A connection that sends `SELECT 1` (the readiness
    check's query) is partitioned there: the query is held back until `heal()`, both sockets stay
    open, and the client waits for an answer that does not come, as with a stopped server or a
    network partition. The server never sees the query, so no server-side timeout can fire."""

    def __init__(self, database) -> None:
        params = database.get_connection_params()
        host, port = params.get("host") or "/tmp", params.get("port") or 5432
        if host.startswith("/"):
            self.upstream = (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}")
        else:
            self.upstream = (socket.AF_INET, (host, int(port)))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held = []  # the connections partitioned
        self.hung_up = []  # the connections their client closed
        self.healed = threading.Event()
        self.closed = False
        self.lock = threading.Lock()  # self.sockets, self.threads and self.closed
        self.sockets = [self.listener]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # shut down
            server = socket.socket(self.upstream[0])
            with self.lock:
                self.sockets += [client, server]
                if self.closed:
                    shut_down_and_close(client, server)
                    return
                try:
                    server.connect(self.upstream[1])
                except OSError:
                    shut_down_and_close(client, server)
                    continue
                for source, sink, from_client in ((client, server, True), (server, client, False)):
                    thread = threading.Thread(
                        target=self._pass, args=(source, sink, from_client), daemon=True
                    )
                    thread.start()
                    self.threads.append(thread)

    def _pass(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client and b"SELECT 1\x00" in data and not self.healed.is_set():
                    self.held.append(source)
                    self.healed.wait()
                sink.sendall(data)
            if from_client:
                self.hung_up.append(source)
            sink.shutdown(socket.SHUT_WR)  # the hang-up, passed on: so PostgreSQL sees it
        except OSError:
            pass

    def heal(self) -> None:
        self.healed.set()

    def close(self) -> None:
        """Ends every connection through the proxy, both ways (so PostgreSQL ends its sessions),
        and waits for the proxy's threads."""
        self.healed.set()
        with self.lock:
            self.closed = True
        shut_down_and_close(*self.sockets)
        for thread in self.threads:
            thread.join(timeout=5)
        assert not [thread for thread in self.threads if thread.is_alive()]


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_within_seconds_while_the_database_does_not_answer_its_query(
    anon_client, caplog
):
    """The database accepted the connection and never answers the query (a stopped server, a
    network partition): the probe answers 503 after its 2 s budget instead of holding the
    worker until gunicorn kills it, and a second probe during the same stall answers 503 at
    once, without starting another check."""
    partition = PartitionedDatabase(connection)
    # Every connection opened from here on goes through the proxy (the check's, on its thread,
    # and this thread's once closed).
    address = {"HOST": connection.settings_dict["HOST"], "PORT": connection.settings_dict["PORT"]}
    connection.settings_dict.update(HOST="127.0.0.1", PORT=partition.port)
    connection.close()
    # Should a probe never answer, the stall ends after 10 s and the test fails, not hangs.
    watchdog = threading.Timer(10, partition.heal)
    watchdog.start()
    try:
        started = time.monotonic()
        first = anon_client.get("/readyz")
        first_took = time.monotonic() - started
        started = time.monotonic()
        second = anon_client.get("/readyz")
        second_took = time.monotonic() - started
        for response in (first, second):
            assert response.status_code == 503
            assert response["Content-Type"] == "application/problem+json"
            assert json.loads(response.content)["detail"] == "Not ready: database unavailable."
        assert first_took < 5
        assert second_took < 1
        checks = database_checks_running()
        assert len(checks) == 1
        assert len(partition.held) == 1

        # The stall ends: the check gets its answer, finishes and closes its connection, and
        # the next probe is ready.
        partition.heal()
        checks[0].join(timeout=5)
        assert not checks[0].is_alive()
        deadline = time.monotonic() + 5
        while partition.held[0] not in partition.hung_up and time.monotonic() < deadline:
            time.sleep(0.01)
        assert partition.held[0] in partition.hung_up
        assert anon_client.get("/readyz").status_code == 200
    finally:
        watchdog.cancel()
        connection.settings_dict.update(address)
        connection.close()
        partition.close()
    assert "readiness check failed: database (no answer within 2.0 s)" in caplog.messages


def errors_logged(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


PROBLEM = "application/problem+json"


@pytest.mark.django_db
def test_readyz_is_503_when_the_cache_does_not_return_what_it_stored(anon_client, settings, caplog):
    # A cache that answers and keeps nothing (DummyCache: a CACHES typo, a proxy to nowhere):
    # no exception, but the rate limits and everything else kept there would not hold.
    from django.core.cache import caches

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    try:
        answer = anon_client.get("/readyz")
    finally:
        caches.close_all()
    assert answer.status_code == 503
    assert answer["Content-Type"] == PROBLEM
    assert json.loads(answer.content)["detail"] == "Not ready: cache unavailable."
    assert [r.getMessage() for r in caplog.records if r.name == "todo.health"] == [
        "readiness check failed: cache (the cache did not return what was just stored)"
    ]
    assert errors_logged(caplog) == []


def test_readyz_is_503_when_the_database_check_fails_unexpectedly(anon_client, monkeypatch, caplog):
    # Not a DatabaseError (a bug, a driver's own exception): not ready, said in one WARNING
    # with its traceback, and the probe still answers (no 500, no ERROR line).
    def broken() -> None:
        raise RuntimeError("the check itself broke")

    monkeypatch.setattr(health, "_database_answers", broken)
    answer = anon_client.get("/readyz")
    assert answer.status_code == 503
    assert answer["Content-Type"] == PROBLEM
    assert json.loads(answer.content)["detail"] == "Not ready: database unavailable."
    (record,) = [r for r in caplog.records if r.name == "todo.health"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "readiness check failed: database"
    assert record.exc_info and isinstance(record.exc_info[1], RuntimeError)
    assert errors_logged(caplog) == []
