"""An index on (updated_at, id) for the admin's task changelist (see Task.Meta.indexes), built
CONCURRENTLY: the tasks table takes writes meanwhile (0.6 s for 1.1M tasks here).

A concurrent build that was interrupted (a deploy killed, a lost connection) leaves an INVALID
index of that name, which PostgreSQL maintains on every write but never reads, and on which a
plain CREATE INDEX fails: every later `migrate` would fail with it. So a leftover invalid one
is dropped first, and the index is created IF NOT EXISTS (a build that finished before the
migration was recorded is kept).
"""

from django.db import migrations, models

INDEX = "task_updated"


def drop_an_invalid_leftover(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = %s",
            [INDEX],
        )
        row = cursor.fetchone()
        if row is not None and row[0]:
            cursor.execute(f"DROP INDEX CONCURRENTLY {INDEX}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("tasks", "0010_search_finds_parts_of_joined_words"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="task",
                    index=models.Index(fields=["updated_at", "id"], name=INDEX),
                ),
            ],
            database_operations=[
                migrations.RunPython(drop_an_invalid_leftover, migrations.RunPython.noop),
                migrations.RunSQL(
                    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX}"
                    " ON tasks_task (updated_at, id)",
                    reverse_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}",
                ),
            ],
        ),
    ]
