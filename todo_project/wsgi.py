import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

# Empty is unset, as for every variable (README.md, "Configuration"): setdefault kept it.
if not os.environ.get("DJANGO_SETTINGS_MODULE"):
    os.environ["DJANGO_SETTINGS_MODULE"] = "todo_project.settings"

django_application = get_wsgi_application()

# After django.setup(): the lane imports models.
from todo_project.fast_lane import FastLane

# The API's plainest reads are answered in front of Django's handler (todo_project/fast_lane.py).
application = FastLane(django_application)

# What Django and the cache import on first use, imported now: the URLconf (every view, DRF,
# drf-spectacular) and redis-py, ~100 ms that a worker's first request paid otherwise. gunicorn
# loads this module once and forks its workers from it (preload_app): a recycled worker has them
# already. Nothing here connects to PostgreSQL or Redis; each worker opens its own connections.
get_resolver().url_patterns  # noqa: B018
import redis  # noqa: F401
