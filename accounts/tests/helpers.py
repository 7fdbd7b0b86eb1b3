import json

from django.core import mail
from rest_framework.test import APIClient

from accounts.mail import wait_until_idle
from accounts.tokens import RefreshToken
from tasks.models import Tag, Task, TaskList

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:
    """The answer is an RFC 9457 problem with this status; returns its body."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = json.loads(response.content)
    assert body["status"] == status
    assert body["instance"] == response.wsgi_request.path
    assert body["request_id"] == response["X-Request-ID"]
    return body


def sent_mail() -> list:
    """The test outbox once the mail thread has sent what was queued (accounts/mail.py)."""
    wait_until_idle()
    return mail.outbox


def bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def refresh(raw: str):
    """POST token/refresh/ with this refresh token, as a client without a session does."""
    return APIClient().post("/api/v1/auth/token/refresh/", {"refresh": raw}, format="json")


def sign_in(email: str, password: str) -> dict:
    response = APIClient().post(
        "/api/v1/auth/token/", {"email": email, "password": password}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def give_colliding_data(user) -> None:
    """A list's tasks and Inbox tasks at the same positions, a tag, a refresh token: Django's
    cascade would move the list's tasks into the Inbox onto taken ranks."""
    home = TaskList.objects.create(owner=user, name="Home")
    for position in (1024, 2048):
        Task.objects.create(owner=user, title="In Home", list=home, position=position)
        Task.objects.create(owner=user, title="In the Inbox", position=position)
    Tag.objects.create(owner=user, name="errand")
    RefreshToken.for_user(user)
