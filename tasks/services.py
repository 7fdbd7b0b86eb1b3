"""Writes that span rows or models: create, update, complete, move, bulk actions, tags, lists.

Every function is keyword-only, typed and runs in one transaction. The API, the admin actions
and the management commands call these, so they all behave the same.

Ranks (`position`) are gapped integers inside a sibling group (owner, list, parent): a new task
goes to the end (last + POSITION_GAP), a move bisects the gap between its new neighbours, and
only when that gap is used up do the few siblings around it move to open it again, in a single
UPDATE (_spread_after). Every writer of ranks first takes a transaction-level advisory lock per
sibling group, in sorted order (so two writers never deadlock): row locks cannot lock an empty
group nor the Inbox, advisory locks can, which keeps the order total under concurrent creates
and moves. Row locks on tasks are always taken before group locks, several rows in one order:
top-level tasks by id, then subtasks by parent and id (a parent's own write locks it, then its
subtasks); but for the siblings a spread moves, which it finds under the group lock: it takes
them NOWAIT and gives way (NeighboursHeld), as does a move whose spread moved the task itself
for the rows its foreign keys name (its parent, its next occurrence), which PostgreSQL would
lock at the COMMIT (_lock_parent_after_spread, _lock_next_occurrence_early; run again after a
give-way, a write takes its parent first: task_to_write's `parent_first`), and a completion
whose spread moves a task it wrote already (_REFERENCED). So writers seldom deadlock; when they do,
PostgreSQL breaks the tie and the write is run again (todo_project/retry.py), a 503 after three. Known: a write giving a task a parent
locks the parent after the task (FOR KEY SHARE, _place_under_parent), as the foreign key does
at the write anyway, only sooner; with a writer locking the two the other way round (B put
under A while A is put under B, a bulk action over both) PostgreSQL breaks the tie. Inserting
or deleting tasks locks the owner's task count (tasks.OwnerTaskCount, kept by triggers) until
the commit: that comes after every other lock these functions take (except the ORM's cascade
in list_delete, which deletes more than 100 tasks in several statements). A create locks the
count as it reads it for the cap, in the statement that takes its group lock, the group lock
first (the owner's row, then the count, while there is no count row:
_lock_group_and_count). A tag's rename or delete locks the tag's tasks in the bulk actions'
order, then the tag, then the tasks linked to it meanwhile; a write linking a tag locks its
task, then the tag: see TAG_LOCKS.
"""

import hashlib
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from typing import Any, Final, TypeVar
from uuid import UUID

from django.db import IntegrityError, OperationalError, connection, router, transaction
from django.db.models import Count, F, Max, QuerySet
from django.db.transaction import TransactionManagementError
from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError

from accounts.models import User
from tasks import recurrence
from tasks.models import (
    LIST_POSITION_MAX,
    MAX_TAGS_PER_TASK,
    NO_SUCH_TASK,
    POSITION_GAP,
    TOO_MANY_TAGS,
    UNADDRESSABLE_TAG_MESSAGE,
    UNADDRESSABLE_TAG_NAMES,
    OwnerTaskCount,
    Priority,
    Tag,
    Task,
    TaskList,
    loaded_columns,
    named,
    owned_instance,
    tags_named,
    task_insert_ranked_by,
    task_insert_sql,
    task_save,
    task_to_write,
    task_update_sql,
    too_many_tags,
)
from tasks.quotas import (
    COMPLETION_ALLOWANCE,
    MAX_COMPLETED_PER_REQUEST,
    ensure_completion_size,
    ensure_list_room,
    ensure_room,
    ensure_tag_room,
    lock_owner,
)
from todo_project.compiled import CompiledQuery, fetch_all
from todo_project.fields import CONTROL_CHARACTERS_MESSAGE, breaks_one_line, composed, trimmed
from todo_project.problems import ConcurrentChange, is_concurrent_change
from todo_project.retry import may_give_way

MAX_BULK_IDS: Final = 500
# The order in which a write that locks several tasks locks them (a bulk action, a list delete,
# a tag's rename or delete: _BUMP_TAGGED, in SQL): top-level tasks by id, then subtasks by
# parent and id, as a parent's own write locks it before its subtasks. In id order alone, a
# bulk action holding a subtask whose id came before its parent's deadlocked with that write.
ROW_LOCK_ORDER: Final = (F("parent_id").asc(nulls_first=True), "pk")
BULK_ACTIONS: Final = (
    "complete",
    "reopen",
    "delete",
    "move",
    "set_priority",
    "add_tags",
    "remove_tags",
)

# Copies of recurring tasks inserted in the statement that links them (_spawn_next_occurrences):
# 18 parameters a copy, and PostgreSQL takes at most 65,535 a statement.
COPIES_PER_STATEMENT: Final = 1000

# Sentinel for "leave the list as it is" in task_move (None means the Inbox).
UNCHANGED: Final = object()

# The subtask rules' 400s (the serializer's too): one level deep, in the parent's list.
PARENT_IS_SUBTASK: Final = "Subtasks are one level deep: the parent is a subtask."
HAS_SUBTASKS: Final = "This task has subtasks, so it cannot become a subtask."
NOT_PARENTS_LIST: Final = "A subtask is in the same list as its parent."

GroupKey = tuple[UUID | None, UUID | None]  # (list_id, parent_id)

# Task fields a client may write; `tags` and `completed` are handled apart.
WRITABLE_FIELDS: Final = (
    "title",
    "description",
    "priority",
    "due_date",
    "due_time",
    "list",
    "parent",
    "recurrence",
)


class MissingTasks(NotFound):
    """A 404 that names the ids it could not find among the caller's tasks."""

    def __init__(self, missing_ids: Sequence[UUID]) -> None:
        count = len(missing_ids)
        super().__init__(
            f"{count:,} of the given ids {'is' if count == 1 else 'are'} not among your tasks."
        )
        self.problem_fields = {"missing_ids": [str(task_id) for task_id in missing_ids]}


# --- Ranks ------------------------------------------------------------------------------------


