"""A browser app on another origin, in Chromium against the production server (gunicorn, the
project's worker and config), reading what the API answers (review 33c)."""

import http.server
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from accounts.tokens import RefreshToken
from tests.test_admin_browser import browser_page, chromium  # noqa: F401 (a fixture)
from todo_project.problems import MAX_URL_BYTES
from todo_project.tests.helpers import free_port, served


@pytest.fixture
def spa_origin(tmp_path: Path) -> Iterator[str]:
    """A static page on another port: a browser app's origin, as the README's CORS row has it."""
    (tmp_path / "spa").mkdir()
    (tmp_path / "spa" / "index.html").write_text("<!doctype html><title>app</title>app")
    port = free_port()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path / "spa"), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def gunicorn_for_the_app(tmp_path: Path, spa_origin: str) -> Iterator[str]:
    """The production server (gunicorn, the project's worker and config), CORS on for the app."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "todo_project.wsgi:application",
        "--config", "gunicorn.conf.py",
        "--workers", "1",
        "--bind", f"127.0.0.1:{port}",
    ]  # fmt: skip
    with served(command, port, tmp_path, CORS_ALLOWED_ORIGINS=spa_origin) as base:
        yield base


# What the app's page runs: fetch() and what a browser lets it read of the answer.
FETCH = """async ([url, access]) => {
  try {
    const r = await fetch(url, {headers: {Authorization: 'Bearer ' + access}});
    return {status: r.status, type: r.headers.get('Content-Type'),
            requestId: r.headers.get('X-Request-ID'), body: await r.text()};
  } catch (e) { return {error: String(e)}; }
}"""


@pytest.mark.browser
@pytest.mark.live_server_processes
@pytest.mark.django_db(transaction=True)
def test_a_browser_app_on_another_origin_reads_the_answer_to_a_long_query(
    make_user,
    gunicorn_for_the_app,
    spa_origin,
    chromium,  # noqa: F811
    request,
):
    # gunicorn answered a request line over 4,094 bytes itself (414, ProblemSyncWorker), without
    # the CORS headers: the app's preflight OPTIONS of that URL failed, and fetch() rejected
    # with "TypeError: Failed to fetch" alone, like a network outage.
    user = make_user(email="spa@example.com")
    access = str(RefreshToken.for_user(user).access_token)
    base = gunicorn_for_the_app
    # A user pastes a long text into the search box: a 400 naming `search` (200 characters).
    long_search = f"{base}/api/v1/tasks/?search=" + "x" * 5000
    # 20 tag names of 50 characters (48 Cyrillic): within the contract, 5,899 bytes %-escaped.
    tags = "&".join(f"tag=%D0%97{i:02d}" + "%D1%8F" * 47 for i in range(20))
    twenty_tags = f"{base}/api/v1/tasks/?{tags}"
    # Past the app's cap (MAX_URL_BYTES): its 414.
    too_long = f"{base}/api/v1/tasks/?search=" + "x" * MAX_URL_BYTES
    with browser_page(chromium, request.node.name) as page:
        page.goto(f"{spa_origin}/index.html")
        answers = [
            page.evaluate(FETCH, [url, access]) for url in (long_search, twenty_tags, too_long)
        ]
    assert [answer.get("status") for answer in answers] == [400, 200, 414], answers
    for answer in answers:
        assert answer["requestId"], answer
    for answer in (answers[0], answers[2]):
        assert answer["type"] == "application/problem+json", answer
    assert "search" in json.loads(answers[0]["body"])["errors"]
    assert json.loads(answers[1]["body"])["count"] == 0
