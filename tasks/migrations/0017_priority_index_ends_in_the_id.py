"""The priority index ends in the id, the ORDER BY's tie-break: `ordering=priority` reads its page
off it (0.2 ms on the benchmark's heavy user) instead of sorting the whole first priority (50,231
tasks, 85-140 ms), and `-priority` reads it backward (the id ties in the direction of the last
field, tasks.filters.order_tasks). Built CONCURRENTLY, the old one dropped CONCURRENTLY after it,
as 0014 did.
"""

from django.db import migrations, models

from tasks.concurrent_index import build_concurrently, drop_concurrently


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("tasks", "0016_names_unique_lowered_then_composed"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="task",
                    index=models.Index(
                        fields=["owner", "priority", "id"], name="task_owner_priority_id"
                    ),
                ),
            ],
            database_operations=build_concurrently(
                "task_owner_priority_id", "tasks_task (owner_id, priority, id)"
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="task", name="task_owner_priority"),
            ],
            database_operations=drop_concurrently(
                "task_owner_priority", "tasks_task (owner_id, priority)"
            ),
        ),
    ]