def _group_lock_key(owner_id: UUID, group: GroupKey) -> int:
    digest = hashlib.blake2b(f"{owner_id}:{group[0]}:{group[1]}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _lock_groups(owner_id: UUID, groups: Iterable[GroupKey]) -> None:
    """Serialises the writers of ranks in these sibling groups until the transaction ends."""
    keys = sorted({_group_lock_key(owner_id, group) for group in groups})
    with connection.cursor() as cursor:
        if len(keys) == 1:  # most writes (a reorder, a create): no array to send and unnest
            cursor.execute("SELECT pg_advisory_xact_lock(%s::bigint)", keys)
            return
        # Sorted, so two transactions locking overlapping groups never wait on each other in a
        # cycle.
        cursor.execute(
            "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) WITH ORDINALITY AS l(k, n)"
            " ORDER BY n",
            [keys],
        )


def _in_group(list_id: UUID | None, parent_id: UUID | None) -> dict[str, Any]:
    """Filter keywords for one sibling group (NULL-aware: the Inbox is a group too)."""
    return {
        **({"list__isnull": True} if list_id is None else {"list_id": list_id}),
        **({"parent__isnull": True} if parent_id is None else {"parent_id": parent_id}),
    }


def _per_group_shape(narrow: Callable[..., Any], **placeholders: Any) -> dict:
    """`narrow(tasks_of_the_group, **values)` compiled once per process for each shape of a
    sibling group, (list given, parent given): IS NULL and = %s are different SQL. Every
    create and move asks one of these; built by the ORM each time, each cost ~2 ms of CPU.
    """

    def compiled(list_given: bool, parent_given: bool) -> CompiledQuery:
        group = {}
        if list_given:
            group["list_id"] = uuid.UUID(int=2)
        if parent_given:
            group["parent_id"] = uuid.UUID(int=3)
        return CompiledQuery(
            lambda owner, list_id=None, parent_id=None, **values: narrow(
                Task.objects.filter(owner_id=owner, **_in_group(list_id, parent_id)), **values
            ),
            owner=uuid.UUID(int=1),
            **group,
            **placeholders,
        )

    return {(lg, pg): compiled(lg, pg) for lg in (False, True) for pg in (False, True)}


def _statement_in_group(
    queries: dict, owner_id: UUID, group: GroupKey, **values: Any
) -> tuple[str, str, list[Any]]:
    """(database alias, SQL, parameters) of a _per_group_shape() query in this group."""
    list_id, parent_id = group
    given = {
        key: value
        for key, value in (("list_id", list_id), ("parent_id", parent_id))
        if value is not None
    }
    query = queries[(list_id is not None, parent_id is not None)]
    return query.statement(owner=owner_id, **given, **values)


def _rows_in_group(queries: dict, owner_id: UUID, group: GroupKey, **values: Any) -> list:
    """The rows a _per_group_shape() query selects in this group."""
    return fetch_all(*_statement_in_group(queries, owner_id, group, **values))


def _rank_in_group(queries: dict, owner_id: UUID, group: GroupKey, **values: Any) -> int | None:
    """The one rank that a _per_group_shape() query selects, or None (no such task)."""
    rows = _rows_in_group(queries, owner_id, group, **values)
    return rows[0][0] if rows else None


# The sibling-group index (task_position_unique_in_group) in its own order. A rank query orders
# by all of it, though owner, list and parent are fixed: PostgreSQL reads ranks off the index in
# order only then. By `position` alone, with `parent_id IS NULL`, it sorted the whole group, or
# walked the owner's other index: 1.5-58 ms a query for the heavy user (bench/README.md).
IN_GROUP_ORDER = ("owner_id", "list_id", "parent_id", "position")


def _last_rank_of(tasks: QuerySet) -> QuerySet:
    return tasks.order_by(*[f"-{column}" for column in IN_GROUP_ORDER]).values_list("position")[:1]


_LAST_RANK = _per_group_shape(_last_rank_of)
# The first rank among the other tasks of the group (the one being placed may be in it already).
_FIRST_OTHER_RANK = _per_group_shape(
    lambda tasks, task: (
        tasks.exclude(pk=task).order_by(*IN_GROUP_ORDER).values_list("position")[:1]
    ),
    task=uuid.UUID(int=4),
)

# Opening a used-up gap moves as few siblings as will do, in one UPDATE: the shortest run right
# after the gap that, spread evenly up to the first sibling that stays, leaves SPREAD_ROOM between
# neighbours (a run that reaches the end of the group spreads by POSITION_GAP); else the same
# downwards from the gap. A moved row costs ~0.7 ms (a new entry in each of the table's indexes,
# the search index's too): renumbering a whole group of 150 took 105 ms.
SPREAD_ROOM: Final = POSITION_GAP // 16  # room for six more bisections at that spot
SPREAD_RUN_LIMIT: Final = 256  # a longer crowd both ways: the whole group is renumbered instead
_FOLLOWING = _per_group_shape(
    lambda tasks, above: (
        tasks.filter(position__gt=above)
        .order_by(*IN_GROUP_ORDER)
        .values_list("pk", "position")[: SPREAD_RUN_LIMIT + 1]
    ),
    above=-(2**62) - 12345,
)
_DOWN_FROM = _per_group_shape(
    lambda tasks, rank: (
        tasks.filter(position__lte=rank)
        .order_by(*[f"-{column}" for column in IN_GROUP_ORDER])
        .values_list("pk", "position")[: SPREAD_RUN_LIMIT + 1]
    ),
    rank=-(2**62) - 12345,
)


def _end_position(owner_id: UUID, group: GroupKey) -> int:
    """The rank just after the last task of the group (one index lookup)."""
    last = _rank_in_group(_LAST_RANK, owner_id, group)
    return POSITION_GAP if last is None else last + POSITION_GAP


# A create's group lock and the owner's task count, in one statement (a round trip less). The
# lock is the condition of the count's scan, an InitPlan: PostgreSQL takes it before it reads,
# then locks, the count row ("One-Time Filter": test_create_lock_and_rank), so the locks go group,
# then count; and it takes it when the owner has no count row too. The statement's snapshot is
# older than the lock, which is why the group's last rank is not read here: the INSERT reads it
# (_insert_at_group_end), a statement whose snapshot comes after the lock.
_LOCKED_GROUP_AND_COUNT = (
    f"SELECT c.tasks FROM {OwnerTaskCount._meta.db_table} c "
    "WHERE c.owner_id = %s AND (SELECT true FROM pg_advisory_xact_lock(%s)) "
    "FOR NO KEY UPDATE OF c"
)


def _lock_group_and_count(owner_id: UUID, group: GroupKey) -> int:
    """Takes the group's lock (as _lock_groups), then how many tasks the owner has, locked so
    that the owner's other creates wait until the commit (two cannot both take the last free
    place under the cap)."""
    alias = router.db_for_write(Task)
    params = [owner_id, _group_lock_key(owner_id, group)]
    rows = fetch_all(alias, _LOCKED_GROUP_AND_COUNT, params)
    if not rows:
        # No count row to lock: the owner had no task. Creates take turns on the owner's row
        # then, and read again: one that went first has made the row. (The group lock is
        # taken again: PostgreSQL counts it twice and lets both go at the end.)
        lock_owner(owner_id)
        rows = fetch_all(alias, _LOCKED_GROUP_AND_COUNT, params)
    return rows[0][0] if rows else 0


def _insert_at_group_end(task: Task) -> tuple[str, list]:
    """(SQL, parameters): the INSERT of the new task with its rank read by the INSERT itself,
    after the group's last (as _end_position), RETURNING it. The caller holds the group lock,
    taken in an earlier statement: this one's snapshot sees every rank written under it
    before."""
    _, last_rank, rank_params = _statement_in_group(_LAST_RANK, task.owner_id, task.sibling_group)
    head, values, params = task_insert_ranked_by(
        task, f"COALESCE(({last_rank}), 0) + {POSITION_GAP}", rank_params
    )
    return f"{head} VALUES ({values}) RETURNING position", params


_IN_GROUP_SQL = (
    "owner_id = %s AND list_id IS NOT DISTINCT FROM %s::uuid"
    " AND parent_id IS NOT DISTINCT FROM %s::uuid"
)


def _renumber_group(owner_id: UUID, group: GroupKey) -> None:
    """Spreads every rank of the group out again by POSITION_GAP (one UPDATE), keeping the
    order: the fallback of _spread_after for a crowd longer than SPREAD_RUN_LIMIT both ways.
    Its rows are locked first, as a spread's run (see NeighboursHeld)."""
    in_group = [owner_id, *group]
    with (
        _giving_way_to_holders((_IN_GROUP_SQL, in_group), wait_for=_RANK_WRITE),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            f"""
            WITH run AS (
                SELECT id FROM tasks_task WHERE {_IN_GROUP_SQL}
                FOR {_RANK_WRITE}{_NOWAIT[may_give_way.get()]}
            )
            UPDATE tasks_task
            SET position = ranked.rank, version = version + 1, updated_at = %s
            FROM (
                SELECT id, %s * row_number() OVER (ORDER BY position, id) AS rank
                FROM tasks_task WHERE {_IN_GROUP_SQL}
            ) AS ranked
            WHERE tasks_task.id = ranked.id AND tasks_task.position <> ranked.rank
              AND tasks_task.id IN (SELECT id FROM run)
            """,
            [*in_group, timezone.now(), POSITION_GAP, *in_group],
        )


# A spread moves siblings that it finds only once it holds its task and its group's lock, so it
# cannot lock them first, as the order above wants. Waiting for one there closed a cycle with
# any writer holding it and waiting for that group (a bulk move or complete, a PATCH moving it
# to another list) or for the task (a bulk action naming both): PostgreSQL ended one of them
# after deadlock_timeout, 1 s (review 37c). So a spread locks its run first in its one
# statement, NOWAIT when the write may give way (todo_project.retry.may_give_way): a held
# neighbour ends the write at once (55P03), and before it runs again it waits, holding nothing,
# until the holders are done, the wait it would have had without the cycle. After GIVE_WAYS
# of those (and in a write that nothing runs again) it waits for the run as before. Ending at
# once alone (review 34e's fix) turned a hold on a neighbour longer than the 2-60 ms between
# attempts into a 503.
_ROWS_HELD = "55P03"
_NOWAIT = {True: " NOWAIT", False: ""}
# The row lock an UPDATE of `position` takes: FOR UPDATE, as for a key. PostgreSQL counts the
# columns of any unique index with no expression nor predicate as a key of its row locks,
# task_position_unique_in_group's too though it is deferrable, so a rank's UPDATE waits for a
# FOR KEY SHARE holder (a subtask's create holds its parent so, _place_under_parent, then waits
# for the owner's count). A spread's run locked FOR NO KEY UPDATE NOWAIT passed such a holder,
# then waited in its UPDATE: holding the count (a completion's), a deadlock with that create,
# 1 s (review 40h). Locked FOR UPDATE, the run gives way to it too; and waits for it so.
_RANK_WRITE = "UPDATE"


class NeighboursHeld(OperationalError):
    """A spread's run was held by another transaction (see above). `wait_before_running_again`
    waits for its holders, in a statement of its own, outside any transaction."""

    def __init__(self, wait: tuple[str, list], wait_for: str = "SHARE") -> None:
        super().__init__("A neighbour to move was held by a concurrent write.")
        self._wait = wait
        self._mode = wait_for

    def wait_before_running_again(self) -> None:
        sql, params = self._wait
        with connection.cursor() as cursor:
            # FOR SHARE waits for every writer of a row (FOR UPDATE, FOR NO KEY UPDATE); FOR
            # UPDATE (a spread's run, _RANK_WRITE) for FOR KEY SHARE holders too. The
            # rows held now (SKIP LOCKED takes the others, and lets them go at once: autocommit),
            # then each of them in a statement of its own, which holds nothing while it waits.
            # One statement over them all held the first rows while it waited for a later one:
            # a writer that locks a parent's subtasks in the order it reads them (a completion's
            # cascade, a move of the parent's list), holding that later row, then waited for a
            # first one: a deadlock, 1 s, and the wait's error was the request's 503 (review 38c).
            cursor.execute(
                f"SELECT id FROM tasks_task WHERE {sql} AND id NOT IN"
                f" (SELECT id FROM tasks_task WHERE {sql} FOR {self._mode} SKIP LOCKED)"
                " ORDER BY parent_id NULLS FIRST, id",
                [*params, *params],
            )
            for (held,) in cursor.fetchall():
                cursor.execute(f"SELECT 1 FROM tasks_task WHERE id = %s FOR {self._mode}", [held])


@contextmanager
def _giving_way_to_holders(rows: tuple[str, list], wait_for: str = "SHARE") -> Iterator[None]:
    """Turns a NOWAIT lock's failure on these rows (a WHERE clause and its parameters) into
    NeighboursHeld, which waits for them in the lock mode `wait_for`."""
    nowait = may_give_way.get()
    try:
        yield
    except OperationalError as error:
        if not nowait or getattr(error.__cause__, "sqlstate", None) != _ROWS_HELD:
            raise
        raise NeighboursHeld(rows, wait_for) from error.__cause__


def _spread_run(rows: list, start: int, direction: int) -> list[tuple[UUID, int]] | None:
    """[(id, new rank)] for the shortest run of `rows` (siblings from `start` outwards, in
    `direction`) that leaves SPREAD_ROOM between neighbours, or None: the crowd is longer than
    SPREAD_RUN_LIMIT. The new ranks keep the order, between `start` and the first that stays."""
    for count in range(1, len(rows)):
        step = abs(rows[count][1] - start) // (count + 1)
        if step >= SPREAD_ROOM:
            break
    else:
        if len(rows) > SPREAD_RUN_LIMIT:
            return None
        count, step = len(rows), POSITION_GAP  # the run reaches the end of the group
    return [(pk, start + direction * step * n) for n, (pk, _) in enumerate(rows[:count], 1)]


def _spread_after(
    owner_id: UUID, group: GroupKey, above: int, moving: list[UUID] | None = None
) -> dict[int, int] | None:
    """Opens the gap right after rank `above` (see SPREAD_ROOM), keeping the order. The ranks
    after it move up, or else the rank itself and those before it move down, or else the whole
    group is renumbered. Returns the ranks it moved, old to new, or None after a renumbering.
    The caller holds the group lock. `moving`, when given, gets the ids of the tasks it moves.

    A task whose rank moves is changed: its version and updated_at move too, so that a client's
    cached copy (ETag) or sync (`updated_since`) never keeps a rank out of order with the rest.
    """
    following = _rows_in_group(_FOLLOWING, owner_id, group, above=above)
    if not following:  # the next task was deleted since the caller read it (deletes lock no group)
        return {}
    rows, run = following, _spread_run(following, above, +1)
    if run is None:
        rows = _rows_in_group(_DOWN_FROM, owner_id, group, rank=above)
        run = _spread_run(rows, following[0][1], -1)
    if run is None:
        _renumber_group(owner_id, group)
        return None
    ids = [pk for pk, _ in run]
    if moving is not None:
        moving += ids
    with (
        _giving_way_to_holders(("id = ANY(%s::uuid[])", [ids]), wait_for=_RANK_WRITE),
        connection.cursor() as cursor,
    ):
        # One statement: the unique rank constraint is checked at its end. The run is locked
        # first, NOWAIT (see NeighboursHeld), FOR UPDATE as the UPDATE locks it (_RANK_WRITE).
        cursor.execute(
            "WITH run AS (SELECT id FROM tasks_task WHERE id = ANY(%s::uuid[])"
            f" FOR {_RANK_WRITE}{_NOWAIT[may_give_way.get()]}) "
            "UPDATE tasks_task SET position = moved.position, version = version + 1, "
            "updated_at = %s FROM unnest(%s::uuid[], %s::bigint[]) AS moved(id, position) "
            "WHERE tasks_task.id = moved.id AND tasks_task.id IN (SELECT id FROM run)",
            [ids, timezone.now(), ids, [position for _, position in run]],
        )
    return {old: new for (_, old), (_, new) in zip(rows[: len(run)], run, strict=True)}


def _next_rank_in_shape(list_given: bool, parent_given: bool, also: str = "") -> str:
    """SQL: the rank after task `a` in its sibling group, when the group has this shape (NULL
    otherwise: a one-time filter, never a scan). One index lookup: IS NULL and = are different
    index conditions, so each shape has its own subquery, in the index's order. `also`: one
    more condition on the following task `t`."""
    on_list = "t.list_id = a.list_id" if list_given else "t.list_id IS NULL"
    on_parent = "t.parent_id = a.parent_id" if parent_given else "t.parent_id IS NULL"
    return f"""(
        SELECT t.position FROM tasks_task t
        WHERE a.list_id IS {"NOT " if list_given else ""}NULL
          AND a.parent_id IS {"NOT " if parent_given else ""}NULL
          AND t.owner_id = a.owner_id AND {on_list} AND {on_parent} AND t.position > a.position
          {f"AND {also}" if also else ""}
        ORDER BY {", ".join(f"t.{column}" for column in IN_GROUP_ORDER)} LIMIT 1
    )"""


def _next_rank(also: str = "") -> str:
    """SQL: the rank after task `a` in its sibling group, whatever the group's shape."""
    shapes = [_next_rank_in_shape(lg, pg, also) for lg in (False, True) for pg in (False, True)]
    return f"COALESCE({', '.join(shapes)})"


# For each anchor task: its rank and the next one in its group (ranks are unique in a group).
# Before, a window over the anchors' whole groups: 3.5 ms for a user of 1,000 tasks, 350 ms for
# the heavy user's 100,000 (bench/README.md); now 0.6 ms for both.
# For each anchor: its id, its rank and the next rank in its group; and the owner's task count,
# locked as a create locks it (_lock_group_and_count): the copies are new tasks.
_SUCCESSOR_POSITIONS = f"""
    WITH owned AS (
        SELECT tasks FROM {OwnerTaskCount._meta.db_table} WHERE owner_id = %s FOR NO KEY UPDATE
    )
    SELECT a.id, a.position, {_next_rank()}, (SELECT tasks FROM owned)
    FROM tasks_task a
    WHERE a.owner_id = %s AND a.id = ANY(%s)
"""


def _successor_positions(owner_id: UUID, anchor_ids: Sequence[UUID]) -> tuple[int, dict]:
    """The owner's task count (locked), and for each anchor task: (its position, the next
    sibling's position or None). One query."""
    with connection.cursor() as cursor:
        cursor.execute(_SUCCESSOR_POSITIONS, [owner_id, owner_id, list(anchor_ids)])
        rows = cursor.fetchall()
    return rows[0][3], {row[0]: (row[1], row[2]) for row in rows}


# A row this transaction wrote already (a completion, an earlier spread) and that a spread moves
# has its second row version: PostgreSQL checks its foreign keys at the COMMIT whatever changed,
# locking the rows they name FOR KEY SHARE after the group lock. Its next occurrence was not
# held: a write completing that occurrence held it and waited for the group, a deadlock (1 s,
# review 38c's finding 3: a neighbour two spreads of one bulk completion moved). So they are
# locked once the spread moved the row, NOWAIT, giving way as the spread does (NeighboursHeld);
# the parent too (a completion holds it already: no statement more for it). One statement, only
# for a spread that moves such a row, once per row. An anchor needs none: its next occurrence
# is the copy made here, and its parent is held (_NAMED_AND_THEIR_PARENTS, _PARENT_FIRST, the
# cascade's parent). A PATCH completing a parent it moves to another list writes its subtasks
# twice too (moved along, then completed): their next occurrences the same (review 40b).
_REFERENCED = (
    "id IN (SELECT unnest(ARRAY[next_occurrence_id, parent_id]) FROM tasks_task"
    " WHERE id = ANY(%s::uuid[]))"
)


def _lock_references_of_moved_again(ids: list[UUID]) -> None:
    """FOR KEY SHARE on what these tasks' foreign keys name (next occurrence, parent): see
    _REFERENCED."""
    with _giving_way_to_holders((_REFERENCED, [ids])), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM tasks_task WHERE {_REFERENCED}"
            f" FOR KEY SHARE{_NOWAIT[may_give_way.get()]}",
            [ids],
        )


def _lock_group_references(owner_id: UUID, group: GroupKey, written: Collection[UUID]) -> None:
    """The same, after a group was renumbered (a crowd longer than SPREAD_RUN_LIMIT: rare), for
    the tasks of the group among `written`: the renumbering was the first row version of the
    others, whose unchanged keys PostgreSQL does not check. (For every task of the group, a
    bulk completion gave way to any writer of any of their next occurrences, in another list
    too: review 39f.) No later spread there: the renumbering left a gap after each anchor."""
    if not written:
        return
    referenced = (
        "id IN (SELECT unnest(ARRAY[next_occurrence_id, parent_id]) FROM tasks_task"
        f" WHERE id = ANY(%s::uuid[]) AND {_IN_GROUP_SQL})"
    )
    params = [list(written), owner_id, *group]
    with _giving_way_to_holders((referenced, params)), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM tasks_task WHERE {referenced}"
            f" FOR KEY SHARE{_NOWAIT[may_give_way.get()]}",
            params,
        )


