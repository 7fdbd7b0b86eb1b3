"""The project's middleware: the admin's (session, CSRF, auth, messages) runs for the admin, not
for /api/v1/; the API's answers are private; HEAD answers have no body."""

import pytest
from django.test import Client, RequestFactory

from accounts.tokens import token_pair_for
from conftest import DEFAULT_PASSWORD
from tasks import services
from todo_project.wsgi import application

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


# --- Caching of the API's answers -------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/tasks/", "/api/v1/tasks/?limit=5&format=json", "/api/v1/auth/me/"]
)
def test_the_apis_answers_are_private_and_revalidated(api_client, path):
    # One user's data: no shared cache may keep it, a browser asks again each time.
    response = api_client.get(path)
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, no-cache"
    assert "Authorization" in response["Vary"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("get", "/api/v1/tasks/", 401), ("get", "/api/v1/no-such-thing/", 404)],
)
def test_error_answers_of_the_api_are_not_cached_either(anon_client, method, path, status):
    response = getattr(anon_client, method)(path)
    assert response.status_code == status
    assert response["Cache-Control"] == "private, no-cache"


def test_answers_with_tokens_keep_no_store_and_the_docs_are_left_alone(anon_client, user):
    tokens = anon_client.post(
        "/api/v1/auth/token/", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json"
    )
    assert tokens.status_code == 200
    assert tokens["Cache-Control"] == "no-store"
    assert "Cache-Control" not in anon_client.get("/api/schema/")


# --- HEAD -------------------------------------------------------------------------------------


def wsgi_answer(method: str, path: str, **headers) -> tuple[dict, bytes]:
    """The WSGI app's answer as a server gets it (Django's test client drops HEAD bodies)."""
    environ = RequestFactory().generic(method, path, **headers).environ
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer.update(response_headers)

    body = b"".join(application(environ, start_response))
    return answer, body


@pytest.mark.parametrize("path", ["/api/v1/tasks/?limit=5", "/api/v1/auth/me/", "/admin/login/"])
def test_a_head_answer_has_the_gets_headers_and_no_body(user, path):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token_pair_for(user)['access']}"}

    get_headers, get_body = wsgi_answer("GET", path, **auth)
    head_headers, head_body = wsgi_answer("HEAD", path, **auth)

    assert get_body and head_body == b""
    assert head_headers["Content-Length"] == get_headers["Content-Length"] == str(len(get_body))
    assert head_headers["Content-Type"] == get_headers["Content-Type"]


@pytest.mark.django_db
def test_a_204_carries_no_content_length(api_client, user):
    # RFC 9110 (8.6): a server MUST NOT send one with a 204; gunicorn dropped Django's "0" on
    # the wire, uvicorn sent it.
    task = services.task_create(user=user, data={"title": "Gone soon"})
    response = api_client.delete(f"/api/v1/tasks/{task.pk}/")
    assert response.status_code == 204 and not response.has_header("Content-Length")
