"""A task's delete (`DELETE tasks/{id}/`, bulk `delete`, the admin's, a list's with its tasks)
and the account's delete lock their rows first, in ROW_LOCK_ORDER as every write of several
tasks does, and decide what goes on the locked rows (tasks.services._DELETE_TASKS; review 34e):
deleted in a hash of the ids' order, a subtask went before its parent about one time in two and
deadlocked with a parent's writer (1 s, then run again); a copy's previous occurrence was locked
after it; and a subtask given another parent while the delete waited for it went anyway."""

import threading
from datetime import date
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from conftest import DEFAULT_PASSWORD, client_for
from tasks import services
from tasks.models import Priority, Task
from todo_project.tests.helpers import (
    connection_of_its_own,
    deadlocks_run_again,
    start_in_thread,
    wait_for_lock_waiters,
)


def _held_before(
    monkeypatch, name: str, after: bool = False
) -> tuple[threading.Event, threading.Event]:
    """Makes services.<name> stop (before it runs, or right after with `after`) until `go`,
    once, telling `reached`: a hold point inside the request under test."""
    reached, go = threading.Event(), threading.Event()
    original = getattr(services, name)

    def held(*args: Any, **kwargs: Any) -> Any:
        if after:
            result = original(*args, **kwargs)
        if not go.is_set():
            reached.set()
            assert go.wait(20)
        return result if after else original(*args, **kwargs)

    monkeypatch.setattr(services, name, held)
    return reached, go


def _deletion_order(which: str, owner_id, **params: Any) -> list:
    """The order in which the delete statement deletes the rows, run and rolled back."""
    if which == "owner":  # the account's: after its lock, by the owner
        sql = services._DELETE_ALL.replace(
            "\n    DELETE FROM tasks_task WHERE owner_id = %(owner)s\n",
            ", gone AS (DELETE FROM tasks_task WHERE owner_id = %(owner)s RETURNING id)"
            " SELECT array_agg(id) FROM gone",
        )
    else:
        sql = services._DELETE_TASKS_OF[which].replace(
            "SELECT count(*) FROM gone", "SELECT array_agg(id) FROM gone"
        )
    with connection_of_its_own(connection) as other:
        other.execute("BEGIN")
        order = other.execute(sql, {"owner": owner_id, "now": timezone.now(), **params}).fetchone()[
            0
        ]
        other.execute("ROLLBACK")
    return order


def _parent_deleted_after_its_subtask(user, make_task, which: str) -> Task:
    """A parent with one subtask that the delete statement deletes before it (the statement
    deletes in the order of a hash of the ids: about one pair in two). Where no pair is found
    (a fixed statement may never delete so), the last one."""
    for _ in range(20):
        parent = make_task("Parent")
        subtask = make_task("Subtask", parent=parent)
        params = {"ids": [parent.pk]} if which == "ids" else {}
        order = _deletion_order(which, user.pk, **params)
        if order.index(subtask.pk) < order.index(parent.pk):
            return parent
        Task.objects.filter(pk__in=[parent.pk, subtask.pk]).delete()
    return make_task("Subtask", parent=make_task("Parent")).parent