def _count_and_positions_right_after(
    owner_id: UUID, anchors: Sequence[Task], written: Collection[UUID] = ()
) -> tuple[int, dict[UUID, int]]:
    """The owner's task count, locked until the commit, and a free rank right after each
    anchor, inside the anchor's group (one query unless a group has to be renumbered).
    `written`: other tasks this transaction wrote already (see _REFERENCED)."""
    ids = [anchor.pk for anchor in anchors]
    anchor_ids = set(ids)
    written = {pk for pk in written if pk not in anchor_ids}
    references_held: set[UUID] = set()
    owned, successors = _successor_positions(owner_id, ids)
    in_group = defaultdict(list)
    for anchor in anchors:
        in_group[anchor.sibling_group].append(anchor.pk)
    # The ranks a spread moved are applied here: reading every anchor's ranks again after each
    # spread made a cascade over used-up ranks quadratic (bulk completing 500 tasks each with a
    # neighbour right after it: 9.3 s, now 0.7 s). In id order, which is arbitrary in rank:
    # over a long crowd of neighbouring anchors, rank order spreads one gap at a time and
    # pushes the same ranks again and again (500 of them: 16,500 moves from the lowest up, one
    # task moved 103 times; more from the highest down), id order sooner reaches a spread that
    # moves a whole run at once (770-2,140 moves, 0.4 s).
    for anchor in sorted(anchors, key=lambda anchor: anchor.pk):
        if _bisect(*successors[anchor.pk]) is not None:
            continue
        moving: list[UUID] = []
        moved = _spread_after(owner_id, anchor.sibling_group, successors[anchor.pk][0], moving)
        if moved is None:  # the group was renumbered
            _lock_group_references(owner_id, anchor.sibling_group, written)
            owned, successors = _successor_positions(owner_id, ids)
            continue
        again = [pk for pk in moving if pk in written and pk not in references_held]
        if again:
            _lock_references_of_moved_again(again)
            references_held.update(again)
        written.update(pk for pk in moving if pk not in anchor_ids)
        for task_id in in_group[anchor.sibling_group]:
            rank, next_rank = successors[task_id]
            successors[task_id] = (moved.get(rank, rank), moved.get(next_rank, next_rank))
    for anchor in anchors:
        # A spread may have moved the anchor itself (down, or the whole group): a caller that
        # saves it (a completion by PATCH) must write its rank as it is now.
        anchor.position = successors[anchor.pk][0]
    positions = {task_id: _bisect(*successors[task_id]) for task_id in ids}
    if None in positions.values():
        # A next task deleted while the first read waited for the owner's count (a delete
        # takes no group lock): that read's snapshot still had it, the spread's had not, and
        # moved nothing. The count is locked now, so no delete commits before this read again.
        return _count_and_positions_right_after(owner_id, anchors, written)
    return owned, positions


def _bisect(before: int, after: int | None) -> int | None:
    if after is None:
        return before + POSITION_GAP
    if after - before > 1:
        return (before + after) // 2
    return None


def _place_first(task: Task, *, in_group: bool) -> bool:
    """Sets task.position before the other tasks of its group; False when it is first already.
    The caller holds the group lock; `in_group`: the task is in this group now (a reorder)."""
    first = _rank_in_group(_FIRST_OTHER_RANK, task.owner_id, task.sibling_group, task=task.pk)
    if in_group and (first is None or task.position < first):
        return False
    # Ranks may go below zero, so this never needs a renumbering.
    task.position = POSITION_GAP if first is None else first - POSITION_GAP
    return True


# A move's anchor, read under the group lock: its group, its rank and the next rank among the
# other tasks (the one being moved may be right after it). One query: the anchor's row, then
# the successor's rank, read separately, had cost a round trip of their own.
_ANCHOR_AND_NEXT_OTHER_RANK = f"""
    SELECT a.list_id, a.parent_id, a.position, {_next_rank(also="t.id <> %(task)s")}
    FROM tasks_task a
    WHERE a.owner_id = %(owner)s AND a.id = %(anchor)s
"""
# The same read, and in the same statement the move's write when the read leaves it no choice:
# the anchor is another task of the group, the task is not right after it already, and the gap
# after it is not used up. The UPDATE is what task_save() would write of the locked task (its
# other columns are as read, under its lock): the rank _bisect() gives, (a + b) // 2 written
# a + div(b - a, 2), b > a: exact in numeric (a numeric `/ 2` rounds past 16 digits, and a
# bigint sum overflows where Python's does not), the list, version and updated_at.
# Any other case writes nothing here and is decided as before, from the read (a 400, "already
# there", a spread). The write had been a round trip of its own after the read.
_ANCHOR_READ_AND_PLACED = f"""
    WITH anchor AS (
        SELECT a.list_id, a.parent_id, a.position, {_next_rank(also="t.id <> %(task)s")} AS next_rank
        FROM tasks_task a
        WHERE a.owner_id = %(owner)s AND a.id = %(anchor)s
    ),
    placed AS (
        UPDATE tasks_task SET
            list_id = %(list)s::uuid,
            position = CASE WHEN anchor.next_rank IS NULL
                THEN anchor.position::numeric + {POSITION_GAP}
                ELSE anchor.position + div(anchor.next_rank::numeric - anchor.position, 2) END,
            version = %(version)s,
            updated_at = %(now)s
        FROM anchor
        WHERE tasks_task.id = %(task)s AND tasks_task.owner_id = %(owner)s
          AND %(anchor)s::uuid <> %(task)s::uuid
          AND anchor.list_id IS NOT DISTINCT FROM %(list)s::uuid
          AND anchor.parent_id IS NOT DISTINCT FROM %(parent)s::uuid
          AND (anchor.next_rank IS NULL OR anchor.next_rank::numeric - anchor.position > 1)
          AND NOT (%(in_group)s AND anchor.position < %(position)s
                   AND (anchor.next_rank IS NULL OR %(position)s < anchor.next_rank))
        RETURNING tasks_task.position
    )
    SELECT anchor.list_id, anchor.parent_id, anchor.position, anchor.next_rank,
        (SELECT position FROM placed)
    FROM anchor
"""
# What _place_after returns when it wrote the task too (_ANCHOR_READ_AND_PLACED): truthy, as
# "moved".
PLACED_AND_SAVED: Final = "saved"


def _place_after(task: Task, anchor_id: UUID, *, in_group: bool) -> bool | str:
    """Sets task.position right after the anchor, which must be another task of the task's
    group: a 400 otherwise. False when the task is right after it already. The caller holds
    the group lock, so the anchor read here stays where it is; `in_group`: as for
    _place_first. This is the move's only read of the anchor: not the owner's, or gone, it is
    the 400 the serializer's lookup gave (OwnedIdField). PLACED_AND_SAVED: placed, and
    written as task_save() would, with its version and updated_at moved
    (_ANCHOR_READ_AND_PLACED; the caller saves nothing more)."""
    params = {"owner": task.owner_id, "anchor": anchor_id, "task": task.pk}
    now = timezone.now()
    for attempt in range(2):
        with connection.cursor() as cursor:
            if attempt == 0:
                list_id, parent_id = task.sibling_group
                cursor.execute(
                    _ANCHOR_READ_AND_PLACED,
                    {
                        **params,
                        "list": list_id,
                        "parent": parent_id,
                        "in_group": in_group,
                        "position": task.position,
                        "version": task.version + 1,
                        "now": now,
                    },
                )
            else:
                cursor.execute(_ANCHOR_AND_NEXT_OTHER_RANK, params)
            anchor = cursor.fetchone()
        if anchor is None:
            raise ValidationError({"after": [NO_SUCH_TASK]})
        written = anchor[4] if attempt == 0 else None
        if anchor[:2] != task.sibling_group or anchor_id == task.pk:
            raise ValidationError(
                {"after": ["Must be another task of the same list and parent, or null."]}
            )
        anchor_rank, next_other_rank = anchor[2:4]
        if (
            in_group
            and attempt == 0  # after a spread, which may move the task, its rank is stale
            and anchor_rank < task.position
            and (next_other_rank is None or task.position < next_other_rank)
        ):
            if written is not None:  # pragma: no cover - the statement's own condition
                raise AssertionError("a task right after its anchor was written")
            return False
        position = _bisect(anchor_rank, next_other_rank)
        if written is not None:
            if written != position:  # pragma: no cover - the statement computes _bisect()
                raise AssertionError(f"the statement placed the task at {written}, not {position}")
            task.position, task.version, task.updated_at = position, task.version + 1, now
            return PLACED_AND_SAVED
        if position is not None:
            task.position = position
            return True
        if attempt == 0:
            # Opens the gap; the anchor may move down, so it is read again. The task was not
            # right after it, and a spread keeps the order: it is placed, whatever it moved.
            spread = _spread_after(task.owner_id, task.sibling_group, anchor_rank)
            if (
                in_group
                and task.parent_id is not None
                and (spread is None or task.position in spread)
            ):
                _lock_parent_after_spread(task.parent_id)
    raise AssertionError("a spread always opens the gap")  # pragma: no cover


# --- Tags -------------------------------------------------------------------------------------


def _tags_by_key(
    owner_id: UUID, names: Sequence[str], *, to_link: bool
) -> dict[str, tuple[str, Tag | None]]:
    """By key (models.NameKey, the unique index's), in the order of `names`: the first
    of them with that key as a new tag would take it (trimmed), and the owner's tag of that
    key or None; `to_link`: under FOR KEY SHARE (see TAG_LOCKS)."""
    found: dict[str, tuple[str, Tag | None]] = {}
    named_tags = tags_named(owner_id, names, to_link=to_link)
    for name, (key, tag) in zip(names, named_tags, strict=True):
        found.setdefault(key, (composed(trimmed(name)), tag))
    return found


def new_tag_name_error(name: str) -> str | None:
    """Why no tag may newly take this name (made or renamed to), if it may not. A tag named so
    before the rule keeps working: on tasks, in `tag=`, at its URL."""
    if name in UNADDRESSABLE_TAG_NAMES:
        return UNADDRESSABLE_TAG_MESSAGE
    if breaks_one_line(name):
        return CONTROL_CHARACTERS_MESSAGE
    return None


def _new_tag_name_errors(names: Sequence[str], missing: Collection[str]) -> dict[int, list[str]]:
    """Every new name refused (new_tag_name_error), by its index in the request's list, as the
    serializer's item errors are: problems renders {"tags": {2: [...]}} as "Item 2: ...", the
    chip a client marks. A name is new at the first entry that spells it (_tags_by_key)."""
    errors: dict[int, list[str]] = {}
    refused = {name: error for name in missing if (error := new_tag_name_error(name))}
    for index, name in enumerate(names):
        kept = composed(trimmed(name))
        if kept in refused:
            errors[index] = [refused.pop(kept)]
    return errors


def tags_get_or_create(
    *, user: User, names: Sequence[str], carried: Collection[str] = ()
) -> list[Tag]:
    """The caller's tags of these names, one per key (case-insensitively, by the unique index's
    key: models.NameKey), creating the missing ones; a new tag takes the first spelling.
    `carried`: the names of the tags the task to link them to carries already. Read under a
    lock (TAG_LOCKS) unless all of them are among these: the task's own lock keeps a rename of
    a tag it carries from coming between the read and the commit. A name is trimmed unless a
    tag has it as given (models.tags_named)."""
    names = [composed(name) for name in names]
    if not names:
        return []
    to_link = not set(names).issubset(carried)
    found = _tags_by_key(user.pk, names, to_link=to_link)  # one entry per tag, spellings merged
    if len(found) > MAX_TAGS_PER_TASK:
        raise ValidationError({"tags": [too_many_tags(len(found))]})
    missing = [name for name, tag in found.values() if tag is None]
    if errors := _new_tag_name_errors(names, missing):
        raise ValidationError({"tags": errors})
    if missing:
        ensure_tag_room(owned=Tag.objects.filter(owner_id=user.pk).count(), adding=len(missing))
    for _attempt in range(3):
        if not missing:
            return [tag for _, tag in found.values()]
        # ignore_conflicts: a concurrent request may have just created the same tag.
        Tag.objects.bulk_create(
            [Tag(owner=user, name=name) for name in missing], ignore_conflicts=True
        )
        found = _tags_by_key(user.pk, names, to_link=to_link)
        # A tag the read before found may have been deleted or renamed since: made again.
        missing = [name for name, tag in found.values() if tag is None]
    raise ConcurrentChange()


def _bump(queryset, now: datetime, **changes) -> int:
    return queryset.update(version=F("version") + 1, updated_at=now, **changes)


# A plain UPDATE locks its rows in its plan's order: a parent's subtasks off the parent_id
# index come in the order they were inserted (seq scan: physical order), not ROW_LOCK_ORDER.
# Holding the parent and the subtasks read so far, a move of the parent's list waited for one
# whose id sorts first, which a bulk action over two of them (locking them by id) held while it
# waited for one the move held: a deadlock, 1 s (review 39e). Locked first in ROW_LOCK_ORDER
# (all have a parent: parent_id, id), then written: still one statement. `list_id IS DISTINCT
# FROM` is read again on each row as it is locked, as the ORM's exclude() was on the row it
# wrote. Written where the old UPDATE found them, off the parent_id index by the parents' ids,
# among the locked ones (an array, an InitPlan): joined to the locking read instead, an analyzed
# table hashed a parent's 500 subtasks and read the whole table to find them (30,500 rows), and
# with the statistics of an emptied table walked the primary key whole against each; by the
# locked ids alone, it once walked task_updated (id its second column), as review 36f saw.
_BUMP_SUBTASKS_TO_LIST = (
    "UPDATE tasks_task SET version = version + 1, updated_at = %s, list_id = %s"
    " WHERE parent_id = ANY(%s) AND id = ANY(ARRAY(SELECT id FROM tasks_task"
    " WHERE parent_id = ANY(%s) AND list_id IS DISTINCT FROM %s ORDER BY parent_id, id"
    " FOR UPDATE))"
)


def _bump_subtasks_to_list(
    parent_ids: Collection[UUID], now: datetime, list_id: UUID | None
) -> int:
    """Moves the subtasks of these parents to their list (those not in it), their versions
    raised; how many. Locks them in ROW_LOCK_ORDER first, in the same statement."""
    with connection.cursor() as cursor:
        parents = list(parent_ids)
        cursor.execute(_BUMP_SUBTASKS_TO_LIST, [now, list_id, parents, parents, list_id])
        return cursor.rowcount


