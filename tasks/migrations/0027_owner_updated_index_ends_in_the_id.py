"""The owner's updated_at index ends in the id, the changes feed's tie-break (sync.py: ORDER BY
updated_at, id), as the due-date (0025) and priority (0017) indexes do.

Without the id, task_updated (updated_at, id: every owner's tasks, the admin's changelist
index) gave that order whole, and PostgreSQL took it, filtering the owner: a sync read every
account's changes since its cursor, not its own. One owner's 29 changes among 40 others'
20,000 in the same day took 60-108 ms a page, custom or generic plan, and would grow with the
whole service's writes; read off this index they are the owner's alone. The list's
`ordering=updated_at` pages read it without an Incremental Sort on the id too. Built
CONCURRENTLY, the old one dropped CONCURRENTLY after it, as 0025 did.
"""

from django.db import migrations, models

from tasks.concurrent_index import build_concurrently, drop_concurrently


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("tasks", "0026_search_lexemes_planned_once"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="task",
                    index=models.Index(
                        fields=["owner", "updated_at", "id"], name="task_owner_updated_id"
                    ),
                ),
            ],
            database_operations=build_concurrently(
                "task_owner_updated_id", "tasks_task (owner_id, updated_at, id)"
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="task", name="task_owner_updated"),
            ],
            database_operations=drop_concurrently(
                "task_owner_updated", "tasks_task (owner_id, updated_at)"
            ),
        ),
    ]
