"""Django's session, authentication and messages middleware, skipped on /api/v1/.

They serve the admin and the browsable docs. The versioned API authenticates every request with
a JWT (accounts.authentication) and keeps no session, so these three had nothing to do there
but cost CPU on every request (bench/README.md). Subclasses, so Django's admin checks still
find them in MIDDLEWARE. CsrfViewMiddleware stays as it is: `check --deploy` looks for it by
name, and on the API (DRF views are CSRF-exempt) it costs little.
"""

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse

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