# TAG_LOCKS: how a tag's rename or delete and the writes linking the tag to tasks keep out of
# each other's way. A write holds its task, then reads the tags it links FOR KEY SHARE
# (models.tags_named; not when the task carries them all already), which waits for a rename of
# one of them to commit and then reads its new name: the write never answers a name that a
# rename is replacing, at a version the rename does not raise (a stale ETag; the concurrency
# audit's repro_rename_link: 27-60 of 100 rounds). A rename or delete locks the tag's tasks
# first (in ROW_LOCK_ORDER, as every write of several tasks), then the tag FOR UPDATE (which
# waits for the writes reading it), then the tasks linked to it meanwhile, whose versions it
# raises with the others'. Taking the tag before the tasks, a rename met every write of one of
# them in the other order and gave way (8 % of renames of a 50-task tag failed with one client
# writing those tasks; 60 % with three). The other order is left in rare shapes only: a task
# linked between the rename's two reads of its tasks and written again at once, a parent's
# write naming the tag of its subtask. There the rename waits at most TAG_LOCK_WAIT for any
# lock, and past that gives way: its transaction ends, every lock let go, and it starts again
# a little later, up to TAG_WRITE_ATTEMPTS times, then a 503. PostgreSQL looks for a deadlock
# in a backend that has waited a second (deadlock_timeout), so the rename mostly gives way
# first; but when it comes to wait 0.8-1 s after the write began to (a bump of tens of
# thousands of tasks is that long), PostgreSQL ends the write instead, which is run again
# (retry.py; a conditional one compared again). Whatever writes a tag's name takes the tag's
# lock first (_locked_tags): the name is no key to PostgreSQL (the unique index is on
# its NameKey), so a bare UPDATE of it would not wait for the writes reading the tag.
TAG_LOCK_WAIT: Final = "200ms"
TAG_WRITE_ATTEMPTS: Final = 5
_Written = TypeVar("_Written")


def _tag_write(write: Callable[[], _Written]) -> _Written:
    """Runs `write` (a rename or delete) in a transaction (a savepoint inside one) where no lock
    is waited for past TAG_LOCK_WAIT, again after a lock it gave way on or a name made
    meanwhile; ConcurrentChange (a 503) when it never got through."""
    for attempt in range(TAG_WRITE_ATTEMPTS):
        try:
            with transaction.atomic(), _lock_waits_at_most(TAG_LOCK_WAIT):
                return write()
        except IntegrityError as error:
            # A tag of the new name was made between the lookup and the save (a task written
            # with it, another rename): it exists now, so the rename becomes a merge into it.
            # Unless it went again before the next lookup: one retry only let the second clash
            # of a storm of renames into one name out as a 500 (16 in 118,000 requests).
            if "tag_name_unique_per_owner" not in str(error):
                raise
        except OperationalError as error:
            if not is_concurrent_change(error):  # lock_timeout (55P03), a deadlock
                raise
        # Apart at random, longer each time, so that the writes in the way finish first.
        time.sleep(random.uniform(0.01, 0.03) * (attempt + 1))
    raise ConcurrentChange()


@contextmanager
def _lock_waits_at_most(timeout: str) -> Iterator[None]:
    """lock_timeout for the statements inside, the one before back after them (when they end
    in a savepoint, the transaction around it goes on)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)",
            [timeout],
        )
        before = cursor.fetchone()[0]
    yield
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [before])


def tag_rename(*, user: User, tag: Tag, name: str) -> Tag:
    """Renames a tag; into an existing tag of that name (any case), the two are merged."""
    return _tag_write(lambda: _tag_rename(user, tag, name))


# A tag's tasks locked in ROW_LOCK_ORDER: in the UPDATE's own order, a rename or delete and a
# bulk action on the same tasks deadlocked (~530 of the 666 deadlocks of the concurrency audit's
# 118,000 requests; each cost ~1 s before PostgreSQL broke it, and some bulk requests a 503
# after three). FOR NO KEY UPDATE, what the UPDATE takes: FOR UPDATE also waited for a write
# only checking a task it links to (a new subtask's parent, FOR KEY SHARE).
#
# The tag's tasks are read first (its links, by the tag_id index), then locked and bumped by
# that array of ids, with the owner: the planner sees the array's length, and whatever the
# statistics reads at most the owner's tasks once. Joined in one statement, with those of
# tables analyzed while empty (one row each, to the planner), it read the owner's tasks again
# for each link: a tag on 5,000 tasks of a 100,000-task account, 43 s for the lock and over
# 60 s for the bump (review 36f, against 0.04 s and 0.65 s). The ids come back as one array,
# with custom plans for the rest of the transaction: a statement prepared on the connection
# (DB_PREPARED_STATEMENTS) that PostgreSQL planned once for any array (a generic plan) knows
# no length and hashes none: with those statistics it compared each of the owner's tasks with
# each id (2.5-3.5 s a statement for 4,000 ids).
_CUSTOM_PLANS = "set_config('plan_cache_mode', 'force_custom_plan', true)"
# And back to what it was in the last of them (review 37e): the COMMIT runs the deferred
# foreign-key checks (and the search table's cascade), one query per deleted task and key, or
# per merged link: each custom-planned, they made a list delete of 4,086 tasks with fresh
# statistics 405 -> 795 ms (its COMMIT 92 -> 410 ms).
_USUAL_PLANS = (
    "set_config('plan_cache_mode',"
    " (SELECT reset_val FROM pg_settings WHERE name = 'plan_cache_mode'), true)"
)
_TAG_LINKS = f"SELECT {_CUSTOM_PLANS}, ARRAY(SELECT task_id FROM tasks_task_tags WHERE tag_id = %s)"
_LOCK_TAGGED = """
    SELECT count(*) FROM (
        SELECT id FROM tasks_task WHERE owner_id = %(owner)s AND id = ANY(%(ids)s::uuid[])
        ORDER BY parent_id NULLS FIRST, id FOR NO KEY UPDATE
    ) AS locked
"""  # no ids sent back
_BUMP_TAGGED = f"""
    WITH bumped AS (
        UPDATE tasks_task SET version = version + 1, updated_at = %(now)s
        WHERE owner_id = %(owner)s AND id = ANY(%(ids)s::uuid[])
    )
    SELECT {_USUAL_PLANS}
"""


def _tagged(tag: Tag) -> set[UUID]:
    with connection.cursor() as cursor:
        cursor.execute(_TAG_LINKS, [tag.pk])
        return set(cursor.fetchone()[1])


def _lock_tagged(owner_id: UUID, tag: Tag, ids: set[UUID] | None = None) -> set[UUID]:
    """Locks the tag's tasks (or these of them) in ROW_LOCK_ORDER; their ids."""
    ids = _tagged(tag) if ids is None else ids
    if ids:
        with connection.cursor() as cursor:
            cursor.execute(_LOCK_TAGGED, {"owner": owner_id, "ids": list(ids)})
    return ids


def _bump_tagged(owner_id: UUID, tag: Tag, now: datetime, locked: set[UUID]) -> None:
    """Raises the version of the tag's tasks: those _lock_tagged() holds (`locked`), and any
    linked since (the tag's lock waited for their writes to commit), locked first as they."""
    ids = _tagged(tag)
    if ids - locked:
        _lock_tagged(owner_id, tag, ids - locked)
    if ids:
        with connection.cursor() as cursor:
            cursor.execute(_BUMP_TAGGED, {"owner": owner_id, "ids": list(ids), "now": now})


_MERGE_TAG_LINKS = (
    "INSERT INTO tasks_task_tags (task_id, tag_id) SELECT task_id, %s FROM tasks_task_tags "
    "WHERE tag_id = %s ON CONFLICT DO NOTHING"
)


def _tag_rename(user: User, tag: Tag, name: str) -> Tag:
    now = timezone.now()
    locked: set[UUID] = set()
    if name != tag.name:  # else nothing changes (or a 404): no task to hold
        locked = _lock_tagged(user.pk, tag)
    tag, target = _locked_tags(user, tag, name)
    if target is None and tag.name == name:
        return tag  # nothing changes, so neither do its tasks' versions
    _bump_tagged(user.pk, tag, now, locked)
    if target is None:
        tag.name = name
        tag.save(update_fields=["name"])
        return tag
    # In SQL: read into Python and written back with bulk_create, 100,000 links took 88 MB of
    # the worker's memory.
    with connection.cursor() as cursor:
        cursor.execute(_MERGE_TAG_LINKS, [target.pk, tag.pk])
    tag.delete()
    return target


def tag_locked_to_rename(tag: Tag) -> Tag | None:
    """The tag as it is now, locked as its rename locks it (its tasks, then the tag: see
    TAG_LOCKS) until the commit, for a caller that compares it before renaming it in the same
    transaction (the admin's form); None if it is gone."""
    _lock_tagged(tag.owner_id, tag)
    return Tag.objects.select_for_update().filter(pk=tag.pk).first()


def tag_delete(*, user: User, tag: Tag, by_name: bool = True) -> None:
    """Deletes a tag: it disappears from every task (whose version grows). `by_name`: the
    caller named it by its name (the API), so a tag renamed meanwhile is a 404; the admin names
    its row."""
    _tag_write(lambda: _tag_delete(user, tag, by_name=by_name))


def _tag_delete(user: User, tag: Tag, *, by_name: bool) -> None:
    locked = _lock_tagged(user.pk, tag)
    tag, _ = _locked_tags(user, tag, None, by_name=by_name)
    _bump_tagged(user.pk, tag, timezone.now(), locked)
    tag.delete()


TAG_NOT_FOUND: Final = "No tag of this name."


def _locked_tags(
    user: User, tag: Tag, name: str | None, *, by_name: bool = True
) -> tuple[Tag, Tag | None]:
    """The tag as it is now, and the other tag named `name` (a rename's merge target) if there
    is one, both FOR UPDATE (see TAG_LOCKS), taken in the order of their ids so that two
    renames into each other wait rather than deadlock. A rename racing a delete is one after
    the other, never a save of a row that is gone. A 404 when the tag was deleted or renamed
    meanwhile, as the request named it by its name."""
    for _attempt in range(3):
        target = None
        if name is not None:
            target = Tag.objects.owned_by(user).filter(named(name)).exclude(pk=tag.pk).first()
        wanted = [tag.pk] if target is None else [tag.pk, target.pk]
        locked = {
            row.pk: row
            for row in Tag.objects.filter(pk__in=wanted).order_by("pk").select_for_update()
        }
        current = locked.get(tag.pk)
        if current is None or not (
            not by_name or current.name == tag.name or _named(current.pk, tag.name)
        ):
            raise NotFound(TAG_NOT_FOUND)
        if target is None:
            return current, None
        found = locked.get(target.pk)
        if found is not None and (found.name == target.name or _named(found.pk, name)):
            return current, found
        # The target was deleted or renamed before its lock: look for one of that name again.
    raise ConcurrentChange()


def _named(tag_id: UUID, name: str) -> bool:
    """Whether the tag is still of this name, by the unique index's key (models.NameKey)."""
    return Tag.objects.filter(pk=tag_id).filter(named(name)).exists()


# --- Lists ------------------------------------------------------------------------------------

LIST_NAME_TAKEN: Final = "You already have a list with this name."


def _list_save(
    task_list: TaskList, update_fields: Sequence[str] | None = None, *, savepoint: bool = True
) -> TaskList:
    """`savepoint=False`: inside a transaction that the 400 (or any error) out of this rolls
    back whole, no savepoint of its own (the name's clash is turned into the 400, not gone on
    from)."""
    try:
        with transaction.atomic(savepoint=savepoint):
            task_list.save(update_fields=update_fields)
    except IntegrityError as error:
        # Two requests racing past the serializer's check: still a 400, never a 500.
        if "tasklist_name_unique_per_owner" in str(error):
            raise ValidationError({"name": [LIST_NAME_TAKEN]}) from error
        raise
    return task_list


def list_create(
    *, user: User, name: str, color: str | None, position: int | None, savepoint: bool = True
) -> TaskList:
    """`savepoint=False`: inside a transaction that any error out of this rolls back whole
    (the API's: its view's own, or an idempotent request's), no savepoints of its own."""
    with transaction.atomic(savepoint=savepoint):
        # Concurrent creates take turns: each counts the lists of the others for the cap, and
        # a new list without a position is last on its own (they all read the same last
        # position before).
        lock_owner(user.pk)
        lists = TaskList.objects.owned_by(user).aggregate(count=Count("id"), last=Max("position"))
        ensure_list_room(owned=lists["count"])
        if position is None:
            last = lists["last"]
            if last is not None and last > LIST_POSITION_MAX - POSITION_GAP:
                last = _renumber_lists(user.pk)  # no room after the last one
            position = POSITION_GAP if last is None else last + POSITION_GAP
        return _list_save(
            TaskList(owner=user, name=name, color=color, position=position), savepoint=savepoint
        )


def _renumber_lists(owner_id: UUID) -> int:
    """Spreads the owner's lists over 1024, 2048, ... in their order (each a new version: its
    body changes), so that one more fits after them within the positions a client may send
    back (LIST_POSITION_MAX). The new last position."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE tasks_tasklist SET position = ranked.rank * %(gap)s,
                version = version + 1, updated_at = %(now)s
            FROM (
                SELECT id, row_number() OVER (ORDER BY position, id) AS rank
                FROM tasks_tasklist WHERE owner_id = %(owner)s
            ) AS ranked
            WHERE tasks_tasklist.id = ranked.id
            """,
            {"gap": POSITION_GAP, "now": timezone.now(), "owner": owner_id},
        )
        return cursor.rowcount * POSITION_GAP


def list_update(*, task_list: TaskList, data: dict[str, Any]) -> TaskList:
    """Applies validated fields to the list as it is under its row lock, so concurrent writes
    apply one after the other: a PATCH of the name keeps a color written meanwhile, and each
    change is a version of its own. A list deleted meanwhile is a 404 (a save of the instance
    read before would have inserted it again)."""
    with transaction.atomic():
        current = TaskList.objects.select_for_update().filter(pk=task_list.pk).first()
        if current is None:
            raise NotFound()
        changed = [field for field, value in data.items() if getattr(current, field) != value]
        if changed:
            for field in changed:
                setattr(current, field, data[field])
            current.version += 1
            _list_save(current, update_fields=[*changed, "version", "updated_at"])
    return current


