"""The environment, as operators set it: an empty value is the default, a bad one is refused at
the start in one line with exit status 78 (gunicorn's own variables too, where gunicorn reads
them first), and under DEBUG each log record is printed once."""

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gunicorn.app.base import Application

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
# What the test session's environment may hold that these processes must not inherit.
DROPPED = {
    "DEBUG",
    "SECRET_KEY",
    "HTTPS",
    "ALLOWED_HOSTS",
    "PYTEST_CURRENT_TEST",
    "HOST",
    "PORT",
    "WEB_CONCURRENCY",
    "TRUSTED_PROXY_COUNT",
    "LOG_LEVEL",
    "DB_CONNECT_TIMEOUT",
    "EMAIL_BACKEND",
    "EMAIL_HOST",
    "DEFAULT_FROM_EMAIL",
    "CACHE_KEY_PREFIX",
}


def production_env(**extra: str) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if key not in DROPPED}
    return {
        **base,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "todo.example.com",
        "FRONTEND_URL": "https://app.example.com",
        "REDIS_URL": "redis://127.0.0.1:6379/0",  # not connected to by these commands
        **extra,
    }


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def manage(*args: str, **extra: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "manage.py", *args], production_env(**extra))


def settings_of(*names: str, **extra: str) -> dict:
    show = (
        "import json; from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {list(names)!r}}}))"
    )
    done = manage("shell", "--no-imports", "-c", show, **extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- An empty value is the default ------------------------------------------------------------


def test_empty_email_and_cache_variables_are_their_defaults_not_the_empty_string():
    # An env-file line `EMAIL_BACKEND=` made every password reset of an existing account a 500
    # (and a 202 for an unknown one: the account enumeration the API otherwise prevents).
    empty = settings_of(
        "EMAIL_BACKEND",
        "EMAIL_HOST",
        "DEFAULT_FROM_EMAIL",
        "LOG_LEVEL",
        "CACHES",
        EMAIL_BACKEND="",
        EMAIL_HOST="",
        DEFAULT_FROM_EMAIL="",
        CACHE_KEY_PREFIX="",
        LOG_LEVEL="",
    )
    unset = settings_of("EMAIL_BACKEND", "EMAIL_HOST", "DEFAULT_FROM_EMAIL", "LOG_LEVEL", "CACHES")
    assert empty == unset
    assert empty["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert empty["EMAIL_HOST"] == "localhost"
    assert empty["DEFAULT_FROM_EMAIL"] == "Todo <no-reply@localhost>"
    assert empty["LOG_LEVEL"] == "INFO"
    assert empty["CACHES"]["default"]["KEY_PREFIX"] == "todo"


def test_set_values_are_still_taken():
    values = settings_of(
        "EMAIL_HOST",
        "DEFAULT_FROM_EMAIL",
        "CACHES",
        EMAIL_HOST="smtp.example.com",
        DEFAULT_FROM_EMAIL="Todo <no-reply@example.com>",
        CACHE_KEY_PREFIX="todo-eu",
    )
    assert values["EMAIL_HOST"] == "smtp.example.com"
    assert values["DEFAULT_FROM_EMAIL"] == "Todo <no-reply@example.com>"
    assert values["CACHES"]["default"]["KEY_PREFIX"] == "todo-eu"


# --- Refused at the start, in one line ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        # libpq reads 0 as "wait forever": /readyz's 2 s bound gone.
        ("DB_CONNECT_TIMEOUT", "0", "DB_CONNECT_TIMEOUT must be from 1 to 2147483647, not 0."),
        # gunicorn's variables, refused by the migrate that runs before gunicorn too.
        ("WEB_CONCURRENCY", "abc", "WEB_CONCURRENCY must be a whole number, not 'abc'."),
        ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY must be from 1 to 2147483647, not 0."),
        ("PORT", "70000", "PORT must be from 1 to 65535, not 70000."),
        ("HOST", "0.0.0.0 ", "HOST must be a host name or an IP address (0.0.0.0, ::), not "),
        # Found by the first password reset (a 202, the mail logged as not sent).
        (
            "EMAIL_BACKEND",
            "no.such.Backend",
            "EMAIL_BACKEND must name a mail backend class, not 'no.such.Backend'.",
        ),
        # Django's and corsheaders' checks: several lines, exit 1, and none under gunicorn.
        (
            "CORS_ALLOWED_ORIGINS",
            "https://app.example.com,app2.example.com",
            (
                "CORS_ALLOWED_ORIGINS must list origins like https://app.example.com, not "
                "'app2.example.com'."
            ),
        ),
        (
            "CSRF_TRUSTED_ORIGINS",
            "https://todo.example.com/admin",
            (
                "CSRF_TRUSTED_ORIGINS must list origins like https://app.example.com, not "
                "'https://todo.example.com/admin'."
            ),
        ),
    ],
)
def test_manage_refuses_in_one_line(name, value, message):
    done = manage("check", **{name: value})
    assert done.returncode == os.EX_CONFIG, done.stderr
    assert done.stderr.startswith(message)
    assert done.stderr.count("\n") == 1


