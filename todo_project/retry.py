"""Writes that PostgreSQL ended to settle a clash with a concurrent one, run again.

A deadlock, a serialization failure, a lock not available, or a reference deleted meanwhile
(problems.is_concurrent_change) ends the write's transaction whole: nothing of it stays, so
running the handler again is the serial order PostgreSQL picked, and its answer is the one the
client would get by sending the request again (a 200, or the 400/404 of the data as it is now).
Twice more at most, a few milliseconds apart at random so the two writers do not meet again;
then the 503 with Retry-After of before.

A conditional write (If-Match or If-None-Match) locks, compares and writes in one transaction
(ConditionalRequestMixin): that transaction is what runs again, the comparison included, so a
write that lost its race to a change of the row answers the 412 it would get if sent again.
A write inside a transaction begun before the handler cannot be run again in it: it answers
the 503.

A reference that failed because the request's own account was deleted meanwhile (DELETE
auth/me/ from another session) is not run again: it would fail the same way every time, as the
request's user is not read again, and end in a 503 "Retry the request" that can only ever get
a 401. It answers that 401 at once, the serial order's answer (what `me/` answers in that race).
"""

import functools
import logging
import random
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection
from rest_framework import exceptions

from accounts.authentication import INVALID_TOKEN
from todo_project.problems import FOREIGN_KEY_VIOLATION, is_concurrent_change

RETRIES = 2
# A write may give way at once to rows another transaction holds, rather than wait for them
# where waiting can close a cycle (tasks.services.NeighboursHeld): it then waits for them
# holding nothing, and runs again. So many times at most, not counted in RETRIES, which stay
# for what PostgreSQL ended: a give-way never brings the 503 closer.
GIVE_WAYS = 5
WRITE_METHODS = ("post", "put", "patch", "delete")
logger = logging.getLogger("todo.retry")
# True while the write running now may give way (see GIVE_WAYS). Outside this wrapper (a
# management command, a test calling a service) nothing runs it again: it waits, as it does
# once it gave way GIVE_WAYS times.
may_give_way: ContextVar[bool] = ContextVar("may_give_way", default=False)
# True while the write running now is running again after it gave way: a write that gave way
# on a row it locks out of order may lock it first then, in order, and never give way on it
# again (a move of a subtask: its parent, tasks.views.CompiledLookupForWrites.get_object).
has_given_way: ContextVar[bool] = ContextVar("has_given_way", default=False)


def run_again_on_concurrent_change(
    handler: Callable[..., Any], account_id: Any = None
) -> Callable[..., Any]:
    """`account_id`: the request's user, whose deletion meanwhile is a 401 (see above)."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        attempt, gave_way = 1, 0
        while True:
            giving_way = may_give_way.set(gave_way < GIVE_WAYS)
            given_way = has_given_way.set(gave_way > 0)
            try:
                return handler(*args, **kwargs)
            except DatabaseError as error:
                if connection.in_atomic_block or not is_concurrent_change(error):
                    raise
                if (
                    account_id is not None
                    and error.__cause__.sqlstate == FOREIGN_KEY_VIOLATION
                    and not get_user_model().objects.filter(pk=account_id).exists()
                ):
                    raise exceptions.AuthenticationFailed(INVALID_TOKEN, "invalid_token") from error
                wait = getattr(error, "wait_before_running_again", None)
                if gave_way >= GIVE_WAYS:
                    wait = None
                if wait is None and attempt > RETRIES:
                    raise
                logger.info(
                    "write ended by a concurrent change (SQLSTATE %s), running it again",
                    error.__cause__.sqlstate,
                )
                if wait is not None:  # it gave way: it waits, holding nothing
                    gave_way += 1
                    try:
                        wait()
                    except DatabaseError as waited:
                        # Queued in a cycle of others' (a deadlock it held nothing of, picked
                        # to end it): the write runs again all the same, not a 503 (review 38c).
                        if not is_concurrent_change(waited):
                            raise
                else:
                    time.sleep(random.uniform(0.002, 0.02) * attempt)
                    attempt += 1
            finally:
                may_give_way.reset(giving_way)
                has_given_way.reset(given_way)

    return wrapper


class RetriedWrites:
    """For a view: its write handlers run again after a concurrent change (see above). Wrapped in
    initial(), the last step before DRF looks the handler up: outside whatever the view's
    dispatch() wrapped it in (a conditional write's transaction), whatever the bases' order."""

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        method = request.method.lower()
        handler = getattr(self, method, None)
        if method in WRITE_METHODS and handler is not None:
            user = getattr(request, "user", None)
            account_id = user.pk if getattr(user, "is_authenticated", False) else None
            setattr(self, method, run_again_on_concurrent_change(handler, account_id))