def lock_list_tasks(*, user: User, task_list: TaskList, delete_tasks: bool) -> None:
    """Locks the tasks list_delete writes, in ROW_LOCK_ORDER: the list's, and with delete_tasks
    the previous occurrences elsewhere that the delete unlinks (review 34f). Before the list's
    own row, as list_delete and the account's deletion take them: a conditional DELETE, which
    locks the row to compare its version, calls it first (review 35a)."""
    if delete_tasks:
        lock_tasks_to_delete(user.pk, "list", list=task_list.pk)
    else:
        list(
            Task.objects.owned_by(user)
            .filter(list=task_list)
            .select_for_update()
            .order_by(*ROW_LOCK_ORDER)
            .values_list("pk", flat=True)
        )


def list_delete(
    *, user: User, task_list: TaskList, delete_tasks: bool, tasks_locked: bool = False
) -> bool:
    """Deletes a list; its tasks go to the end of the Inbox unless delete_tasks. Whether the
    list was there to delete (the admin's history says so only then). `tasks_locked`: the
    caller, in this transaction, took lock_list_tasks' locks already."""
    with transaction.atomic():
        inbox: GroupKey = (None, None)
        # Rows first, then groups, in the order every other writer takes them: no deadlock
        # with a concurrent move of one of these tasks. A create or move into the list takes
        # its group's lock too: it commits before the statements below read the list's tasks,
        # or waits and then fails on the deleted list (a 503 to retry). Without the lock, a
        # task committed between them was left to Django's SET_NULL: onto an Inbox task's
        # rank (a 500), or kept although `?tasks=delete` said otherwise.
        if not tasks_locked:
            lock_list_tasks(user=user, task_list=task_list, delete_tasks=delete_tasks)
        _lock_groups(user.pk, [inbox, (task_list.pk, None)])
        if delete_tasks:
            _delete_tasks(user.pk, "list", timezone.now(), list=task_list.pk)
            return _deleted(task_list)
        start = _end_position(user.pk, inbox) - POSITION_GAP
        with connection.cursor() as cursor:
            # Top-level tasks keep their order, after the Inbox's last task.
            cursor.execute(
                """
                UPDATE tasks_task SET list_id = NULL, position = %s + moved.rank * %s,
                    version = version + 1, updated_at = %s
                FROM (
                    SELECT id, row_number() OVER (ORDER BY position, id) AS rank
                    FROM tasks_task
                    WHERE owner_id = %s AND list_id = %s AND parent_id IS NULL
                ) AS moved
                WHERE tasks_task.id = moved.id
                """,
                [start, POSITION_GAP, timezone.now(), user.pk, task_list.pk],
            )
        # Subtasks follow their parent; their ranks are inside the parent, so they stay.
        _bump(Task.objects.owned_by(user).filter(list=task_list), timezone.now(), list=None)
        return _deleted(task_list)


def _deleted(task_list: TaskList) -> bool:
    """Deletes the list's row; whether it was there (not deleted by a concurrent request)."""
    _, per_model = task_list.delete()
    return per_model.get(TaskList._meta.label, 0) > 0


# --- Tasks ------------------------------------------------------------------------------------


def _series_start(task: Task) -> Any:
    return task.recurrence_start or task.due_date


def _first_of_series(task: Task, due_date: Any) -> bool:
    """Whether `task`, due on `due_date` as stored, is the first task of its series, the one
    whose due date the series starts at. A copy moved onto that date is not: no date tells
    them apart, the task that made the copy does, when it is of the same series (same start,
    same rule); a copy given a rule of its own since starts a series of its own. An index
    lookup, run only when a rule or due date changes. A copy whose maker was deleted counts as
    first, as before."""
    if task.recurrence_start is None:
        return True
    if task.recurrence_start != due_date:
        return False
    maker = Task.objects.filter(next_occurrence_id=task.pk).values_list(
        "recurrence", "recurrence_start", "due_date"
    )
    return not any(
        (start or due) == task.recurrence_start and recurrence.same_series(rule, task.recurrence)
        for rule, start, due in maker
    )


def never_repeats(task: Task | None, changes: dict[str, Any]) -> str | None:
    """Why a write would give a task a recurrence rule that never repeats after the due date
    its series starts at, or None. Checked only where this write starts the series there, as
    task_update does: a new task, a new rule, or the first task of its series moved; a later
    task of a series keeps the series' start (its phase), so its own due date says nothing.
    `changes`: the write's fields (a rule and a due date are given, or the task's stand)."""
    rule = changes.get("recurrence", getattr(task, "recurrence", None))
    due_date = changes.get("due_date", getattr(task, "due_date", None))
    if rule is None or due_date is None:
        return None
    if (
        task is not None
        and recurrence.same_series(changes.get("recurrence", task.recurrence), task.recurrence)
        and not (
            ("recurrence" in changes or "due_date" in changes)
            and _first_of_series(task, task.due_date)
        )
    ):
        return None
    if recurrence.repeats(rule, due_date):
        return None
    never = f"This rule never repeats after the due date {due_date.isoformat()}"
    return f"{never}: no later date matches all of its parts."


_COPY_TAGS = (
    "INSERT INTO tasks_task_tags (task_id, tag_id) SELECT pair.copy, link.tag_id "
    "FROM tasks_task_tags link "
    "JOIN unnest(%s::uuid[], %s::uuid[]) AS pair(original, copy) ON link.task_id = pair.original"
)
_LINK_COPIES = (
    "UPDATE tasks_task SET next_occurrence_id = pair.copy "
    "FROM unnest(%s::uuid[], %s::uuid[]) AS pair(original, copy) "
    "WHERE tasks_task.id = pair.original"
)


