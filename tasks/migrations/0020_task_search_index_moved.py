"""The search vectors copied into tasks_tasksearch, its search index built CONCURRENTLY, then
`task_search` dropped CONCURRENTLY from tasks_task: from then on a task's row version (any
UPDATE) no longer re-inserts its lexemes into a GIN index (review 32b; 0019 has the why).

- The backfill runs after 0019's triggers exist, so a task written meanwhile is covered either
  way: it copies a batch of tasks at a time (BATCH, by id, each its own transaction) with ON
  CONFLICT DO NOTHING, so a row a trigger wrote (newer) stays. It locks its batch's tasks FOR
  KEY SHARE: a task deleted between its read and the batch's commit would fail the foreign key
  (and the migration); the lock makes such a delete wait for the batch instead. So does every
  API write of one of the batch's tasks (each locks its task FOR UPDATE first): 0.25 s at
  most, measured under load (review 34a). Writes of other tasks go on; a batch that deadlocks
  with one is run again (_copy_batch).
- The index is built after the copy, in one pass, CONCURRENTLY (writes go on), and can be
  built again after an interrupted build (tasks/concurrent_index.py), as 0008, 0011, 0014,
  0016 and 0017. Same storage parameters as `task_search` (a 256 kB pending list).
- Searches of the release before (still running during a rolling deploy) search tasks_task's
  column, which stays, without an index once this migration ends: slower (a normal user's
  search walks their tasks; the heavy user's 100,000 tasks ~50-100 ms) until they are gone.
  Run `VACUUM (ANALYZE) tasks_tasksearch` afterwards for its statistics and visibility map
  (autovacuum does it in time).

Reverse: `task_search` built again CONCURRENTLY (before the new index goes, so a search never
lacks one), then the new index dropped; the copies go with the table (0019 reversed).
"""

import time

from django.contrib.postgres.indexes import GinIndex
from django.db import OperationalError, migrations, transaction

from tasks.concurrent_index import build_concurrently, drop_concurrently

BATCH = 5_000
DEADLOCK_DETECTED = "40P01"  # SQLSTATE
DEADLOCK_RETRIES = 10  # each a deadlock with another write: far more than a deploy meets

_NEXT_BATCH_END = """
    SELECT id FROM (
        SELECT id FROM tasks_task WHERE id > %s ORDER BY id LIMIT %s
    ) AS batch ORDER BY id DESC LIMIT 1
"""
_COPY_BATCH = """
    INSERT INTO tasks_tasksearch (task_id, owner_id, completed, priority, search_vector)
    SELECT id, owner_id, completed, priority, search_vector FROM tasks_task
    WHERE id > %s AND id <= %s
    FOR KEY SHARE
    ON CONFLICT (task_id) DO NOTHING
"""
# No uuid is smaller (and the column never holds it: ids are uuid4).
_BEFORE_EVERY_ID = "00000000-0000-0000-0000-000000000000"

GIN_OPTIONS = "WITH (fastupdate = on, gin_pending_list_limit = 256)"


def copy_the_vectors(apps, schema_editor) -> None:
    connection = schema_editor.connection
    after = _BEFORE_EVERY_ID
    while (after := _copy_batch(connection, after)) is not None:
        pass


def _copy_batch(connection, after: str) -> str | None:
    """Copies the batch after `after`; returns its last id, None when there was none left.

    A write of the API can deadlock with a batch (review 33a): it writes the search row of a
    task the batch has not reached, the batch waits for it there, then it writes the row of one
    the batch has inserted. PostgreSQL ends the batch, which began to wait first; the write goes
    on. The batch is run again: it changes nothing a trigger wrote (ON CONFLICT DO NOTHING)."""
    for attempt in range(1, DEADLOCK_RETRIES + 2):
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute(_NEXT_BATCH_END, [after, BATCH])
                row = cursor.fetchone()
                if row is None:
                    return None
                cursor.execute(_COPY_BATCH, [after, row[0]])
                return row[0]
        except OperationalError as error:
            deadlock = getattr(error.__cause__, "sqlstate", None) == DEADLOCK_DETECTED
            if not deadlock or attempt > DEADLOCK_RETRIES:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("tasks", "0019_task_search_side_table"),
    ]

    operations = [
        migrations.RunPython(copy_the_vectors, migrations.RunPython.noop),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="tasksearch",
                    index=GinIndex(
                        fastupdate=True,
                        fields=["search_vector"],
                        gin_pending_list_limit=256,
                        name="tasksearch_vector",
                    ),
                ),
            ],
            database_operations=build_concurrently(
                "tasksearch_vector", f"tasks_tasksearch USING gin (search_vector) {GIN_OPTIONS}"
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="task", name="task_search"),
            ],
            database_operations=drop_concurrently(
                "task_search", f"tasks_task USING gin (search_vector) {GIN_OPTIONS}"
            ),
        ),
    ]
