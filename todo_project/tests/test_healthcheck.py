"""The container's HEALTHCHECK probe (todo_project/healthcheck.py)."""

from urllib.parse import urlsplit

import pytest
from django.http.request import validate_host

from todo_project.healthcheck import main, probe_host, probe_url
from todo_project.settings import env_list


@pytest.mark.parametrize(
    "allowed_hosts",
    [
        "localhost,127.0.0.1,[::1]",  # the default
        "todo.example.com",
        " api.example.com , todo.example.com",
        ".example.com",
        "*",
        "[::1],localhost",
    ],
)
def test_django_accepts_the_probes_host(monkeypatch, allowed_hosts):
    monkeypatch.setenv("ALLOWED_HOSTS", allowed_hosts)
    assert validate_host(probe_host(allowed_hosts), env_list("ALLOWED_HOSTS"))  # as settings.py


def test_the_probe_is_healthy_against_a_server_that_allows_only_its_domain(live_server, settings):
    settings.ALLOWED_HOSTS = ["todo.example.com"]
    port = str(urlsplit(live_server.url).port)
    assert main({"PORT": port, "ALLOWED_HOSTS": "todo.example.com"}) == 0
    # The host the probe used to send, and a port where nothing listens: unhealthy.
    assert main({"PORT": port, "ALLOWED_HOSTS": "127.0.0.1"}) == 1
    settings.ALLOWED_HOSTS = ["*"]
    assert main({"PORT": "1", "ALLOWED_HOSTS": "*"}) == 1


@pytest.mark.parametrize(
    ("port", "url"),
    [
        (None, "http://127.0.0.1:8000/healthz"),
        ("", "http://127.0.0.1:8000/healthz"),  # empty is unset, as gunicorn reads it
        (" 8080 ", "http://127.0.0.1:8080/healthz"),
    ],
)
def test_the_probe_asks_the_port_gunicorn_listens_on(port, url):
    assert probe_url({} if port is None else {"PORT": port}) == url
