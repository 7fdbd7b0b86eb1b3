"""The clashes that end a write's transaction, for the tests of what runs it again: a real
deadlock between a write under test and the test itself, the same error raised in place of
chosen statements (to end an attempt exactly so many times), and a list deleted before the
write's COMMIT."""

import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import OperationalError, connection, connections, transaction
from psycopg import errors as psycopg_errors

from conftest import client_for
from tasks import services
from tasks.models import Task
from todo_project.tests.helpers import (
    connection_of_its_own,
    deadlocks_run_again,
    lock_waiters,
    start_in_thread,
    wait_for_lock_waiters,
)


def deadlock(user, task: Task, send, winner_writes=lambda locked: None) -> list:
    """`send(client)` is a write that locks `task`, then the Inbox's sibling group (a move; a
    PATCH that changes its list). This takes the group first, then the task: a real deadlock,
    which PostgreSQL settles by ending the write's transaction (it has waited longest, so its
    deadlock check runs first). `winner_writes(task)` runs with the cycle broken, the task
    locked. The write's answers."""
    answers = []

    def move_first() -> None:
        try:
            answers.append(send(client_for(user)))
        finally:
            connections.close_all()

    moving = threading.Thread(target=move_first)
    with transaction.atomic():
        services._lock_groups(user.pk, [(None, None)])  # the Inbox, top level
        moving.start()
        for _ in range(200):  # the move holds its task and queues for the group (~10 s at most)
            if lock_waiters(connection) >= 1:
                break
            time.sleep(0.05)
        # Half a second later than the move's: its deadlock check (1 s after it began waiting)
        # comes first even on a busy machine (pytest-xdist's other worker), where timers slip.
        time.sleep(0.5)
        winner_writes(Task.objects.select_for_update().get(pk=task.pk))  # a cycle: waits
    moving.join(timeout=20)
    return answers


def deadlocking(statement_start: str, times: int, about: Any = None) -> tuple[list, Any]:
    """An execute wrapper that ends the first `times` statements starting so (and given `about`
    among their parameters, if given) as PostgreSQL ends a deadlock's loser; the list of the
    statements it ended."""
    ended: list[str] = []

    def wrapper(execute, sql, params, many, context):
        meant = about is None or about in (params or ())
        if sql.startswith(statement_start) and meant and len(ended) < times:
            ended.append(sql)
            raise OperationalError("deadlock detected") from psycopg_errors.DeadlockDetected()
        return execute(sql, params, many, context)

    return ended, wrapper


def list_deleted_before_the_update(monkeypatch, task_list) -> None:
    """Makes services.task_update delete `task_list` first, on a connection of its own (a
    concurrent DELETE lists/{id}/): a write moving a task into it fails on its foreign key at
    the COMMIT."""
    update = services.task_update

    def list_deleted_meanwhile(**kwargs: Any):
        with connection_of_its_own(connection) as other:
            other.execute("DELETE FROM tasks_tasklist WHERE id = %s", [task_list.pk])
        return update(**kwargs)

    monkeypatch.setattr(services, "task_update", list_deleted_meanwhile)


