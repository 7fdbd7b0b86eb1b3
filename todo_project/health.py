"""Liveness and readiness probes for load balancers and orchestrators."""

import logging
import uuid

from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from todo_project.problems import problem_response

logger = logging.getLogger("todo.health")


# A probe sent with the wrong method is a 405 naming GET and HEAD, not CSRF's 403 page.
@csrf_exempt
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up. Touches neither the database nor the cache."""
    return JsonResponse({"status": "ok"})


def _database_answers() -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        # A hung server must not hang the probe: the contract allows 2 s.
        cursor.execute("SET LOCAL statement_timeout = 2000")
        cursor.execute("SELECT 1")


def _cache_answers() -> None:
    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("the cache did not return what was just stored")
    cache.delete(key)


@csrf_exempt
@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    """The database and the shared cache both answer (each within the 2 s budget)."""
    failed = []
    for name, check in (("database", _database_answers), ("cache", _cache_answers)):
        try:
            check()
        except Exception:
            logger.warning("readiness check failed: %s", name, exc_info=True)
            failed.append(name)
    if failed:
        return problem_response(request, 503, f"Not ready: {', '.join(failed)} unavailable.")
    return JsonResponse({"status": "ok", "database": "ok", "cache": "ok"})
