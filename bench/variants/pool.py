"""Django 5.2's psycopg pool instead of persistent connections (needs psycopg-pool)."""

from todo_project.settings import *
from todo_project.settings import DATABASES

DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool replaces persistent connections
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
# One sync worker runs one request at a time: one connection is all it can use.
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": 2}