def held_after_first_group_lock(
    monkeypatch, name: str | None = None
) -> tuple[threading.Event, threading.Event]:
    """The first call of services.<name> (the spreading write's) stops once it has run, until
    `go`; every later call (the other writer's) runs as it is. No name: the first group lock,
    by _lock_groups or with the owner's count by _lock_group_and_count (a create's, and a
    PATCH completing one recurring task's since review 40c)."""
    reached, go = threading.Event(), threading.Event()
    first = threading.Lock()

    def holding(original: Callable[..., Any]) -> Callable[..., Any]:
        def held(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            if first.acquire(blocking=False):
                reached.set()
                assert go.wait(20)
            return result

        return held

    for each in [name] if name else ["_lock_groups", "_lock_group_and_count"]:
        monkeypatch.setattr(services, each, holding(getattr(services, each)))
    return reached, go


def held_before(
    monkeypatch, name: str, when: Callable[..., bool] = lambda **kwargs: True
) -> tuple[threading.Event, threading.Event]:
    """The first call of services.<name> whose keyword arguments `when` accepts stops before it
    runs, until `go`; every other call runs as it is."""
    reached, go = threading.Event(), threading.Event()
    first = threading.Lock()
    original = getattr(services, name)

    def held(*args: Any, **kwargs: Any) -> Any:
        if when(**kwargs) and first.acquire(blocking=False):
            reached.set()
            assert go.wait(20)
        return original(*args, **kwargs)

    monkeypatch.setattr(services, name, held)
    return reached, go


def let_go_without_deadlock(go, held, waiting, caplog) -> tuple:
    """Once the `waiting` writer waits for a lock, lets the `held` one go on (`go`); both
    answers, neither a deadlock run again nor a wait of deadlock_timeout (1 s)."""
    assert wait_for_lock_waiters(connection, 1)
    started = time.monotonic()
    go.set()
    answers = held(), waiting()
    took = time.monotonic() - started
    assert deadlocks_run_again(caplog) == [], f"{took:.2f} s"
    assert took < 0.9, f"{took:.2f} s: a deadlock's wait"
    return answers


def retries_logged(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "todo.retry"]


def bulk(user, action: str, ids: list, **more):
    """POST tasks/bulk/ as `user`: `action` over these ids."""
    return client_for(user).post(
        "/api/v1/tasks/bulk/",
        {"action": action, "ids": [str(pk) for pk in ids], **more},
        format="json",
    )


def ranked(ranks: dict) -> None:
    """Gives each task its rank, every one moved out of the way first: two tasks of a group
    never share a rank (its unique constraint), not even for a statement."""
    for n, task in enumerate(ranks):
        Task.objects.filter(pk=task.pk).update(position=-1000 - n)
    for task, rank in ranks.items():
        Task.objects.filter(pk=task.pk).update(position=rank)


def completion_of(user, task_id):
    """PATCH the task `{"completed": true}` as `user`."""
    return client_for(user).patch(f"/api/v1/tasks/{task_id}/", {"completed": True}, format="json")


def held_then_raced(monkeypatch, caplog, held, racing) -> tuple:
    """Runs `held` until its first group lock has been taken (held_after_first_group_lock),
    then `racing` until it waits for a lock, then lets `held` go on: both answers, neither run
    again after a deadlock (let_go_without_deadlock)."""
    reached, go = held_after_first_group_lock(monkeypatch)
    holding = start_in_thread(held)
    assert reached.wait(10)
    waiting = start_in_thread(racing)
    return let_go_without_deadlock(go, holding, waiting, caplog)


def run_while_the_count_row_is_held(user, write: Callable[[], Any]) -> Any:
    """Runs `write` while another connection holds `user`'s task count row: it must wait for
    it holding exactly one advisory lock (its group's, taken first, as every writer takes
    them); `write`'s result once the row is let go."""
    with connection_of_its_own(connection) as other, other.transaction():
        other.execute(
            "SELECT tasks FROM tasks_ownertaskcount WHERE owner_id = %s FOR NO KEY UPDATE",
            [user.pk],
        )
        waiting = start_in_thread(write)
        assert wait_for_lock_waiters(connection, 1)
        held = other.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()[0]
        assert held == 1
    return waiting()


def completed_in_bulk_beside_its_next_occurrence(monkeypatch, caplog, user, before, again, copy):
    """`again` (reopened, its next occurrence `copy` kept) completed in one bulk with the
    recurring task `before` right before it, whose copy's spread moves it, while a completion
    of `copy` is raced against it: both answer 200, and the bulk gave way on `copy` (55P03)."""
    ranked({copy: -100_000, before: 1024, again: 1025})
    bulk_completion_gave_way_to_its_copys(monkeypatch, caplog, user, [before.pk, again.pk], copy)


def bulk_completion_gave_way_to_its_copys(monkeypatch, caplog, user, ids, copy) -> None:
    """A bulk completion of `ids`, held, raced with a completion of `copy`: both answer 200,
    and the bulk gave way on `copy` (55P03, review 39d), waited for it, and ran again."""
    completed, copied = held_then_raced(
        monkeypatch,
        caplog,
        lambda: bulk(user, "complete", ids),
        lambda: completion_of(user, copy.pk),
    )
    assert (completed.status_code, copied.status_code) == (200, 200)
    assert "SQLSTATE 55P03" in " ".join(retries_logged(caplog))
