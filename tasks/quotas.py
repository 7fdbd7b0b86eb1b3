"""Per-user caps on what a user may store, so one account cannot fill the database, nor make
the unpaginated answers (its lists, its tags) grow without bound."""

import uuid

from django.conf import settings
from django.contrib.auth import get_user_model

from todo_project.compiled import CompiledQuery
from todo_project.problems import Conflict

# FOR NO KEY UPDATE: creates still take turns, but the foreign-key check of a task inserted
# elsewhere (FOR KEY SHARE of the user) does not wait for it. It did with FOR UPDATE, which
# deadlocked a create waiting on the owner's task count (tasks.OwnerTaskCount) with a
# completion that holds the count and is committing its next occurrence. Compiled once per
# process (todo_project/compiled.py).
_LOCK_USER = CompiledQuery(
    lambda user: (
        get_user_model().objects.select_for_update(no_key=True).filter(pk=user).values_list("pk")
    ),
    user=uuid.UUID(int=1),
)


def lock_owner(owner_id: uuid.UUID) -> None:
    """Locks the owner's row until the commit: where creates take turns while the owner has no
    task count row to lock (tasks.services._lock_group_and_count)."""
    _LOCK_USER.rows(user=owner_id)


# How far completing recurring tasks may take an account past MAX_TASKS_PER_USER: a user at the
# cap can still complete a recurring task (its next occurrence is a new task), for a good while,
# but not without bound (500 copies a bulk request, 100 requests a minute).
COMPLETION_ALLOWANCE = 1000

# How many tasks one request may complete, the open subtasks completed with their parents
# included. A completion's work grows with them (a recurring one's next occurrence: ~0.8 ms
# each, measured): 40,000 recurring subtasks of one parent ran past gunicorn's 30 s timeout,
# and the killed worker answered a 500. At this bound, ~1 s.
MAX_COMPLETED_PER_REQUEST = 1000


def counted(count: int, noun: str) -> str:
    """`count` and `noun` as a user reads them: "1 list", "100,000 tasks"."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


# The caps' 409s are shown to end users as they are: no setting names (the README documents
# MAX_TASKS_PER_USER, MAX_LISTS_PER_USER and MAX_TAGS_PER_USER for operators).


def ensure_completion_size(*, completing: int, most: int) -> None:
    """Raises a 409 when one request would complete more than `most` tasks (the caller's
    MAX_COMPLETED_PER_REQUEST), subtasks included; `completing` may stop one past it."""
    if completing > most:
        raise Conflict(
            f"This would complete more than {most:,} tasks (open subtasks included); one "
            f"request completes at most {most:,}. Nothing changed: complete the subtasks "
            "first, up to 500 in a bulk request."
        )


def ensure_room(
    *, owned: int, adding: int = 1, allowance: int = 0, before: str = "adding more"
) -> None:
    """Raises a 409 when `adding` more tasks would take an owner of `owned` tasks past
    MAX_TASKS_PER_USER. Completed tasks count too.

    `owned` must be read under a lock that the owner's other creates wait for until the commit,
    so that two of them cannot both take the last free place.
    """
    cap = settings.MAX_TASKS_PER_USER
    if owned + adding > cap + allowance:
        raise Conflict(
            f"You have {counted(owned, 'task')}; the limit is {cap:,} per account. "
            f"Delete some (completed ones count too) before {before}."
        )


def ensure_list_room(*, owned: int) -> None:
    """Raises a 409 when one more list would take an owner of `owned` lists past
    MAX_LISTS_PER_USER. `owned` is read under the owner's lock (services.list_create)."""
    cap = settings.MAX_LISTS_PER_USER
    if owned + 1 > cap:
        raise Conflict(
            f"You have {counted(owned, 'list')}; the limit is {cap:,} per account. "
            "Delete one before adding another."
        )


def ensure_tag_room(*, owned: int, adding: int) -> None:
    """Raises a 409 when `adding` new tags would take an owner of `owned` tags past
    MAX_TAGS_PER_USER.

    `owned` is the committed count, read without a lock: tags are made inside task writes,
    which hold row and group locks a lock on the owner would have to be ordered with. So
    concurrent writes of one owner can together pass the cap by the new tags they name (at
    most MAX_TAGS_PER_TASK each): a bound on what one account stores, not an exact count.
    """
    cap = settings.MAX_TAGS_PER_USER
    if owned + adding > cap:
        raise Conflict(
            f"You have {counted(owned, 'tag')}; the limit is {cap:,} per account, and this "
            f"would add {counted(adding, 'new tag')}. Use existing tags, or delete some first."
        )
