"""Liveness and readiness probes for load balancers and orchestrators."""

import logging
import threading
import time
import uuid
from concurrent.futures import Future

from django.core.cache import cache
from django.db import DatabaseError, connection, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from todo_project.problems import logged, problem_response

logger = logging.getLogger("todo.health")

# The contract: ready when the database and the cache answer within 2 s.
READY_BUDGET_SECONDS = 2.0


# A probe sent with the wrong method is a 405 naming GET and HEAD, not CSRF's 403 page.
@csrf_exempt
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up. Touches neither the database nor the cache."""
    return JsonResponse({"status": "ok"})


def _database_answers() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _run_database_check(outcome: Future) -> None:
    try:
        _database_answers()
    except BaseException as error:  # noqa: BLE001 - handed to the probe waiting for it
        failure = error
    else:
        failure = None
    # This thread's connection must not outlive the check, and it is closed before the outcome
    # is set: a probe that answers leaves no session behind, and the next check (see below)
    # cannot start while this one's connection is still open.
    try:
        connections.close_all()
    except Exception:  # the outcome must be set whatever happens here
        logger.warning("readiness check: closing its database connection failed", exc_info=True)
    if failure is None:
        outcome.set_result(None)
    else:
        outcome.set_exception(failure)


# Why a thread: a stalled server (SIGSTOP, a network partition) keeps the socket open and never
# answers, so no server-side statement_timeout fires and the query blocks until gunicorn kills
# the worker. The check runs on a daemon thread, with a connection of its own (Django's are
# per thread), and the probe waits for it until its deadline; a check still waiting then is
# left to finish or fail on its own. At most one check is in flight per process, and a probe
# that finds one shares it: while a query of a check stalls, later probes find it past its
# deadline and answer 503 at once instead of leaving one more thread and connection behind
# each. (A server that accepts no connection fails each check at DB_CONNECT_TIMEOUT, 2 s, the
# budget itself: each probe then runs a check of its own and answers 503 in 2 s.)
_check_lock = threading.Lock()
_check_in_flight: tuple[Future, float] | None = None  # (its outcome, its deadline)


def _database_check() -> tuple[Future, float]:
    """The database check in flight, or a new one if none is: its outcome and deadline."""
    global _check_in_flight
    with _check_lock:
        if _check_in_flight is None or _check_in_flight[0].done():
            outcome: Future = Future()
            threading.Thread(
                target=_run_database_check, args=(outcome,), name="readyz-database", daemon=True
            ).start()
            _check_in_flight = (outcome, time.monotonic() + READY_BUDGET_SECONDS)
        return _check_in_flight


# PostgreSQL's refusals of a new session for want of a slot (SQLSTATE 53300, which libpq does not
# expose for a failed connection: its English messages): the role's CONNECTION LIMIT, the
# database's, max_connections, and the slots reserved for superusers / pg_use_reserved_connections.
NO_SPARE_SESSION = ("too many connections", "too many clients", "remaining connection slots")


def _serving_on_its_own_session(error: BaseException) -> bool:
    """The server answered the check's new session with "too many connections", and this worker
    holds an open connection of its own (CONN_MAX_AGE), which it serves on: ready. A 503 there
    took every replica out of the load balancer at once, their workers holding the slots. A
    worker that holds none (a new replica, a worker just restarted, CONN_MAX_AGE=0) cannot
    serve a request: not ready."""
    held = connection.connection
    return (
        isinstance(error, DatabaseError)
        and any(phrase in str(error) for phrase in NO_SPARE_SESSION)
        and held is not None
        and not held.closed
        and not held.broken
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _cache_answers() -> None:
    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("the cache did not return what was just stored")
    cache.delete(key)


@csrf_exempt
@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    """The database and the shared cache both answer, within one shared 2 s budget.

    The database is checked on its own thread (see above) while the cache is checked on this
    one, and the probe waits for the database until 2 s after its check started. So the answer
    comes within about 2 s whatever the database does, or the cache's own socket timeouts (1 s
    each, settings.py) if the cache is slower; a stalled database ties the worker up for those
    2 s at most (later probes during the same stall answer 503 at once while its check still
    waits; see above).
    """
    outcome, deadline = _database_check()
    failed = []
    try:
        _cache_answers()
    except Exception as error:  # noqa: BLE001 (one line a probe, every few seconds: no traceback)
        logger.warning("readiness check failed: cache (%s)", _first_line(error))
        failed.append("cache")
    try:
        outcome.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        logger.warning(
            "readiness check failed: database (no answer within %s s)", READY_BUDGET_SECONDS
        )
        failed.insert(0, "database")
    except DatabaseError as error:
        # One line with psycopg's message, not a 4 kB traceback per probe (every few seconds).
        reason = _first_line(error)
        if _serving_on_its_own_session(error):
            logger.warning(
                "readiness check: no spare session, ready on the worker's own: %s", reason
            )
        else:
            logger.warning("readiness check failed: database (%s)", reason)
            failed.insert(0, "database")
    except Exception:
        logger.warning("readiness check failed: database", exc_info=True)
        failed.insert(0, "database")
    if failed:
        # Logged above as one WARNING: not again as Django's ERROR line per probe.
        return logged(
            problem_response(request, 503, f"Not ready: {', '.join(failed)} unavailable.")
        )
    return JsonResponse({"status": "ok", "database": "ok", "cache": "ok"})
