"""RFC 9457 problem details: the one shape of every error answer under /api/.

Domain code raises exceptions (DRF's, Django's, or the small ones below); the exception handler
and the middleware turn each into `application/problem+json`. Nothing builds an error response
by hand elsewhere.
"""

import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

import orjson
import psycopg
from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.db import DatabaseError, OperationalError, connection
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.middleware.common import CommonMiddleware
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.views import set_rollback

from todo_project.ratelimit import count_refused_request
from todo_project.request_id import shown_path

PROBLEM_CONTENT_TYPE = "application/problem+json"
API_PREFIX = "/api/"
# The probes answer JSON too: their errors (a Host not served) are problems, not Django's HTML.
PROBES = ("/healthz", "/readyz")


def answers_problems(path: str) -> bool:
    return path.startswith(API_PREFIX) or path in PROBES


# The detail of every 500: nothing about its cause, which the log line with the id tells.
UNEXPECTED_ERROR_DETAIL = "An unexpected error occurred. Quote the request_id when reporting it."

logger = logging.getLogger("todo.problems")


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"

    def __init__(self, detail: str | None = None, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after  # seconds, when the conflict passes by itself


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The resource has changed since you read it (If-Match does not match)."
    default_code = "precondition_failed"

    def __init__(self, detail: str | None = None, *, etag: str | None = None) -> None:
        super().__init__(detail)
        self.etag = etag  # the current one, sent as ETag: a retry's If-Match needs no GET first


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class UnprocessableContent(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The request cannot be processed."
    default_code = "unprocessable"


class ConcurrentChange(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = (
        "A concurrent change to the same data got in the way, and nothing was changed. "
        "Retry the request."
    )
    default_code = "concurrent_change"


# A connection lost while committing may have applied the write: hence the key's advice.
DATABASE_UNAVAILABLE_DETAIL = (
    "The database is unavailable. Send the request again after Retry-After; a create with "
    "the same Idempotency-Key, so that it is never applied twice."
)
DATABASE_UNAVAILABLE_RETRY_AFTER = "5"


def is_database_unavailable(exc: Exception) -> bool:
    """A database the server cannot reach, or that is going away: nothing the client did, and
    what a retry a little later fixes (a 500 would say the server is broken). SQLSTATE class 08
    (connection exception) and 57P01-57P03 (shutting down, crashed, not accepting connections
    yet); a connection refused, or lost, has none in psycopg 3, and leaves no connection or a
    broken one. Not a statement libpq refused to send while the connection stays good (past
    65,535 parameters), nor InterfaceError, which psycopg 3 raises for misuse ("the cursor is
    closed"): bugs that a retry would not fix."""
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    if sqlstate is None:
        if not isinstance(exc.__cause__, psycopg.OperationalError):
            return False
        lost = getattr(exc.__cause__, "connection_lost", None)  # todo_project.postgresql.base
        if lost is not None:
            return lost
        held = connection.connection
        return held is None or held.broken or held.closed
    return sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03")


# A statement PostgreSQL cancelled (query_canceled): past DB_STATEMENT_TIMEOUT, most often
# waiting for a lock a stuck request holds, or cancelled by an operator. Its transaction was
# rolled back, and a retry a little later is what fixes it: a 503 like an outage's, but with the
# traceback, which names the statement an operator has to look at.
QUERY_CANCELED = "57014"
STATEMENT_CANCELLED_DETAIL = (
    "A database statement ran past this server's time limit and was cancelled: the request was "
    "not carried out. Send it again after Retry-After; a create with the same Idempotency-Key, "
    "so that it is never applied twice."
)


def is_statement_cancelled(exc: Exception) -> bool:
    return isinstance(exc, OperationalError) and (
        getattr(exc.__cause__, "sqlstate", None) == QUERY_CANCELED
    )


def database_retry_response(request: HttpRequest, exc: Exception) -> HttpResponse | None:
    """The 503 with Retry-After for a database that is away or a statement it cancelled, logged
    once; None for any other error."""
    if is_database_unavailable(exc):
        # One line, no traceback: the cause is the database's, and /readyz says so too.
        logger.error("Database unavailable on %s %s: %s", request.method, request.path, exc)
        detail = DATABASE_UNAVAILABLE_DETAIL
    elif is_statement_cancelled(exc):
        # With the traceback: it names the statement an operator has to look at.
        logger.error(
            "Statement cancelled on %s %s: %s", request.method, request.path, exc, exc_info=exc
        )
        detail = STATEMENT_CANCELLED_DETAIL
    else:
        return None
    return logged(
        problem_response(
            request, 503, detail, headers={"Retry-After": DATABASE_UNAVAILABLE_RETRY_AFTER}
        )
    )


def log_concurrent_change(error: Exception) -> None:
    """The one line a write given up on after a concurrent change leaves (the API's 503, the
    admin's page and actions): a WARNING, the database's error when there is one."""
    logger.warning("Concurrent change: %s", error.__cause__ or error)


def logged(response: HttpResponse) -> HttpResponse:
    """Marks a 5xx this module has logged already: Django's handler logs every 5xx answer again
    on django.request (its log_response skips one so marked). Not the others: for an exception
    raised in a middleware, Django's record is the only one, with the traceback."""
    response._has_been_logged = True
    return response


# SQLSTATEs of a transaction PostgreSQL ended to settle a clash with a concurrent one:
# deadlock_detected, serialization_failure, lock_not_available, and foreign_key_violation: every
# write checks the rows it refers to first, so a reference that fails at COMMIT (Django's
# foreign keys are deferred) is to a list or task a concurrent request deleted meanwhile. It was
# rolled back whole, and the same request a moment later succeeds or gets its 400/404: a 503
# with Retry-After, not a 500.
FOREIGN_KEY_VIOLATION = "23503"
CONCURRENT_CHANGE_SQLSTATES = {"40P01", "40001", "55P03", FOREIGN_KEY_VIOLATION}
CONCURRENT_CHANGE_RETRY_AFTER = "1"


def is_concurrent_change(exc: Exception) -> bool:
    return (
        isinstance(exc, DatabaseError)
        and getattr(exc.__cause__, "sqlstate", None) in CONCURRENT_CHANGE_SQLSTATES
    )


# Titles are fixed per status, in sentence case; `detail` carries the specifics. One per
# status: every problem is of the type about:blank, whose title RFC 9457 (3.1.3) keeps the
# same from occurrence to occurrence, so a malformed body's 400 is "Validation failed" too,
# the 400 title the contract gives (API.md).
TITLES = {
    400: "Validation failed",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    410: "Gone",
    411: "Length required",
    412: "Precondition failed",
    413: "Payload too large",
    414: "URI too long",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    431: "Request header fields too large",
    500: "Internal server error",
    503: "Service unavailable",
}


def title_for(status_code: int) -> str:
    if status_code in TITLES:
        return TITLES[status_code]
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"
    return phrase[:1] + phrase[1:].lower()  # in the case of the others: "Expectation failed"


def _encodable(value: Any) -> Any:
    """`value` with each lone surrogate written out as its escape, which UTF-8 cannot carry."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode()
    if isinstance(value, dict):
        return {key: _encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(item) for item in value]
    return value


def problem_response(
    request: HttpRequest,
    status_code: int,
    detail: str,
    *,
    errors: dict[str, Any] | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or title_for(status_code),
        "status": status_code,
        "detail": detail,
        "instance": shown_path(request.path),
        "request_id": getattr(request, "request_id", None),
    }
    if errors is None and status_code == 400:
        # The contract's 400s always carry `errors`; one not about a field (a bad Host or
        # Content-Length header) names itself as the request's own error.
        errors = {"non_field_errors": [detail]}
    if errors is not None:
        body["errors"] = errors
    # RFC 9457 extension members an exception carries (e.g. the bulk endpoint's missing_ids).
    body.update(extra or {})
    try:
        # Non-string keys (an `extra` member a caller built) are written as strings.
        content = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # a message echoing a lone surrogate (Unknown time zone '\ud800'...)
        content = orjson.dumps(_encodable(body), option=orjson.OPT_NON_STR_KEYS)
    response = HttpResponse(content, status=status_code, content_type=PROBLEM_CONTENT_TYPE)
    # What CommonMiddleware and XFrameOptionsMiddleware add on the way out, for the problems
    # ApiProblemMiddleware makes outside them (an unknown route, a Host not served, a 411).
    response["Content-Length"] = str(len(content))
    response["X-Frame-Options"] = settings.X_FRAME_OPTIONS
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _field_errors(detail: Any) -> dict[str, list[str]]:
    """DRF's error detail as the contract's `field -> [messages]`; anything without a field
    is non_field. A list's or object's errors, which DRF keys by item index or key
    ({"tags": {0: [...]}}), are messages that name the item ("Item 0: ...")."""
    if isinstance(detail, dict):
        return {str(key): _messages(value) for key, value in detail.items()}
    return {"non_field_errors": _messages(detail)}


def _messages(detail: Any, item: str = "") -> list[str]:
    if isinstance(detail, dict):
        return [
            message
            for key, value in detail.items()
            for message in _messages(value, f"{item}{'' if item else 'Item '}{key}: ")
        ]
    if isinstance(detail, list):
        return [message for value in detail for message in _messages(value, item)]
    return [f"{item}{detail}"]


BEARER_ONLY = 'Send the access token as "Authorization: Bearer <token>".'
SEND_JSON = "Send the body as JSON, with Content-Type: application/json."
ANSWERS_JSON = "This API answers in JSON: send an Accept header that takes application/json."


def _what_to_do(exc: Exception, request: HttpRequest, headers: dict[str, str]) -> str | None:
    """The detail of a problem DRF words for developers ("Request was throttled. Expected
    available in 36 seconds.", "Unsupported media type \"text/plain\" in request.", "Could not
    satisfy the request Accept header.", "Authentication credentials were not provided." to
    a request that sent credentials of another scheme), in words saying what to send."""
    if isinstance(exc, exceptions.Throttled) and "Retry-After" in headers:
        seconds = int(headers["Retry-After"])
        return f"Too many requests: try again in {seconds} second{'' if seconds == 1 else 's'}."
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return SEND_JSON
    if isinstance(exc, exceptions.NotAcceptable):
        return ANSWERS_JSON
    if isinstance(exc, exceptions.NotAuthenticated) and request.headers.get("Authorization"):
        return BEARER_ONLY
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    """DRF's EXCEPTION_HANDLER: every exception a view raises becomes a problem."""
    request = context["request"]._request
    headers: dict[str, str] = {}

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif is_concurrent_change(exc):
        log_concurrent_change(exc)
        exc = ConcurrentChange()
        exc.logged = True  # a WARNING: no ERROR line of Django's after it (see logged())
    elif isinstance(exc, ConcurrentChange):  # a service's, given up after its own tries
        log_concurrent_change(exc)
        exc.logged = True
    elif (retry := database_retry_response(request, exc)) is not None:
        set_rollback()
        return retry
    if not isinstance(exc, exceptions.APIException):
        return None  # unhandled: the middleware answers a 500 problem and logs it
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
        # RFC 6750 section 3.1: a token sent and refused says so; no token, no error code.
        if exc.get_codes() == "invalid_token":
            headers["WWW-Authenticate"] += ', error="invalid_token"'
        usage = count_refused_request(request)
        if usage is not None and usage.exceeded:
            # The 429 keeps the 401's WWW-Authenticate (RFC 9110 section 11.6.1 allows it on
            # any answer): a client whose token expired learns to refresh, not to come back
            # with the same dead token after Retry-After.
            exc = exceptions.Throttled(wait=usage.reset)

    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    if isinstance(exc, ConcurrentChange):  # the database's, or a service's after its retries
        headers["Retry-After"] = CONCURRENT_CHANGE_RETRY_AFTER
    if isinstance(exc, Conflict) and exc.retry_after:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, PreconditionFailed) and exc.etag:
        headers["ETag"] = exc.etag
    if isinstance(exc, exceptions.MethodNotAllowed):
        view = context.get("view")
        if view is not None:
            headers["Allow"] = ", ".join(view.allowed_methods)

    set_rollback()
    if isinstance(exc, exceptions.ValidationError):
        return problem_response(
            request,
            exc.status_code,
            "One or more fields are invalid.",
            errors=_field_errors(exc.detail),
            headers=headers,
        )
    if isinstance(exc, exceptions.ParseError):
        return problem_response(
            request,
            exc.status_code,
            f"The body is not valid JSON: {exc.detail}.",  # parsers.JSONParser's words
            errors={"non_field_errors": ["The body is not valid JSON."]},
            headers=headers,
        )
    detail = exc.detail
    detail = detail if isinstance(detail, str) else str(detail)
    detail = _what_to_do(exc, request, headers) or detail
    response = problem_response(
        request,
        exc.status_code,
        detail,
        headers=headers,
        extra=getattr(exc, "problem_fields", None),
    )
    return logged(response) if getattr(exc, "logged", False) else response


# What Django answers itself with the status it means (its response_for_exception: 400, 403,
# 404), each logged as a security event where it is one: more than DATA_UPLOAD_MAX_NUMBER_FIELDS
# query parameters (TooManyFieldsSent), a Host not served, a malformed multipart body. A DRF
# view answers its Http404 itself (exception_handler); a plain view's comes here, as does a
# Django PermissionDenied from any view (none raises one under /api/ today).
ANSWERED_BY_DJANGO = (
    Http404,
    SuspiciousOperation,
    BadRequest,
    PermissionDenied,
    MultiPartParserError,
)


NOT_UTF8 = "This value is not valid UTF-8."


def undecodable_query_parameters(query_string: str) -> list[str]:
    """The parameters whose value is not UTF-8 once its %-escapes are read. Django decodes such
    bytes as U+FFFD: `tag=%FF` or a lone surrogate's `search=%ED%A0%80` found nothing, where the
    same bytes in a body are a 400. `query_string` as WSGI has it (bytes as latin-1)."""
    if query_string.isascii() and "%" not in query_string:
        return []
    names = []
    for pair in query_string.split("&"):
        name, _, value = pair.partition("=")
        try:
            unquote_to_bytes(value.replace("+", " ").encode("latin-1")).decode()
        except UnicodeError:
            names.append(unquote(name.replace("+", " "), errors="replace"))
    return names


# The longest URL (path and query, as WSGI has them) the API reads; longer is a 414 problem.
# The longest a client may need: 20 `tag=` names of 50 four-byte characters, %-escaped, ~12 KB.
# The app refuses it itself, not gunicorn (limit_request_line = 0, gunicorn.conf.py): gunicorn's
# 414 came before the app, so without CORS headers, and a browser app on another origin got
# only "Failed to fetch" (its preflight of the same URL failed too; review 33c).
MAX_URL_BYTES = 16 * 1024


def url_too_long(path_bytes: int, query_string: str) -> bool:
    """`path_bytes`: the path's length in bytes once %-decoded (WSGI's PATH_INFO is those bytes
    as latin-1; Django's request.path_info, decoded, encoded again); the query as sent."""
    return path_bytes + len(query_string) > MAX_URL_BYTES


class ApiProblemMiddleware:
    """Under /api/ and on the probes: answers every error as a problem, whoever produced it.

    Catches what DRF never sees: unknown routes (Django's 404 page), oversized bodies,
    exceptions nothing handled (a 500 without a traceback, logged with one).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not answers_problems(request.path):
            return self.get_response(request)
        if url_too_long(len(request.path_info.encode()), request.META.get("QUERY_STRING", "")):
            return problem_response(
                request, 414, f"The URL (path and query) is longer than {MAX_URL_BYTES} bytes."
            )
        too_large = self._body_too_large(request)
        if too_large:
            return too_large
        if undecodable := undecodable_query_parameters(request.META.get("QUERY_STRING", "")):
            return problem_response(
                request,
                400,
                "Query parameters whose value is not UTF-8.",
                errors={name: [NOT_UTF8] for name in undecodable},
            )
        response = self.get_response(request)
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith(
            PROBLEM_CONTENT_TYPE
        ):
            return self._as_problem(request, response)
        return response

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not answers_problems(request.path):
            return None
        if isinstance(exc, ANSWERED_BY_DJANGO):
            return None  # Django's 400, 403 or 404, logged as it logs it; __call__: a problem
        if (retry := database_retry_response(request, exc)) is not None:  # outside DRF's views
            return retry
        logger.exception("Unhandled exception on %s %s", request.method, request.path)
        return logged(problem_response(request, 500, UNEXPECTED_ERROR_DETAIL))

    @staticmethod
    def _body_too_large(request: HttpRequest) -> HttpResponse | None:
        if (
            not request.META.get("CONTENT_LENGTH")
            and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        ):
            # Django reads no body without a Content-Length, so a chunked one would silently
            # count as empty (and could never be measured against the cap): refuse it plainly.
            # gunicorn leaves CONTENT_LENGTH out; runserver sets it empty (a PATCH was a 200
            # that changed nothing).
            return problem_response(
                request, 411, "Send the body with a Content-Length (chunked bodies are refused)."
            )
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return problem_response(request, 400, "Content-Length is not a number.")
        if length > settings.MAX_REQUEST_BODY_BYTES:
            return problem_response(
                request,
                413,
                f"The request body is larger than {settings.MAX_REQUEST_BODY_BYTES} bytes.",
            )
        return None

    @staticmethod
    def _as_problem(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        code = response.status_code
        details = {
            # Django's own 400s, before any view: a Host not in ALLOWED_HOSTS above all.
            400: "The request was refused before the API read it: a Host header this server does "
            "not serve, too many query parameters, or another malformed part of the request.",
            404: "No resource at this URL.",
            405: exceptions.MethodNotAllowed(request.method).detail,  # as a view's 405 says it
            500: UNEXPECTED_ERROR_DETAIL,
        }
        headers = {
            name: response[name]
            for name in ("Allow", "Retry-After", "WWW-Authenticate")
            if response.has_header(name)
        }
        problem = problem_response(
            request, code, details.get(code, title_for(code) + "."), headers=headers
        )
        # Logged already (Django's record of an exception a middleware raised): not again.
        problem._has_been_logged = getattr(response, "_has_been_logged", False)
        return problem


class ApiAwareCommonMiddleware(CommonMiddleware):
    """Django's CommonMiddleware, minus the APPEND_SLASH redirect on the API's own URLs.

    A missing slash on an API URL (`/api/v1/`) is a 404 problem (the contract's paths all end
    with `/`), never a redirect that a client would follow with a GET, nor DEBUG's RuntimeError
    on POST. The pages a person types (`/api/docs`, `/api/redoc`, `/api/schema`) redirect a GET
    to their slash, as `/admin` does.
    """

    def should_redirect_with_slash(self, request: HttpRequest) -> bool:
        path = request.path_info
        if path.startswith(API_PREFIX) and (
            path.startswith(f"{API_PREFIX}v1/") or request.method not in ("GET", "HEAD")
        ):
            return False
        return super().should_redirect_with_slash(request)


# --- OpenAPI ----------------------------------------------------------------------------------


class ProblemSerializer(serializers.Serializer):
    """An RFC 9457 problem, as every 4xx/5xx answer of the API is."""

    type = serializers.CharField(help_text="`about:blank`: the status and title say it all.")
    title = serializers.CharField(
        help_text="One per status, never per occurrence (every 400: `Validation failed`, a "
        "body that is no JSON too); `detail` says what happened."
    )
    status = serializers.IntegerField()
    detail = serializers.CharField()
    instance = serializers.CharField()
    request_id = serializers.CharField(allow_null=True)


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "description": "Field (or `non_field_errors`) → messages; a message about one item of "
        'a list field names its index (`{"ids": ["Item 3: Must be a valid UUID."]}`).',
    }
)
class FieldErrorsField(serializers.DictField):
    """The `errors` member of a 400 problem."""


class ValidationProblemSerializer(ProblemSerializer):
    """A 400 problem; `errors` maps each field (or `non_field_errors`) to its messages."""

    errors = FieldErrorsField()


def problem_responses(*status_codes: int, described: dict[int, str] | None = None) -> dict:
    """`extend_schema(responses=...)` entries for the given error answers, as problem+json.

    `described` gives the answers whose meaning here is not the shared one
    (todo_project.schema.ERROR_DESCRIPTIONS, filled in for the others)."""
    described = described or {}
    return {
        (code, PROBLEM_CONTENT_TYPE): OpenApiResponse(
            ValidationProblemSerializer if code == 400 else ProblemSerializer,
            description=described.get(code, ""),
        )
        for code in (*status_codes, *described)
    }
