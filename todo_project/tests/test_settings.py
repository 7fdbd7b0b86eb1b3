"""Settings from the environment: the production defaults and the refusals."""

import os
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import django.core.cache.backends.redis
import pytest
from django.conf import settings
from django.db import connections
from django.db.backends.postgresql import base as postgresql_base
from django.utils.module_loading import import_string

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DEBUG", "SECRET_KEY", "HTTPS", "ALLOWED_HOSTS", "PYTEST_CURRENT_TEST"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_env(**extra: str) -> dict[str, str]:
    return {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "todo.example.com",
        "FRONTEND_URL": "https://app.example.com",
        **extra,
    }


def test_refuses_to_start_without_secret_key_when_debug_is_off():
    result = run_manage("check", DEBUG="0")
    # EX_CONFIG, told apart from a command's own failure (`makemigrations --check`: 1).
    assert result.returncode == os.EX_CONFIG
    assert result.stderr.strip().splitlines()[-1] == (
        "SECRET_KEY is not set: refusing to start with DEBUG off (see .env.example)."
    )


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SIGNING_KEY"])
@pytest.mark.parametrize(
    "key",
    [
        secrets.token_urlsafe(36)[:49],  # random, but one character short of Django's bar
        "ab" * 40,  # long, but two characters
        "django-insecure-" + secrets.token_urlsafe(50),  # startproject's throwaway key
    ],
    ids=["short", "two-characters", "django-insecure"],  # the same in every xdist worker
)
def test_a_weak_signing_key_is_refused_in_one_line_with_debug_off(name, key):
    result = run_manage("check", **production_env(**{name: key}))
    assert result.returncode == os.EX_CONFIG
    assert result.stderr == (
        f"{name} is too weak to sign tokens: use at least 50 random characters, e.g. the output "
        "of python -c 'import secrets; print(secrets.token_urlsafe(50))'.\n"
    )
    assert key not in result.stdout + result.stderr


def test_a_short_key_is_still_fine_for_development():
    result = run_manage("check", DEBUG="1", SECRET_KEY="dev")
    assert result.returncode == 0, result.stderr


def test_check_deploy_is_clean_with_the_documented_production_settings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def run_check_without(name: str, **env: str) -> subprocess.CompletedProcess:
    """`manage.py check` with the production settings, the variable `name` unset."""
    base = {key: value for key, value in os.environ.items() if key != name}
    env = {**production_env(), **env}
    env.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


# Each one's development default would be wrong in production without failing at the start:
# a per-process cache (every worker its own rate limits), a 400 for every real Host, reset links
# to localhost; no database at all gave a 52-line traceback with development advice.
@pytest.mark.parametrize("name", ["REDIS_URL", "ALLOWED_HOSTS", "FRONTEND_URL", "DATABASE_URL"])
def test_a_variable_production_requires_is_refused_in_one_line_when_unset(name):
    result = run_check_without(name)
    assert result.returncode != 0
    assert result.stderr == (
        f"{name} is not set: refusing to start with DEBUG off (see .env.example).\n"
    )


@pytest.mark.parametrize("url", ["garbage", "postgres://todo:hunter2@db:port/todo"])
def test_a_malformed_database_url_is_refused_in_one_line_without_its_password(url):
    result = run_manage("check", **production_env(DATABASE_URL=url))
    assert result.returncode != 0
    assert result.stderr == (
        "DATABASE_URL is not a database URL (postgres://USER:PASSWORD@HOST:PORT/NAME).\n"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # The name forgotten: Django's "supply the NAME" traceback at the first connection.
        ("postgres://todo:hunter2@127.0.0.1:1", "DATABASE_URL has no database name"),
        # A misspelt libpq option: psycopg's "invalid connection option" traceback.
        ("postgres://todo:hunter2@127.0.0.1:1/todo?sslmod=require", "DATABASE_URL has an unknown"),
    ],
)
def test_a_database_url_django_cannot_use_is_refused_in_one_line_without_its_password(url, message):
    """Both passed the start and failed at the first connection (the image's migrate) with a
    traceback; the password is not repeated."""
    result = run_manage("check", **production_env(DATABASE_URL=url))
    assert result.returncode == os.EX_CONFIG, result.stderr
    assert result.stderr.startswith(message)
    assert len(result.stderr.splitlines()) == 1
    assert "hunter2" not in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgres://todo:pw@127.0.0.1:1/todo?sslmode=prefer&application_name=todo&currentSchema=a",
        # Django's own options (its backend takes them before libpq): refused at first (29g).
        "postgres://todo:pw@127.0.0.1:1/todo?assume_role=todo_app&server_side_binding=true",
        # A pg_service.conf entry names the database: Django takes no NAME with a service.
        "postgres:///?service=todo",
    ],
)
def test_options_django_takes_in_the_database_url_are_taken(url):
    result = run_manage("check", **production_env(DATABASE_URL=url))
    assert result.returncode == 0, result.stderr


