"""Settings, read from the environment (12-factor). Every variable is listed in .env.example.

Defaults are the safe production ones; `make run` turns on what development wants.
"""

import os
import re
import secrets
import sys
import tempfile
import warnings
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import csp.constants
import dj_database_url
import psycopg
from django.core.checks.security import base as security_checks
from django.utils.module_loading import import_string

# The refusal at the start and the readers that use it, shared with gunicorn.conf.py: unset and
# empty are the same (the default) for every variable.
from todo_project.envvars import (
    LOG_LEVELS,
    env,
    env_bool,
    env_choice,
    env_int,
    gunicorn_bind,
    gunicorn_forwarded_allow_ips,
    gunicorn_workers,
    is_bracketed_ipv6,
    refuse,
)


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def require_in_production(name: str) -> None:
    """With DEBUG off, refuses to start when the variable is unset or empty: its development
    default would be wrong in production, and nothing would fail at the start."""
    if not os.environ.get(name) and not (DEBUG or TESTING):
        refuse(f"{name} is not set: refusing to start with DEBUG off (see .env.example).")


def parsed_url(value: str):
    """urlsplit(value) with its port parsed too; an empty one when either fails (an unclosed
    [IPv6], a port that is no number), so that the caller's scheme check refuses it."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (parses it)
    except ValueError:
        return urlsplit("")
    return parts


def env_origins(name: str, special: tuple[str, ...] = ()) -> list[str]:
    """Origins (`scheme://host[:port]`, nothing after), and the `special` values taken as they
    are: Django's and corsheaders' system checks refused anything else, but as several lines of
    check output with exit status 1, and gunicorn, which runs no checks, served on without
    them."""
    origins = env_list(name)
    for origin in origins:
        if origin in special:
            continue
        parts = parsed_url(origin)
        if not (parts.scheme and parts.netloc) or parts.path or parts.query or parts.fragment:
            refuse(f"{name} must list origins like https://app.example.com, not {origin!r}.")
    return origins


# django-ratelimit's grammar (django_ratelimit.core._split_rate), strictly: a count, "/", an
# optional multiplier, a lowercase unit. Anything else went wrong without a word at run time:
# "lots" or "10/0m" turned the limit off (its parser fails, and the throttle fails open), and
# "100/M" was read as 100 a second.
RATE_RE = re.compile(r"[1-9]\d*/(?P<times>[1-9]\d*)?(?P<unit>[smhd])")  # 0/m: refuse all
RATE_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A window Redis cannot expire ("10/99999999999999d") failed every count: the limit was off.
MAX_RATE_WINDOW_DAYS = 366


def env_rate(name: str, default: str) -> str:
    value = env(name, default)
    rate = RATE_RE.fullmatch(value)
    window = rate and int(rate["times"] or 1) * RATE_UNIT_SECONDS[rate["unit"]]
    if not rate or window > MAX_RATE_WINDOW_DAYS * 86400:
        refuse(
            f"{name} must be a rate like 30/m or 100/5m (a count of at least 1 per s, m, h or d, "
            f"over at most {MAX_RATE_WINDOW_DAYS} days), not {value!r}."
        )
    return value


# --- Core -------------------------------------------------------------------------------------

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
TESTING = "pytest" in sys.modules

# The production server never runs with DEBUG on: it drops every production requirement (a
# strong SECRET_KEY, REDIS_URL, HTTPS) without a word. gunicorn.conf.py refuses it before the
# app loads; this covers gunicorn with another config file, and uvicorn.
if DEBUG and not TESTING and ("gunicorn" in sys.modules or "uvicorn" in sys.modules):
    refuse("DEBUG must be off under gunicorn or uvicorn, the production servers.")


def key_of_the_data_directory() -> str:
    """SECRET_KEY when unset under DEBUG or the tests: a random key kept in the project-local
    data directory (TODO_DATA_DIR, else .data/), the file `make serve` keeps, made on first use
    readable by its owner only. Never a constant: the one this replaced was public in the
    repository, and signed the JWTs of any server started with DEBUG=1 and no SECRET_KEY."""
    path = Path(os.environ.get("TODO_DATA_DIR") or BASE_DIR / ".data") / "secret_key"
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, made = tempfile.mkstemp(dir=path.parent, prefix=".secret_key-")  # 0600
            try:
                with os.fdopen(descriptor, "w") as file:
                    file.write(secrets.token_urlsafe(50) + "\n")
                os.link(made, path)  # whole or not at all; a concurrent process's key wins
            except FileExistsError:
                pass
            finally:
                os.unlink(made)
        key = path.read_text().strip()
    except OSError as error:
        refuse(f"SECRET_KEY is not set, and {path} cannot be made or read: {error.strerror}.")
    if not key:
        refuse(f"SECRET_KEY is not set, and {path} is empty.")
    return key


require_in_production("SECRET_KEY")  # better than running with a guessable key
SECRET_KEY = os.environ.get("SECRET_KEY") or key_of_the_data_directory()


def refuse_a_weak_key(name: str) -> None:
    """With DEBUG off, refuses a key below Django's own bar (`check --deploy`, W009): it signs
    the JWTs with HS256, and one token is enough to guess a short key offline and then sign a
    token for any user. The check only warned, and only when someone ran it."""
    value = os.environ.get(name, "")
    if DEBUG or TESTING or not value:
        return
    if (
        len(value) < security_checks.SECRET_KEY_MIN_LENGTH
        or len(set(value)) < security_checks.SECRET_KEY_MIN_UNIQUE_CHARACTERS
        or value.startswith(security_checks.SECRET_KEY_INSECURE_PREFIX)
    ):
        refuse(
            f"{name} is too weak to sign tokens: use at least "
            f"{security_checks.SECRET_KEY_MIN_LENGTH} random characters, e.g. the output of "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )


refuse_a_weak_key("SECRET_KEY")
refuse_a_weak_key("JWT_SIGNING_KEY")

# Required: with the localhost default every real request got a 400, while `check --deploy`
# passed and the container's health probe (Host: localhost) said healthy.
require_in_production("ALLOWED_HOSTS")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
if not ALLOWED_HOSTS or any(re.search(r"\s", host) for host in ALLOWED_HOSTS):
    # Blank, or hosts separated by spaces: every request would be a 400.
    refuse("ALLOWED_HOSTS must list host names separated by commas (todo.example.com,...).")
for _host in ALLOWED_HOSTS:
    # Django compares the request's host without its port, so a URL, a path or a host:port never
    # matches (every request a 400): only a bracketed IPv6 address has a colon.
    if "/" in _host or (":" in _host and not is_bracketed_ipv6(_host)):
        refuse(
            "ALLOWED_HOSTS must list host names without scheme, path or port "
            f"(todo.example.com,.example.com,[::1]), not {_host!r}."
        )

ROOT_URLCONF = "todo_project.urls"
WSGI_APPLICATION = "todo_project.wsgi.application"
ASGI_APPLICATION = "todo_project.asgi.application"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
FORMAT_MODULE_PATH = ["todo_project.formats"]  # the admin's date-times name their zone
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` (the Docker image runs it at build time) copies the apps' static
# files (the admin's, Swagger UI's) here, each with a gzip copy beside it (the storage below).
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", "") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # whitenoise's compressing storage, but not its manifest one (hashed names): serving works
    # without a prior collectstatic. Brotli copies too once the Brotli package is installed.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Collected (the Docker image): whitenoise serves STATIC_ROOT, a file's .gz to a client that
# accepts gzip (Swagger UI's 1.6 MB bundle: ~0.4 MB). Not collected (make run, make serve, the
# tests): straight from the apps, uncompressed. Not both: whitenoise's finders would shadow
# STATIC_ROOT's files, and they have no .gz beside them. With DEBUG, the apps' files win, fresh.
WHITENOISE_USE_FINDERS = DEBUG or not STATIC_ROOT.is_dir()
if not STATIC_ROOT.is_dir():
    # whitenoise warns of a STATIC_ROOT that does not exist: expected without collectstatic.
    # (pytest drops this filter after loading the settings: pytest.ini has its own.)
    warnings.filterwarnings("ignore", "No directory at: " + re.escape(str(STATIC_ROOT)))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Apps -------------------------------------------------------------------------------------

INSTALLED_APPS = [
    # Django's admin with a rate-limited sign-in (todo_project/admin_site.py).
    "todo_project.admin_site.TodoAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # Before simplejwt's blacklist app: its flushexpiredtokens command is accounts' (why there).
    "accounts",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "django_ratelimit",
    "tasks",
]

MIDDLEWARE = [
    "todo_project.middleware.AnswersWithoutBodyMiddleware",
    "todo_project.request_id.RequestIdMiddleware",
    "todo_project.middleware.ApiCacheControlMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "todo_project.ratelimit.RateLimitHeadersMiddleware",
    "todo_project.problems.ApiProblemMiddleware",
    # Admin* serve the admin and the docs; the JWT API skips them (todo_project/middleware.py).
    "todo_project.middleware.AdminSessionMiddleware",
    "todo_project.problems.ApiAwareCommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "todo_project.middleware.AdminAuthenticationMiddleware",
    "todo_project.middleware.AdminMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "todo_project.middleware.PagesContentSecurityPolicyMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "todo_project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------

# What a URL's query may hold (dj_database_url passes it on as OPTIONS): libpq's parameters,
# and those Django's backend and psycopg take before libpq (django.db.backends.postgresql).
_connection_options = {item.keyword.decode() for item in psycopg.pq.Conninfo.get_defaults()} | {
    "assume_role",
    "isolation_level",
    "pool",
    "prepare_threshold",
    "server_side_binding",
}
require_in_production("DATABASE_URL")
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if not DATABASE_URL:
    refuse(
        "DATABASE_URL is not set: use `make run` / `make test` (they start a project-local "
        "PostgreSQL under .data/) or point it at a PostgreSQL server."
    )
try:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            # Persistent connections: opening one per request halves throughput (bench/README.md).
            conn_max_age=env_int("CONN_MAX_AGE", 600),
            # ...checked before reuse, so a PostgreSQL restart costs a reconnect, not a 500.
            conn_health_checks=True,
        )
    }
except ValueError:  # an unknown scheme, an unparsable URL
    # The value is not repeated: it may hold the password.
    refuse("DATABASE_URL is not a database URL (postgres://USER:PASSWORD@HOST:PORT/NAME).")
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    refuse("DATABASE_URL must point at PostgreSQL (postgres://USER:PASSWORD@HOST:PORT/NAME).")
# Both failed only at the first connection, with a traceback (migrate's, in the image).
if not DATABASES["default"]["NAME"] and "service" not in DATABASES["default"].get("OPTIONS", {}):
    refuse("DATABASE_URL has no database name (postgres://USER:PASSWORD@HOST:PORT/NAME).")
for _option in DATABASES["default"].get("OPTIONS", {}):
    if _option not in _connection_options:
        refuse(f"DATABASE_URL has an unknown option {_option!r} (libpq's, like sslmode=require).")
# A server that accepts the connection and never answers (hung, half-partitioned) fails the
# connect after this many seconds instead of holding the worker until gunicorn kills it, and
# /readyz says 503 within the contract's 2 s. At least 1: libpq reads 0 as "wait forever".
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int(
    "DB_CONNECT_TIMEOUT", 2, minimum=1
)
# How long one database statement may run, in seconds (0: no limit). The web workers get 5 s
# under gunicorn's 30 s timeout (gunicorn.conf.py sets it when unset, from its own `timeout`:
# with another `--timeout` on gunicorn's command line, set this too): a worker gunicorn
# kills leaves its statement running on in PostgreSQL, holding its row locks,
# and a retry queued behind them; this ends it first, as a 503 problem. Commands get one only when it
# is set in their environment, and migrate never (tasks/management/commands/migrate.py).
# Passed as libpq `options`, which PgBouncer refuses: behind one, set 0 here and
# `ALTER ROLE ... SET statement_timeout` instead. Not idle_in_transaction_session_timeout: a
# killed worker's idle transaction ends with its socket anyway, and one ended under a live
# worker read as a lost connection, the 503 that invites a retry in 5 s.
DB_STATEMENT_TIMEOUT = env_int("DB_STATEMENT_TIMEOUT", 0, maximum=24 * 3600)
if DB_STATEMENT_TIMEOUT:
    # Added to options DATABASE_URL may carry (`?options=`, `?currentSchema=`), not over them.
    _options = DATABASES["default"]["OPTIONS"].get("options", "")
    DATABASES["default"]["OPTIONS"]["options"] = (
        f"{_options} -c statement_timeout={DB_STATEMENT_TIMEOUT}s".strip()
    )
# Django's backend with a health check that polls the socket instead of a `SELECT 1` round
# trip per request (todo_project/postgresql/base.py).
DATABASES["default"]["ENGINE"] = "todo_project.postgresql"
# Server-side binding lets psycopg prepare a statement the second time it runs on a connection,
# so PostgreSQL stops parsing and planning the same few hot queries on every request: list
# +19 %, get +10 % req/s in one bench run (bench/README.md). Django lists columns explicitly,
# so a migration that adds a column does not invalidate the prepared plans.
# Turn it off (DB_PREPARED_STATEMENTS=0) behind a pooler that cannot keep prepared statements
# (PgBouncer in transaction mode before 1.21).
if env_bool("DB_PREPARED_STATEMENTS", True):
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=True, prepare_threshold=2
    )

# --- Cache ------------------------------------------------------------------------------------

# Required: without it each gunicorn worker counted rate limits in a cache of its own (N times
# the limits), and /readyz said ok; only `manage.py check` objected (django_ratelimit.E003).
require_in_production("REDIS_URL")
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    # "redis://host:abc" passed, and rate limits then failed open.
    if parsed_url(REDIS_URL).scheme not in {"redis", "rediss", "unix"}:
        refuse("REDIS_URL must be a redis://, rediss:// or unix:// URL.")
    key_prefix = env("CACHE_KEY_PREFIX", "todo")
    CACHES = {
        "default": {
            # Django's RedisCache, reusing its client (todo_project/cache.py).
            "BACKEND": "todo_project.cache.RedisCache",
            "LOCATION": REDIS_URL,
            # The tests' own always (`todo-tests`): they clear their keys before every test, and
            # with a CACHE_KEY_PREFIX exported for the server they deleted its rate-limit counters.
            "KEY_PREFIX": f"{key_prefix}-tests" if TESTING else key_prefix,
            # A dead Redis must not hang requests: fail fast, and callers fail open.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    # Only acceptable for a single-process debug server (refused above with DEBUG off).
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# DEBUG's error pages hide DATABASE_URL, REDIS_URL and the caches' LOCATION too (passwords).
DEFAULT_EXCEPTION_REPORTER_FILTER = "todo_project.reporting.SafeExceptionReporterFilter"

SILENCED_SYSTEM_CHECKS = [
    # Django's own RedisCache has an atomic INCR; django-ratelimit only lists django-redis.
    "django_ratelimit.W001",
]
if DEBUG and not REDIS_URL:
    SILENCED_SYSTEM_CHECKS.append("django_ratelimit.E003")

# --- Auth -------------------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
if TESTING:
    # Argon2 at full cost makes a test suite that creates hundreds of users crawl; the
    # production hasher is still exercised by accounts' own tests through Argon2 below.
    PASSWORD_HASHERS = ["todo_project.testing.FastArgon2PasswordHasher", *PASSWORD_HASHERS]

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ("email", "display_name")},
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "accounts.password_validation.NotOnlyWhitespaceValidator"},
]

# A session (sign-in, then each refresh) ends this long after its sign-in, however often it
# is refreshed; 0: never by itself (each refresh gives a whole REFRESH_TOKEN_LIFETIME again).
JWT_SESSION_MAX_LIFETIME = timedelta(
    seconds=env_int("JWT_SESSION_MAX_LIFETIME_SECONDS", 0, minimum=0)
)

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(
        seconds=env_int("JWT_ACCESS_LIFETIME_SECONDS", 15 * 60, minimum=1)
    ),
    "REFRESH_TOKEN_LIFETIME": timedelta(
        seconds=env_int("JWT_REFRESH_LIFETIME_SECONDS", 14 * 24 * 3600, minimum=1)
    ),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    # Replicas' clocks differ: PyJWT refuses a token whose `iat` is ahead of this server's
    # clock, so one minted by a replica running fast was a 401 on the others, access and
    # refresh alike, until their clocks caught up (a sign-out; review 35e). `exp` gets it too.
    "LEEWAY": timedelta(seconds=env_int("JWT_CLOCK_SKEW_SECONDS", 60, minimum=0)),
    "ALGORITHM": "HS256",
    "SIGNING_KEY": os.environ.get("JWT_SIGNING_KEY", "") or SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
}

# How long a mailed reset link works (whole hours; Django's default is 3 days): a link left in
# a mailbox is a way into the account for whoever reads that mailbox later. The mail says it.
PASSWORD_RESET_TIMEOUT = 3600 * env_int("PASSWORD_RESET_HOURS", 24, minimum=1, maximum=24 * 30)

# Required: password-reset emails link to it, and the default would send users to localhost.
require_in_production("FRONTEND_URL")
FRONTEND_URL = (os.environ.get("FRONTEND_URL") or "http://localhost:3000").rstrip("/")
_frontend = parsed_url(FRONTEND_URL)
if (
    _frontend.scheme not in {"http", "https"}
    or not _frontend.netloc
    or _frontend.query
    or _frontend.fragment
    or FRONTEND_URL.strip() != FRONTEND_URL
):
    # Reset links are FRONTEND_URL + "/reset-password?...": "app.example.com" made a link
    # without a scheme, "https://x/?lang=de" one with two queries.
    refuse("FRONTEND_URL must be an http(s) URL without a query, like https://app.example.com.")

# --- Email ------------------------------------------------------------------------------------

EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
try:
    import_string(EMAIL_BACKEND)
except ImportError:
    # Found by the first password reset otherwise: logged, while the API answered 202.
    refuse(f"EMAIL_BACKEND must name a mail backend class, not {EMAIL_BACKEND!r}.")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1, maximum=65535)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
# Django waits for an unanswering SMTP server forever by default; the mail thread
# (accounts/mail.py) would then never send another mail.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)  # 0: every mail fails
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Todo <no-reply@localhost>")

# --- API: DRF, OpenAPI, CORS, rate limits -----------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # simplejwt's, plus instant revocation (token generation, logout denylist).
        "accounts.authentication.JWTAuthentication",
    ],
    # Per user when signed in, else per client IP; counters in the shared cache.
    "DEFAULT_THROTTLE_CLASSES": ["todo_project.ratelimit.RateLimitThrottle"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["todo_project.parsers.JSONParser"],  # nesting bounded
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # `?format=` ignored on /api/v1/ (DRF answered 404 to an unknown one), kept for the schema.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "todo_project.negotiation.ApiContentNegotiation",
    "DEFAULT_SCHEMA_CLASS": "todo_project.schema.AutoSchema",  # adds the shared error answers
    "EXCEPTION_HANDLER": "todo_project.problems.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # RFC 3339 in UTC with Z, whole seconds (TIME_ZONE is UTC): the contract's format everywhere.
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%SZ",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Todo API",
    "DESCRIPTION": (
        "Multi-user task management API. Errors are RFC 9457 problem details "
        "(`application/problem+json`). See README.md for the choices made where the contract "
        "is silent."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "todo_project.schema.document_the_probes",
        "todo_project.schema.name_enum_members",
    ],
}

# corsheaders' own special values: the origin a sandboxed page or a file sends.
CORS_ALLOWED_ORIGINS = env_origins("CORS_ALLOWED_ORIGINS", special=("null", "file://"))
CORS_URLS_REGEX = r"^/api/.*$"
# Every response header the schema documents that is not CORS-safelisted (a browser app on
# another origin reads no other): a 201's Location, a 401's WWW-Authenticate (an expired token
# or none), a 405's Allow too.
CORS_EXPOSE_HEADERS = [
    "ETag",
    "Location",
    "WWW-Authenticate",
    "Allow",
    "X-Request-ID",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Idempotent-Replayed",
]
# The request headers a browser app may send (README.md names them): the API's, and what common
# libraries add (Sentry's sentry-trace and baggage, OpenTelemetry's traceparent and tracestate,
# X-Requested-With), or the preflight failed and the browser blocked the request.
CORS_ALLOW_HEADERS = [
    "accept",
    "authorization",
    "content-type",
    "if-match",
    "if-none-match",
    "idempotency-key",
    "x-request-id",
    "x-requested-with",
    "traceparent",
    "tracestate",
    "baggage",
    "sentry-trace",
]

RATELIMIT_USE_CACHE = "default"
# django-ratelimit's get_usage (caches without count()): a vanished counter lets the request
# through. Redis failures fail open in todo_project.ratelimit.count_request.
RATELIMIT_FAIL_OPEN = True
RATE_LIMIT_USER = env_rate("RATE_LIMIT_USER", "100/m")
RATE_LIMIT_ANON = env_rate("RATE_LIMIT_ANON", "30/m")
RATE_LIMIT_LOGIN = env_rate("RATE_LIMIT_LOGIN", "10/m")
# Registrations per client IP, on top of RATE_LIMIT_ANON: each answer says whether an email
# has an account (the contract's 201 with tokens needs it), so asking must stay slow.
RATE_LIMIT_REGISTER = env_rate("RATE_LIMIT_REGISTER", "20/h")
# Reset mails per (recipient address, client IP), and per address from all IPs together: over
# either the answer is still 202, but nothing is mailed, so a stranger cannot flood someone's
# inbox (or the mail queue) with reset links. Per IP first, so that the owner's own request
# still mails while another IP asks for their address; the looser cap across IPs (counting
# only requests within their IP's limit) bounds a flood from many, at the price that asking
# that often from at least 4 IPs holds the owner's back.
RATE_LIMIT_RESET_MAIL = env_rate("RATE_LIMIT_RESET_MAIL", "3/h")
RATE_LIMIT_RESET_MAIL_ADDRESS = env_rate("RATE_LIMIT_RESET_MAIL_ADDRESS", "10/h")
# How many X-Forwarded-For hops (set by our own proxies) to trust for the client IP.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# Largest request body accepted under /api/ (bytes); larger is a 413.
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 1024 * 1024, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES

# --- Hardening: caps, idempotency -------------------------------------------------------------

# Tasks one user may own (completed ones included); creating one more is a 409 problem.
MAX_TASKS_PER_USER = env_int("MAX_TASKS_PER_USER", 100_000, minimum=1)
# Lists and tags one user may have (the API answers them unpaginated); one more is a 409.
MAX_LISTS_PER_USER = env_int("MAX_LISTS_PER_USER", 1_000, minimum=1)
MAX_TAGS_PER_USER = env_int("MAX_TAGS_PER_USER", 10_000, minimum=1)
# How long the first answer to an Idempotency-Key is kept; `manage.py purge_idempotency_keys`
# deletes what is older (run it hourly, see README.md).
IDEMPOTENCY_KEY_TTL = timedelta(
    seconds=env_int("IDEMPOTENCY_KEY_TTL_SECONDS", 24 * 3600, minimum=1)
)
# A key still "in progress" after this long belongs to a request whose worker died (gunicorn
# kills a request after 30 s): a retry may take it over instead of getting 409 for a day.
IDEMPOTENCY_STALE_AFTER = timedelta(
    seconds=env_int("IDEMPOTENCY_STALE_AFTER_SECONDS", 120, minimum=1)
)

# --- Logging ----------------------------------------------------------------------------------

LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", LOG_LEVELS)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "todo_project.request_id.RequestIdLogFilter"},
        "client_fault": {"()": "todo_project.request_id.ClientFaultAsWarning"},
    },
    "formatters": {"json": {"()": "todo_project.request_id.JsonFormatter"}},
    "handlers": {
        "console": {
            # stderr, as gunicorn's own log (errorlog "-"): stdout is left to commands' output
            # (create_support_user prints a password there, alone).
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "json",
            "filters": ["request_id", "client_fault"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own logging (DEFAULT_LOGGING, configured before this) gives the "django"
        # logger a plain-text console handler under DEBUG (and mail_admins, without ADMINS a
        # no-op): every django.* record came out twice, plain and then as JSON from the root.
        # Without handlers here, each is one JSON line, from the root.
        "django": {"handlers": [], "propagate": True},
        # Our access log line replaces Django's own request/server warnings. django.server
        # propagates too: Django's default (propagate off), its handler removed, sent its
        # errors to Python's last-resort plain-text handler.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "ERROR", "propagate": True},
        "pgserver": {"level": "WARNING"},  # the embedded dev database is chatty
    },
}

# --- gunicorn ---------------------------------------------------------------------------------

# HOST, PORT, WEB_CONCURRENCY: gunicorn.conf.py reads them; checked here too, so that
# `manage.py check` and the migrate before gunicorn refuse a bad one (todo_project/envvars.py).
gunicorn_bind()
gunicorn_workers()
gunicorn_forwarded_allow_ips()

# --- Security ---------------------------------------------------------------------------------

# On by default whenever DEBUG is off; `make serve` on loopback turns it off (plain HTTP).
# Tests speak plain HTTP too; test_security checks what HTTPS=1 does.
HTTPS = env_bool("HTTPS", not (DEBUG or TESTING))
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXY_COUNT else None
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # load balancer probes speak plain HTTP
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000) if HTTPS else 0
# On by default (check --deploy asks for both), each can be turned off: served on an apex
# domain, includeSubDomains holds every subdomain to HTTPS for SECURE_HSTS_SECONDS, and
# preload lets anyone submit the domain to the browsers' built-in HTTPS-only list.
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS and env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = HTTPS and env_bool("SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# The pages (admin, docs): scripts and all else from this server only (django-csp), so a
# string that got into a page unescaped cannot run or send anything anywhere. Inline styles
# may stay (the admin's widgets, Swagger UI and Redoc set style attributes; a style runs no
# code); Redoc runs its search in a worker made from a blob. The JSON API is no page: its
# middleware skips /api/v1/ (its answers are `nosniff`, framed by nobody).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.constants.SELF],
        "script-src": [csp.constants.SELF],
        "style-src": [csp.constants.SELF, csp.constants.UNSAFE_INLINE],
        "img-src": [csp.constants.SELF, "data:"],
        "font-src": [csp.constants.SELF, "data:"],
        "worker-src": [csp.constants.SELF, "blob:"],
        "object-src": [csp.constants.NONE],
        "base-uri": [csp.constants.NONE],
        "form-action": [csp.constants.SELF],
        "frame-ancestors": [csp.constants.NONE],
    },
}
CSRF_TRUSTED_ORIGINS = env_origins("CSRF_TRUSTED_ORIGINS")
SESSION_COOKIE_HTTPONLY = True

ADMIN_URL = (os.environ.get("ADMIN_URL") or "admin/").strip("/") + "/"
# Where a sign-in goes when its `next` is refused (off-site): the admin, not Django's default
# /accounts/profile/, a 404 here. The admin's own login view is the only sign-in page.
LOGIN_REDIRECT_URL = "admin:index"
if not re.fullmatch(r"(?!\.\.?/)[\w.~-]+(/(?!\.\.?/)[\w.~-]+)*/", ADMIN_URL):
    # "/" (an empty path after stripping), or a "." or ".." segment (clients resolve them away),
    # mounted the admin where no URL reaches it.
    refuse("ADMIN_URL must be a path like admin/ or ops/admin/ (letters, digits, . _ ~ -).")
