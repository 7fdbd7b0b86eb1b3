"""The fast lane in front of Django's handler (todo_project/fast_lane.py) answers the fast reads
exactly as Django's whole stack does, and leaves everything else to it.

These tests drive WSGI apps directly, as gunicorn does: the test client skips wsgi.py."""

import logging

import jwt
import pytest
from corsheaders.signals import check_request_enabled
from django.conf import settings
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import RequestFactory, override_settings
from django.urls import resolve

from accounts.tokens import RefreshToken
from tasks import fast_read
from todo_project import fast_lane, wsgi
from todo_project.fast_lane import MIDDLEWARE_IN_THE_LANE, FastLane, fast_routes
from todo_project.problems import MAX_URL_BYTES

pytestmark = pytest.mark.django_db

HTTPS_BEHIND_A_PROXY = {
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    "SECURE_SSL_REDIRECT": True,
    "SECURE_HSTS_SECONDS": 3600,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": True,
}

ALLOWED_ORIGIN = {"CORS_ALLOWED_ORIGINS": ["https://app.example"]}


@pytest.fixture(autouse=True)
def _connections_kept():
    """Django's handler and the lane close the database connection at the end of a request, as
    they should; in a test it holds the test's transaction. Django's test client does the same."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


class Apps:
    """Django's whole stack, and the lane in front of it; counts what reached Django."""

    def __init__(self) -> None:
        self.django = WSGIHandler()  # built here, so that override_settings applies
        self.to_django = 0
        self.environ_keys_at_django: list[set] = []

        def counted(environ, start_response):
            self.to_django += 1
            self.environ_keys_at_django.append(set(environ))
            return self.django(environ, start_response)

        self.lane = FastLane(counted)


@pytest.fixture
def apps() -> Apps:
    return Apps()


@pytest.fixture
def token(user) -> str:
    return str(RefreshToken.for_user(user).access_token)


def call(app, path: str, token: str | None = None, method: str = "GET", **environ) -> tuple:
    """Status, headers and body of one request, as a WSGI server sees them."""
    if token is not None:
        environ.setdefault("HTTP_AUTHORIZATION", f"Bearer {token}")
    request_environ = RequestFactory().generic(method, path, **environ).environ
    if not request_environ.get("HTTP_COOKIE"):
        del request_environ["HTTP_COOKIE"]  # RequestFactory always sends one, empty
    started = []
    result = app(request_environ, lambda status, headers: started.append((status, headers)))
    body = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    ((status, headers),) = started
    return status, headers, body


def whole(answer: tuple) -> tuple:
    """An answer without its request id (new on each request), headers in any order."""
    status, headers, body = answer
    named = dict(headers)
    assert len(named) == len(headers), "a header twice"
    request_id = named.pop("X-Request-ID")
    return status, named, body.replace(request_id.encode(), b"")


def fast_paths(variety) -> list[str]:
    return [
        "/api/v1/tasks/",
        *[f"/api/v1/tasks/{task.id}/" for task in variety],
        "/api/v1/tasks/?limit=2&offset=1",
        "/api/v1/tasks/?completed=false&search=rent&ordering=-title",
    ]