def test_origins_that_are_origins_are_taken():
    # Ports, IPv6, other schemes, CSRF's wildcard subdomains, corsheaders' special values.
    done = manage(
        "check",
        CORS_ALLOWED_ORIGINS="https://app.example.com:8443,http://[::1]:3000,capacitor://localhost,"
        "null,file://",
        CSRF_TRUSTED_ORIGINS="https://*.example.com,https://todo.example.com",
    )
    assert done.returncode == 0, done.stderr


def test_allowed_hosts_that_can_match_are_taken():
    # Django's own forms: a leading-dot domain, a bracketed IPv6 address, an IPv4 one, "*".
    done = manage("check", ALLOWED_HOSTS="todo.example.com,.example.com,[::1],127.0.0.1,*")
    assert done.returncode == 0, done.stderr


def test_the_migrate_before_gunicorn_refuses_proxies_it_cannot_read_in_one_line():
    # gunicorn reads FORWARDED_ALLOW_IPS itself, before its config file, and stopped with a line
    # that named no variable; the migrate that runs first (image, make serve) names it now.
    done = manage("check", TRUSTED_PROXY_COUNT="1", FORWARDED_ALLOW_IPS="10.0.0.0/8,not-an-ip")
    assert done.returncode == os.EX_CONFIG, done.stderr
    assert done.stderr == (
        "FORWARDED_ALLOW_IPS must be * or IP addresses or networks, not '10.0.0.0/8,not-an-ip'.\n"
    )
    # Host bits in a network: gunicorn refuses it too (strict), in its own words.
    assert manage("check", TRUSTED_PROXY_COUNT="1", FORWARDED_ALLOW_IPS="10.0.0.1/8").returncode
    # An empty item, which gunicorn skips.
    assert (
        manage("check", TRUSTED_PROXY_COUNT="1", FORWARDED_ALLOW_IPS="10.0.0.0/8,").returncode == 0
    )
    assert (
        manage("check", TRUSTED_PROXY_COUNT="1", FORWARDED_ALLOW_IPS="10.0.0.0/8, *").returncode
        == 0
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        # Each was a traceback from gunicorn (exit 1), not the settings' refusal.
        ("TRUSTED_PROXY_COUNT", "abc", "TRUSTED_PROXY_COUNT must be a whole number, not 'abc'."),
        ("PORT", "70000", "PORT must be from 1 to 65535, not 70000."),
        ("PORT", "http", "PORT must be a whole number, not 'http'."),
        # Started: a master that listened with no worker, every request left waiting.
        ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY must be from 1 to 2147483647, not 0."),
        ("LOG_LEVEL", "loud", "LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL"),
        # Served without a word, with none of the production requirements (SECRET_KEY,
        # REDIS_URL, HTTPS) and tracebacks for any client.
        ("DEBUG", "1", "DEBUG must be off under gunicorn, the production server"),
    ],
)
def test_gunicorn_refuses_in_one_line_before_it_listens(name, value, message):
    # --check-config: gunicorn reads its config file, then loads the app (and stops).
    done = run(
        [
            str(GUNICORN),
            "todo_project.wsgi:application",
            "-c",
            "gunicorn.conf.py",
            "--check-config",
        ],
        production_env(**{name: value}),
    )
    assert done.returncode == os.EX_CONFIG, done.stderr
    assert done.stderr.startswith(message)
    assert done.stderr.count("\n") == 1


class ConfigFileOnly(Application):
    def load_config(self):
        self.load_config_from_file(str(ROOT / "gunicorn.conf.py"))

    def load(self):
        raise NotImplementedError


