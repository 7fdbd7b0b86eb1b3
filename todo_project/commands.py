"""What the project's management commands share."""

from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def ensure_migrated() -> None:
    """A CommandError (one line, exit 1) when the database has migrations not applied yet: a
    database never migrated has no tables, and a command on it was a ProgrammingError traceback
    (mailed by cron, for the purge jobs)."""
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise CommandError(
            "The database has migrations not applied yet: run `make migrate` "
            "(`manage.py migrate`) first."
        )
