"""Stores the names of existing lists and tags composed (NFC), as the API and the admin now
store new ones (todo_project.fields.composed): "Cafe" + U+0301 and "Café" are one name.

A tag whose composed name another of its owner's tags has is merged into that one, as a rename
into a taken name merges (services.tag_rename): its tasks carry the other, and their versions
grow, as those of every task whose tag changes its name (a client syncing by `updated_since`
sees the new name). A list whose composed name another of its owner's lists has stays as it is
(two lists that look the same from before; merging their tasks is the user's choice to make).

Names are compared by Python's unicodedata, as the API composes them. Only names beyond ASCII
are read (octet_length > char_length): none in most databases.

It runs while the API takes writes (a rolling deploy): a row at a time, each in a transaction
of its own that gives way to a write in its way (in_a_transaction_giving_way), and re-reads
once locked what it looked up before (a worker not yet deployed may rename a tag meanwhile).
"""

import itertools
import random
import time
import unicodedata
from collections.abc import Callable

from django.db import IntegrityError, OperationalError, migrations, transaction
from django.utils import timezone

_BEYOND_ASCII = (
    "SELECT id, owner_id, name FROM {table} "
    "WHERE octet_length(name) <> char_length(name) ORDER BY owner_id, id"
)
# Composing can lengthen a name (U+0958 is two code points composed): one the column cannot
# hold stays as it is.
_MAX_LENGTH = {"tasks_tag": 50, "tasks_tasklist": 100}
_NAMED = "SELECT id FROM {table} WHERE owner_id = %s AND LOWER(name) = LOWER(%s) AND id <> %s"

# A merge or a rename gives way to the API's writes: past this wait for a lock, it rolls back
# and runs again a little later (so in a deadlock with a write it is the one to yield, before
# PostgreSQL's check at 1 s, and a long transaction in its way holds up a write queued behind
# it no longer than this, an attempt).
LOCK_WAIT = "200ms"
GIVE_UP_AFTER = 120  # seconds: then `migrate` fails, and the next one goes on from there
# lock_not_available, deadlock_detected, and unique_violation: a name made meanwhile.
_GIVEN_WAY = {"55P03", "40P01", "23505"}


class Again(Exception):
    """Raised by a step that found, once it held its locks, a row it read changed: run again
    (and out of `migrate`, if rows keep changing past GIVE_UP_AFTER)."""


def in_a_transaction_giving_way(connection, step: Callable[..., None], *args) -> None:
    """`step(cursor, *args)` in a transaction of its own, where no lock is waited for past
    LOCK_WAIT; run again, a while later, when it gave way, met a name made meanwhile, or
    raised Again. Not todo_project.retry: a request's policy (two attempts, then a 503) is
    not a migration's (wait its turn), and a migration's code must not change with the app's."""
    if connection.in_atomic_block:
        # Inside another, the locks of a step that gave way stay with that one, and so do its
        # settings: no giving way, and the whole migration would wait 200 ms at most.
        raise RuntimeError("in_a_transaction_giving_way runs in a transaction of its own")
    give_up_at = time.monotonic() + GIVE_UP_AFTER
    for attempt in itertools.count(1):
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                # synchronous_commit off: a COMMIT does not wait for its flush (5.0 s where it
                # was 10.4 s for 5,000 rows). A crash can lose the last rows done, which the
                # next `migrate` does again: its record's COMMIT, later, flushes them all.
                cursor.execute(
                    "SELECT set_config('lock_timeout', %s, true), "
                    "set_config('synchronous_commit', 'off', true)",
                    [LOCK_WAIT],
                )
                step(cursor, *args)
                return
        except Again:
            if time.monotonic() > give_up_at:
                raise
        except (OperationalError, IntegrityError) as error:
            sqlstate = getattr(error.__cause__, "sqlstate", None)
            if sqlstate not in _GIVEN_WAY or time.monotonic() > give_up_at:
                raise
        # Apart at random, longer each time (up to a second), so that the writes in the way end.
        time.sleep(random.uniform(0.5, 1.0) * min(0.05 * attempt, 1.0))


