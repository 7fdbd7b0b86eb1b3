"""Persistent connections without the per-request `SELECT 1` health check."""

from todo_project.settings import *
from todo_project.settings import DATABASES

DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
