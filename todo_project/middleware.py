"""Middleware of the project's own: answers to HEAD, the API's caching, and Django's session,
authentication and messages middleware and django-csp's skipped on /api/v1/.

Those four serve the admin and the browsable docs. The versioned API authenticates every request with
a JWT (accounts.authentication) and keeps no session, so these three had nothing to do there
but cost CPU on every request (bench/README.md). Subclasses, so Django's admin checks still
find them in MIDDLEWARE. CsrfViewMiddleware stays as it is: `check --deploy` looks for it by
name, and on the API (DRF views are CSRF-exempt) it costs little.
"""

import functools

from csp.middleware import CSPMiddleware
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.cache import patch_cache_control, patch_vary_headers

API_V1_PREFIX = "/api/v1/"


class SkippedOnApiMixin:
    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(API_V1_PREFIX):
            return self.get_response(request)
        return super().__call__(request)


class AdminSessionMiddleware(SkippedOnApiMixin, SessionMiddleware):
    pass


class AdminAuthenticationMiddleware(SkippedOnApiMixin, AuthenticationMiddleware):
    pass


class AdminMessageMiddleware(SkippedOnApiMixin, MessageMiddleware):
    pass


class PagesContentSecurityPolicyMiddleware(SkippedOnApiMixin, CSPMiddleware):
    """The pages' Content-Security-Policy (settings.CONTENT_SECURITY_POLICY). django-csp built
    the policy for every answer before it looked at its EXCLUDE_URL_PREFIXES: ~5 % of a PATCH's
    CPU in the benchmark's profile, for a header the JSON API does not send."""


class AnswersWithoutBodyMiddleware:
    """A HEAD answer without the body Django renders for it (WSGI servers drop the body, and
    gunicorn logs a warning for each); its headers stay those of the GET, Content-Length too.
    A 304 without the `Content-Length: 0` CommonMiddleware gives it: RFC 9110 (8.6) allows only
    the length the 200 would have had, and a cache may take it for the stored answer's; a 204
    without it either (8.6: MUST NOT; gunicorn dropped it on the wire, uvicorn did not)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.method == "HEAD" and not response.streaming:
            response.content = b""
        if response.status_code in (204, 304) and response.has_header("Content-Length"):
            del response["Content-Length"]  # 204: RFC 9110 (8.6); uvicorn sent Django's "0"
        return response


class ApiCacheControlMiddleware:
    """The versioned API's answers are one user's data: `Cache-Control: private, no-cache`
    unless the view chose (answers with tokens: no-store), and `Vary: Authorization`. No shared
    cache keeps them; a browser may, but asks the server each time, with the ETag it has (a 304
    when nothing changed)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.process_response(request, self.get_response(request))

    @staticmethod
    def process_response(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if request.path_info.startswith(API_V1_PREFIX):
            if not response.has_header("Cache-Control"):
                if request.path in token_issuing_paths():  # reverse() has the script prefix
                    # Answered before the view (a 411 or 413): as every answer of the view.
                    patch_cache_control(response, no_store=True)
                else:
                    patch_cache_control(response, private=True, no_cache=True)
            patch_vary_headers(response, ["Authorization"])
        return response


@functools.cache
def token_issuing_paths() -> frozenset[str]:
    """The paths of the views that answer with tokens (accounts.views.TokenIssuingView): no
    answer of theirs may be stored, whoever makes it."""
    return frozenset(
        reverse(name) for name in ("auth-register", "auth-token", "auth-token-refresh")
    )
