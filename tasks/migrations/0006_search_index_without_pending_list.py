"""The search index without GIN's pending list (fastupdate = off): see Task.Meta.indexes.

The index itself does not change, only a storage parameter: ALTER INDEX, instant at any table
size, instead of the drop and rebuild that the autodetector writes for a changed index. The
entries already pending are merged into the index at once.
"""

import django.contrib.postgres.indexes
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0005_owner_task_count"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="task", name="task_search"),
                migrations.AddIndex(
                    model_name="task",
                    index=django.contrib.postgres.indexes.GinIndex(
                        fastupdate=False, fields=["search_vector"], name="task_search"
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=[
                        "ALTER INDEX task_search SET (fastupdate = off)",
                        "SELECT gin_clean_pending_list('task_search'::regclass)",
                    ],
                    reverse_sql="ALTER INDEX task_search RESET (fastupdate)",
                ),
            ],
        ),
    ]
