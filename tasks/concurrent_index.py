"""Indexes built by migrations with CREATE INDEX CONCURRENTLY, so that they can run again.

A concurrent build that was interrupted (a deploy killed, a lost connection, a deadlock) leaves
an INVALID index of that name, which PostgreSQL maintains on every write but never reads, and on
which a plain CREATE INDEX fails: every later `migrate` would fail with it. So a leftover invalid
one is dropped first, and the index is created IF NOT EXISTS (a build that finished before the
migration was recorded is kept). The migration must be `atomic = False`.
"""

import functools

from django.db import migrations


def _drop_an_invalid_leftover(name: str, apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = %s",
            [name],
        )
        row = cursor.fetchone()
        if row is not None and row[0]:
            cursor.execute(f"DROP INDEX CONCURRENTLY {name}")


def build_concurrently(
    name: str, on: str, *, unique: bool = False
) -> list[migrations.operations.base.Operation]:
    """The database operations of an index `name` `ON table (columns)`: pair them with the
    model state's AddIndex (AddConstraint, `unique`) in a SeparateDatabaseAndState."""
    create = "CREATE UNIQUE INDEX" if unique else "CREATE INDEX"
    return [
        migrations.RunPython(
            functools.partial(_drop_an_invalid_leftover, name), migrations.RunPython.noop
        ),
        migrations.RunSQL(
            f"{create} CONCURRENTLY IF NOT EXISTS {name} ON {on}",
            reverse_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {name}",
        ),
    ]


def drop_concurrently(
    name: str, on: str, *, unique: bool = False
) -> list[migrations.operations.base.Operation]:
    """The database operations that drop index `name` CONCURRENTLY; reversed, they build it
    `ON table (columns)` again as build_concurrently does, an invalid leftover of an
    interrupted reverse dropped first."""
    create = "CREATE UNIQUE INDEX" if unique else "CREATE INDEX"
    return [
        migrations.RunSQL(
            f"DROP INDEX CONCURRENTLY IF EXISTS {name}",
            reverse_sql=f"{create} CONCURRENTLY IF NOT EXISTS {name} ON {on}",
        ),
        # Reversed, operations run bottom up: this one first.
        migrations.RunPython(
            migrations.RunPython.noop, functools.partial(_drop_an_invalid_leftover, name)
        ),
    ]
