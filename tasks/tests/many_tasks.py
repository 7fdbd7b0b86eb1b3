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
from todo_project.tests.helpers import statistics_of_an_emptied_table

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


# `count` tasks of an owner (in a list, or the Inbox), each with one tag.
_TAGGED_TASKS = """
    WITH new AS (
        INSERT INTO tasks_task (id, owner_id, list_id, title, description, completed, priority,
            position, version, created_at, updated_at)
        SELECT gen_random_uuid(), %(owner)s, %(list)s, 'task ' || n, '', false, 0, n * %(gap)s,
            1, now(), now()
        FROM generate_series(1, %(count)s) AS n
        RETURNING id
    )
    INSERT INTO tasks_task_tags (task_id, tag_id) SELECT id, %(tag)s FROM new
"""


def tagged_tasks_under_emptied_statistics(
    owner_id: uuid.UUID, tag_id: int, count: int, list_id: uuid.UUID | None = None
) -> None:
    """Writes `count` tasks of the owner (in `list_id`), each with the tag, after tasks_task and
    tasks_task_tags were analyzed empty, their pages left (an instance emptied and refilled, a
    staging reset): the planner takes each table for one row whatever it holds (review 36f).
    For a transaction=True test (see statistics_of_an_emptied_table)."""
    params = {"owner": owner_id, "list": list_id, "gap": POSITION_GAP, "count": count}
    params["tag"] = tag_id
    statistics_of_an_emptied_table(
        connection, _TAGGED_TASKS, params, "tasks_task_tags", "tasks_task", emptied=2
    )
    with connection.cursor() as cursor:
        cursor.execute(_TAGGED_TASKS, params)


def links_per_tag() -> dict[int, int]:
    """{tag id: its number of links}, from tasks_task_tags alone: a test under those
    statistics asserts without a join, which they would make as slow as what it tests."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tag_id, count(*) FROM tasks_task_tags GROUP BY tag_id")
        return dict(cursor.fetchall())


def few_changes_among_others(owner, others: list, tasks: int, each: int, within: str) -> None:
    """`tasks` tasks of `owner`, one in 1,000 changed in the last day, the others 30 days
    ago (created 40 days ago, a second apart); `each` tasks of every one of `others`, changed at
    random `within` this interval of now. Vacuumed and analyzed: the UPDATEs' dead rows would
    distort the plans (a transaction=True test's, whose flush empties the tables after)."""
    load_tasks((owner.pk, f"task {n}", "", (n + 1) * POSITION_GAP) for n in range(tasks))
    load_tasks(
        (other.pk, f"busy {n}", "", (n + 1) * POSITION_GAP) for other in others for n in range(each)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tasks_task SET updated_at = now() - interval '30 days',"
            " created_at = now() - interval '40 days' + (position / %(gap)s) * interval '1 s'"
            " WHERE owner_id = %(owner)s",
            {"gap": POSITION_GAP, "owner": owner.pk},
        )
        cursor.execute(
            "UPDATE tasks_task SET updated_at = now() - (position / %(gap)s) * interval '1 s'"
            " WHERE owner_id = %(owner)s AND position / %(gap)s %% 1000 = 7",
            {"gap": POSITION_GAP, "owner": owner.pk},
        )
        cursor.execute(
            "UPDATE tasks_task SET updated_at = now() - random() * %s::interval"
            " WHERE owner_id <> %s",
            [within, owner.pk],
        )
        cursor.execute("VACUUM ANALYZE tasks_task")
        cursor.execute("VACUUM ANALYZE tasks_deletedtask")
