"""The admin's middleware (session, CSRF, auth, messages) runs for the admin, not for /api/v1/."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_api_runs_without_session_or_django_auth(api_client):
    # `?format=`: through DRF (the plain GETs skip it: tasks.fast_read).
    response = api_client.get("/api/v1/tasks/?limit=5&format=json")
    assert response.status_code == 200
    request = response.wsgi_request
    assert not hasattr(request, "session")
    assert not hasattr(request, "_messages")
    assert request.user.is_authenticated  # DRF's JWT user, set on the Django request too
    assert "Set-Cookie" not in response.headers and not response.cookies


def test_the_admin_keeps_sessions_and_messages(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert hasattr(response.wsgi_request, "session")
    assert hasattr(response.wsgi_request, "_messages")
    assert "csrftoken" in response.cookies


def test_the_admin_login_still_requires_its_csrf_token(support_user):
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(
        "/admin/login/", {"username": support_user.email, "password": "whatever-it-is"}
    )
    assert response.status_code == 403  # CSRF failure, before any password is checked
    assert b"CSRF" in response.content


def test_an_unknown_api_url_is_still_a_problem_without_a_user(anon_client):
    response = anon_client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
