"""todo_project/asgi.py, for deployments that need ASGI: served by the pinned uvicorn, it
answers as the WSGI application does (the API's bytes, problems, rate-limit headers)."""

import sys
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest

from accounts.tokens import RefreshToken
from tasks import services
from todo_project.tests.helpers import free_port, served

pytestmark = [pytest.mark.live_server_processes, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def uvicorn(tmp_path: Path):
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("uvicorn")),
        "todo_project.asgi:application",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--no-access-log",
    ]  # fmt: skip
    with served(command, port, tmp_path) as base:
        yield base


def fetch(url: str, access: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url, method=method, headers={"Authorization": f"Bearer {access}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_asgi_application_answers_as_the_wsgi_one(make_user, client, uvicorn):
    owner, stranger = make_user(email="asgi@example.com"), make_user(email="other@example.com")
    data = {"title": "Pay rent", "tags": ["money"], "due_date": date(2026, 12, 1)}
    task = services.task_create(user=owner, data=data)
    access = str(RefreshToken.for_user(owner).access_token)
    wsgi = {"HTTP_AUTHORIZATION": f"Bearer {access}"}
    for path in ("/api/v1/tasks/", f"/api/v1/tasks/{task.pk}/", "/api/v1/tags/"):
        status, headers, body = fetch(uvicorn + path, access)
        expected = client.get(path, **wsgi)
        assert (status, body) == (expected.status_code, expected.content), path
        for name in ("Content-Type", "ETag", "Cache-Control", "Vary", "RateLimit-Limit"):
            assert headers.get(name) == expected.headers.get(name), (path, name)
        assert int(headers["RateLimit-Remaining"]) < int(headers["RateLimit-Limit"])

    theirs = services.task_create(user=stranger, data={"title": "Theirs"})
    status, headers, body = fetch(f"{uvicorn}/api/v1/tasks/{theirs.pk}/", access)
    assert (status, headers["Content-Type"]) == (404, "application/problem+json")
    assert b'"status":404' in body.replace(b" ", b"")
    status, _, _ = fetch(f"{uvicorn}/api/v1/tasks/", "not-a-token")
    assert status == 401
