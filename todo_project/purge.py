"""Deleting expired rows for the cron purges, in batches that wait for no row lock."""

from collections.abc import Sequence

from django.db import connection

# The cron purges delete in batches of this many rows, each batch its own statement.
PURGE_BATCH = 5_000


def delete_in_batches(batch_sql: str, params: Sequence) -> int:
    """Runs `batch_sql` until it deletes nothing; how many rows it deleted in all.

    `batch_sql` deletes at most PURGE_BATCH rows (its last parameter, after `params`) that no
    other transaction holds: `... LIMIT %s FOR UPDATE SKIP LOCKED`. One statement deleting every
    expired row waited for any row another transaction held, and an account deletion deletes
    its user's expired rows of the same tables in another order: a deadlock (3 runs of 5 on
    1M-row backlogs, review 34c). PostgreSQL then ended the account deletion (retried, but
    after the purge: 34 s for 1M tokens, past gunicorn's timeout) or the purge, and all it had
    deleted came back. A batch waits for no row, so it is in no deadlock; a row someone holds
    is left to them or to the next run; an account deletion waits for one batch at most.
    """
    deleted = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(batch_sql, [*params, PURGE_BATCH])
            if not cursor.rowcount:
                return deleted
            deleted += cursor.rowcount


def delete_expired(model, column: str, before) -> int:
    """Deletes `model`'s rows whose `column` is at or before `before`, with delete_in_batches;
    how many. The column needs an index, which each batch reads from its start."""
    quote = connection.ops.quote_name
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    return delete_in_batches(
        f"DELETE FROM {table} WHERE {pk} IN (SELECT {pk} FROM {table}"
        f" WHERE {quote(column)} <= %s LIMIT %s FOR UPDATE SKIP LOCKED)",
        [before],
    )