def test_the_key_under_debug_is_kept_in_the_data_directory_not_a_constant_of_the_repository(
    tmp_path,
):
    """With DEBUG=1 and no SECRET_KEY (an env file copied from development), the settings' old
    fallback, a constant published in the repository, signed the JWTs: anyone could forge a
    token for any user. Now it is a random key kept as `make serve` keeps its own."""
    show = (
        "from django.conf import settings as s; "
        "print(s.SECRET_KEY == s.SIMPLE_JWT['SIGNING_KEY'], s.SECRET_KEY)"
    )
    data = tmp_path / "data"
    shown = [
        run_manage("shell", "--no-imports", "-c", show, DEBUG="1", TODO_DATA_DIR=str(data))
        for _ in range(2)
    ]
    assert shown[0].returncode == 0, shown[0].stderr
    key = (data / "secret_key").read_text().strip()
    assert len(key) >= 50
    assert shown[0].stdout == shown[1].stdout == f"True {key}\n"  # the same key every time
    assert stat.S_IMODE((data / "secret_key").stat().st_mode) == 0o600
    assert "insecure" not in settings.SECRET_KEY  # the tests' own key is no constant either


def test_uvicorn_or_gunicorn_with_another_config_refuses_debug_on():
    """gunicorn.conf.py refuses DEBUG=1 (test_ops_environment.py); a server that does not read it
    loads the settings, which refuse it too."""
    result = subprocess.run(
        [sys.executable, "-c", "import uvicorn, django; django.setup()"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "todo_project.settings", "DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == os.EX_CONFIG, result.stderr
    assert result.stderr == "DEBUG must be off under gunicorn or uvicorn, the production servers.\n"


def test_debug_error_pages_hide_the_database_and_redis_urls(settings, rf):
    """Django's filter hides DATABASES' PASSWORD, but DATABASE_URL and REDIS_URL (settings, and
    the environment runserver copies into request.META) and the caches' LOCATION showed the
    same passwords in clear on every DEBUG error page."""
    from django.views.debug import get_exception_reporter_filter

    settings.DATABASE_URL = "postgres://todo:db-secret-1@db.internal:5432/todo"
    settings.REDIS_URL = "redis://:redis-secret-1@redis.internal:6379/0"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "redis://:redis-secret-2@redis.internal:6379/0",
        }
    }
    request = rf.get("/", DATABASE_URL=settings.DATABASE_URL, REDIS_URL=settings.REDIS_URL)
    reporter_filter = get_exception_reporter_filter(request)
    shown = repr(reporter_filter.get_safe_settings())
    shown += repr(reporter_filter.get_safe_request_meta(request))
    assert not re.search(r"(db|redis)-secret-\d", shown)
    assert "STATIC_URL" in shown  # the rest is still there


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATE_LIMIT_ANON", "lots"),  # django-ratelimit cannot parse it: the limit failed open
        ("RATE_LIMIT_USER", "100/M"),  # read as 100 a second
        ("RATE_LIMIT_LOGIN", "10/0m"),  # a zero-second window: the limit failed open
        ("RATE_LIMIT_LOGIN", "0/m"),  # every sign-in refused, while the probes said healthy
        # A window Redis refuses to expire: every count failed, and the limit was off.
        ("RATE_LIMIT_LOGIN", "10/99999999999999d"),
        ("RATE_LIMIT_ANON", "30/367d"),
    ],
)
def test_a_malformed_rate_is_refused_in_one_line_naming_the_variable(name, value):
    result = run_manage("check", **production_env(**{name: value}))
    assert result.returncode != 0
    assert result.stderr == (
        f"{name} must be a rate like 30/m or 100/5m (a count of at least 1 per s, m, h or d, "
        f"over at most 366 days), not {value!r}.\n"
    )


def test_the_rates_accepted_mean_what_they_say_to_django_ratelimit(monkeypatch):
    from django_ratelimit.core import _split_rate

    from todo_project.settings import env_rate

    for value, meaning in [
        ("30/m", (30, 60)),
        ("100/5m", (100, 300)),
        ("1000/d", (1000, 86400)),
        ("5/366d", (5, 366 * 86400)),
    ]:
        monkeypatch.setenv("RATE_LIMIT_USER", value)
        assert _split_rate(env_rate("RATE_LIMIT_USER", "100/m")) == meaning
    monkeypatch.delenv("RATE_LIMIT_USER")
    assert env_rate("RATE_LIMIT_USER", "100/m") == "100/m"


def test_sqlite_is_refused():
    result = run_manage("check", DATABASE_URL="sqlite:///x.db", DEBUG="1")
    assert result.returncode != 0
    assert "DATABASE_URL must point at PostgreSQL" in result.stderr