def _spawn_next_occurrences(
    *,
    user: User,
    tasks: Sequence[Task],
    unsaved: Sequence[Task] = (),
    written: Collection[UUID] = (),
) -> None:
    """Creates the next occurrence of each completed recurring task, right after it.

    Once per task: a task whose `next_occurrence` is set never gets a second copy. Constant
    queries whatever the number of tasks. `unsaved` tasks (among `tasks`) are saved here, with
    their link to their copy, in the copies' statement when there are copies. `written`: the
    other tasks the transaction wrote already (completed with no rule: see _REFERENCED).
    """
    today = recurrence.today_in(user.timezone)
    due_dates = {}
    for task in tasks:
        if not task.recurrence or task.next_occurrence_id is not None or task.due_date is None:
            continue
        due = recurrence.next_due_date(
            rule=task.recurrence,
            series_start=_series_start(task),
            current_due=task.due_date,
            today=today,
            due_time=task.due_time,  # a UTC UNTIL bounds the copy's local date and time
            tz_name=user.timezone,
        )
        if due is not None:  # None: COUNT or UNTIL is spent, the series ends here
            due_dates[task.pk] = due
    originals = [task for task in tasks if task.pk in due_dates]
    if not originals:
        for task in unsaved:
            task_save(task)
        return
    written = [*(task.pk for task in tasks), *written]
    # One recurring task completed and saved here (a PATCH's completion, the bench's): its
    # group lock and the owner's count in one statement (as a create's), and its next
    # occurrence's rank read by the copy's own statement (_placed_right_after), whose snapshot
    # comes after that lock. A gap used up after it writes nothing there: ranked as below.
    placed_by_sql = len(originals) == 1 and len(unsaved) == 1 and unsaved[0] is originals[0]
    # Ranks are picked under the group lock like every other writer's: a create at the end of
    # the same group could otherwise pick the same rank and fail on the unique constraint.
    if placed_by_sql:
        owned = _lock_group_and_count(user.pk, originals[0].sibling_group)
        positions = {originals[0].pk: 0}  # the statement's placeholder: it reads the rank
    else:
        _lock_groups(user.pk, [task.sibling_group for task in originals])
        # The completed tasks that get no copy (their next occurrence made before, or no rule
        # left while their next occurrence stays) are written.
        owned, positions = _count_and_positions_right_after(user.pk, originals, written=written)
    # Each copy is a new task: past the cap by at most an allowance (else completing recurring
    # tasks grew an account without bound, up to 500 tasks a request).
    ensure_room(
        owned=owned,
        adding=len(originals),
        allowance=COMPLETION_ALLOWANCE,
        before="completing recurring tasks (each next occurrence is a new task)",
    )
    copies = [
        Task(
            id=uuid.uuid4(),
            owner=user,
            title=task.title,
            description=task.description,
            priority=task.priority,
            list_id=task.list_id,
            parent_id=task.parent_id,
            due_date=due_dates[task.pk],
            due_time=task.due_time,
            recurrence=task.recurrence,
            recurrence_start=_series_start(task),
            position=positions[task.pk],
        )
        for task in originals
    ]
    # The copies of originals known to have no tag have none to copy.
    tagged = [
        (task, copy) for task, copy in zip(originals, copies, strict=True) if task.tag_names != []
    ]
    for task, copy in zip(originals, copies, strict=True):
        task.next_occurrence = copy
    unsaved_ids = {task.pk for task in unsaved}
    links = [
        (original.pk, copy.pk)
        for original, copy in zip(originals, copies, strict=True)
        if original.pk not in unsaved_ids
    ]

    if placed_by_sql:
        original, copy = originals[0], copies[0]
        with connection.cursor() as cursor:
            cursor.execute(*_placed_right_after(original, copy, tagged=bool(tagged)))
            row = cursor.fetchone()
        if row is not None:
            copy.position = row[0]
            return
        # The gap after it is used up (or its rank is not the one it is saved with): nothing
        # written. Ranked as any other completion's copy.
        _, positions = _count_and_positions_right_after(user.pk, originals, written=written)
        copy.position = positions[original.pk]
    # The copies, their tags, the originals' links to them and the unsaved tasks' own UPDATE
    # in one statement, whatever the number of tasks (the ORM's select + bulk_create and
    # bulk_update cost ~4 ms of CPU; then a statement each, a round trip each). Each part
    # reads the statement's snapshot: the tags are the originals', and the links' foreign key
    # is checked at the commit.
    parts: list[tuple[str, list]] = []
    if len(copies) <= COPIES_PER_STATEMENT:
        parts.append(task_insert_sql(copies))
    else:  # PostgreSQL takes 65,535 parameters a statement: the ORM inserts them in batches
        Task.objects.bulk_create(copies)
    if tagged:
        pairs = [[original.pk for original, _ in tagged], [copy.pk for _, copy in tagged]]
        parts.append((_COPY_TAGS, pairs))
    if links:
        parts.append((_LINK_COPIES, [list(ids) for ids in zip(*links, strict=True)]))
    parts += [task_update_sql(task) for task in unsaved]
    # Never empty: there is an original, and each has a link part or, among `unsaved`, its UPDATE.
    *first, (sql, params) = parts
    if first:
        ctes = ", ".join(f"part{n} AS ({part_sql})" for n, (part_sql, _) in enumerate(first))
        sql = f"WITH {ctes} {sql}"
        params = [*(value for _, part_params in first for value in part_params), *params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# The rank right after a completed task, where its next occurrence goes, read by the copy's own
# statement (_placed_right_after): as _bisect() of the task's rank and the next one in its group
# (one index lookup, _next_rank_in_shape), (a + b) // 2 written a + div(b - a, 2) in numeric
# (exact; a bigint sum may overflow where Python's does not). No row when the gap after it is
# used up, or its rank is not the one the statement saves it with (it is locked: never seen):
# the statement then writes nothing.
_SLOT_AFTER = """slot AS (
        SELECT (CASE WHEN n.next_rank IS NULL THEN n.position::numeric + {gap}
                ELSE n.position + div(n.next_rank::numeric - n.position, 2) END)::bigint AS position
        FROM (
            SELECT a.position, {next_rank} AS next_rank
            FROM tasks_task a WHERE a.id = %s AND a.owner_id = %s AND a.position = %s
        ) n
        WHERE n.next_rank IS NULL OR n.next_rank::numeric - n.position > 1
    )"""


def _placed_right_after(original: Task, copy: Task, tagged: bool) -> tuple[str, list]:
    """(SQL, parameters): the one copy's INSERT, its tags (`tagged`) and the original's UPDATE
    in one statement that writes the copy at the rank right after the original (_SLOT_AFTER),
    all of them or, the gap used up, none; RETURNING that rank. The caller holds the group
    lock, taken in an earlier statement: this one's snapshot sees every rank written under it
    before."""
    list_id, parent_id = original.sibling_group
    slot = _SLOT_AFTER.format(
        gap=POSITION_GAP, next_rank=_next_rank_in_shape(list_id is not None, parent_id is not None)
    )
    head, values, insert_params = task_insert_ranked_by(copy, "slot.position", [])
    ctes = [slot, f"copied AS ({head} SELECT {values} FROM slot)"]
    params = [original.pk, original.owner_id, original.position, *insert_params]
    if tagged:
        ctes.append(f"tags_copied AS ({_COPY_TAGS} WHERE EXISTS (SELECT FROM slot))")
        params += [[original.pk], [copy.pk]]
    update, update_params = task_update_sql(original)
    sql = (
        f"WITH {', '.join(ctes)} {update} AND EXISTS (SELECT FROM slot)"
        " RETURNING (SELECT position FROM slot)"
    )
    return sql, [*params, *update_params]


def _cascade_completion(
    *,
    user: User,
    parent_ids: Sequence[UUID],
    completing: int,
    now: datetime,
    held: bool = False,
) -> tuple[list[Task], list[UUID]]:
    """Completes the open subtasks of these parents, among the `completing` tasks that the
    request completes; returns the recurring ones (completed: their next occurrences follow;
    a plain subtask needs no instance), and the ids of all it completed. A 409 when those tasks
    and the subtasks are more than one request completes (ensure_completion_size): the UPDATE
    stops one past the bound, so its cost is bounded too. `held`: the caller locked them all
    already (a bulk complete's _LOCKED_WITH_OPEN_SUBTASKS), so another writer holds only one
    that opened since that statement's snapshot (reopened: a reopen locks the subtask alone;
    a recurring sibling's next occurrence committed while the statement waited for the parent).
    It may sort before a named subtask held here, and a bulk action holding it waited for that
    one: a deadlock, 1 s (review 40e). So NOWAIT, giving way (NeighboursHeld): the request runs
    again, and its snapshot sees the subtask open."""
    if not parent_ids:
        return [], []
    columns = loaded_columns(Task)
    room = MAX_COMPLETED_PER_REQUEST - completing
    nowait = held and may_give_way.get()
    holders = ("parent_id = ANY(%s::uuid[]) AND NOT completed", [list(parent_ids)])
    giving_way = _giving_way_to_holders(holders) if nowait else nullcontext()
    with giving_way, connection.cursor() as cursor:
        # One statement for any number of parents (the ORM's select, then its update, cost a
        # round trip and ~2 ms of CPU each). Picked FOR UPDATE: a subtask completed or moved
        # out while this waits for its lock is checked again and passed over for the next one,
        # so the count and the rows are true. In ROW_LOCK_ORDER: off the parent_id index (its
        # plan on an analyzed table), a parent's subtasks came in the order they were
        # inserted, and a bulk action over two of them (which locks them by id) deadlocked
        # with it, 1 s (review 39d). The picked ids in an array (an InitPlan, run once: `id
        # IN (SELECT ... LIMIT)` read them again for each open subtask, 17 s for 40,000),
        # written where they are found, off the parent_id index by the parents' ids. Joined
        # to the picked ids (`FROM (SELECT ...) AS picked`), an analyzed table hashed them and
        # read the whole table (500 subtasks), and under the statistics of an emptied table
        # a nested loop read every open task and ran the locking read again for each: 20
        # subtasks among 30,000 tasks 60-310 ms, 500 1.3-7.4 s, 5,000 past 30 s; this way
        # 1.0, 23 and 77-117 ms (review 39h; _BUMP_SUBTASKS_TO_LIST's join did the same).
        cursor.execute(
            "UPDATE tasks_task SET completed = true, completed_at = %s, updated_at = %s, "
            "version = version + 1 WHERE parent_id = ANY(%s) AND NOT completed "
            "AND id = ANY(ARRAY(SELECT id FROM tasks_task WHERE owner_id = %s "
            "AND parent_id = ANY(%s) AND NOT completed ORDER BY parent_id, id LIMIT %s "
            f"FOR UPDATE{_NOWAIT[nowait]})) RETURNING {', '.join(columns)}",
            [now, now, parent_ids, user.pk, parent_ids, max(room, 0) + 1],
        )
        rows = cursor.fetchall()
    ensure_completion_size(completing=completing + len(rows), most=MAX_COMPLETED_PER_REQUEST)
    rule, pk = columns.index("recurrence"), columns.index("id")
    recurring = [
        Task.from_db(connection.alias, columns, row) for row in rows if row[rule] is not None
    ]
    return recurring, [row[pk] for row in rows]


def _after_completion(
    *,
    user: User,
    tasks: Sequence[Task],
    now: datetime,
    unsaved: Sequence[Task] = (),
    subtasks_written: bool = False,
) -> None:
    """What follows tasks becoming completed: their subtasks too, then recurrences; `unsaved`
    tasks are saved with their next occurrences (_spawn_next_occurrences). `subtasks_written`:
    this transaction wrote the subtasks already (moved along to their parent's new list)."""
    parent_ids = [
        task.pk
        for task in tasks
        # None: not known; task_to_write() knows.
        if task.parent_id is None and task.has_open_subtasks is not False
    ]
    subtasks, cascaded = _cascade_completion(
        user=user, parent_ids=parent_ids, completing=len(tasks), now=now
    )
    if subtasks_written and cascaded:
        # Their completion is their second row version: PostgreSQL checks their foreign keys
        # at the COMMIT, locking a next occurrence held by its own write (taken out from
        # under the parent, that write waits for the group held here): a deadlock, 1 s
        # (review 40b). Locked now, NOWAIT, giving way (see _REFERENCED).
        _lock_references_of_moved_again(cascaded)
    _spawn_next_occurrences(user=user, tasks=[*tasks, *subtasks], unsaved=unsaved, written=cascaded)


# A task's new parent, read again under a lock kept until the commit, with whether the task has
# subtasks. FOR KEY SHARE waits for the FOR UPDATE that every writer of a task's parent or list
# takes first (task_to_write, the bulk actions, list_delete) and keeps them out until the
# commit, so the checks hold until then; the foreign key takes the same lock at the write
# anyway, this takes it before the checks. The subtasks: a write giving the task one holds this
# lock on the task until its commit, and the caller's FOR UPDATE of the task waited for that.
_PARENT_LOCKED = """
    SELECT p.parent_id, p.list_id, EXISTS (SELECT 1 FROM tasks_task s WHERE s.parent_id = %(task)s)
    FROM tasks_task p WHERE p.owner_id = %(owner)s AND p.id = %(parent)s
    FOR KEY SHARE OF p
"""


def _place_under_parent(task: Task, *, list_given: bool) -> None:
    """Puts a task that gets a new parent into the parent's list, checking the subtask rules
    against the parent locked (_PARENT_LOCKED): the serializer checked them against a snapshot
    that a concurrent write may have changed since (a 400 like the serializer's then). A list
    given with the parent must still be the parent's; none given, the task follows it."""
    with connection.cursor() as cursor:
        cursor.execute(
            _PARENT_LOCKED, {"owner": task.owner_id, "parent": task.parent_id, "task": task.pk}
        )
        row = cursor.fetchone()
    if row is None:  # deleted meanwhile
        raise ValidationError({"parent": [NO_SUCH_TASK]})  # as the serializer's
    grandparent_id, list_id, has_subtasks = row
    if grandparent_id is not None:
        raise ValidationError({"parent": [PARENT_IS_SUBTASK]})
    if has_subtasks:
        raise ValidationError({"parent": [HAS_SUBTASKS]})
    if list_given and task.list_id != list_id:
        raise ValidationError({"list": [NOT_PARENTS_LIST]})
    task.list_id = list_id


@contextmanager
def _row_for_write(task: Task, *, locked: bool, completing: bool = False) -> Iterator[Task]:
    """The task under its row lock, in a transaction, so concurrent writers apply one after the
    other: re-read by task_to_write() in a new transaction (or savepoint), or, when `locked`,
    `task` itself, which the caller read with task_to_write() in the transaction this runs in
    (no re-read, and no savepoint: three statements fewer)."""
    if locked and not connection.in_atomic_block:
        raise TransactionManagementError("A task read under its lock is read in a transaction.")
    with transaction.atomic(savepoint=not locked):
        if locked:
            yield task
            return
        current = task_to_write(task.owner_id, task.pk, completing=completing)
        if current is None:
            raise Task.DoesNotExist("The task was deleted meanwhile.")
        yield current


def task_create(*, user: User, data: dict[str, Any], savepoint: bool = True) -> Task:
    """Creates a task at the end of its group; `data` is validated (TaskSerializer).
    `savepoint=False`: inside a transaction that any error of this one rolls back whole (an
    idempotent request's), no savepoint of its own."""
    with transaction.atomic(savepoint=savepoint):
        # Before the group lock and the count (see the top of this module): a tag of the same
        # name created by a concurrent update is waited for while holding neither.
        tags = tags_get_or_create(user=user, names=data.pop("tags", []))
        completed = data.pop("completed", False)
        task = Task(owner=user, **{key: data[key] for key in WRITABLE_FIELDS if key in data})
        if task.parent_id is not None:
            # After the tags, before the group lock (whose key is the parent's list).
            _place_under_parent(task, list_given="list" in data)
        if task.recurrence:
            task.recurrence_start = task.due_date
        now = timezone.now()
        if completed:
            task.mark_completed(now)
        ensure_room(owned=_lock_group_and_count(user.pk, task.sibling_group))
        task.tag_names = [tag.name for tag in tags]  # its answer's (written_task_data)
        task.position = 0  # the INSERT's placeholder: PostgreSQL reads the rank it takes
        sql, params = _insert_at_group_end(task)
        if tags:
            # A new task has no tags yet: its links go in the task's own statement, the same
            # for any number of tags (tags.set() would first read them, twice; bulk_create cost
            # ~0.6 ms of CPU; an INSERT of their own, a round trip).
            sql = (
                f"WITH new_task AS ({sql}) INSERT INTO tasks_task_tags (task_id, tag_id) "
                "SELECT %s, unnest(%s::bigint[]) RETURNING (SELECT position FROM new_task)"
            )
            params += [task.pk, [tag.pk for tag in tags]]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            task.position = cursor.fetchone()[0]
        if completed:
            _spawn_next_occurrences(user=user, tasks=[task])
        return task


def task_update(*, task: Task, user: User, data: dict[str, Any], locked: bool = False) -> Task:
    """Applies validated fields; a change of list or parent moves the task to the end of its
    new group (subtasks follow their parent's list), a change of `completed` completes or
    reopens it. `version` grows by one when anything changed. `locked`: `task` was read under
    its row lock in the transaction this runs in, so it is not read again, and that transaction
    is the write's (_row_for_write)."""
    completes = data.get("completed") is True  # its parent locked first (task_to_write)
    with _row_for_write(task, locked=locked, completing=completes) as current:
        old_group, old_rule, old_due = current.sibling_group, current.recurrence, current.due_date
        changed = False
        for field in WRITABLE_FIELDS:
            if field not in data:
                continue
            if field in ("list", "parent"):  # compare ids: no query for the related row
                differs = getattr(current, f"{field}_id") != getattr(data[field], "pk", None)
            else:
                differs = getattr(current, field) != data[field]
            if differs:
                setattr(current, field, data[field])
                changed = True
        # Only a new parent is read again: a subtask staying under its parent is moved along by
        # the parent's writers, which lock it (and see it) first.
        if current.parent_id not in (None, old_group[1]):
            _place_under_parent(current, list_given="list" in data)
        if current.recurrence is None:
            current.recurrence_start = None
        elif (
            not recurrence.same_series(current.recurrence, old_rule)
            or current.recurrence_start is None
            or (current.due_date != old_due and _first_of_series(current, old_due))
        ):
            # Another series (not the same rule in other words, nor only COUNT or UNTIL
            # changed), or the first task of its series moved: the series starts at its due
            # date (COUNT is counted from there).
            current.recurrence_start = current.due_date

        now = timezone.now()
        completing = data.get("completed") is True and not current.completed
        reopening = data.get("completed") is False and current.completed
        if completing:
            current.mark_completed(now)
        elif reopening:
            current.mark_open()
        changed = changed or completing or reopening

        if "tags" in data:
            tags = tags_get_or_create(user=user, names=data["tags"], carried=current.tag_names)
            names = [tag.name for tag in tags]  # as stored: one name, one tag of the owner's
            if set(names) != set(current.tag_names):
                current.tags.set(tags)
                current.tag_names = names
                changed = True

        regrouped = current.sibling_group != old_group
        if regrouped:
            _lock_groups(user.pk, [old_group, current.sibling_group])
            current.position = _end_position(user.pk, current.sibling_group)
        if changed:
            current.version += 1
        # The next occurrence goes right after the task as stored. While it stays in its group,
        # the task's own UPDATE writes the link to the copy too, in the copy's statement (a
        # second UPDATE of the row cost a row version and an entry in every index; a statement
        # of its own, a round trip).
        if completing and not regrouped:
            _after_completion(user=user, tasks=[current], now=now, unsaved=[current])
        elif changed:
            task_save(current)
        subtasks_moved = current.list_id != old_group[0] and current.parent_id is None
        if subtasks_moved:
            _bump_subtasks_to_list([current.pk], now, current.list_id)
        if completing and regrouped:
            _after_completion(user=user, tasks=[current], now=now, subtasks_written=subtasks_moved)
        return current


def task_complete(*, task: Task, user: User) -> Task:
    """Completes a task, its open subtasks and, for a recurring task, creates the next one."""
    return task_update(task=task, user=user, data={"completed": True})


def task_reopen(*, task: Task, user: User) -> Task:
    """Reopens a completed task (its subtasks stay as they are)."""
    return task_update(task=task, user=user, data={"completed": False})


# The tasks that go and the previous occurrences of those that go (their link is cleared),
# locked first in ROW_LOCK_ORDER, as every write of several tasks: deleted in the join's order
# (a hash of the ids), a subtask went before its parent about half the time, and a parent's
# writer (a completion, a move to another list) holding the parent, then writing its subtasks,
# deadlocked with the delete (1 s); a previous occurrence was locked after its copy (review
# 34e). `goes` is read again on a row changed while this waited for it (a subtask given another
# parent stays).
_LOCK_TASKS = """
    SELECT id, COALESCE({doomed}, false) AS goes, version FROM tasks_task
    WHERE id IN (
        SELECT id FROM tasks_task WHERE owner_id = %(owner)s AND ({doomed}) {previous}
    )
    ORDER BY parent_id NULLS FIRST, id FOR UPDATE
"""
# Tasks with their subtasks, in one statement whatever their number (Django's collector would
# select the subtasks and delete in batches of 100, and past 65,535 tasks fail on PostgreSQL's
# limit of parameters), so from one snapshot of which tasks go. `{doomed}` says which: ids (and
# their subtasks), a list's (subtasks are in their parent's list), or all of the owner's. Each
# task the statement deletes leaves its id for tasks/changes/ (DeletedTask), but not with its
# account: from the DELETE's own rows, since one that a concurrent request deleted first is in
# `doomed` yet not deleted here (and has its id already: inserting it again failed, a 500).
# One task's delete only (DELETE tasks/{id}/, the admin's): one statement, no transaction. The
# others, whose number of tasks has no bound, go by _delete_locked (review 37a).
_DELETE_TASKS = f"""
    WITH locked AS ({_LOCK_TASKS}), doomed AS (
        SELECT id FROM locked WHERE goes
    ), unlinked AS (
        -- The previous occurrence of a deleted copy loses its link (on_delete=SET_NULL).
        UPDATE tasks_task SET next_occurrence_id = NULL, version = version + 1,
            updated_at = %(now)s
        WHERE id IN (SELECT id FROM locked WHERE NOT goes)
            AND next_occurrence_id IN (SELECT id FROM doomed)
    ), untagged AS (
        DELETE FROM tasks_task_tags WHERE task_id IN (SELECT id FROM doomed)
    ), gone AS (
        DELETE FROM tasks_task WHERE id IN (SELECT id FROM doomed) RETURNING id
    ), remembered AS (
        INSERT INTO tasks_deletedtask (id, owner_id, deleted_at)
        SELECT id, %(owner)s, %(now)s FROM gone
    )
    SELECT count(*) FROM gone
"""
_PREVIOUS = """
    UNION SELECT p.id FROM tasks_task p WHERE p.owner_id = %(owner)s AND p.next_occurrence_id IN (
        SELECT id FROM tasks_task WHERE owner_id = %(owner)s AND ({doomed})
    )
"""
_IDS = "id = ANY(%(ids)s) OR parent_id = ANY(%(ids)s)"
_OF_LIST = "list_id = %(list)s"
_DOOMED = {"ids": _IDS, "list": _OF_LIST}
_DELETE_TASKS_OF = {
    "ids": _DELETE_TASKS.format(doomed=_IDS, previous=_PREVIOUS.format(doomed=_IDS))
}

# Deletes of any number of tasks (a bulk delete, a list's with its tasks, an account's) are
# planned from what they read, not from the statistics: with those of a table analyzed while
# it was empty (its pages left: a staging reset, an instance emptied and refilled) the planner
# takes tasks_task and tasks_task_tags for one row each, and the statement above joined the
# whole table against each task that goes (a list of 4,000 tasks, an account of 100,000, a bulk
# delete of 500 ran past the statement timeout, against 0.1-3 s). Here each statement gets the
# ids it works on as one array, whose length the planner sees, always with the owner, so that
# whatever the estimates the plan reads at most the owner's tasks once (its index, with the
# array hashed), and with sound ones looks the ids up by key; the links by their task_id
# index (it leads every index that holds it). An array from a subquery (`= ANY(ARRAY(...))`)
# is not enough: its length unknown, the planner walked task_updated, where id is a later
# column, once per id (review 36f). First the ids that go (`{doomed}`), then those and their
# previous occurrences locked in ROW_LOCK_ORDER (`goes` read again on the locked rows, as
# above), then the delete by the locked ids. The locked rows cannot change meanwhile, and a
# task cannot be added under them (its parent's or its list's lock, the account's).
# As one array, with custom plans for the rest of the transaction (see _TAG_LINKS).
_DOOMED_IDS = (
    f"SELECT {_CUSTOM_PLANS}, ARRAY(SELECT id FROM tasks_task"
    " WHERE owner_id = %(owner)s AND ({doomed}))"
)
_LOCK_BY_IDS = """
    SELECT id, COALESCE({doomed}, false) AS goes, version FROM tasks_task
    WHERE owner_id = %(owner)s
        AND (id = ANY(%(first)s::uuid[]) OR next_occurrence_id = ANY(%(first)s::uuid[]))
    ORDER BY parent_id NULLS FIRST, id FOR UPDATE
"""
# An account's delete: every task of the owner goes (no previous occurrence stays to unlink),
# so by the owner, without sending 100,000 ids back and forth (0.5 s more in Python). The links
# by an array from a subquery: every index that holds task_id leads with it.
_LOCK_ALL = """
    SELECT count(*) FROM (
        SELECT id FROM tasks_task WHERE owner_id = %(owner)s
        ORDER BY parent_id NULLS FIRST, id FOR UPDATE
    ) AS locked
"""
_DELETE_ALL = """
    WITH untagged AS (
        DELETE FROM tasks_task_tags
        WHERE task_id = ANY(ARRAY(SELECT id FROM tasks_task WHERE owner_id = %(owner)s))
    )
    DELETE FROM tasks_task WHERE owner_id = %(owner)s
"""
_DELETE_BY_IDS = f"""
    WITH unlinked AS (
        -- The previous occurrence of a deleted copy loses its link (on_delete=SET_NULL).
        UPDATE tasks_task SET next_occurrence_id = NULL, version = version + 1,
            updated_at = %(now)s
        WHERE owner_id = %(owner)s AND id = ANY(%(kept)s::uuid[])
            AND next_occurrence_id = ANY(%(doomed)s::uuid[])
    ), untagged AS (
        DELETE FROM tasks_task_tags WHERE task_id = ANY(%(doomed)s::uuid[])
    ), gone AS (
        DELETE FROM tasks_task WHERE owner_id = %(owner)s AND id = ANY(%(doomed)s::uuid[])
        RETURNING id
    ), remembered AS (
        INSERT INTO tasks_deletedtask (id, owner_id, deleted_at)
        SELECT id, %(owner)s, %(now)s FROM gone
    )
    SELECT count(*), {_USUAL_PLANS} FROM gone
"""

LockedTasks = list[tuple[UUID, bool, int]]  # (id, goes, version) in ROW_LOCK_ORDER


def _lock_to_delete(owner_id: UUID, which: str, **params: Any) -> LockedTasks:
    """Locks the tasks that _delete_tasks(which) deletes and the previous occurrences it
    unlinks, in ROW_LOCK_ORDER: (id, goes, version) of each. `which`: "ids" (and their
    subtasks) or "list"."""
    with connection.cursor() as cursor:
        doomed = _DOOMED[which]
        cursor.execute(_DOOMED_IDS.format(doomed=doomed), {"owner": owner_id, **params})
        first = cursor.fetchone()[1]
        if not first:
            return []
        cursor.execute(
            _LOCK_BY_IDS.format(doomed=doomed), {"owner": owner_id, "first": first, **params}
        )
        return cursor.fetchall()


def lock_tasks_to_delete(owner_id: UUID, which: str, **params: Any) -> dict[UUID, int]:
    """Locks what _delete_tasks(which) locks, in its order: {id: version} of the tasks that go.
    For a caller that locks before it deletes (a bulk delete finding its ids, a list's delete
    its rows before the groups, an If-Match comparison): the copy locked there and its previous
    occurrence only in the delete, after it, deadlocked with a bulk action over both (1 s;
    review 34f)."""
    return {pk: version for pk, goes, version in _lock_to_delete(owner_id, which, **params) if goes}


def _delete_locked(owner_id: UUID, locked: LockedTasks, now: datetime) -> int:
    """Deletes the tasks `locked` says go (_lock_to_delete's rows, locked in this transaction)
    with their links, their ids kept for tasks/changes/, and unlinks the others from them; how
    many rows went."""
    doomed = [pk for pk, goes, _ in locked if goes]
    if not doomed:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            _DELETE_BY_IDS,
            {
                "owner": owner_id,
                "now": now,
                "doomed": doomed,
                "kept": [pk for pk, goes, _ in locked if not goes],
            },
        )
        return cursor.fetchone()[0]


