"""An index on (updated_at, id) for the admin's task changelist (see Task.Meta.indexes), built
CONCURRENTLY: the tasks table takes writes meanwhile (0.6 s for 1.1M tasks here). It can run
again after an interrupted build (tasks/concurrent_index.py).
"""

from django.db import migrations, models

from tasks.concurrent_index import build_concurrently


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
                    index=models.Index(fields=["updated_at", "id"], name="task_updated"),
                ),
            ],
            database_operations=build_concurrently("task_updated", "tasks_task (updated_at, id)"),
        ),
    ]
