"""gunicorn settings for `make serve`, the Docker image and the benchmark."""

import gc
import os

# The settings' readers and refusal (one line naming the variable, exit status 78), not bare
# int(): gunicorn reads this file before the app, and a bad value was a traceback (exit 1), or
# with WEB_CONCURRENCY=0 a master that listened with no worker and answered nothing.
from todo_project.envvars import (
    LOG_LEVELS,
    env_bool,
    env_choice,
    gunicorn_bind,
    gunicorn_forwarded_allow_ips,
    gunicorn_workers,
    refuse,
)

# The production server: DEBUG on would drop every production requirement (a strong
# SECRET_KEY, REDIS_URL, HTTPS) without a word, and show tracebacks to any client. `make run`
# is the server with DEBUG on.
if env_bool("DEBUG", False):
    refuse("DEBUG must be off under gunicorn, the production server (make run serves with it on).")

bind = gunicorn_bind()
workers = gunicorn_workers()
# Sync workers: the views are synchronous, and measured faster than ASGI here (bench/README.md).
# gunicorn's own, whose own error answers (a header over limit_request_field_size is a 431, a
# malformed request a 400) are problems with an
# X-Request-ID, not HTML pages (todo_project/gunicorn_worker.py).
worker_class = "todo_project.gunicorn_worker.ProblemSyncWorker"
# Not gunicorn's cap on the request line (its default 4,094 bytes, at most 8,190): the app's
# (problems.MAX_URL_BYTES, 16 KiB) answers a longer URL with a 414 a browser app on another
# origin can read, its preflight too; gunicorn's came before CORS (review 33c). The worker caps
# the line at 64 KiB instead (gunicorn_worker.REQUEST_LINE_CAP), its own 414 beyond.
limit_request_line = 0
timeout = 30
# The web workers' database statements end 5 s before gunicorn would kill the worker
# (settings.DB_STATEMENT_TIMEOUT; read by the app, which preload_app imports after this file).
if not os.environ.get("DB_STATEMENT_TIMEOUT"):
    os.environ["DB_STATEMENT_TIMEOUT"] = str(timeout - 5)
# No request outlives the timeout (SIGABRT, SIGKILL a second later): an Idempotency-Key still
# "in progress" 10 s past it belongs to a killed worker and is taken over, not a 409 to every
# retry for the 120 s the app assumes elsewhere (review 36a: 84 retries over 85 s after a stall).
# From the timeout gunicorn runs with (a `--timeout` on its command line overrides this file's),
# set in each worker (post_fork) unless the operator set it. Not written into os.environ: a HUP
# runs this file again with the environment the first run left, and took its value for the
# operator's (new workers back at 40 s under `--timeout 120`: one key, two tasks; review 36h).
_stale_after_given = bool(os.environ.get("IDEMPOTENCY_STALE_AFTER_SECONDS"))
graceful_timeout = 20
keepalive = 5
# The app is imported once, by the master, and each worker forked from it: a new or recycled
# worker skips the ~0.4 s import, and as todo_project/wsgi.py also imports what a first request
# would, that request takes ~30 ms (its connections, its compiled SQL) instead of ~90 ms. Code
# changes need a restart of the master, not a HUP.
preload_app = True
# Recycle workers now and then so a slow leak can never grow without bound. Each recycle is a
# worker the others cover for, and a slower first request: at 20,000 requests that came every
# ~80 s per worker under the benchmark's load and made its p99 outliers (bench/README.md).
max_requests = 250_000
max_requests_jitter = 25_000
accesslog = None  # the app writes one JSON line per request itself (with the request id)
errorlog = "-"  # stderr, like the app's own log lines
loglevel = env_choice("LOG_LEVEL", "INFO", LOG_LEVELS).lower()
# X-Forwarded-Proto (and gunicorn's other forwarded headers) only when the app trusts proxies
# too (settings.py: TRUSTED_PROXY_COUNT, SECURE_PROXY_SSL_HEADER): gunicorn's default, trusting
# 127.0.0.1, let a local client claim HTTPS with TRUSTED_PROXY_COUNT=0. Behind proxies, from
# anyone (as Django does) unless FORWARDED_ALLOW_IPS narrows it to the proxies' addresses.
forwarded_allow_ips = gunicorn_forwarded_allow_ips()
# gunicorn's control socket (for `gunicornc`, unused here) defaults to one path per user,
# $HOME/.gunicorn/gunicorn.ctl: a second gunicorn of the same user (make serve beside the
# benchmark or a test) deleted the first one's.
control_socket_disable = True
# The workers' heartbeat files: on tmpfs, so that their fchmod never waits for a disk (gunicorn's
# advice for containers, whose /tmp is often the overlay filesystem).
worker_tmp_dir = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def pre_fork(server, worker) -> None:
    # The app's ~100,000 long-lived objects, loaded by the master (preload_app), put out of the
    # collector's sight before a worker is forked: a full collection in a worker (about one per
    # 3,000 requests) walked them all, a 20-25 ms pause for the request that set it off; frozen,
    # ~0 ms. Nor does the collector write into the memory workers share with the master.
    gc.freeze()


def post_fork(server, worker) -> None:
    from django.conf import settings

    # Not for an app without Django (the benchmark's floor, bench/floor.py, runs on this file
    # too): reading its settings failed every worker's boot, and `make bench` with it.
    if not _stale_after_given and settings.configured:
        from datetime import timedelta

        settings.IDEMPOTENCY_STALE_AFTER = timedelta(seconds=worker.cfg.timeout + 10)
