"""Loads the plan tests' tens of thousands of tasks the way `seed_bench` does.

One COPY, with Task's indexes, unique constraints and foreign keys dropped for the load and
built again afterwards from the models' own definitions (`tasks_bulk_load`). For 105,000 tasks
that takes 8 s against 31 s with `bulk_create`, which kept a dozen indexes up to date row by
row.
"""

import uuid
from collections.abc import Iterable

from django.db import connection
from django.utils import timezone

from tasks.management.commands.seed_bench import tasks_bulk_load
from tasks.models import Priority

# Django sets defaults in Python, not in the table: a COPY names every NOT NULL column.
COLUMNS = ("owner_id", "title", "description", "position", "id", "completed", "priority")
COLUMNS += ("version", "created_at", "updated_at")


def load_tasks(rows: Iterable[tuple[uuid.UUID, str, str, int]]) -> None:
    """Writes one open task of priority none per (owner id, title, description, position)."""
    now = timezone.now()
    sql = f"COPY tasks_task ({', '.join(COLUMNS)}) FROM STDIN"
    with tasks_bulk_load(), connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row((*row, uuid.uuid4(), False, Priority.NONE, 1, now, now))
