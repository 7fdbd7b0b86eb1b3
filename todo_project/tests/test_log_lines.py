"""What the log gets for failures any client or probe can repeat: one line each, without a
traceback, and the time a request really took (review 30h: each test failed before)."""

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from django.db import OperationalError

from todo_project import health
from todo_project.request_id import JsonFormatter
from todo_project.tests.helpers import free_port, one_gunicorn_worker, served

ROOT = Path(__file__).resolve().parents[2]


def console_handler() -> logging.Handler:
    (console,) = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    return console


def written_lines(caplog) -> list[dict]:
    """What the configured console handler would write for the records captured."""
    console = console_handler()
    return [json.loads(console.format(r)) for r in caplog.records if console.filter(r)]


@pytest.fixture
def _no_check_left():
    yield
    for thread in [t for t in threading.enumerate() if t.name == "readyz-database"]:
        thread.join(timeout=10)
    health._check_in_flight = None


# --- a failing /readyz probe: one WARNING, no ERROR ------------------------------------------


@pytest.mark.django_db
def test_a_readyz_503_for_the_database_is_one_warning_line_and_no_error(
    anon_client, caplog, monkeypatch, _no_check_left
):
    """README: "It is logged as one WARNING line (...), as is any other database failure (a
    503), without a traceback." Django's handler added `ERROR django.request Service
    Unavailable: /readyz` to every failing probe (every few seconds per replica)."""

    def refused() -> None:
        raise OperationalError('connection to server at "db" failed: Connection refused')

    monkeypatch.setattr(health, "_database_answers", refused)
    caplog.set_level(logging.INFO)
    response = anon_client.get("/readyz")
    assert response.status_code == 503
    lines = [line for line in written_lines(caplog) if line["logger"] != "todo.access"]
    assert [(line["level"], line["logger"]) for line in lines] == [("WARNING", "todo.health")]


# --- nor a traceback for the cache -------------------------------------------------------------


@pytest.mark.django_db
def test_a_readyz_503_for_the_cache_is_one_line_without_a_traceback(
    anon_client, caplog, settings, _no_check_left
):
    """The database branch logs "One line with psycopg's message, not a 4 kB traceback per probe
    (every few seconds)"; the cache branch kept exc_info: measured 2.9-4.2 kB per probe while
    Redis was down (live gunicorn, Redis killed)."""
    from django.core.cache import caches

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    caplog.set_level(logging.INFO)
    try:
        response = anon_client.get("/readyz")
    finally:
        caches.close_all()
    assert response.status_code == 503
    (line,) = [line for line in written_lines(caplog) if line["logger"] == "todo.health"]
    assert "exception" not in line
    assert len(json.dumps(line)) < 600, len(json.dumps(line))


# --- Django's refusals of a client's request: no traceback, no query string -------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/login/", "/api/v1/lists/"])
def test_too_many_query_parameters_are_logged_without_a_traceback(api_client, caplog, path):
    """Any client (no account needed on /admin/login/) made a 2-7 kB WARNING line per request:
    Django's frames of TooManyFieldsSent, and `request` rendered with its whole query string.
    ClientFaultAsWarning strips DisallowedHost's traceback for that very reason ("scanners ...
    would fill the log"); the access line (~230 bytes) already records the 400."""
    caplog.set_level(logging.INFO)
    response = api_client.get(path + "?" + "&".join(["a"] * 1100))
    assert response.status_code == 400
    (line,) = [line for line in written_lines(caplog) if line["logger"].startswith("django.sec")]
    assert line["level"] == "WARNING"
    assert "exception" not in line
    assert len(json.dumps(line)) < 1024, len(json.dumps(line))


# --- a request gunicorn's timeout ends: logged with the time it took ----------------------------

SLOW_APP = """
import time

from todo_project.wsgi import application as app  # first: it sets Django up

import todo_project.health

_real = todo_project.health.JsonResponse
_slow = {"on": False}


def _json_response(*args, **kwargs):
    if _slow["on"]:
        time.sleep(30)
    return _real(*args, **kwargs)


todo_project.health.JsonResponse = _json_response


def application(environ, start_response):
    # /slow is /healthz that never finishes (one sync worker: a global is enough).
    _slow["on"] = environ["PATH_INFO"] == "/slow"
    if _slow["on"]:
        environ["PATH_INFO"] = "/healthz"
    return app(environ, start_response)
"""


@pytest.mark.live_server_processes
def test_a_request_gunicorn_times_out_is_logged_with_the_time_it_took(tmp_path):
    """Measured live: a request killed at gunicorn's 30 s timeout got its 500 problem and one
    access line, with "duration_ms": 0.31 (the time to write the 500), so a search of the log
    for slow requests misses exactly the slowest. gunicorn_worker.write_problem starts its
    clock itself; the request's start is known to the worker (handle_request)."""
    (tmp_path / "slow_app.py").write_text(SLOW_APP)
    port = free_port()
    command = one_gunicorn_worker(port, timeout=3, app="slow_app:application")
    pythonpath = os.pathsep.join([str(tmp_path), str(ROOT)])
    log = tmp_path / "error.log"
    with served(command, port, tmp_path, PYTHONPATH=pythonpath, LOG_LEVEL="info"):
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
            connection.sendall(
                b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: slow-1\r\n"
                b"Connection: close\r\n\r\n"
            )
            status_line = connection.makefile("rb").readline()
        took_ms = (time.monotonic() - started) * 1000
        assert status_line.split()[1] == b"500", status_line
        deadline = time.monotonic() + 5
        while '"request_id":"slow-1"' not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        (line,) = [
            json.loads(text)
            for text in log.read_text().splitlines()
            if text.startswith("{") and '"logger":"todo.access"' in text and "slow-1" in text
        ]
        assert line["status"] == 500
        assert line["duration_ms"] >= 0.5 * took_ms, (line, took_ms)
