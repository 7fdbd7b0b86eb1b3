"""Errors raised by a middleware outside ApiProblemMiddleware are problems too on the API's paths
(todo_project.urls' handler400 and handler500): API.md, "Errors", never an HTML page."""

import json

import pytest
from rest_framework.test import APIClient

from todo_project.ratelimit import RateLimitHeadersMiddleware

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


@pytest.mark.parametrize(
    "forwarded",
    [{"HTTP_X_FORWARDED_PROTO": "http"}, {}],
    ids=["through the proxy's plain-HTTP server", "no X-Forwarded-Proto"],
)
def test_a_host_not_served_over_plain_http_is_a_problem(anon_client, settings, forwarded):
    # As settings.py sets them with DEBUG off, HTTPS=1 and TRUSTED_PROXY_COUNT=1: the HTTPS
    # redirect asks for the Host before ApiProblemMiddleware runs (review 32c).
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = anon_client.get("/api/v1/tasks/", HTTP_HOST="203.0.113.7", **forwarded)
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM, response.content[:80]
    body = json.loads(response.content)
    assert (body["status"], body["instance"]) == (400, "/api/v1/tasks/")
    assert "Host header" in body["detail"]
    assert body["request_id"] == response["X-Request-ID"]


def test_the_admin_keeps_django_s_page_for_a_host_not_served(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get(f"/{settings.ADMIN_URL}", HTTP_HOST="203.0.113.7")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


def test_an_exception_in_an_outer_middleware_is_a_problem(monkeypatch):
    def broken(self, request):
        raise RuntimeError("a bug in a middleware")

    monkeypatch.setattr(RateLimitHeadersMiddleware, "__call__", broken)
    response = APIClient(raise_request_exception=False).get("/api/v1/tasks/")
    assert response.status_code == 500
    assert response["Content-Type"] == PROBLEM
    assert json.loads(response.content)["request_id"] == response["X-Request-ID"]