@pytest.mark.parametrize(
    ("overrides", "environ"),
    [
        ({}, {}),
        (HTTPS_BEHIND_A_PROXY, {"HTTP_X_FORWARDED_PROTO": "https"}),
        ({"X_FRAME_OPTIONS": "SAMEORIGIN", "SECURE_REFERRER_POLICY": "no-referrer"}, {}),
        (ALLOWED_ORIGIN, {"HTTP_ORIGIN": "https://app.example"}),
        (ALLOWED_ORIGIN, {"HTTP_ORIGIN": "https://elsewhere.example"}),
        (ALLOWED_ORIGIN, {"HTTP_ORIGIN": ""}),
        ({}, {"HTTP_COOKIE": "theme=dark; _ga=GA1.2.3"}),
        ({}, {"HTTP_COOKIE": f"csrftoken={'a' * 32}; theme=dark"}),
    ],
    ids=[
        "http",
        "https behind a proxy",
        "other header settings",
        "an allowed Origin",
        "an Origin not allowed",
        "an empty Origin",
        "cookies of the site",
        "a CSRF cookie",
    ],
)
def test_the_lane_answers_what_django_answers(variety, token, overrides, environ):
    with override_settings(**overrides):
        apps = Apps()
        lane = [whole(call(apps.lane, path, token, **environ)) for path in fast_paths(variety)]
        cache.clear()  # the same RateLimit-Remaining on both sides
        django = [whole(call(apps.django, path, token, **environ)) for path in fast_paths(variety)]

    assert apps.to_django == 0
    assert lane == django
    assert {status for status, _, _ in lane} == {"200 OK"}
    headers = lane[1][1]
    assert {"ETag", "Content-Length", "RateLimit-Remaining", "Vary", "X-Frame-Options"} <= set(
        headers
    )
    assert ("Strict-Transport-Security" in headers) == bool(overrides.get("SECURE_HSTS_SECONDS"))
    allowed = environ.get("HTTP_ORIGIN") in overrides.get("CORS_ALLOWED_ORIGINS", [])
    assert headers.get("access-control-allow-origin") == (
        environ["HTTP_ORIGIN"] if allowed else None
    )
    assert ("access-control-expose-headers" in headers) == allowed


def test_the_lane_names_each_requests_own_origin(apps, variety, token):
    """CORS headers are asked for each request with an Origin, never kept from an earlier one."""
    origins = ["https://app.example", "https://admin.example", "https://elsewhere.example", None]
    with override_settings(CORS_ALLOWED_ORIGINS=origins[:2]):
        allowed = []
        for origin in origins:
            environ = {} if origin is None else {"HTTP_ORIGIN": origin}
            _, headers, _ = call(apps.lane, "/api/v1/tasks/", token, **environ)
            allowed.append(dict(headers).get("access-control-allow-origin"))

    assert apps.to_django == 0
    assert allowed == ["https://app.example", "https://admin.example", None, None]


def test_the_lane_echoes_a_sane_request_id_and_logs_the_request(apps, variety, token, caplog):
    path = f"/api/v1/tasks/{variety[0].id}/"
    with caplog.at_level(logging.INFO, logger="todo.access"):
        status, headers, _ = call(apps.lane, path, token, HTTP_X_REQUEST_ID="trace-42")

    assert status == "200 OK" and apps.to_django == 0
    assert dict(headers)["X-Request-ID"] == "trace-42"
    (record,) = [record for record in caplog.records if record.name == "todo.access"]
    assert (record.request_id, record.status, record.path) == ("trace-42", 200, path)
    assert record.user_id == str(variety[0].owner_id)


def test_the_lane_sends_djangos_request_signals(apps, variety, token):
    sent = []

    def started(**kwargs):
        sent.append("started")

    def finished(**kwargs):
        sent.append("finished")

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        call(apps.lane, "/api/v1/tasks/", token)
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)

    assert apps.to_django == 0
    assert sent == ["started", "finished"]  # the database connection's upkeep hangs on them


def cors_allow_origin(apps, token, **environ) -> str | None:
    _, headers, _ = call(apps.lane, "/api/v1/tasks/", token, **environ)
    return dict(headers).get("access-control-allow-origin")


def test_a_receiver_of_check_request_enabled_decides_each_request(apps, variety, token):
    """corsheaders asks its signal of an origin it does not list: the answer may depend on the
    request, so the lane keeps nothing for it."""

    def allow_the_trusted(sender, request, **kwargs):
        return request.META.get("HTTP_X_TRUSTED") == "yes"

    check_request_enabled.connect(allow_the_trusted)
    try:
        origin = {"HTTP_ORIGIN": "https://partner.example"}
        answers = [
            cors_allow_origin(apps, token, **origin, HTTP_X_TRUSTED=trusted)
            for trusted in ("yes", "no", "yes")
        ]
    finally:
        check_request_enabled.disconnect(allow_the_trusted)

    assert apps.to_django == 0
    assert answers == ["https://partner.example", None, "https://partner.example"]


