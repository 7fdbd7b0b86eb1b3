"""An index for `ordering=-due_date`: (owner, due_date DESC NULLS LAST, due_time DESC NULLS LAST,
id DESC), the ORDER BY that tasks.filters.order_tasks writes for it, read forward. The API keeps
tasks without a due date last in both directions, and task_owner_due (ascending, NULLS LAST)
read backward gives them first: every `-due_date` page sorted all of the owner's tasks (the
heavy user's 100,000: 24-47 ms a first page on 2 parallel workers, 111 ms at offset 50,000).
Built CONCURRENTLY, the tasks table taking writes meanwhile (tasks/concurrent_index.py).
"""

from django.db import migrations, models
from django.db.models import F

from tasks.concurrent_index import build_concurrently


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("tasks", "0023_task_search_vector_dropped"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="task",
                    index=models.Index(
                        F("owner"),
                        F("due_date").desc(nulls_last=True),
                        F("due_time").desc(nulls_last=True),
                        F("id").desc(),
                        name="task_owner_due_desc",
                    ),
                ),
            ],
            database_operations=build_concurrently(
                "task_owner_due_desc",
                "tasks_task (owner_id, due_date DESC NULLS LAST, due_time DESC NULLS LAST,"
                " id DESC)",
            ),
        ),
    ]
