"""No caller's statement can read other accounts' rows off an index: the owner's updated_at
index ends in the id, and the one index over every owner's tasks becomes partial on a condition
only the admin states.

The changes feed (sync.py) asks for one owner's changes in (updated_at, id) order, and the
list's poll (`updated_since` with `ordering=updated_at`) in that order too. The owner's index,
(owner_id, updated_at), did not give the id's order, and task_updated (updated_at, id; every
owner's tasks, the admin's changelist index) gave it whole: PostgreSQL walked it, filtering
the owner, whenever the caller's share of the table made their recent rows look plentiful. An
account owning most of the table with 30 changes in the last day, beside 40 others' 20,000,
had a sync page or a poll read all 20,000 (5-16 ms, growing with the whole service's writes;
0.1 ms off the owner's index; reviews 41c, 36f). An id at the end of the owner's index was not
enough: the planner still chose either by its estimates. So task_updated is rebuilt as
task_admin_updated, partial on `version >= 1`: true of every task (task_version_positive), but
PostgreSQL uses a partial index only for a query that states its condition, which the admin's
task queryset alone does (TaskAdmin.get_queryset).

All CONCURRENTLY (writes go on): the new indexes built first, the old ones dropped after, as
0025 did. 1.3-1.7 s for (owner_id, updated_at, id) on the benchmark's 1.1M tasks (53 -> 62 MB).
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
                migrations.AddIndex(
                    model_name="task",
                    index=models.Index(
                        fields=["updated_at", "id"],
                        name="task_admin_updated",
                        condition=models.Q(version__gte=1),
                    ),
                ),
            ],
            database_operations=build_concurrently(
                "task_admin_updated", "tasks_task (updated_at, id) WHERE version >= 1"
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
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.RemoveIndex(model_name="task", name="task_updated")],
            database_operations=drop_concurrently("task_updated", "tasks_task (updated_at, id)"),
        ),
    ]
