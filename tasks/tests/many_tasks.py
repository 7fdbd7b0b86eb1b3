"""Loads the plan tests' tens of thousands of tasks the way `seed_bench` does.

One COPY, with Task's indexes, unique constraints and foreign keys dropped for the load and
built again afterwards from the models' own definitions (`tasks_bulk_load`). For 105,000 tasks
that takes 8 s against 31 s with `bulk_create`, which kept a dozen indexes up to date row by
row.
"""

import itertools
import uuid
from collections.abc import Iterable

from django.db import connection
from django.utils import timezone

from tasks.management.commands.seed_bench import tasks_bulk_load
from tasks.models import POSITION_GAP, Priority

# Django sets defaults in Python, not in the table: a COPY names every NOT NULL column.
COLUMNS = ("owner_id", "title", "description", "position", "id", "parent_id", "completed")
COLUMNS += ("priority", "version", "created_at", "updated_at")


def load_tasks(rows: Iterable[tuple[uuid.UUID, str, str, int]]) -> None:
    """Writes one open task of priority none per (owner id, title, description, position)."""
    _load((*row, uuid.uuid4(), None) for row in rows)


def load_subtasks(owner_id: uuid.UUID, count: int) -> uuid.UUID:
    """Writes an Inbox task "parent" with `count` subtasks "subtask 0", … (as load_tasks
    writes tasks: one load); the parent's id."""
    parent_id = uuid.uuid4()
    parent = (owner_id, "parent", "", POSITION_GAP, parent_id, None)
    _load(
        [parent],
        (
            (owner_id, f"subtask {i}", "", (i + 1) * POSITION_GAP, uuid.uuid4(), parent_id)
            for i in range(count)
        ),
    )
    return parent_id


def _load(*rows: Iterable[tuple]) -> None:
    """Writes one open task of priority none per (owner id, title, description, position, id,
    parent id)."""
    now = timezone.now()
    sql = f"COPY tasks_task ({', '.join(COLUMNS)}) FROM STDIN"
    with tasks_bulk_load(), connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in itertools.chain(*rows):
            copy.write_row((*row, False, Priority.NONE, 1, now, now))
