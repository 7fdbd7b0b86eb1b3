"""A list's task counts from an index alone: (list, completed) replaces the foreign key's own
(list) index, which it also serves. Built concurrently before the old one goes, so writes are
never blocked by the build and the foreign key is never without an index."""

import django.db.models.deletion
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("tasks", "0007_owner_task_count_reachable_from_its_user"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="task",
            index=models.Index(fields=["list", "completed"], name="task_list_completed"),
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
