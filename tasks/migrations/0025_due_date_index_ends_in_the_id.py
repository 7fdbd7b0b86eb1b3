"""The ascending due-date index ends in the id, the ORDER BY's tie-break, as
task_owner_due_desc (0024) and the priority index (0017) do: `ordering=due_date` reads its pages
off it without an Incremental Sort on the id. That sort was cheap in the small groups of one
date and time, but the tasks without a due date are one group: the benchmark's heavy user's
40,000, sorted whole for every page that reaches them (`has_due=false&ordering=due_date`: a
20-39 ms statement, 0.2 ms now; `ordering=due_date&offset=70000` 140-186 ms, 60 ms now).
The range filters (`due_before`, `due_after`, `has_due`, `overdue`) read it as they read the
old one, but it no longer deduplicates: 23 -> 67 MB for 1.1M tasks, and their counts read ~4.5x
the pages (the heavy user's `due_after` count 2.7 -> 3.4 ms, a month's range 0.8 -> 1.2 ms;
review 38f). Built CONCURRENTLY, the old one dropped CONCURRENTLY after it, as 0017 did.
"""

from django.db import migrations, models

from tasks.concurrent_index import build_concurrently, drop_concurrently


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("tasks", "0024_due_date_descending_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="task",
                    index=models.Index(
                        fields=["owner", "due_date", "due_time", "id"], name="task_owner_due_id"
                    ),
                ),
            ],
            database_operations=build_concurrently(
                "task_owner_due_id", "tasks_task (owner_id, due_date, due_time, id)"
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="task", name="task_owner_due"),
            ],
            database_operations=drop_concurrently(
                "task_owner_due", "tasks_task (owner_id, due_date, due_time)"
            ),
        ),
    ]
