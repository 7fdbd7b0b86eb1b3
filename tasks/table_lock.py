"""A table lock that an atomic migration takes first, giving way to the API's writes meanwhile.

DDL on a table the API writes (CREATE TRIGGER, ADD CONSTRAINT ... REFERENCES) takes a lock
that every write's conflicts with. Waiting for it behind a write still in flight, a migration
put every later write of that table behind itself in PostgreSQL's lock queue, and with sync
workers every read behind those: each replica of the release before, serving meanwhile, answered
nothing for as long as that write took (3.9 s measured behind a 6 s transaction; one request may
hold a write for 25 s). Asked for with a short lock_timeout and again after a pause, the lock
keeps a write arriving meanwhile waiting at most LOCK_WAIT; once taken, it is held until the
migration commits, so its DDL waits for nothing (review 34a).

Like tasks.concurrent_index, for migrations only: what a migration ran must not change later.
"""

import itertools
import random
import time
from collections.abc import Sequence

from django.db import OperationalError, migrations, transaction

LOCK_WAIT = "200ms"
GIVE_UP_AFTER = 120  # seconds: then `migrate` fails, and the next one starts over
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout


# How long to ask for the lock: LOCK_WAIT, or, while an autovacuum of the table holds a lock on
# it, deadlock_timeout and LOCK_WAIT more. PostgreSQL cancels an autovacuum in a lock's way only
# for a request that has waited deadlock_timeout (1 s): asking 200 ms at a time, a migration
# waited out the whole autovacuum and failed after GIVE_UP_AFTER (review 34d). With the
# autovacuums holding the table (their pids): one PostgreSQL did not cancel for a request that
# waited that long is one it never cancels (an autovacuum to prevent wraparound); asked for
# again and again, each request held every read and write of the table (ACCESS EXCLUSIVE) or
# every write for 1.2 s (review 35b).
_LOCK_WAIT_NOW = """
SELECT CASE WHEN count(*) > 0
    THEN current_setting('deadlock_timeout')::interval + %(wait)s::interval
    ELSE %(wait)s::interval END,
    coalesce(array_agg(DISTINCT pid), '{}')
FROM pg_locks JOIN pg_stat_activity USING (pid)
WHERE relation = ANY(%(tables)s::regclass[]) AND granted
AND backend_type = 'autovacuum worker' AND datname = current_database()
"""


def lock_giving_way(
    table: str | Sequence[str], mode: str = "SHARE ROW EXCLUSIVE", *, reverse: bool = False
) -> migrations.RunPython:
    """The first operation of an atomic migration: `LOCK TABLE table IN mode MODE`, given up
    after LOCK_WAIT and asked for again until it is taken. `mode`: what its DDL takes (SHARE ROW
    EXCLUSIVE for CREATE TRIGGER and a foreign key). Its reverse takes nothing: it would come
    last. With `reverse`, the other way round: the last operation, which a reversed migration
    runs first, for a reverse whose DDL locks the table too.

    Several tables: one LOCK TABLE statement, so that a request given up lets go of the tables
    it took before the one it waited for. Taken one lock_giving_way each, the first table was
    held while the next was asked for again and again (0029 held tasks_task, every task write
    waiting, up to GIVE_UP_AFTER behind a write in flight on the tag links; review 46b)."""
    tables = [table] if isinstance(table, str) else list(table)

    def take(apps, schema_editor) -> None:
        connection = schema_editor.connection
        if not connection.in_atomic_block:
            raise RuntimeError("lock_giving_way is for an atomic migration: its commit lets go")
        give_up_at = time.monotonic() + GIVE_UP_AFTER
        names = ", ".join(map(connection.ops.quote_name, tables))
        lock = f"LOCK TABLE {names} IN {mode} MODE"
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('lock_timeout')")
            lock_timeout = cursor.fetchone()[0]
            not_cancelled: set[int] = set()  # autovacuums a request's long wait did not end
            for attempt in itertools.count(1):
                # pg_stat_activity is read once per transaction: without this, an autovacuum
                # that began after the first look was never seen, asked past 200 ms at a time
                # and never cancelled (review 35b).
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute(_LOCK_WAIT_NOW, {"tables": tables, "wait": LOCK_WAIT})
                wait, autovacuums = cursor.fetchone()
                if not_cancelled & set(autovacuums):
                    # Asking would only hold the table's reads and writes for nothing: wait
                    # for it to end without queueing.
                    if time.monotonic() > give_up_at:
                        raise OperationalError(
                            f"{', '.join(tables)} is held by an autovacuum PostgreSQL does not cancel "
                            f"(likely one to prevent wraparound; pids {sorted(autovacuums)}): "
                            "run migrate again once it has ended (pg_stat_progress_vacuum)"
                        )
                    time.sleep(1.0)
                    continue
                cursor.execute(
                    "SELECT set_config('lock_timeout', %s, true)",
                    [f"{wait.total_seconds() * 1000:.0f}"],
                )
                try:
                    with transaction.atomic(using=connection.alias):  # a savepoint to roll back
                        cursor.execute(lock)
                    break
                except OperationalError as error:
                    timed_out = getattr(error.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE
                    if not timed_out or time.monotonic() > give_up_at:
                        raise
                    if autovacuums:
                        not_cancelled.update(autovacuums)
                # Apart at random, longer each time (up to a second): the writes in the way end.
                time.sleep(random.uniform(0.5, 1.0) * min(0.05 * attempt, 1.0))
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout])

    if reverse:
        return migrations.RunPython(migrations.RunPython.noop, take)
    return migrations.RunPython(take, migrations.RunPython.noop)
