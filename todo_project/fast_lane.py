"""The fast lane: the API's plainest reads answered in front of Django's handler.

Two views answer their plain GET without DRF (tasks/fast_read.py: one task, and the list with
any page and filters). Through Django's handler such a read still paid for the middleware
chain, the URL resolver, the response's header-by-header building and its WSGI conversion:
in-process about a third of its CPU, and get ran 30 % faster under load without them
(bench/README.md). This WSGI app sits in front of Django's (todo_project/wsgi.py): when a
request is such a view's plain case, it asks the view's `fast_answer` itself and adds what the
middleware add to that 200.

Every request the lane cannot vouch for goes to Django untouched:
- not a GET of a URL whose view has a `fast_answer` (the URLconf's own patterns);
- with a body, or a query value that is not UTF-8 (ApiProblemMiddleware judges both), or a
  CSRF cookie that CsrfViewMiddleware would renew (a malformed one: its own process_request
  decides);
- what SecurityMiddleware redirects (plain HTTP under SECURE_SSL_REDIRECT) or CommonMiddleware
  refuses or redirects (a Host not in ALLOWED_HOSTS, PREPEND_WWW, DISALLOWED_USER_AGENTS):
  their own process_request decides;
- what fast_answer leaves to the viewset (an error, an If-None-Match, `?format=`, an Accept
  other than plain JSON, a query string on one task), or fails on: the environ says so
  (FAST_ANSWER_TRIED), and the view goes straight to the viewset or raises that failure,
  answered as any other (a problem, logged with its request id), without running the fast
  read again.

The headers the middleware add to such a 200 depend on the settings, on whether the request is
secure and on its Origin (a browser app's cross-origin read: its CORS headers name that origin,
or are left out): they are asked of the middleware themselves, and kept per route, scheme and
origin. The request id, the access-log line and the RateLimit-* headers come from the functions
their middleware use. MIDDLEWARE_IN_THE_LANE says what becomes of each middleware; a test
fails when one is added without a decision, and tests compare the lane's answers with Django's
header by header.
"""

import time
from collections.abc import Callable, Iterable

from corsheaders.middleware import CorsMiddleware
from corsheaders.signals import check_request_enabled
from django.core import signals
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.core.handlers.wsgi import WSGIRequest, get_path_info, get_script_name
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import URLResolver, get_resolver, set_script_prefix

from todo_project.middleware import ApiCacheControlMiddleware
from todo_project.problems import (
    ApiAwareCommonMiddleware,
    undecodable_query_parameters,
    url_too_long,
)
from todo_project.ratelimit import rate_limit_headers
from todo_project.request_id import REQUEST_ID_HEADER, identified, log_access

# What becomes of each entry of settings.MIDDLEWARE on a request the lane answers.
MIDDLEWARE_IN_THE_LANE = {
    "todo_project.middleware.AnswersWithoutBodyMiddleware": "nothing: the lane answers GET only",
    "todo_project.request_id.RequestIdMiddleware": "its identified() and log_access()",
    "todo_project.middleware.ApiCacheControlMiddleware": "its process_response",
    "django.middleware.security.SecurityMiddleware": "its process_request, its headers",
    "whitenoise.middleware.WhiteNoiseMiddleware": "nothing: it serves STATIC_URL only",
    "corsheaders.middleware.CorsMiddleware": "its add_response_headers (no preflight: a GET)",
    "todo_project.ratelimit.RateLimitHeadersMiddleware": "its rate_limit_headers()",
    "todo_project.problems.ApiProblemMiddleware": "no body in the lane; it rewrites errors only",
    "todo_project.middleware.AdminSessionMiddleware": "nothing: skipped on /api/v1/",
    "todo_project.problems.ApiAwareCommonMiddleware": "its process_request, Content-Length",
    "django.middleware.csrf.CsrfViewMiddleware": "its process_request: a renewal goes to Django",
    "todo_project.middleware.AdminAuthenticationMiddleware": "nothing: skipped on /api/v1/",
    "todo_project.middleware.AdminMessageMiddleware": "nothing: skipped on /api/v1/",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": "its header",
    "todo_project.middleware.PagesContentSecurityPolicyMiddleware": "nothing: skipped on /api/v1/",
}

FastAnswer = Callable[..., HttpResponse | None]
# Origins whose middleware headers the lane keeps (a browser app has one or a few).
MAX_ORIGINS_KEPT = 64


# Set in the environ when the lane ran a view's fast_answer and leaves the request to Django: the
# exception it raised, else True (it declined). The view must not run it again: a statement
# timeout twice outlasted gunicorn's, a refused token was checked three times.
FAST_ANSWER_TRIED = "todo.fast_answer_tried"


def fast_routes(patterns: Iterable | None = None, above: tuple = ()) -> list[tuple]:
    """(patterns from the root down, fast_answer) of every URL whose view has a fast_answer."""
    routes = []
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            routes += fast_routes(entry.url_patterns, (*above, entry.pattern))
        elif hasattr(entry.callback, "fast_answer"):
            routes.append(((*above, entry.pattern), entry.callback.fast_answer))
    return routes


