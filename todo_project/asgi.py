# The views are synchronous: gunicorn's sync workers serve them faster than an ASGI server
# (README, "Deploy"). This entry point exists for deployments that need ASGI anyway; it has
# no read fast lane (wsgi.py). todo_project/tests/test_asgi.py serves it with uvicorn.
import os

from django.core.asgi import get_asgi_application

# Empty is unset, as for every variable (README.md, "Configuration"): setdefault kept it.
if not os.environ.get("DJANGO_SETTINGS_MODULE"):
    os.environ["DJANGO_SETTINGS_MODULE"] = "todo_project.settings"

django_application = get_asgi_application()


def _body_refused_unread(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether ApiProblemMiddleware refuses this body from its headers alone: over the cap, a
    Content-Length that is no number, or chunked (411)."""
    from django.conf import settings

    fields = {name.lower(): value for name, value in headers}
    length = fields.get(b"content-length")
    if length is None:
        return b"chunked" in fields.get(b"transfer-encoding", b"").lower()
    try:
        return int(length) > settings.MAX_REQUEST_BODY_BYTES
    except ValueError:
        return True


async def application(scope, receive, send):
    """Django's ASGI application, which reads a request's whole body before any middleware runs
    (to a temporary file past 2.5 MB, with no timeout): a body the API refuses from its headers
    is not read at all, and the middleware answers its 413/411/400 at once, as under gunicorn
    (uvicorn had answered nothing after 200 MB of an announced 500 MB)."""
    if scope["type"] != "http" or not _body_refused_unread(scope["headers"]):
        return await django_application(scope, receive, send)
    given = False

    async def no_body():
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        while True:  # Django then listens for the client leaving; the body's chunks are dropped
            message = await receive()
            if message["type"] != "http.request":
                return message

    return await django_application(scope, no_body, send)