@pytest.mark.parametrize(
    ("env", "bind", "workers"),
    [
        ({}, "127.0.0.1:8000", 4),
        ({"HOST": "", "PORT": "", "WEB_CONCURRENCY": ""}, "127.0.0.1:8000", 4),  # empty: default
        ({"HOST": "0.0.0.0", "PORT": "8080", "WEB_CONCURRENCY": "2"}, "0.0.0.0:8080", 2),
        ({"HOST": "::"}, "[::]:8000", 4),  # gunicorn reads ::1:8000 as host "", port ""
        ({"HOST": "[::1]"}, "[::1]:8000", 4),
    ],
)
def test_gunicorn_binds_and_forks_what_the_variables_say(monkeypatch, env, bind, workers):
    for name in ("HOST", "PORT", "WEB_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = ConfigFileOnly().cfg
    assert cfg.bind == [bind]
    assert cfg.workers == workers


# --- Logging -----------------------------------------------------------------------------------


def test_under_debug_each_django_log_record_is_one_json_line():
    # Django's own console handler on the "django" logger printed each record a second time,
    # in plain text (with a traceback), beside the JSON one; django.server's went to Python's
    # last-resort handler, plain text.
    log = (
        "import logging; "
        "logging.getLogger('django.security.DisallowedHost').warning('host probe'); "
        "logging.getLogger('django.utils.autoreload').info('reload probe'); "
        "logging.getLogger('django.server').error('server probe')"
    )
    done = run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", log],
        {
            **{key: value for key, value in os.environ.items() if key not in DROPPED},
            "DEBUG": "1",
        },
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert [json.loads(line)["message"] for line in lines] == [
        "host probe",
        "reload probe",
        "server probe",
    ]


# --- The image's start command ----------------------------------------------------------------


@pytest.mark.live_server_processes
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("host", "listening"), [("127.0.0.1", "127.0.0.1"), ("", "0.0.0.0")])
def test_the_images_start_command_takes_an_empty_variable_as_the_images_value(
    tmp_path, host, listening
):
    """`WEB_CONCURRENCY=` in an env file: gunicorn reads it with int() before its config file
    runs, and crashed on "" after migrate had passed it; `HOST=` bound the container's loopback
    (the code's default), out of reach. The Dockerfile's CMD, run as is."""
    from todo_project.healthcheck import main as probe
    from todo_project.tests.helpers import database_url_for_this_test, free_port

    dockerfile = (ROOT / "Dockerfile").read_text()
    (command,) = [
        json.loads(line[4:]) for line in dockerfile.splitlines() if line.startswith("CMD")
    ]
    port = str(free_port())
    env = production_env(
        PATH=f"{GUNICORN.parent}{os.pathsep}{os.environ['PATH']}",  # python, gunicorn: the venv's
        DATABASE_URL=database_url_for_this_test(),
        REDIS_URL=os.environ["REDIS_URL"],
        CONN_MAX_AGE="0",  # no connection left open to the test database afterwards
        HTTPS="0",
        ALLOWED_HOSTS="127.0.0.1",
        HOST=host,
        PORT=port,
        WEB_CONCURRENCY="",
    )
    log = tmp_path / "start.log"
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=log.open("wb"))
    try:
        deadline = time.monotonic() + 60
        while probe({"PORT": port, "ALLOWED_HOSTS": "127.0.0.1"}) != 0:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(30)
    started = log.read_text()
    assert f"Listening at: http://{listening}:{port}" in started
    assert started.count("Booting worker") == 4  # the image's WEB_CONCURRENCY


# --- A database out of reach ----------------------------------------------------------------


def test_a_command_against_an_unreachable_database_says_so_in_one_line():
    from todo_project.tests.helpers import free_port

    nowhere = f"postgres://todo:x@127.0.0.1:{free_port()}/todo"
    done = manage("migrate", DATABASE_URL=nowhere)
    assert done.returncode == 1
    assert done.stderr.startswith("Cannot use the database of DATABASE_URL: connection failed")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    # Asked for, the traceback is there.
    assert "Traceback" in manage("migrate", "--traceback", DATABASE_URL=nowhere).stderr


def test_a_command_interrupted_says_so_in_one_line_and_dies_of_the_signal():
    # Review 44d: a Ctrl-C of a long command (seed_bench, migrate) was 25 lines of traceback.
    interrupt = (
        "import os, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "os.kill(os.getpid(), signal.SIGINT)"
    )
    done = manage("shell", "--no-imports", "-c", interrupt)
    assert (done.returncode, done.stderr) == (-signal.SIGINT, "Interrupted.\n")
    assert "Traceback" in manage("shell", "--no-imports", "--traceback", "-c", interrupt).stderr
