"""Request ids, the one access-log line per request, and JSON log formatting."""

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import orjson
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from todo_project.client_ip import client_ip

REQUEST_ID_HEADER = "X-Request-ID"
# Read from META: request.headers would build a mapping of every header on each request.
REQUEST_ID_META_KEY = "HTTP_X_REQUEST_ID"
# An incoming id is echoed only when it is short and made of harmless characters.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # fullmatch: "$" lets "id\n" in

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)
access_log = logging.getLogger("todo.access")
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a request whose client left before its answer


# A path is written back (a problem's `instance`, the access log's `path`) up to this many
# characters: a URL refused for its length echoed whole made a 414 and its log line as long as
# the request (2 MB each for a 2 MB path sent to gunicorn directly; review 33d).
SHOWN_PATH_MAX = 2048


def shown_path(path: str) -> str:
    return path if len(path) <= SHOWN_PATH_MAX else path[:SHOWN_PATH_MAX] + "…"


# Set by a view that authenticated without DRF (tasks.fast_read): the user's id.
AUTHENTICATED_USER_ID = "authenticated_user_id"


def _user_id(request: HttpRequest) -> str | None:
    user_id = getattr(request, AUTHENTICATED_USER_ID, None)
    if user_id is not None:
        return str(user_id)
    # DRF stores the JWT user on the Django request once it has authenticated. An untouched
    # lazy session user is not evaluated here: that would cost a query for nothing.
    user = request.__dict__.get("user")
    if user is None or (isinstance(user, SimpleLazyObject) and user._wrapped is empty):
        return None
    return str(user.pk) if getattr(user, "is_authenticated", False) else None


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        with identified(request) as request_id:
            try:
                response = self.get_response(request)
            except asyncio.CancelledError:
                # Under ASGI, Django cancels the request when its client leaves, while the
                # view's thread may go on and write: nginx's "client closed request".
                log_access(request, CLIENT_CLOSED_REQUEST, started)
                raise
            response[REQUEST_ID_HEADER] = request_id
            log_access(request, response.status_code, started)
            return response


@contextmanager
def identified(request: HttpRequest) -> Iterator[str]:
    """Gives the request its id (a sane incoming X-Request-ID, else a new one), which every log
    line written meanwhile carries. Also used by the fast lane (todo_project/fast_lane.py)."""
    incoming = request.META.get(REQUEST_ID_META_KEY, "")
    request_id = incoming if SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    request.request_id = request_id
    token = current_request_id.set(request_id)
    try:
        yield request_id
    finally:
        current_request_id.reset(token)


def log_access(request: HttpRequest, status: int, started: float) -> None:
    """The one access-log line of a request; `started` is its time.perf_counter()."""
    access_log.info(
        "request",
        extra={
            "method": request.method,
            "path": shown_path(request.path),
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "user_id": _user_id(request),
            "client_ip": client_ip(request),
        },
    )


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # django.request logs a 4xx/5xx answer after the middleware has returned, so outside
        # identified(): its record carries the request, and the request its id.
        record.request_id = current_request_id.get() or getattr(
            getattr(record, "request", None), "request_id", None
        )
        return True


class ClientFaultAsWarning(logging.Filter):
    """django.security logs each request it refuses (a Host not served, too many fields, a body
    too large) at ERROR: any client could fill the error log and wake whoever it alerts. Each
    is a 400 the access log records too; its line stays, as a WARNING, without a traceback
    (~1.3-2.5 kB of Django's frames that say nothing the message does not) and with the path
    alone for the request (its repr carried the whole query string: 2-7 kB a line for
    `?a&a&…`, from any anonymous client)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security."):
            if record.levelno == logging.ERROR:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
            request = getattr(record, "request", None)
            if request is not None:
                record.request = getattr(request, "path", "")
        return True


_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: easy to ship to any log store and to grep."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        entry.update(
            (key, value) for key, value in record.__dict__.items() if key not in _STANDARD_ATTRS
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


JsonFormatter.converter = time.gmtime