def _delete_tasks(owner_id: UUID, which: str, now: datetime, **params: Any) -> int:
    """Deletes the owner's tasks `which` names (see _lock_to_delete; "owner": all of them)
    with their subtasks, in this transaction; how many rows went."""
    if which != "owner":
        return _delete_locked(owner_id, _lock_to_delete(owner_id, which, **params), now)
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_ALL, {"owner": owner_id})
        cursor.execute(_DELETE_ALL, {"owner": owner_id})
        return cursor.rowcount


def task_delete(*, owner_id: UUID, task_id: UUID) -> int:
    """Deletes the owner's task with its subtasks; how many rows went, the task's subtasks
    included (0, falsy, when the owner has no such task: the admin's message counts them). One
    statement, so no transaction of its own."""
    with connection.cursor() as cursor:
        cursor.execute(
            _DELETE_TASKS_OF["ids"], {"owner": owner_id, "now": timezone.now(), "ids": [task_id]}
        )
        return cursor.fetchone()[0]


def owned_data_delete(*, owner_id: UUID) -> None:
    """Deletes every task, tag and list of the owner, and the ids of tasks deleted before, in
    SQL statements whatever their number (the ORM's cascade from the user fails past 65,535
    rows: one parameter per row)."""
    with transaction.atomic():
        _delete_tasks(owner_id, "owner", timezone.now())
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM tasks_deletedtask WHERE owner_id = %s", [owner_id])
            cursor.execute("DELETE FROM tasks_tag WHERE owner_id = %s", [owner_id])
            cursor.execute("DELETE FROM tasks_tasklist WHERE owner_id = %s", [owner_id])


def _lock_next_occurrence_early(next_id: UUID) -> None:
    """FOR KEY SHARE on a task's next occurrence, before the group lock. A spread that moves
    the moved task itself makes the move's UPDATE of it the second in the transaction, and
    PostgreSQL then checks its foreign keys at the COMMIT whatever changed: it locked the next
    occurrence there, after the group lock, while a write of that occurrence held it and
    waited for the group: a deadlock, 1 s (review 37c). A subtask's parent is the same, locked
    only when a spread did move the subtask (_lock_parent_after_spread)."""
    # NOWAIT, giving way as a spread does: the task is held already, and a delete of the
    # occurrence locks the two in ROW_LOCK_ORDER (the occurrence first when its id sorts
    # first), then waits for the task: waiting here closed that cycle (review 37f, 1 s).
    with _giving_way_to_holders(("id = %s", [next_id])), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM tasks_task WHERE id = %s FOR KEY SHARE{_NOWAIT[may_give_way.get()]}",
            [next_id],
        )


def _lock_parent_after_spread(parent_id: UUID) -> None:
    """FOR KEY SHARE on a subtask's parent, once a spread moved the subtask itself (a move's):
    the move's UPDATE of it is then the second in the transaction, and PostgreSQL checks its
    foreign keys at the COMMIT whatever changed, which locked the parent there. A writer of the
    parent holds it, then waits for the subtask (a completion's cascade, a delete, a move of
    its list, a bulk action naming both, a list's delete): a deadlock, 1 s (review 38c). The
    subtask is held already and the parent comes first in ROW_LOCK_ORDER: NOWAIT, giving way as
    a spread does (NeighboursHeld). Only such moves take it: one statement more, for a spread.
    Run again after it gave way (on this or another row), the move took the parent first, in
    ROW_LOCK_ORDER (task_to_write's `parent_first`): held already, it never gives way here, nor
    waits here once out of give-ways, which closed the cycle again (review 38g)."""
    with _giving_way_to_holders(("id = %s", [parent_id])), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM tasks_task WHERE id = %s FOR KEY SHARE{_NOWAIT[may_give_way.get()]}",
            [parent_id],
        )


def task_move(
    *, task: Task, after: Task | UUID | None, list_: Any = UNCHANGED, locked: bool = False
) -> Task:
    """Moves a task right after `after` (None: first) in `list_` (None: the Inbox; UNCHANGED:
    its own list). `after` must be a sibling in the target group; a subtask stays in its
    parent's list. A cross-list move keeps the id and takes the subtasks along. `locked`: as
    for task_update. `after` may be a task or its id (the API's, not read yet): either way
    it is read under the group lock (_place_after)."""
    anchor_id = getattr(after, "pk", after)
    with _row_for_write(task, locked=locked) as current:
        old_group = current.sibling_group
        target_list_id = current.list_id if list_ is UNCHANGED else getattr(list_, "pk", None)
        if current.parent_id is not None and target_list_id != current.list_id:
            # An unknown anchor is the 400 here, as when the serializer looked it up: read
            # for this refusal only.
            if anchor_id is not None and owned_instance(Task, current.owner_id, anchor_id) is None:
                raise ValidationError({"after": [NO_SUCH_TASK]})
            raise ValidationError({"list": [NOT_PARENTS_LIST]})
        current.list_id = target_list_id
        in_group = current.sibling_group == old_group
        if in_group and current.next_occurrence_id is not None:
            _lock_next_occurrence_early(current.next_occurrence_id)
        _lock_groups(current.owner_id, [old_group, current.sibling_group])
        if anchor_id is None:
            moved = _place_first(current, in_group=in_group)
        else:
            # Read under the lock: `after` may have moved (or gone) since a caller read it.
            moved = _place_after(current, anchor_id, in_group=in_group)
        if not moved:  # already there: nothing changes, so neither do version and updated_at
            return current
        if moved is not PLACED_AND_SAVED:  # else saved by the anchor's read (_place_after)
            current.version += 1
            task_save(current)
        if target_list_id != old_group[0]:
            _bump_subtasks_to_list([current.pk], current.updated_at, target_list_id)
        return current


# --- Bulk -------------------------------------------------------------------------------------


