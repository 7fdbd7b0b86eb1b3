import re
from pathlib import Path

import pytest

from todo_project.problems import MAX_URL_BYTES

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _origins(settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]


def test_configured_origin_is_allowed(anon_client):
    response = anon_client.options(
        "/api/v1/anything/",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "authorization" in response["Access-Control-Allow-Headers"]


def test_other_origins_get_no_cors_headers(anon_client):
    response = anon_client.get("/healthz", HTTP_ORIGIN="https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in response
    response = anon_client.get("/api/v1/x/", HTTP_ORIGIN="https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in response


def test_problem_answers_carry_cors_headers_for_allowed_origins(anon_client):
    response = anon_client.get("/api/v1/x/", HTTP_ORIGIN="https://app.example.com")
    assert response.status_code == 404
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "X-Request-ID" in response["Access-Control-Expose-Headers"]


def test_a_url_over_the_cap_is_a_414_an_app_on_another_origin_can_read(api_client):
    # gunicorn answered it (its 4,094-byte request line) before the app, without CORS headers:
    # the browser failed the preflight of such a URL and fetch() gave "Failed to fetch" alone
    # (review 33c). The app answers it now, after CorsMiddleware.
    long_url = "/api/v1/tasks/?search=" + "x" * MAX_URL_BYTES
    preflight = api_client.options(
        long_url,
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == "https://app.example.com"
    response = api_client.get(long_url, HTTP_ORIGIN="https://app.example.com")
    assert response.status_code == 414
    assert response["Content-Type"] == "application/problem+json"
    assert (
        response.json()["detail"]
        == f"The URL (path and query) is longer than {MAX_URL_BYTES} bytes."
    )
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
    # Within the cap, the longest filter a client may need: 20 tags of 50 four-byte characters.
    tags = "&".join("tag=" + "%F0%9F%98%80" * 50 for _ in range(20))
    assert len(tags) > 12_000
    assert api_client.get(f"/api/v1/tasks/?{tags}").status_code == 200


# What a browser lets a page on another origin read without their being exposed (Fetch standard).
CORS_SAFELISTED = {"cache-control", "content-language", "content-length", "content-type"}
CORS_SAFELISTED |= {"expires", "last-modified", "pragma"}


def test_every_response_header_the_schema_documents_is_exposed_to_a_browser_app(anon_client):
    # Location (201) and WWW-Authenticate (401: expired token or none) were not: a frontend on
    # another origin could not read what the schema and the README tell it to.
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    documented = {
        header.lower()
        for operations in schema["paths"].values()
        for operation in operations.values()
        for answer in operation["responses"].values()
        for header in answer.get("headers", {})
    }
    response = anon_client.get("/api/v1/tasks/", HTTP_ORIGIN="https://app.example.com")
    exposed = {
        name.strip().lower() for name in response["Access-Control-Expose-Headers"].split(",")
    }
    assert {"location", "www-authenticate", "etag"} <= documented
    assert documented - CORS_SAFELISTED <= exposed
    assert "allow" in exposed  # a 405's, which the schema does not list


def test_a_preflight_for_the_api_and_tracing_headers_is_allowed(anon_client):
    # Sentry's browser SDK adds sentry-trace and baggage, OpenTelemetry traceparent: with those
    # left out the browser refused the real request with an opaque CORS error (review 31c).
    asked = "authorization, if-match, idempotency-key, traceparent, sentry-trace, baggage"
    response = anon_client.options(
        "/api/v1/tasks/",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=asked,
    )
    allowed = {name.strip() for name in response["Access-Control-Allow-Headers"].split(",")}
    assert {name.strip() for name in asked.split(",")} <= allowed


def test_the_readme_names_the_request_headers_a_browser_app_may_send():
    # The README said which response headers such an app may read, not which it may send.
    from django.conf import settings

    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `CORS_ALLOWED_ORIGINS`"))
    named = {name.lower() for name in re.findall(r"`([A-Za-z-]+)`", row)}
    assert sorted(set(settings.CORS_ALLOW_HEADERS) - named) == []
