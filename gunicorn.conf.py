"""gunicorn settings for `make serve`, the Docker image and the benchmark."""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
# Sync workers: the views are synchronous, and measured faster than ASGI here (bench/README.md).
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = 20_000
max_requests_jitter = 2_000
accesslog = None  # the app writes one JSON line per request itself (with the request id)
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
