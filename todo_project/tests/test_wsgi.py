"""todo_project/wsgi.py as gunicorn's master loads it, once, before it forks the workers
(preload_app in gunicorn.conf.py)."""

import json
import os
import subprocess
import sys

from django.conf import settings

LOAD_THE_APP = """
import json, sys
import todo_project.wsgi
from django.core.cache import caches
from django.db import connections
from django.urls import get_resolver
print(json.dumps({
    "databases connected": [c.alias for c in connections.all() if c.connection is not None],
    "caches built": [cache.__class__.__name__ for cache in caches.all(initialized_only=True)],
    "URLconf loaded": "url_patterns" in vars(get_resolver()),
    "redis-py imported": "redis" in sys.modules,
}))
"""


def test_loading_the_app_imports_what_a_first_request_would_and_connects_nothing():
    # A connection opened here would be shared by every forked worker: one socket, garbled.
    env = {
        **os.environ,
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "todo.example.com",
        "FRONTEND_URL": "https://app.example.com",
        "DEBUG": "0",
        "HTTPS": "0",
    }
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_THE_APP],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(loaded.stdout.splitlines()[-1]) == {
        "databases connected": [],
        "caches built": [],
        "URLconf loaded": True,
        "redis-py imported": True,
    }
