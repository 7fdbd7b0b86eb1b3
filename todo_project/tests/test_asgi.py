"""todo_project/asgi.py, for deployments that need ASGI: served by the pinned uvicorn, it
answers as the WSGI application does (the API's bytes, problems, rate-limit headers)."""

import json
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from accounts.tokens import RefreshToken
from tasks import services
from todo_project.tests.helpers import connection_of_its_own, free_port, served

pytestmark = [pytest.mark.live_server_processes, pytest.mark.django_db(transaction=True)]


def readme_uvicorn_command() -> list[str]:
    """The command the README gives for an ASGI deployment ("Deploy"): the one tested here."""
    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    match = re.search(r"`(uvicorn todo_project\.asgi:application[^`]*)`", readme)
    assert match, "README no longer names a uvicorn command"
    return [str(Path(sys.executable).with_name("uvicorn")), *match.group(1).split()[1:]]


@pytest.fixture
def uvicorn_port(tmp_path: Path, request) -> Iterator[int]:
    port = free_port()
    command = [*readme_uvicorn_command(), "--host", "127.0.0.1", "--port", str(port)]
    env = getattr(request, "param", {})
    with served(command, port, tmp_path, **env):
        yield port


@pytest.fixture
def uvicorn(uvicorn_port: int) -> str:
    return f"http://127.0.0.1:{uvicorn_port}"


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


@pytest.mark.parametrize(
    ("framing", "status"),
    [
        (b"Content-Length: 104857600\r\n\r\n" + b"x" * 65536, b"413"),  # 100 MB announced
        (b"Transfer-Encoding: chunked\r\n\r\n10000\r\n" + b"x" * 65536 + b"\r\n", b"411"),
    ],
)
def test_a_body_refused_from_its_headers_is_refused_before_it_is_read(
    uvicorn_port, framing, status
):
    # Django's ASGI handler read the whole body first (to /tmp past 2.5 MB, without a timeout):
    # uvicorn answered nothing until the client had sent all of it; gunicorn answers at once.
    head = b"POST /api/v1/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    with socket.create_connection(("127.0.0.1", uvicorn_port), timeout=5) as sock:
        sock.sendall(head + b"Content-Type: application/json\r\n" + framing)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    assert b"application/problem+json" in answer


@pytest.mark.parametrize("uvicorn_port", [{"TRUSTED_PROXY_COUNT": "0"}], indirect=True)
def test_the_readme_command_believes_no_forwarded_header_without_trusted_proxies(uvicorn):
    # uvicorn trusts X-Forwarded-For and -Proto from 127.0.0.1 by default: a new one in each
    # request was a fresh anonymous rate-limit bucket each time.
    remaining = []
    for n in range(3):
        request = urllib.request.Request(
            f"{uvicorn}/api/v1/auth/password/reset/",
            data=json.dumps({"email": "x@example.com"}).encode(),
            headers={"Content-Type": "application/json", "X-Forwarded-For": f"10.0.0.{n}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            remaining.append(int(response.headers["RateLimit-Remaining"]))
    assert remaining[0] > remaining[1] > remaining[2], remaining


@pytest.mark.parametrize("uvicorn_port", [{"LOG_LEVEL": "info"}], indirect=True)
def test_a_request_whose_client_left_is_logged_as_499_and_still_carried_out(
    make_user, uvicorn_port, tmp_path
):
    # Django's ASGI handler cancels the request on `http.disconnect`; the cancellation went
    # through RequestIdMiddleware before its access line, while the view's thread went on
    # and wrote: a change with no trace in the log (gunicorn logs it with its status).
    owner = make_user(email="left@example.com")
    task = services.task_create(user=owner, data={"title": "Locked"})
    access = str(RefreshToken.for_user(owner).access_token)
    body = json.dumps({"title": "Changed"}).encode()
    with connection_of_its_own(connection) as other, other.transaction():
        # The PATCH waits on the row lock, as behind a slow concurrent write.
        other.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR UPDATE", [task.pk])
        with socket.create_connection(("127.0.0.1", uvicorn_port)) as sock:
            sock.sendall(
                f"PATCH /api/v1/tasks/{task.pk}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {access}\r\nX-Request-ID: left-early\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            time.sleep(1)
        time.sleep(0.5)  # the client is gone (a proxy's read timeout, a closed tab)
    deadline = time.monotonic() + 10
    while (task.refresh_from_db() or task.title) != "Changed" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert task.title == "Changed"
    lines = []
    while not lines and time.monotonic() < deadline:
        log = (tmp_path / "error.log").read_text().splitlines()
        lines = [json.loads(line) for line in log if '"request_id":"left-early"' in line]
        time.sleep(0.1)
    assert [(line["logger"], line["method"], line["status"]) for line in lines] == [
        ("todo.access", "PATCH", 499)
    ]
    assert lines[0]["duration_ms"] >= 1000 and lines[0]["user_id"] == str(owner.pk)
