"""`GET tasks/changes/`: what changed in a user's tasks since a cursor, deletions included.

A sync through the task list cannot be exact: its pages are offsets, so a write on a page the
client has read shifts the later rows and one is never sent; a deleted task is simply absent;
and `updated_at` has whole seconds, so thousands of tasks written at once share one value and no
`updated_since` gets past them. Here the changes come in one total order, (`updated_at`, id) of
the tasks and (`deleted_at`, id) of the deleted ones (DeletedTask), and each page resumes right
after the last change it sent (keyset): a task written meanwhile moves past the cursor and comes
again, a deletion adds to the end, and nothing shifts.

`updated_at` is stamped when a write starts, and the write is seen when it commits, up to
COMMIT_LAG later: a page can pass over a change that commits afterwards. So a sync's last page
gives a cursor that starts the next sync COMMIT_LAG before the moment the sync began, when
every change stamped before it had committed: the next sync sends those minutes again (tasks
the client has at the same `version` are no news), and nothing is missed. gunicorn ends a
request after 30 s, but the last statement of a killed worker runs on in PostgreSQL, and the
clocks of two app hosts differ a little: COMMIT_LAG is ten times that.

The cursor carries, besides its position, where its pass will end (that moment, the `floor`)
and where it began (`since`): past DELETIONS_KEPT, the deleted ids it needs may have been purged,
and the answer is 410: sync from the start (no cursor), then once more from its cursor, and
drop the tasks that neither sent. A sync from the start needs the deleted ids from its own
beginning on: resumed past DELETIONS_KEPT, it is a 410 too.
"""

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connections, router
from django.utils import timezone
from rest_framework.exceptions import APIException, ValidationError

from tasks.fast_read import COLUMNS, page_columns, task_data
from tasks.models import DeletedTask, Task
from todo_project.purge import delete_expired

COMMIT_LAG = timedelta(minutes=5)  # see above
DELETIONS_KEPT = timedelta(days=30)
DEFAULT_LIMIT, MAX_LIMIT = 200, 1000
# Before any change: the position of a sync from the start.
BEGINNING = datetime(1, 1, 1, tzinfo=UTC)
INVALID_CURSOR = "Not a cursor this API gave: pass the `cursor` of an earlier answer, or none."


class CursorExpired(APIException):
    status_code = 410
    default_detail = (
        f"This cursor began a sync more than {DELETIONS_KEPT.days} days ago, and the ids of "
        "tasks deleted since may be gone: sync again from the start (no cursor), then once "
        "more from its cursor, and drop the tasks that neither sent."
    )
    default_code = "cursor_expired"


@dataclass(frozen=True)
class Cursor:
    """Changes after (at, id). `floor` and `since` are set while a sync pages (see above)."""

    at: datetime
    id: uuid.UUID
    floor: datetime | None = None
    since: datetime | None = None

    def encode(self) -> str:
        parts = [_micros(self.at), self.id.hex, _micros(self.floor), _micros(self.since)]
        return base64.urlsafe_b64encode(".".join(parts).encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
            at, id_, floor, since = raw.split(".")
            cursor = cls(_time(at), uuid.UUID(hex=id_), _time(floor), _time(since))
        except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError, TypeError):
            raise ValidationError({"cursor": [INVALID_CURSOR]}) from None
        if cursor.at is None or (cursor.floor is None) != (cursor.since is None):
            raise ValidationError({"cursor": [INVALID_CURSOR]})
        return cursor


def _micros(moment: datetime | None) -> str:
    return "" if moment is None else str((moment - BEGINNING) // timedelta(microseconds=1))


def _time(micros: str) -> datetime | None:
    if micros == "":
        return None
    if not micros.isdigit() or len(micros) > 18:  # past year 9999: no time of this API
        raise ValueError(micros)
    return BEGINNING + timedelta(microseconds=int(micros))


# The next changes after a position: the tasks' and the deleted ones', each from its index,
# merged; each task's columns read with its key (tags as the list has them), so from the same
# snapshot, and with no join: looked up again by id after the merge, with the statistics of a
# table analyzed while empty (one row, to the planner) the whole table was read once for each
# key of the page, 2-7 s a page of 500 of a 100,000-task account (review 36f, 37a).
_CHANGES = """
    SELECT * FROM (
        (SELECT page.updated_at AS at, page.id AS key, FALSE AS gone, {columns}
         FROM tasks_task AS page
         WHERE page.owner_id = %(owner)s AND page.updated_at >= %(at)s
            AND (page.updated_at, page.id) > (%(at)s, %(id)s)
         ORDER BY page.updated_at, page.id LIMIT %(n)s)
        UNION ALL
        (SELECT deleted_at, id, TRUE, {nothing} FROM tasks_deletedtask
         WHERE owner_id = %(owner)s AND deleted_at >= %(at)s
            AND (deleted_at, id) > (%(at)s, %(id)s)
         ORDER BY deleted_at, id LIMIT %(n)s)
    ) AS merged ORDER BY at, key LIMIT %(n)s
"""


def changes_sql(alias: str) -> str:
    """_CHANGES with the columns of the database `alias`."""
    return _CHANGES.format(columns=page_columns(alias), nothing=", ".join(["NULL"] * len(COLUMNS)))


def changes_page(*, owner_id: uuid.UUID, cursor: Cursor | None, limit: int) -> dict:
    """The answer of `tasks/changes/`: up to `limit` changes after `cursor` (None: from the
    start), as plain data (datetimes, UUIDs), and the cursor of what follows."""
    now = timezone.now()
    if cursor is None:  # a sync from the start: nothing deleted before it concerns the client
        cursor = Cursor(BEGINNING, uuid.UUID(int=0))
    if cursor.floor is None:  # no sync under way: this page begins one
        floor, since = now - COMMIT_LAG, cursor.at
    else:
        floor, since = cursor.floor, cursor.since
    # The deleted ids this sync needs: from where it resumes, or (from the start) from when it
    # began on.
    if (floor if since == BEGINNING else since) < now - DELETIONS_KEPT:
        raise CursorExpired
    alias = router.db_for_read(Task)
    with connections[alias].cursor() as db:
        db.execute(
            changes_sql(alias),
            {"owner": owner_id, "at": cursor.at, "id": cursor.id, "n": limit + 1},
        )
        rows = db.fetchall()
    has_more = len(rows) > limit
    changed, deleted = [], []
    for at, task_id, gone, *columns in rows[:limit]:
        if gone:
            deleted.append({"id": task_id, "deleted_at": at})
        else:
            changed.append(task_data(columns))
    if has_more:
        at, task_id, *_ = rows[limit - 1]
        following = Cursor(at, task_id, floor, since)
    else:  # this sync is done: the next starts where no change can still be committing
        following = Cursor(floor, uuid.UUID(int=0))
    return {
        "changed": changed,
        "deleted": deleted,
        "cursor": following.encode(),
        "has_more": has_more,
    }


def purge_deletions() -> int:
    """Deletes the deleted-task ids DELETIONS_KEPT old or older, in batches that leave the rows
    an account deletion holds to it (todo_project.purge); how many went."""
    return delete_expired(DeletedTask, "deleted_at", timezone.now() - DELETIONS_KEPT)