# The tasks a bulk complete names, with the parents of the open recurring subtasks among them,
# locked in ROW_LOCK_ORDER (FOR UPDATE: one statement, one order): a copy's foreign key locks its
# parent at the COMMIT, after the subtask, and a write completing the parent meanwhile held the
# parent and waited for the subtask (_cascade_completion), a deadlock (1 s) every time. One
# array of ids, read off the primary key (an OR with an IN-subquery read every task of the
# owner: 14 ms for 100 ids of 100,000 tasks).
_NAMED_AND_THEIR_PARENTS = (
    "tasks_task.id = ANY(%s::uuid[] || ARRAY(SELECT s.parent_id FROM tasks_task s"
    " WHERE s.id = ANY(%s::uuid[]) AND NOT s.completed AND s.recurrence IS NOT NULL))"
)  # a top-level task's NULL parent in the array matches no row
_LOCKED_FOR_COMPLETION = CompiledQuery(
    lambda owner, ids: (
        Task.objects.select_for_update()
        .owned_by(owner)
        .extra(where=[_NAMED_AND_THEIR_PARENTS], params=[ids, ids])
        .order_by(*ROW_LOCK_ORDER)
        .values_list(*loaded_columns(Task))
    ),
    owner=UUID(int=1),
    ids=[UUID(int=2)],
)
# The same, with the open subtasks of the named tasks, which the cascade completes, locked in
# the same statement (review 39h's form): for a bulk complete whose cascade would lock them out
# of ROW_LOCK_ORDER, which _LOCKED_FOR_COMPLETION's rows tell (_CascadeAfterANamedSubtask). The
# first MAX_COMPLETED_PER_REQUEST + 1 in ROW_LOCK_ORDER, as the cascade picks them (past the
# bound it is a 409); `parent_id = ANY(ids)` gives the parent_id index a key bounded by the ids.
# Not the first statement of every bulk complete: +0.4-0.65 ms per 100 ids, ~8 % of the
# benchmark's bulk complete 100 req/s (reviews 39h, 40a).
_NAMED_THEIR_PARENTS_AND_OPEN_SUBTASKS = (
    "(tasks_task.id = ANY(%s::uuid[])"
    " OR tasks_task.id = ANY(ARRAY(SELECT s.parent_id FROM tasks_task s"
    " WHERE s.id = ANY(%s::uuid[]) AND NOT s.completed AND s.recurrence IS NOT NULL))"
    " OR (tasks_task.parent_id = ANY(%s::uuid[]) AND tasks_task.id = ANY(ARRAY(SELECT c.id"
    " FROM tasks_task c WHERE c.parent_id = ANY(%s::uuid[]) AND NOT c.completed"
    f" ORDER BY c.parent_id, c.id LIMIT {MAX_COMPLETED_PER_REQUEST + 1}))))"
)
_LOCKED_WITH_OPEN_SUBTASKS = CompiledQuery(
    lambda owner, ids: (
        Task.objects.select_for_update()
        .owned_by(owner)
        .extra(where=[_NAMED_THEIR_PARENTS_AND_OPEN_SUBTASKS], params=[ids, ids, ids, ids])
        .order_by(*ROW_LOCK_ORDER)
        .values_list(*loaded_columns(Task))
    ),
    owner=UUID(int=1),
    ids=[UUID(int=2)],
)


class _CascadeAfterANamedSubtask(Exception):
    """A bulk complete's cascade would lock a subtask that sorts before a named subtask it
    holds (ROW_LOCK_ORDER): its transaction (or savepoint) is rolled back, which lets go of its
    locks, and it runs again with _LOCKED_WITH_OPEN_SUBTASKS."""


_COMPLETE = (
    "UPDATE tasks_task SET completed = true, completed_at = %s, updated_at = %s, "
    "version = version + 1 WHERE id = ANY(%s)"
)


def _bulk_complete(user: User, ids: list[UUID], *, with_subtasks: bool = False) -> int:
    """Completes these tasks, then what follows (_after_completion's work); returns how many
    were open. Rows, not Task instances, except for the recurring tasks: 100 instances
    and the ORM's two statements built were ~40 % of a 100-task completion's CPU.
    `with_subtasks`: the open subtasks of the named tasks are locked with them; without it,
    _CascadeAfterANamedSubtask when the cascade may lock one out of ROW_LOCK_ORDER."""
    columns = loaded_columns(Task)
    pk, completed, parent, rule = (
        columns.index(name) for name in ("id", "completed", "parent_id", "recurrence")
    )
    wanted = set(ids)
    locking = _LOCKED_WITH_OPEN_SUBTASKS if with_subtasks else _LOCKED_FOR_COMPLETION
    rows = [row for row in locking.rows(owner=user.pk, ids=ids) if row[pk] in wanted]
    _ensure_all_found(ids, {row[pk] for row in rows})
    now = timezone.now()
    changed = [row for row in rows if not row[completed]]
    if not changed:
        return 0
    # The cascade locks open subtasks of the changed top-level tasks, after these rows, in
    # (parent_id, id) order: out of ROW_LOCK_ORDER when a named subtask locked here sorts after
    # one of them, which only a named subtask whose parent is not before every such parent can
    # (its parent's own unnamed subtasks, or another's of a parent sorting first; review 39e's
    # deadlock, 1 s). Exact: the rows are as locked, and a locked task's parent cannot change,
    # nor can a subtask be given to a locked parent (_PARENT_LOCKED waits for its lock); one
    # opened meanwhile (a reopen locks it alone) sorts after every named subtask here too. In
    # the wide attempt such a one gives way instead (_cascade_completion's `held`).
    # Python's UUID order is PostgreSQL's (both compare the 16 bytes in turn). Rolled back
    # before any write; +3 statements (this one, ROLLBACK, BEGIN; +4 under an Idempotency-Key:
    # its savepoint) for these shapes only.
    if not with_subtasks:
        named_subtasks_parents = [row[parent] for row in rows if row[parent] is not None]
        if named_subtasks_parents:
            parents = [row[pk] for row in changed if row[parent] is None]
            if parents and max(named_subtasks_parents) >= min(parents):
                raise _CascadeAfterANamedSubtask
    with connection.cursor() as cursor:
        cursor.execute(_COMPLETE, [now, now, [row[pk] for row in changed]])
    subtasks, cascaded = _cascade_completion(
        user=user,
        # Whether a task has open subtasks is not known here: the UPDATE finds out.
        parent_ids=[row[pk] for row in changed if row[parent] is None],
        completing=len(changed),
        now=now,
        held=with_subtasks,
    )
    recurring = [
        Task.from_db(connection.alias, columns, row) for row in changed if row[rule] is not None
    ]
    for task in recurring:
        task.mark_completed(now)
    # All it completed are written, those with no rule too (a next occurrence may stay).
    _spawn_next_occurrences(
        user=user,
        tasks=[*recurring, *subtasks],
        written=[*(row[pk] for row in changed), *cascaded],
    )
    return len(changed)


def _ensure_all_found(ids: list[UUID], found: set[UUID]) -> None:
    if len(found) != len(ids):
        raise MissingTasks([task_id for task_id in ids if task_id not in found])


# The tasks a bulk move names, with the subtasks of those (they follow their parents), locked in
# one statement in ROW_LOCK_ORDER; the named ones' rows as locked. Named with its parent, a
# subtask was locked first, and its unnamed siblings after it, by the move's UPDATE of them
# (_bump_subtasks_to_list), out of ROW_LOCK_ORDER when one's id sorts first: a bulk action over
# the two held that one and waited for the named one, a deadlock, 1 s (review 39e).
# MATERIALIZED: as a subquery, the outer filter went into the locking read (its plan), which
# then locked the named ones only.
# Two constant arrays, OR'd (the pkey's and the parent_id index's bitmaps): the subtasks' ids
# concatenated as `id = ANY(ids || ARRAY(...))`, an array of a length the planner does not know,
# were looked for in every task of the owner under the statistics of an emptied table, unhashed
# (16.8 ms for 100 ids among 30,000 tasks, against 3.4 ms). The outer ORDER BY: a CTE's scan
# keeps its rows' order in practice, not by SQL's promise (review 39i).
_LOCKED_FOR_MOVE = f"""
    WITH locked AS MATERIALIZED (
        SELECT {", ".join(loaded_columns(Task))} FROM tasks_task
        WHERE owner_id = %(owner)s
            AND (id = ANY(%(ids)s::uuid[]) OR parent_id = ANY(%(ids)s::uuid[]))
        ORDER BY parent_id NULLS FIRST, id FOR UPDATE
    )
    SELECT * FROM locked WHERE id = ANY(%(ids)s::uuid[]) ORDER BY parent_id NULLS FIRST, id
"""


def _locked_for_move(owner_id: UUID, ids: list[UUID]) -> list[Task]:
    columns = loaded_columns(Task)
    with connection.cursor() as cursor:
        cursor.execute(_LOCKED_FOR_MOVE, {"owner": owner_id, "ids": ids})
        return [Task.from_db(connection.alias, columns, row) for row in cursor.fetchall()]


def _bulk_move(user: User, tasks: list[Task], now: datetime, list_: TaskList | None) -> int:
    ids = {task.pk for task in tasks}
    target_list_id = list_.pk if list_ is not None else None
    # A subtask already in the target list (its parent's) stays, as a task already there does.
    orphans = [
        t
        for t in tasks
        if t.parent_id is not None and t.parent_id not in ids and t.list_id != target_list_id
    ]
    if orphans:
        raise ValidationError(
            {"ids": ["A subtask moves with its parent: " + ", ".join(str(t.pk) for t in orphans)]}
        )
    # A task already in the target list is where the move sends it: it keeps its rank and its
    # version, and is not counted (a re-rank to the end changed both, and 412'd other clients).
    moving = sorted(
        (t for t in tasks if t.parent_id is None and t.list_id != target_list_id),
        key=lambda t: (t.position, str(t.pk)),
    )
    if not moving:
        return 0
    target: GroupKey = (target_list_id, None)
    _lock_groups(user.pk, [target, *(t.sibling_group for t in moving)])
    first = _end_position(user.pk, target)
    with connection.cursor() as cursor:
        # One statement over arrays: bulk_update's CASE per task and column cost the worker
        # ~0.9 s of CPU for 500 tasks (2,000 expressions built in Python).
        cursor.execute(
            "UPDATE tasks_task SET list_id = %s, position = moved.position,"
            " version = version + 1, updated_at = %s"
            " FROM unnest(%s::uuid[], %s::bigint[]) AS moved(id, position)"
            " WHERE tasks_task.id = moved.id",
            [
                target_list_id,
                now,
                [task.pk for task in moving],
                [first + n * POSITION_GAP for n in range(len(moving))],
            ],
        )
    # Subtasks follow their parent's list; their ranks are inside the parent, so they stay.
    moved_ids = {t.pk for t in moving}
    _bump_subtasks_to_list(moved_ids, now, target_list_id)
    return len(moving) + sum(t.parent_id in moved_ids for t in tasks)


def _bulk_tags(user: User, action: str, tasks: list[Task], names: list[str], now) -> int:
    ids = [task.pk for task in tasks]
    through = Task.tags.through
    if action == "remove_tags":  # never creates a tag
        tag_ids = [tag.pk for _, tag in tags_named(user.pk, names) if tag is not None]
        removed = through.objects.filter(task_id__in=ids, tag_id__in=tag_ids)
        changed = set(removed.values_list("task_id", flat=True))
        removed.delete()
        return _bump(Task.objects.filter(pk__in=changed), now)
    tag_ids = [tag.pk for tag in tags_get_or_create(user=user, names=names)]
    # Every tag of these tasks, not only the named ones, to keep each within MAX_TAGS_PER_TASK:
    # still the one statement that read the named ones.
    tags_of: dict[UUID, set[int]] = defaultdict(set)
    for task_id, tag_id in through.objects.filter(task_id__in=ids).values_list("task_id", "tag_id"):
        tags_of[task_id].add(tag_id)
    too_many = [str(pk) for pk in ids if len(tags_of[pk].union(tag_ids)) > MAX_TAGS_PER_TASK]
    if too_many:  # in the transaction: the tags created above are rolled back too
        message = f"{TOO_MANY_TAGS}; these tasks would have more: "
        raise ValidationError({"tags": [message + ", ".join(too_many)]})
    links = [
        through(task_id=pk, tag_id=tag_id)
        for pk in ids
        for tag_id in tag_ids
        if tag_id not in tags_of[pk]
    ]
    through.objects.bulk_create(links)
    return _bump(Task.objects.filter(pk__in={link.task_id for link in links}), now)


def tasks_bulk_apply(
    *, user: User, action: str, ids: list[UUID], savepoint: bool = True, **params: Any
) -> int:
    """Applies one action to many of the caller's tasks, all or nothing.

    Any id that is not the caller's: nothing changes, MissingTasks (404) names them. Returns the
    number of tasks the action changed (tasks already in the wanted state are left untouched,
    their version too). Constant queries whatever the number of ids. `savepoint=False`: inside
    a transaction that any error out of this rolls back whole (an idempotent request's), no
    savepoint of its own but the one a complete goes on from.
    """
    if action not in BULK_ACTIONS:
        raise ValidationError({"action": [f"Unknown action {action!r}."]})
    # As UUIDs (the API's already are; a caller may give strings): the locked rows are told
    # apart by their pk below.
    ids = list(dict.fromkeys(i if type(i) is UUID else UUID(str(i)) for i in ids))
    if action == "complete":
        try:
            # Its own savepoint even in a caller's transaction: gone on from (its locks let go).
            with transaction.atomic():
                return _bulk_complete(user, ids)
        except _CascadeAfterANamedSubtask:  # rolled back: it holds nothing now
            with transaction.atomic(savepoint=savepoint):
                return _bulk_complete(user, ids, with_subtasks=True)
    with transaction.atomic(savepoint=savepoint):
        # In ROW_LOCK_ORDER, so two bulk requests on overlapping ids cannot deadlock.
        now = timezone.now()
        if action == "delete":
            # Before the ids' read, itself planned for the array it gets: prepared on the
            # connection, its generic plan from the 7th run on compared each of the owner's
            # tasks with each id (13 -> 160 ms a delete of 500 at 100,000 tasks, under the
            # statistics of an emptied table; review 37e).
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {_CUSTOM_PLANS}")
            locked = _lock_to_delete(user.pk, "ids", ids=ids)
            found = {pk for pk, goes, _ in locked if goes} & set(ids)
            _ensure_all_found(ids, found)
            _delete_locked(user.pk, locked, now)
            return len(found)
        selected = Task.objects.filter(id__any_of=ids)
        if action == "move":
            tasks = _locked_for_move(user.pk, ids)
        else:
            tasks = list(selected.owned_by(user).select_for_update().order_by(*ROW_LOCK_ORDER))
        _ensure_all_found(ids, {task.pk for task in tasks})
        if action == "reopen":
            return _bump(selected.filter(completed=True), now, completed=False, completed_at=None)
        if action == "move":
            return _bulk_move(user, tasks, now, params.get("list"))
        if action == "set_priority":
            priority = Priority(params["priority"])
            return _bump(selected.exclude(priority=priority), now, priority=priority)
        return _bulk_tags(user, action, tasks, params.get("tags", []), now)
