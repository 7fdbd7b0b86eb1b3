"""The search index with a 256 kB pending list (fastupdate = on): see Task.Meta.indexes.

As in 0006, only storage parameters change: ALTER INDEX, instant at any table size, instead of
the drop and rebuild that the autodetector writes for a changed index. Reversed, the entries
pending by then are merged into the index at once.
"""

import django.contrib.postgres.indexes
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0008_list_counts_from_an_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="task", name="task_search"),
                migrations.AddIndex(
                    model_name="task",
                    index=django.contrib.postgres.indexes.GinIndex(
                        fastupdate=True,
                        fields=["search_vector"],
                        gin_pending_list_limit=256,
                        name="task_search",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql="ALTER INDEX task_search SET (fastupdate = on, gin_pending_list_limit = 256)",
                    reverse_sql=[
                        "ALTER INDEX task_search SET (fastupdate = off)",
                        "ALTER INDEX task_search RESET (gin_pending_list_limit)",
                        "SELECT gin_clean_pending_list('task_search'::regclass)",
                    ],
                ),
            ],
        ),
    ]