def test_tests_run_on_postgresql_and_redis():
    assert connections["default"].vendor == "postgresql"
    assert isinstance(connections["default"], postgresql_base.DatabaseWrapper)
    backend = import_string(settings.CACHES["default"]["BACKEND"])
    assert issubclass(backend, django.core.cache.backends.redis.RedisCache)


def test_database_connections_are_reused_and_health_checked():
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] > 0
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True


def test_drf_requires_jwt_auth_and_speaks_only_json():
    rest = settings.REST_FRAMEWORK
    assert rest["DEFAULT_PERMISSION_CLASSES"] == ["rest_framework.permissions.IsAuthenticated"]
    assert rest["DEFAULT_RENDERER_CLASSES"] == ["rest_framework.renderers.JSONRenderer"]
    assert rest["DEFAULT_PARSER_CLASSES"] == ["todo_project.parsers.JSONParser"]


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_malformed_boolean_is_refused(value):
    result = run_manage("check", DEBUG=value)
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def test_env_example_documents_every_variable_settings_read():
    documented = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("##")
    }
    source = (ROOT / "todo_project" / "settings.py").read_text()
    import re

    read = set(re.findall(r'env(?:_bool|_int|_list)?\(\s*"([A-Z_]+)"', source))
    read |= set(re.findall(r'os\.environ\.get\(\s*"([A-Z_]+)"', source))
    assert read - documented == set()


def test_env_helpers_parse_and_refuse(monkeypatch):
    from todo_project.settings import env_bool, env_int, env_list

    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "12")
    monkeypatch.setenv("X_LIST", " a, b ,,c ")
    assert env_bool("X_BOOL", False) is True
    assert env_bool("X_UNSET", True) is True
    assert env_int("X_INT", 3) == 12
    assert env_int("X_UNSET", 3) == 3
    assert env_list("X_LIST") == ["a", "b", "c"]
    monkeypatch.setenv("X_INT", "twelve")
    with pytest.raises(SystemExit, match=str(os.EX_CONFIG)):
        env_int("X_INT", 3)


def test_the_redis_cache_reuses_one_client():
    from django.core.cache import cache

    cache.set("reuse-probe", 1)
    client = cache._cache.get_client(write=True)

    assert cache.get("reuse-probe") == 1
    assert cache._cache.get_client(write=True) is client


def test_database_queries_are_bound_server_side_and_prepared_when_repeated(db):
    from django.db import connection

    connection.ensure_connection()
    assert connection.connection.prepare_threshold == 2
    with connection.create_cursor() as cursor:
        assert type(cursor).__name__ == "ServerBindingCursor"


SHOW_TIMEOUTS = (
    "from django.db import connection, utils\n"
    "with connection.cursor() as c:\n"
    "    c.execute('SHOW statement_timeout'); print('statement_timeout', c.fetchone()[0])\n"
    "    try:\n"
    "        c.execute('SELECT pg_sleep(1.5)'); print('slept')\n"
    "    except utils.OperationalError as error:\n"
    "        print('cancelled', error.__cause__.sqlstate)\n"
)


@pytest.mark.parametrize(
    ("value", "shown", "outcome"), [("1", "1s", "cancelled 57014"), ("", "0", "slept")]
)
def test_db_statement_timeout_bounds_each_statement_of_the_process(value, shown, outcome):
    result = run_manage(
        "shell", "--no-imports", "-c", SHOW_TIMEOUTS, DEBUG="1", DB_STATEMENT_TIMEOUT=value
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"statement_timeout {shown}",
        outcome,
    ]