def _captured(patterns: tuple, path: str) -> dict | None:
    """The keyword arguments of `path` (no leading slash) if the patterns match all of it."""
    kwargs = {}
    for pattern in patterns:
        match = pattern.match(path)
        if match is None:
            return None
        path, _, captured = match
        kwargs.update(captured)
    return kwargs if path == "" else None


def _unused(request):  # middleware want a get_response; the lane calls their hooks only
    raise AssertionError("the lane calls middleware hooks, never the chain")


class FastLane:
    def __init__(self, django_application: Callable) -> None:
        self.django_application = django_application
        self._routes: list[tuple] | None = None  # the URLconf is read on first use
        self._middleware_headers: dict[tuple[int, bool, str | None], list[tuple[str, str]]] = {}
        self._security = SecurityMiddleware(_unused)
        self._common = ApiAwareCommonMiddleware(_unused)
        self._cors = CorsMiddleware(_unused)
        self._csrf = CsrfViewMiddleware(_unused)
        self._x_frame = XFrameOptionsMiddleware(_unused)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        route = self._route(environ)
        if route is not None:
            answered = self._answer(environ, *route)
            if answered is not None:
                status, headers, body = answered
                start_response(status, headers)
                return [body]
        return self.django_application(environ, start_response)

    def _route(self, environ: dict) -> tuple[int, FastAnswer, dict] | None:
        if (
            environ["REQUEST_METHOD"] != "GET"
            or environ.get("CONTENT_LENGTH", "") not in ("", "0")
            or "HTTP_TRANSFER_ENCODING" in environ
            or undecodable_query_parameters(environ.get("QUERY_STRING", ""))  # Django's 400
            or url_too_long(len(environ.get("PATH_INFO", "")), environ.get("QUERY_STRING", ""))
        ):
            return None
        if self._routes is None:
            self._routes = fast_routes()
        path = get_path_info(environ).removeprefix("/")
        for index, (patterns, fast_answer) in enumerate(self._routes):
            kwargs = _captured(patterns, path)
            if kwargs is not None:
                return index, fast_answer, kwargs
        return None

    def _answer(
        self, environ: dict, route: int, fast_answer: FastAnswer, kwargs: dict
    ) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """What Django would answer, if it is fast_answer's 200; None leaves it to Django."""
        started = time.perf_counter()
        # What Django's WSGIHandler does around every request (connection upkeep included).
        set_script_prefix(get_script_name(environ))
        signals.request_started.send(sender=self.__class__, environ=environ)
        # Over a copy: what the middleware's hooks note in META stays out of the environ that
        # Django gets when the lane leaves it the request.
        request = WSGIRequest({**environ})
        try:
            if self._security.process_request(request) or self._common.process_request(request):
                return None  # a redirect
        except (SuspiciousOperation, PermissionDenied):
            return None  # a Host not allowed, a user agent refused: Django's 400 or 403
        if "HTTP_COOKIE" in environ:
            self._csrf.process_request(request)
            if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
                return None  # a malformed CSRF cookie: Django's answer sets a new one
        with identified(request) as request_id:
            try:
                response = fast_answer(request, **kwargs)
            except Exception as error:  # noqa: BLE001 (Django's view raises it: its answer, its log)
                environ[FAST_ANSWER_TRIED] = error
                return None
            if response is None or response.status_code != 200:
                # The viewset answers (the middleware would do more than add headers to another
                # status).
                environ[FAST_ANSWER_TRIED] = True
                return None
            body = response.content
            headers = [
                *response.items(),
                ("Content-Length", str(len(body))),
                *rate_limit_headers(request),
                *self._headers_of_middleware(route, request),
                (REQUEST_ID_HEADER, request_id),
            ]
            log_access(request, response.status_code, started)
        signals.request_finished.send(sender=self.__class__)
        return f"{response.status_code} {response.reason_phrase}", headers, body

    def _headers_of_middleware(self, route: int, request: WSGIRequest) -> list[tuple[str, str]]:
        """The headers the middleware add to a 200 of this route: they depend on the settings,
        is_secure() and the Origin, so they are asked of the middleware once per route, scheme
        and origin (~30 µs a time: corsheaders reads every header and setting). Unless a
        receiver of corsheaders' check_request_enabled may decide per request, or the request
        asks for private network access; and only for the first MAX_ORIGINS_KEPT origins, so
        that made-up ones cannot grow the cache."""
        origin = request.META.get("HTTP_ORIGIN") or None  # empty counts as none, for CORS too
        if origin is not None and (
            check_request_enabled.has_listeners()
            or "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK" in request.META
        ):
            return self._ask_middleware(request)
        key = (route, request.is_secure(), origin)
        headers = self._middleware_headers.get(key)
        if headers is None:
            headers = self._ask_middleware(request)
            if origin is None or len(self._middleware_headers) < MAX_ORIGINS_KEPT:
                self._middleware_headers[key] = headers
        return headers

    def _ask_middleware(self, request: WSGIRequest) -> list[tuple[str, str]]:
        probe = HttpResponse()
        # The order of Django's chain on the way out: the innermost first.
        self._x_frame.process_response(request, probe)
        self._cors.add_response_headers(request, probe)
        self._security.process_response(request, probe)
        ApiCacheControlMiddleware.process_response(request, probe)
        return [(name, value) for name, value in probe.items() if name != "Content-Type"]
