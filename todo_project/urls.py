from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views import defaults
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

from todo_project.health import healthz, readyz
from todo_project.problems import ApiProblemMiddleware, answers_problems
from todo_project.schema_view import SchemaView


def _problem_on_the_api(default_view):
    """Django's error page, as a problem on the API's paths. Django answers with these views an
    exception raised by a middleware outside ApiProblemMiddleware: SecurityMiddleware's HTTPS
    redirect reads the Host first, so a Host not served over plain HTTP got an HTML page
    (review 32c: a client using the server's IP behind nginx's port-80 server)."""

    def view(request, *args, **kwargs):
        response = default_view(request, *args, **kwargs)
        if answers_problems(request.path):
            return ApiProblemMiddleware._as_problem(request, response)
        return response

    return view


handler400 = _problem_on_the_api(defaults.bad_request)
handler500 = _problem_on_the_api(defaults.server_error)

urlpatterns = [
    # The address a person opens first: the API's documentation, not a bare "Not Found".
    path("", RedirectView.as_view(pattern_name="swagger-ui"), name="root"),
    # Every browser asks a site for /favicon.ico (the admin's pages name none): the docs' icon,
    # not a 404 and its warning in the log on each support visit.
    path(
        "favicon.ico",
        RedirectView.as_view(
            url=static("drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png")
        ),
    ),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    # The schema counts against RATE_LIMIT_ANON (a form not built yet costs 70–160 ms); the
    # docs' pages (a template each, and Swagger UI's script) do not: a load of the docs costs
    # one request of an IP's budget, which register and password reset share, not three.
    path("api/schema/", SchemaView.as_view(), name="schema"),
    # Its script from a URL of its own (`?script`), not inline: the pages' CSP runs no inline script.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", throttle_classes=[]),
        name="swagger-ui",
    ),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(
            url_name="schema", template_name="redoc.html", throttle_classes=[]
        ),
        name="redoc",
    ),
    path("api/v1/auth/", include("accounts.urls")),
    path("api/v1/", include("tasks.urls")),
    path(settings.ADMIN_URL, admin.site.urls),
]