def test_the_statement_timeout_joins_options_database_url_carries():
    # dj_database_url turns `?currentSchema=app` into `-c search_path=app`: kept.
    show = "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS']['options'])"
    url = os.environ["DATABASE_URL"]
    url += ("&" if "?" in url else "?") + "currentSchema=app"
    result = run_manage(
        "shell", "--no-imports", "-c", show, DEBUG="1", DATABASE_URL=url, DB_STATEMENT_TIMEOUT="7"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "-c search_path=app -c statement_timeout=7s"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ALLOWED_HOSTS", " ", "ALLOWED_HOSTS must list host names separated by commas"),
        ("ALLOWED_HOSTS", "a.example.com b.example.com", "ALLOWED_HOSTS must list host names"),
        # Django compares the Host without its port: these never match, every request a 400.
        ("ALLOWED_HOSTS", "https://todo.example.com", "ALLOWED_HOSTS must list host names"),
        ("ALLOWED_HOSTS", "todo.example.com,todo.example.com:443", "ALLOWED_HOSTS must list"),
        ("ALLOWED_HOSTS", "todo.example.com/api", "ALLOWED_HOSTS must list host names"),
        ("ALLOWED_HOSTS", "::1", "ALLOWED_HOSTS must list host names"),  # [::1] is the one
        # gunicorn bound [0.0.0.0:8000]:8000: five retries of a name lookup, then exit 1.
        ("HOST", "0.0.0.0:8000", "HOST must be a host name or an IP address without a port"),
        ("REDIS_URL", "http://127.0.0.1:6379/0", "REDIS_URL must be a redis://"),
        ("REDIS_URL", "redis://127.0.0.1:abc/0", "REDIS_URL must be a redis://"),
        ("FRONTEND_URL", "app.example.com", "FRONTEND_URL must be an http(s) URL"),
        ("FRONTEND_URL", "https://app.example.com/?lang=de", "FRONTEND_URL must be an http(s)"),
        ("TRUSTED_PROXY_COUNT", "-1", "TRUSTED_PROXY_COUNT must be from 0 to 2147483647"),
        ("EMAIL_TIMEOUT", "0", "EMAIL_TIMEOUT must be from 1 to 2147483647, not 0."),
        ("CONN_MAX_AGE", "ten", "CONN_MAX_AGE must be a whole number, not 'ten'."),
        ("HTTPS", "2", "HTTPS must be a boolean (1/0, true/false), not '2'."),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL"),
        ("ADMIN_URL", "/", "ADMIN_URL must be a path like admin/"),  # mounted out of reach
        ("ADMIN_URL", "my admin/", "ADMIN_URL must be a path like admin/"),
        ("ADMIN_URL", "../x", "ADMIN_URL must be a path like admin/"),
        ("JWT_ACCESS_LIFETIME_SECONDS", "100000000000000", "JWT_ACCESS_LIFETIME_SECONDS must be"),
        ("EMAIL_PORT", "99999", "EMAIL_PORT must be from 1 to 65535, not 99999."),
        ("PASSWORD_RESET_HOURS", "0", "PASSWORD_RESET_HOURS must be from 1 to 720, not 0."),
        ("DB_STATEMENT_TIMEOUT", "-1", "DB_STATEMENT_TIMEOUT must be from 0 to 86400, not -1."),
        ("FRONTEND_URL", "http://[::1", "FRONTEND_URL must be an http(s) URL"),
        ("FRONTEND_URL", "https://app.example.com:abc", "FRONTEND_URL must be an http(s) URL"),
    ],
)
def test_a_value_that_would_break_the_service_is_refused_in_one_line(name, value, message):
    # Each started before: a 400 for every request, rate limits failing open, reset links
    # without a scheme, proxy headers trusted with -1 proxies, every mail failing, or a traceback.
    result = run_manage(
        "check", **production_env(**{"REDIS_URL": "redis://127.0.0.1:6379/0", name: value})
    )
    assert result.returncode == os.EX_CONFIG, result.stderr
    assert result.stderr.startswith(message)
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "True True"),
        ({"SECURE_HSTS_INCLUDE_SUBDOMAINS": "0", "SECURE_HSTS_PRELOAD": "0"}, "False False"),
        ({"HTTPS": "0"}, "False False"),
    ],
)
def test_hsts_subdomains_and_preload_are_on_with_https_unless_turned_off(env, expected):
    shown = "from django.conf import settings as s; "
    shown += "print(s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD)"
    result = run_manage("shell", "-c", shown, **production_env(**env))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected


@pytest.mark.parametrize(("exported", "prefix"), [("", "todo-tests"), ("todo", "todo-tests")])
def test_the_tests_keep_a_key_prefix_of_their_own_whatever_cache_key_prefix_says(exported, prefix):
    # With CACHE_KEY_PREFIX exported as the server's (.env.example's `todo`), the tests took it,
    # and their cache.clear() before and after every test deleted a running server's rate-limit
    # counters in a shared Redis (review 31c).
    environment = {
        **os.environ,
        "DEBUG": "1",
        "REDIS_URL": "redis://127.0.0.1:1/0",  # not connected to
        "CACHE_KEY_PREFIX": exported,
    }
    show = "import pytest, todo_project.settings as s; print(s.CACHES['default']['KEY_PREFIX'])"
    done = subprocess.run(
        [sys.executable, "-c", show],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == prefix


@pytest.mark.parametrize(
    "command",
    [
        ["manage.py", "check"],
        ["-c", "import todo_project.wsgi"],
        ["-c", "import todo_project.asgi"],
    ],
)
def test_an_empty_django_settings_module_is_unset_too(command):
    # An env-file line `DJANGO_SETTINGS_MODULE=` (review 47d): setdefault kept the empty value,
    # and manage.py, gunicorn's app and uvicorn's stopped with ImproperlyConfigured's traceback.
    result = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "", "DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "ImproperlyConfigured" not in result.stderr
