"""The benchmark's floor (bench/floor.py) must answer what the API answers, or the comparison
means nothing: same JSON for the same tasks, called in-process on the test's own connection."""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from django.conf import settings
from django.db import connection

import todo_project.cache
from bench.floor import COUNT_SCRIPT, FloorApp
from conftest import client_for
from todo_project.tests.helpers import database_url_for_this_test, free_port, one_gunicorn_worker

pytestmark = pytest.mark.django_db


def floor_get(
    path: str, token: str, query: str = "", app: FloorApp | None = None, **headers: str
) -> tuple[str, dict, bytes]:
    connection.ensure_connection()
    if app is None:
        app = FloorApp(
            connection=connection.connection, signing_key=settings.SIMPLE_JWT["SIGNING_KEY"]
        )
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "HTTP_HOST": "testserver",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        **headers,
    }
    answer = {}

    def start_response(status, headers):
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


def token_of(client) -> str:
    return client._credentials["HTTP_AUTHORIZATION"].removeprefix("Bearer ")


def test_the_floor_renders_a_task_as_the_api_does(api_client, variety):
    for task in variety:
        api = api_client.get(f"/api/v1/tasks/{task.id}/")
        status, headers, body = floor_get(f"/api/v1/tasks/{task.id}/", token_of(api_client))

        assert (status, api.status_code) == ("200 OK", 200)
        assert json.loads(body) == api.json()
        assert headers["Content-Type"] == api["Content-Type"]


def test_the_floor_list_is_the_api_list(api_client, variety):
    for query in ("", "limit=2", "limit=2&offset=2", "limit=1&offset=1"):
        api = api_client.get(f"/api/v1/tasks/?{query}")
        status, _, body = floor_get("/api/v1/tasks/", token_of(api_client), query)

        assert status == "200 OK"
        assert json.loads(body) == api.json()


def test_the_floor_refuses_what_the_api_refuses(api_client, other_user, variety):
    other = client_for(other_user)
    status, _, _ = floor_get(f"/api/v1/tasks/{variety[0].id}/", token_of(other))
    assert status == "404 Not Found"
    assert floor_get("/api/v1/tasks/", "not-a-token")[0] == "401 Unauthorized"
    assert floor_get("/api/v1/tasks/not-a-uuid/", token_of(api_client))[0] == "404 Not Found"
    assert floor_get("/api/v1/tasks/", token_of(api_client), "limit=0")[0] == "400 Bad Request"

    other_user.is_active = False
    other_user.save()
    assert floor_get("/api/v1/tasks/", token_of(other))[0] == "401 Unauthorized"


def test_the_floor_counts_the_rate_limit_as_the_api_does_when_asked(
    api_client, variety, monkeypatch
):
    assert COUNT_SCRIPT == todo_project.cache.COUNT_SCRIPT  # the same Redis work per request
    monkeypatch.setenv("RATE_LIMIT_USER", "2/d")  # a day: no window ends mid-test
    app = FloorApp(
        connection=connection.connection,
        signing_key=settings.SIMPLE_JWT["SIGNING_KEY"],
        redis_url=os.environ["REDIS_URL"],
    )
    app._count = counted = _recording(app._count)  # which requests were counted
    path, token = f"/api/v1/tasks/{variety[0].id}/", token_of(api_client)

    status, headers, _ = floor_get(path, token, app=app)  # not asked: not counted
    assert status == "200 OK" and "RateLimit-Limit" not in headers and counted.calls == 0

    answers = [floor_get(path, token, app=app, HTTP_X_FLOOR_RATE_LIMIT="count") for _ in range(3)]
    assert [status for status, _, _ in answers] == ["200 OK", "200 OK", "429 Too Many Requests"]
    assert [headers["RateLimit-Remaining"] for _, headers, _ in answers] == ["1", "0", "0"]
    assert all(headers["RateLimit-Limit"] == "2" for _, headers, _ in answers)
    assert all(1 <= int(headers["RateLimit-Reset"]) <= 86_400 for _, headers, _ in answers)


def _recording(function):
    def recorded(*args):
        recorded.calls += 1
        return function(*args)

    recorded.calls = 0
    return recorded


@pytest.mark.live_server_processes
@pytest.mark.django_db(transaction=True)
def test_the_floor_boots_under_the_project_s_gunicorn_config(api_client, variety, tmp_path):
    # `make bench` runs the floor with gunicorn.conf.py, whose post_fork read Django's settings:
    # every floor worker failed to boot (no Django there), and the benchmark with them.
    port = free_port()
    command = one_gunicorn_worker(port, timeout=30, app="bench.floor:application")
    environment = {
        name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"
    }
    environment["DATABASE_URL"] = database_url_for_this_test()
    environment["JWT_SIGNING_KEY"] = settings.SIMPLE_JWT["SIGNING_KEY"]
    log = tmp_path / "floor.log"
    with log.open("wb") as stderr:
        floor = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/tasks/",
            headers={"Authorization": f"Bearer {token_of(api_client)}"},
        )
        deadline = time.monotonic() + 30
        while True:
            assert floor.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    body = answer.read()
                break
            except urllib.error.URLError:  # not listening yet
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
    finally:
        floor.terminate()
        floor.wait(20)
    assert json.loads(body) == api_client.get("/api/v1/tasks/").json()