PARENT_WRITES = {
    # request, the function it is held before (the parent locked, its subtasks not yet)
    "PATCH completed": (
        lambda user, parent, to: client_for(user).patch(
            f"/api/v1/tasks/{parent.pk}/", {"completed": True}, format="json"
        ),
        "_cascade_completion",
    ),
    "bulk complete": (
        lambda user, parent, to: client_for(user).post(
            "/api/v1/tasks/bulk/", {"action": "complete", "ids": [str(parent.pk)]}, format="json"
        ),
        "_cascade_completion",
    ),
    "move to another list": (
        lambda user, parent, to: client_for(user).post(
            f"/api/v1/tasks/{parent.pk}/move/", {"list": str(to.pk), "after": None}, format="json"
        ),
        "_lock_groups",
    ),
    "PATCH list": (
        lambda user, parent, to: client_for(user).patch(
            f"/api/v1/tasks/{parent.pk}/", {"list": str(to.pk)}, format="json"
        ),
        "_lock_groups",
    ),
    "bulk move": (
        lambda user, parent, to: client_for(user).post(
            "/api/v1/tasks/bulk/",
            {"action": "move", "ids": [str(parent.pk)], "list": str(to.pk)},
            format="json",
        ),
        "_lock_groups",
    ),
}
DELETES = {
    "DELETE tasks/{id}/": (
        "ids",
        lambda user, parent: client_for(user).delete(f"/api/v1/tasks/{parent.pk}/"),
    ),
    "DELETE auth/me/": (
        "owner",
        lambda user, parent: client_for(user).delete(
            "/api/v1/auth/me/", {"password": DEFAULT_PASSWORD}, format="json"
        ),
    ),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("write", list(PARENT_WRITES))
@pytest.mark.parametrize("delete", list(DELETES))
def test_a_parent_write_and_the_delete_of_the_parent_or_account_never_deadlock(
    user, make_task, make_list, monkeypatch, caplog, write, delete
):
    which, send_delete = DELETES[delete]
    send_write, hold_before = PARENT_WRITES[write]
    to = make_list("Elsewhere")
    parent = _parent_deleted_after_its_subtask(user, make_task, which)
    reached, go = _held_before(monkeypatch, hold_before)
    writing = start_in_thread(lambda: send_write(user, parent, to))  # holds the parent
    assert reached.wait(10)
    deleting = start_in_thread(lambda: send_delete(user, parent))
    assert wait_for_lock_waiters(connection, 1)  # the delete waits for the parent
    go.set()  # the write goes on to the subtask
    written, deleted = writing(), deleting()
    assert written.status_code == 200, written.content
    assert deleted.status_code == 204, deleted.content
    assert not Task.objects.filter(pk=parent.pk).exists()
    assert deadlocks_run_again(caplog) == []  # was: 40P01 after 1 s, the delete run again


@pytest.mark.django_db(transaction=True)
def test_completing_a_subtask_while_its_parent_is_deleted_never_deadlocks(user, make_task, caplog):
    # The completion holds the parent (FOR KEY SHARE, taken by the one-time filter of its
    # locking read of the subtask: models._PARENT_FIRST) while it waits for the subtask, held
    # here by another client; the delete comes then, and waits for the parent.
    parent = _parent_deleted_after_its_subtask(user, make_task, "ids")
    subtask = parent.subtasks.get()
    with connection_of_its_own(connection) as other, connection_of_its_own(connection) as probe:
        other.execute("BEGIN")
        other.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR UPDATE", [subtask.pk])
        completing = start_in_thread(
            lambda: client_for(user).patch(f"/api/v1/tasks/{subtask.pk}/", {"completed": True})
        )
        assert wait_for_lock_waiters(connection, 1)  # for the subtask, holding the parent:
        with pytest.raises(psycopg.errors.LockNotAvailable):
            probe.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR UPDATE NOWAIT", [parent.pk])
        deleting = start_in_thread(lambda: client_for(user).delete(f"/api/v1/tasks/{parent.pk}/"))
        assert wait_for_lock_waiters(connection, 2)  # the delete waits for the parent
        other.execute("COMMIT")
    completed, deleted = completing(), deleting()
    assert (completed.status_code, deleted.status_code) == (200, 204)
    assert deadlocks_run_again(caplog) == []


COPY_DELETES = {
    # The copy is in a list of its own, its original in the Inbox.
    "DELETE tasks/{id}/": lambda user, copy: client_for(user).delete(f"/api/v1/tasks/{copy.pk}/"),
    # These three lock the copy in a statement before the delete's (review 34f).
    "DELETE with If-Match": lambda user, copy: client_for(user).delete(
        f"/api/v1/tasks/{copy.pk}/", HTTP_IF_MATCH=f'"{copy.version}"'
    ),
    "bulk delete of the copy": lambda user, copy: client_for(user).post(
        "/api/v1/tasks/bulk/", {"action": "delete", "ids": [str(copy.pk)]}, format="json"
    ),
    "DELETE lists/{id}/?tasks=delete": lambda user, copy: client_for(user).delete(
        f"/api/v1/lists/{copy.list_id}/?tasks=delete"
    ),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("delete", list(COPY_DELETES))
@pytest.mark.parametrize("action", ["set_priority", "delete"])
def test_deleting_a_copy_while_a_bulk_action_holds_its_original_never_deadlocks(
    user, make_task, make_list, caplog, action, delete
):
    for _ in range(20):  # the bulk action locks the original first (ROW_LOCK_ORDER: by id)
        original = make_task("Rent", due_date=date(2026, 12, 1), recurrence="FREQ=MONTHLY")
        copy_id = services.task_complete(task=original, user=user).next_occurrence_id
        if original.pk < copy_id:
            break
    Task.objects.filter(pk=copy_id).update(list=make_list("Bills"))
    copy = Task.objects.get(pk=copy_id)
    body = {"action": action, "ids": [str(original.pk), str(copy_id)], "priority": "high"}
    if action == "delete":
        del body["priority"]
    with connection_of_its_own(connection) as other:  # another write holding the original
        other.execute("BEGIN")
        other.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR UPDATE", [original.pk])
        bulk = start_in_thread(
            lambda: client_for(user).post("/api/v1/tasks/bulk/", body, format="json")
        )
        assert wait_for_lock_waiters(connection, 1)  # the bulk action queues for the original
        deleting = start_in_thread(lambda: COPY_DELETES[delete](user, copy))
        # The delete queues too, for the original: before, it held the copy, which the bulk
        # action, given the original, then waited for (a deadlock, 1 s, one run again).
        assert wait_for_lock_waiters(connection, 2)
        other.execute("ROLLBACK")
    answers = bulk(), deleting()
    assert deadlocks_run_again(caplog) == []
    if answers[1].status_code == 412:  # the bulk action changed the copy first: a stale ETag
        assert (delete, Task.objects.get(pk=copy_id).priority) == (
            "DELETE with If-Match",
            Priority.HIGH,
        )
    else:  # whichever goes first, the other finds the copy gone (a 404) or deletes it
        assert not Task.objects.filter(pk=copy_id).exists()
        assert {answer.status_code for answer in answers} <= {200, 204, 404}


@pytest.mark.django_db(transaction=True)
def test_a_subtask_given_another_parent_survives_the_delete_of_its_old_parent(
    user, make_task, monkeypatch
):
    old_parent, new_parent = make_task("Old parent"), make_task("New parent")
    subtask = make_task("Subtask", parent=old_parent)
    reached, go = _held_before(monkeypatch, "_place_under_parent")  # the subtask locked
    moving = start_in_thread(
        lambda: client_for(user).patch(
            f"/api/v1/tasks/{subtask.pk}/", {"parent": str(new_parent.pk)}, format="json"
        )
    )
    assert reached.wait(10)
    deleting = start_in_thread(lambda: client_for(user).delete(f"/api/v1/tasks/{old_parent.pk}/"))
    assert wait_for_lock_waiters(connection, 1)  # the DELETE waits for the subtask
    go.set()
    moved, deleted = moving(), deleting()
    assert moved.status_code == 200 and moved.json()["parent"] == str(new_parent.pk)
    assert deleted.status_code == 204
    # The PATCH answered 200 with the task under its new parent: the DELETE of the old parent,
    # which read its subtasks before that commit, must not take it along (it did: gone).
    assert Task.objects.filter(pk=subtask.pk, parent=new_parent).exists()
