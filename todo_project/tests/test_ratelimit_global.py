"""The per-user limit is global: two gunicorn workers share one count in the real Redis."""

import json
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.core.cache import cache

from accounts.tokens import RefreshToken
from todo_project.tests.helpers import free_port, served

pytestmark = [pytest.mark.live_server_processes, pytest.mark.django_db(transaction=True)]

LIMIT = 100
WORKERS = 2


def get(url: str, access: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {access}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def gunicorn(tmp_path: Path):
    """gunicorn with two sync workers on a free loopback port; yields (base URL, access log)."""
    port = free_port()
    access_log = tmp_path / "access.log"
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "todo_project.wsgi:application",
        "--config", "gunicorn.conf.py",
        "--workers", str(WORKERS),
        "--bind", f"127.0.0.1:{port}",
        "--max-requests", "0",
        # The worker's pid in each access-log line tells which worker answered.
        "--access-logfile", str(access_log),
        "--access-logformat", "%(p)s %(s)s",
    ]  # fmt: skip
    with served(command, port, tmp_path, RATE_LIMIT_USER=f"{LIMIT}/m") as base:
        yield base, access_log


def test_the_101st_request_in_a_minute_is_a_429_whichever_worker_answers(make_user, gunicorn):
    base, access_log = gunicorn
    url = f"{base}/api/v1/auth/me/"

    # Windows are fixed minutes, each key's ending at a second of its own (django-ratelimit):
    # a user whose window has enough of it left for the whole run (1–3 s), not a wait of up to
    # 15 s for the next.
    for n in range(20):
        access = str(RefreshToken.for_user(make_user(email=f"global{n}@example.com")).access_token)
        status, headers, _ = get(url, access)
        assert status == 200
        if int(headers["RateLimit-Reset"]) >= 15:
            break
    cache.clear()  # the shared Redis: the probes above no longer count

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: get(url, access), range(LIMIT)))
    assert [status for status, _, _ in results] == [200] * LIMIT
    assert sorted(int(h["RateLimit-Remaining"]) for _, h, _ in results) == list(range(LIMIT))

    status, headers, body = get(url, access)
    assert status == 429
    assert headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["status"] == 429
    assert 0 < int(headers["Retry-After"]) <= 60

    time.sleep(0.2)  # the access log is written after the response
    lines = [line.split() for line in access_log.read_text().splitlines()]
    answered_by = {pid for pid, status in lines if status in {"200", "429"}}
    assert len(answered_by) == WORKERS, lines
