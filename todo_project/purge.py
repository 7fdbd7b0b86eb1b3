"""Deleting expired rows for the cron purges, in batches that wait for no row lock.

One statement deleting every expired row waited for any row another transaction held, and an
account deletion deletes its user's expired rows of the same tables in another order: a
deadlock (3 runs of 5 on 1M-row backlogs, review 34c). PostgreSQL then ended the account
deletion (retried, but after the purge: 34 s for 1M tokens, past gunicorn's timeout) or the
purge, and all it had deleted came back. A batch takes only rows nobody holds (`FOR UPDATE SKIP
LOCKED`), so it waits for no row and is in no deadlock; a row someone holds is left to them or
to the next run; an account deletion waits for one batch at most. The refresh tokens have a
purge of their own (accounts.tokens.purge_expired_tokens), in these batches too.
"""

from django.db import connection

# The cron purges delete in batches of this many rows, each batch its own statement.
PURGE_BATCH = 5_000


def delete_expired(model, column: str, before) -> int:
    """Deletes `model`'s rows whose `column` is at or before `before`, in batches that wait for
    no row lock, until a batch deletes none (none left that nobody holds); how many. The column
    needs an index: each batch reads it from its start."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    # = ANY(ARRAY(...)): the batch as one value; with IN (a semi-join) the planner may hash the
    # batch and read the whole table for it (review 34d). By ctid, a Tid Scan, not the primary
    # key: with statistics taken just after a purge emptied the table (pages, no rows), every
    # index looked alike, and one with the key as a later column (deleted_task_changes) was
    # walked whole per id: 10.5 s a batch of 5,000 (review 36f), 17 ms by ctid. The rows are
    # locked by the same statement: their ctid cannot change before the DELETE reads it.
    batch = (
        f"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table}"
        f" WHERE {quote(column)} <= %s LIMIT %s FOR UPDATE SKIP LOCKED))"
    )
    deleted = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(batch, [before, PURGE_BATCH])
            if not cursor.rowcount:
                return deleted
            deleted += cursor.rowcount
