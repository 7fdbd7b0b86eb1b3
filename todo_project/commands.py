"""What the project's management commands share."""

from django.core.management.base import CommandError
from django.db import DatabaseError, ProgrammingError, connection
from django.db.migrations.executor import MigrationExecutor
from psycopg.errors import UndefinedTable

NOT_MIGRATED = (
    "The database has migrations not applied yet: run `make migrate` (`manage.py migrate`) first."
)


def ensure_migrated() -> None:
    """A CommandError (one line, exit 1) when the database has migrations not applied yet: a
    database never migrated has no tables, and a command on it was a ProgrammingError
    traceback."""
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise CommandError(NOT_MIGRATED)


def not_migrated(error: BaseException) -> bool:
    """Whether `error` is a statement's "relation ... does not exist" on a database with
    migrations not applied yet (a missing table when every migration is applied is a bug: False,
    and its traceback stays)."""
    if not (isinstance(error, ProgrammingError) and isinstance(error.__cause__, UndefinedTable)):
        return False
    try:
        connection.close()  # whatever state the failed command left it in
        executor = MigrationExecutor(connection)
        return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    except DatabaseError:  # the database gone since: the traceback it was
        return False


def ensure_tables_of(*models) -> None:
    """The same CommandError when a table these models need is missing. For the cron jobs,
    which only need their own table: a release's pending migration of another model is no
    reason to fail (and mail) one."""
    missing = {model._meta.db_table for model in models} - set(
        connection.introspection.table_names()
    )
    if missing:
        raise CommandError(NOT_MIGRATED)
