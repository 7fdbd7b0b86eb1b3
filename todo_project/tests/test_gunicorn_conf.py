"""gunicorn.conf.py: what gunicorn itself makes of it, and a real gunicorn started with it."""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from gunicorn.app.base import Application

ROOT = Path(__file__).resolve().parents[2]


class ConfigFileOnly(Application):
    """gunicorn's configuration from gunicorn.conf.py alone: a setting it does not know (a
    misspelt name) is left at its default, as gunicorn does."""

    def load_config(self):
        self.load_config_from_file(str(ROOT / "gunicorn.conf.py"))

    def load(self):
        raise NotImplementedError


def gunicorn_config(monkeypatch, **env: str):
    for name in ("TRUSTED_PROXY_COUNT", "FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return ConfigFileOnly().cfg


def test_forwarded_headers_are_trusted_only_behind_the_proxies_the_app_trusts(monkeypatch):
    assert gunicorn_config(monkeypatch).forwarded_allow_ips == []
    assert gunicorn_config(monkeypatch, TRUSTED_PROXY_COUNT="0").forwarded_allow_ips == []
    assert gunicorn_config(monkeypatch, TRUSTED_PROXY_COUNT="1").forwarded_allow_ips == ["*"]
    narrowed = gunicorn_config(monkeypatch, TRUSTED_PROXY_COUNT="1", FORWARDED_ALLOW_IPS="10.0.0.2")
    assert narrowed.forwarded_allow_ips == ["10.0.0.2"]


def test_no_control_socket_and_heartbeats_on_tmpfs(monkeypatch):
    cfg = gunicorn_config(monkeypatch)
    assert cfg.control_socket_disable is True
    if os.access("/dev/shm", os.W_OK):
        assert cfg.worker_tmp_dir == "/dev/shm"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.live_server_processes
def test_a_real_gunicorn_leaves_home_alone_and_ignores_a_forwarded_proto_from_anyone(tmp_path):
    port = free_port()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in {"XDG_RUNTIME_DIR", "PYTEST_CURRENT_TEST"}
        },
        "HOME": str(tmp_path),  # where gunicorn's control socket went by default
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "FRONTEND_URL": "https://app.example.com",
        "DEBUG": "0",
        "HTTPS": "1",  # plain HTTP is redirected to HTTPS
        "TRUSTED_PROXY_COUNT": "0",  # no proxy: nobody may say the request came over HTTPS
        "LOG_LEVEL": "warning",
    }
    error_log = tmp_path / "error.log"
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "todo_project.wsgi:application",
         "--config", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=error_log.open("wb"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:  # /healthz is exempt from the redirect
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("gunicorn did not start:\n" + error_log.read_text())
                time.sleep(0.2)

        # A client (on loopback, gunicorn's default trusted address) claims HTTPS: still plain
        # HTTP to the app, redirected, not served as if secure.
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        with connection:
            connection.sendall(
                b"GET /api/v1/auth/me/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
            )
            status_line = connection.makefile("rb").readline()
        assert status_line.split()[1] == b"301", status_line

        assert not (tmp_path / ".gunicorn").exists()
    finally:
        process.terminate()
        process.wait(20)