@override_settings(CORS_ALLOWED_ORIGINS=["https://app.example"], CORS_ALLOW_PRIVATE_NETWORK=True)
def test_a_private_network_request_is_answered_for_itself(variety, token):
    apps = Apps()
    asks = {"HTTP_ORIGIN": "https://app.example"}
    private = {**asks, "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK": "true"}
    lane = [whole(call(apps.lane, "/api/v1/tasks/", token, **e)) for e in (asks, private, asks)]
    cache.clear()
    django = [whole(call(apps.django, "/api/v1/tasks/", token, **e)) for e in (asks, private, asks)]

    assert lane == django
    assert [a[1].get("access-control-allow-private-network") for a in lane] == [None, "true", None]


def test_the_origins_kept_are_bounded(apps, variety, token, monkeypatch):
    monkeypatch.setattr(fast_lane, "MAX_ORIGINS_KEPT", 3)
    origins = [f"https://made-up-{n}.example" for n in range(10)] + ["https://app.example"]
    with override_settings(CORS_ALLOWED_ORIGINS=["https://app.example"]):
        answers = [cors_allow_origin(apps, token, HTTP_ORIGIN=origin) for origin in origins]

    assert answers == [None] * 10 + ["https://app.example"]
    assert len(apps.lane._middleware_headers) == 3
    assert apps.to_django == 0


@pytest.mark.parametrize(
    ("case", "overrides", "request_kwargs", "status"),
    [
        ("a write", {}, {"method": "POST"}, "400 Bad Request"),
        ("HEAD", {}, {"method": "HEAD"}, "200 OK"),
        ("?format=", {}, {"QUERY_STRING": "limit=2&format=json"}, "200 OK"),
        ("an invalid filter", {}, {"QUERY_STRING": "completed=maybe"}, "400 Bad Request"),
        ("an invalid page", {}, {"QUERY_STRING": "limit=x"}, "400 Bad Request"),
        (
            "a repeated filter",
            {},
            {"QUERY_STRING": "completed=true&completed=false"},
            "400 Bad Request",
        ),
        ("a repeated page", {}, {"QUERY_STRING": "limit=2&limit=3"}, "400 Bad Request"),
        ("a query value not UTF-8", {}, {"QUERY_STRING": "tag=%FF"}, "400 Bad Request"),
        (
            "a URL over its cap",
            {},
            {"QUERY_STRING": "search=" + "x" * MAX_URL_BYTES},
            "414 Request-URI Too Long",
        ),
        (
            "a CORS preflight",
            ALLOWED_ORIGIN,
            {
                "method": "OPTIONS",
                "HTTP_ORIGIN": "https://app.example",
                "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "GET",
            },
            "200 OK",
        ),
        ("a malformed CSRF cookie", {}, {"HTTP_COOKIE": "csrftoken=not!valid"}, "200 OK"),
        ("a body", {}, {"CONTENT_LENGTH": "2", "wsgi.input": None}, "200 OK"),
        ("a chunked body", {}, {"HTTP_TRANSFER_ENCODING": "chunked"}, "411 Length Required"),
        ("a Host not allowed", {}, {"HTTP_HOST": "evil.example"}, "400 Bad Request"),
        ("plain HTTP to redirect", HTTPS_BEHIND_A_PROXY, {}, "301 Moved Permanently"),
        ("an If-None-Match", {}, {"HTTP_IF_NONE_MATCH": '"1"'}, "200 OK"),
        ("a refused token", {}, {"HTTP_AUTHORIZATION": "Bearer not-a-token"}, "401 Unauthorized"),
        ("no token", {}, {"HTTP_AUTHORIZATION": ""}, "401 Unauthorized"),
    ],
)
def test_what_the_lane_leaves_to_django(variety, token, case, overrides, request_kwargs, status):
    if request_kwargs.get("wsgi.input", "") is None:
        request_kwargs = {**request_kwargs, "data": b"{}", "content_type": "application/json"}
        request_kwargs.pop("wsgi.input")
        request_kwargs.pop("CONTENT_LENGTH")
    with override_settings(**overrides):
        apps = Apps()
        lane = whole(call(apps.lane, "/api/v1/tasks/", token, **request_kwargs))
        cache.clear()
        django = whole(call(apps.django, "/api/v1/tasks/", token, **request_kwargs))

    assert apps.to_django == 1, case
    # Django gets the environ as the server gave it, whatever the lane's middleware hooks noted.
    assert not {"CSRF_COOKIE", "CSRF_COOKIE_NEEDS_UPDATE"} & apps.environ_keys_at_django[0]
    if "CSRF" in case:  # Django renews the cookie (a new secret each time): the lane cannot
        for answer in (lane, django):
            assert answer[1].pop("Set-Cookie").startswith(" csrftoken=")
    assert lane == django
    assert lane[0] == status


