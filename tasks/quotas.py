"""Per-user caps on what a user may store, so one account cannot fill the database."""

import uuid

from django.conf import settings
from django.contrib.auth import get_user_model

from tasks.models import OwnerTaskCount
from todo_project.compiled import CompiledQuery
from todo_project.problems import Conflict

# FOR NO KEY UPDATE: creates still take turns, but the foreign-key check of a task inserted
# elsewhere (FOR KEY SHARE of the user) does not wait for it. It did with FOR UPDATE, which
# deadlocked a create waiting on the owner's task count (tasks.OwnerTaskCount) with a
# completion that holds the count and is committing its next occurrence. Compiled once per
# process (todo_project/compiled.py): every create runs it.
_LOCK_USER = CompiledQuery(
    lambda user: (
        get_user_model().objects.select_for_update(no_key=True).filter(pk=user).values_list("pk")
    ),
    user=uuid.UUID(int=1),
)


def task_capacity_ensure(*, user, adding: int = 1) -> None:
    """Raises a 409 when `adding` more tasks would take `user` past MAX_TASKS_PER_USER.

    Call it inside the transaction that creates the tasks: it locks the user's row, so two
    concurrent creates cannot both take the last free place. Completed tasks count too.
    """
    cap = settings.MAX_TASKS_PER_USER
    _LOCK_USER.rows(user=user.pk)
    # The maintained count (one lookup; a COUNT(*) cost ~10 ms at 100,000 tasks), read after
    # the lock so that it includes every create that went before.
    owned = OwnerTaskCount.of(user.pk)
    if owned + adding > cap:
        raise Conflict(
            f"You have {owned} tasks; the limit is {cap} per account (MAX_TASKS_PER_USER). "
            "Delete some (completed ones count too) before adding more."
        )
