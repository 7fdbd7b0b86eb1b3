"""A new database connection per request (CONN_MAX_AGE=0): what persistent connections buy."""

from todo_project.settings import *
from todo_project.settings import DATABASES

DATABASES["default"]["CONN_MAX_AGE"] = 0