def _beyond_ascii(connection, table: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(_BEYOND_ASCII.format(table=table))
        return cursor.fetchall()


def _named(cursor, table: str, owner_id, name: str, other_than) -> int | None:
    cursor.execute(_NAMED.format(table=table), [owner_id, name, other_than])
    row = cursor.fetchone()
    return None if row is None else row[0]


def bump_tasks_of(cursor, tag_ids: list[int], now) -> None:
    """A tag changing its name changes its tasks: their versions grow, once."""
    cursor.execute(
        "UPDATE tasks_task SET version = version + 1, updated_at = %s WHERE id IN "
        "(SELECT task_id FROM tasks_task_tags WHERE tag_id = ANY(%s))",
        [now, tag_ids],
    )


def lock_tags(cursor, tag_ids: list[int], into_id: int) -> None:
    """Locks tags to merge into `into_id` as the API locks a tag to rename (services.TAG_LOCKS):
    their tasks first, then the tags and `into_id` FOR UPDATE in id order, so that no write
    links one of them meanwhile (a link committed between a merge's copy of the links and
    their delete was lost) and a task write does not deadlock with it (migration 0016 too).
    TAG_LOCKS' rare other order still could (a task linked between the two statements, written
    again at once): in_a_transaction_giving_way gives way first."""
    cursor.execute(
        "SELECT count(*) FROM (SELECT t.id FROM tasks_task t JOIN tasks_task_tags link "
        "ON link.task_id = t.id WHERE link.tag_id = ANY(%s) "
        "ORDER BY t.parent_id NULLS FIRST, t.id FOR NO KEY UPDATE OF t) AS locked",
        [tag_ids],
    )
    cursor.execute(
        "SELECT count(*) FROM (SELECT id FROM tasks_tag WHERE id = ANY(%s) ORDER BY id "
        "FOR UPDATE) AS locked",
        [[*tag_ids, into_id]],
    )


def merge_tags(cursor, tag_ids: list[int], into_id: int, now) -> None:
    """Tags `tag_ids`, locked (lock_tags), merged into `into_id`, as a rename into a taken name
    merges: their tasks carry the other, their versions grown (migration 0016 too)."""
    bump_tasks_of(cursor, tag_ids, now)
    cursor.execute(
        "INSERT INTO tasks_task_tags (task_id, tag_id) SELECT DISTINCT task_id, %s "
        "FROM tasks_task_tags WHERE tag_id = ANY(%s) ON CONFLICT DO NOTHING",
        [into_id, tag_ids],
    )
    cursor.execute("DELETE FROM tasks_task_tags WHERE tag_id = ANY(%s)", [tag_ids])
    cursor.execute("DELETE FROM tasks_tag WHERE id = ANY(%s)", [tag_ids])


def compose_tag(cursor, tag_id: int, owner_id, name: str) -> None:
    """Tag `tag_id`, as read named `name`, renamed to the name composed; merged into its
    owner's tag of that name if there is one. Unless an old worker renamed it meanwhile."""
    composed = unicodedata.normalize("NFC", name)
    into = _named(cursor, "tasks_tag", owner_id, composed, tag_id)
    lock_tags(cursor, [tag_id], tag_id if into is None else into)
    now = timezone.now()  # once locked, as the API stamps: a sync misses no change (0016 too)
    cursor.execute("SELECT name FROM tasks_tag WHERE id = %s", [tag_id])
    if cursor.fetchone() != (name,):
        return
    if into is not None:
        if _named(cursor, "tasks_tag", owner_id, composed, tag_id) != into:
            raise Again  # renamed away since the lookup
        merge_tags(cursor, [tag_id], into, now)
        return
    # A tag of the composed name made since the lookup: the UPDATE's unique violation, again.
    bump_tasks_of(cursor, [tag_id], now)
    cursor.execute("UPDATE tasks_tag SET name = %s WHERE id = %s", [composed, tag_id])


def compose_list_name(cursor, list_id: int, owner_id, name: str) -> None:
    composed = unicodedata.normalize("NFC", name)
    if _named(cursor, "tasks_tasklist", owner_id, composed, list_id) is None:
        cursor.execute(
            "UPDATE tasks_tasklist SET name = %s, version = version + 1, updated_at = %s "
            "WHERE id = %s AND name = %s",
            [composed, timezone.now(), list_id, name],
        )


def compose_names(apps, schema_editor) -> None:
    """A transaction a row, each looking its name up after the rows before it were written:
    two spellings of one name neither of which is composed become one. An interrupted run
    leaves the rows done composed, and the next run finds the others. Each stamps the tasks
    and lists it changes when it writes them, not when the run began: a row may commit minutes
    later, and a sync that began meanwhile would never see it."""
    connection = schema_editor.connection
    for table, compose in (("tasks_tag", compose_tag), ("tasks_tasklist", compose_list_name)):
        for pk, owner_id, name in _beyond_ascii(connection, table):
            composed = unicodedata.normalize("NFC", name)
            if composed != name and len(composed) <= _MAX_LENGTH[table]:
                in_a_transaction_giving_way(connection, compose, pk, owner_id, name)


class Migration(migrations.Migration):
    # A transaction a row (in_a_transaction_giving_way): one for all held every merged tag
    # locked to the end, and a later merge, locking its tasks then, could deadlock with a write.
    atomic = False

    dependencies = [
        ("tasks", "0014_titles_sort_accents_aside"),
    ]

    operations = [migrations.RunPython(compose_names, migrations.RunPython.noop)]