@pytest.mark.parametrize("whose", ["someone else's", "unknown"])
def test_a_task_that_is_not_the_callers_is_djangos_404(apps, variety, token, other_user, whose):
    if whose == "unknown":
        path = "/api/v1/tasks/00000000-0000-0000-0000-000000000000/"
    else:
        other = type(variety[0]).objects.create(owner=other_user, title="Theirs", position=1)
        path = f"/api/v1/tasks/{other.id}/"
    status, headers, _ = call(apps.lane, path, token)

    assert apps.to_django == 1
    assert status == "404 Not Found"
    assert dict(headers)["Content-Type"] == "application/problem+json"


def test_a_refused_token_is_djangos_401_naming_it_invalid(apps, variety, user):
    # Signed with the server's key, but a generation no column holds (was a 500).
    claims = {**RefreshToken.for_user(user).access_token.payload, "gen": 10**30}
    malformed = jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"], "HS256")
    paths = ["/api/v1/tasks/", f"/api/v1/tasks/{variety[0].id}/"]
    for path in paths:
        for refused in ("not-a-token", malformed):
            status, headers, _ = call(apps.lane, path, refused)
            assert status == "401 Unauthorized", (path, refused)
            # RFC 6750 section 3.1: the token was sent and refused.
            assert dict(headers)["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'

    assert apps.to_django == 2 * len(paths)


def test_other_urls_go_to_django(apps, variety, token):
    for path in ("/api/v1/lists/", "/api/v1/tags/", "/api/v1/auth/me/", "/healthz"):
        call(apps.lane, path, token)

    assert apps.to_django == 4


def test_a_failing_fast_answer_is_answered_by_django_as_any_failure(
    apps, variety, token, monkeypatch
):
    def broken(*args):
        raise RuntimeError("a bug in the fast read")

    monkeypatch.setattr(fast_read, "fast_task_get", broken)
    status, headers, body = call(apps.lane, f"/api/v1/tasks/{variety[0].id}/", token)

    assert apps.to_django == 1  # Django asked again, and its view failed the same way
    assert status == "500 Internal Server Error"
    assert dict(headers)["Content-Type"] == "application/problem+json"
    assert b"request_id" in body


def test_every_middleware_has_its_place_in_the_lane():
    # A middleware added to settings needs a decision here (todo_project/fast_lane.py).
    assert list(MIDDLEWARE_IN_THE_LANE) == settings.MIDDLEWARE


def test_the_lanes_routes_are_the_urlconfs_fast_views(variety):
    routes = fast_routes()
    views = [resolve(path).func for path in ("/api/v1/tasks/", f"/api/v1/tasks/{variety[0].id}/")]

    assert [fast_answer for _, fast_answer in routes] == [view.fast_answer for view in views]


def test_gunicorn_serves_the_lane_in_front_of_django():
    assert isinstance(wsgi.application, FastLane)
    assert wsgi.application.django_application is wsgi.django_application
