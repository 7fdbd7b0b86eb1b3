import json
import socket
import threading
import time

import pytest
from django.core.signals import request_started
from django.db import connection, connections
from django.test import Client

from todo_project.tests.helpers import terminate_backend


def test_healthz_answers_without_touching_the_database(anon_client):
    # No django_db mark: any database access in this test raises.
    response = anon_client.get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_a_probe_with_another_method_is_405_naming_get_and_head(path, method):
    # CSRF checks on, as a real server has them: a POST used to get CSRF's 403 HTML page.
    response = getattr(Client(enforce_csrf_checks=True), method)(path)
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_healthz_answers_head():
    response = Client().head("/healthz")
    assert response.status_code == 200


@pytest.mark.django_db
def test_readyz_is_200_when_database_and_cache_answer(anon_client):
    response = anon_client.get("/readyz")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok", "database": "ok", "cache": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_problem_when_the_cache_is_down(anon_client, settings):
    from django.core.cache import caches

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    try:
        response = anon_client.get("/readyz")
    finally:
        caches.close_all()
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert json.loads(response.content)["detail"] == "Not ready: cache unavailable."


@pytest.mark.django_db(transaction=True)
def test_a_killed_database_connection_is_replaced_without_a_500(anon_client, settings):
    """What a PostgreSQL restart does to a persistent connection: the next request reconnects."""
    anon_client.get("/readyz")
    backend_pid = connection.connection.info.backend_pid
    terminate_backend(connection, backend_pid)
    # The WSGI handler sends request_started before every request; Django's test client does
    # not, so send it here: with CONN_HEALTH_CHECKS the dead connection is noticed and replaced.
    request_started.send(sender=__name__)
    response = anon_client.get("/readyz")
    assert response.status_code == 200
    assert connection.connection.info.backend_pid != backend_pid


@pytest.mark.django_db
def test_readyz_is_503_within_seconds_when_the_database_accepts_and_never_answers(
    anon_client, monkeypatch
):
    """A hung server (or a half-open path to it): the connect gives up after
    DB_CONNECT_TIMEOUT (2 s) instead of holding the worker until gunicorn kills it."""
    from todo_project import health

    silent = socket.create_server(("127.0.0.1", 0))
    held = []  # accepted, never answered
    threading.Thread(target=lambda: held.append(silent.accept()), daemon=True).start()
    settings_dict = {**connection.settings_dict, "HOST": "127.0.0.1"}
    settings_dict["PORT"] = silent.getsockname()[1]
    hung = type(connections["default"])(settings_dict, alias="hung")
    monkeypatch.setattr(health, "connection", hung)
    started = time.monotonic()
    try:
        response = anon_client.get("/readyz")
    finally:
        silent.close()
    assert response.status_code == 503
    assert json.loads(response.content)["detail"] == "Not ready: database unavailable."
    assert time.monotonic() - started < 4
    assert held  # it did reach the listener
