"""A list's task counts from an index alone: (list, completed) replaces the foreign key's own
(list) index, which it also serves. Built concurrently before the old one goes, so writes are
never blocked by the build and the foreign key is never without an index. The build can run
again after an interrupted one (tasks/concurrent_index.py)."""

import django.db.models.deletion
from django.db import migrations, models

from tasks.concurrent_index import build_concurrently


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("tasks", "0007_owner_task_count_reachable_from_its_user"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="task",
                    index=models.Index(fields=["list", "completed"], name="task_list_completed"),
                ),
            ],
            database_operations=build_concurrently(
                "task_list_completed", "tasks_task (list_id, completed)"
            ),
        ),
        migrations.AlterField(
            model_name="task",
            name="list",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="tasks",
                to="tasks.tasklist",
            ),
        ),
    ]
