"""Review 39f. A completion's spread (or renumbering) that moves a row the transaction wrote
already makes PostgreSQL check that row's foreign keys at the COMMIT (FOR KEY SHARE on its
next occurrence and parent, after the group lock): _REFERENCED locks them early, NOWAIT. The
rows written already are every task the completion wrote, those with no rule too (a task
whose rule was removed keeps its next occurrence); after a renumbering, only those of them in
the group (the others' first row version: their unchanged keys are not checked)."""

from datetime import date

import pytest
from django.db import connection

from conftest import client_for
from tasks.models import POSITION_GAP, Task, TaskList
from tasks.tests.deadlocks import (
    bulk,
    completed_in_bulk_beside_its_next_occurrence,
    completion_of,
    held_then_raced,
    ranked,
    retries_logged,
)
from todo_project.tests.helpers import (
    connection_of_its_own,
    start_in_thread,
    wait_for_lock_waiters,
)

RECURRING = {"due_date": date(2026, 12, 1), "recurrence": "FREQ=DAILY"}


@pytest.mark.django_db(transaction=True)
def test_a_completed_non_recurring_task_with_a_next_occurrence_moved_by_a_spread(
    user, make_task, monkeypatch, caplog
):
    """Review 39f, finding 1: as test_subtask_spread_lock_order's
    test_a_completed_task_a_spread_of_the_same_bulk_moves_never_deadlocks_with_its_next_occurrence,
    but `Again`'s rule was removed when it was reopened: its next occurrence C stays, and as no
    recurring task _bulk_complete left it out of `written`: a deadlock, 1 s."""
    again = make_task("Again", **RECURRING)
    client = client_for(user)
    answer = client.patch(f"/api/v1/tasks/{again.pk}/", {"completed": True}, format="json")
    copy = Task.objects.get(pk=answer.json()["next_occurrence"])
    reopened = client.patch(
        f"/api/v1/tasks/{again.pk}/", {"completed": False, "recurrence": None}, format="json"
    )
    assert reopened.status_code == 200, reopened.content
    assert reopened.json()["next_occurrence"] == str(copy.pk)
    before = make_task("Before", **RECURRING)
    completed_in_bulk_beside_its_next_occurrence(monkeypatch, caplog, user, before, again, copy)


@pytest.mark.django_db(transaction=True)
def test_a_cascaded_non_recurring_subtask_with_a_next_occurrence_moved_by_a_spread(
    user, make_task, monkeypatch, caplog
):
    """Review 39f, finding 1, the cascade's side: `S` (its rule removed, its next occurrence
    C kept, C completed) is completed by the cascade of its parent's bulk completion, then
    moved by the spread of its recurring sibling R's copy: C locked FOR KEY SHARE at the COMMIT
    while a move of C held C and waited for the subtasks' group."""
    parent = make_task("Parent")
    s = make_task("S", parent=parent, **RECURRING)
    client = client_for(user)
    answer = client.patch(f"/api/v1/tasks/{s.pk}/", {"completed": True}, format="json")
    copy = Task.objects.get(pk=answer.json()["next_occurrence"])
    Task.objects.filter(pk=copy.pk).update(completed=True, completed_at=copy.created_at)
    reopened = client.patch(
        f"/api/v1/tasks/{s.pk}/", {"completed": False, "recurrence": None}, format="json"
    )
    assert reopened.status_code == 200, reopened.content
    r = make_task("R", parent=parent, **RECURRING)
    ranks = {copy: -100_000, r: 1024, s: 1025}
    ranked(ranks)
    completed, moved = held_then_raced(
        monkeypatch,
        caplog,
        lambda: bulk(user, "complete", [parent.pk]),
        lambda: client_for(user).post(
            f"/api/v1/tasks/{copy.pk}/move/", {"after": str(r.pk)}, format="json"
        ),
    )
    assert (completed.status_code, moved.status_code) == (200, 200)
    assert "SQLSTATE 55P03" in " ".join(retries_logged(caplog))


@pytest.mark.django_db(transaction=True)
def test_a_renumbering_completion_waits_for_no_reference_of_a_task_it_never_wrote(
    user, make_task, caplog
):
    """Review 39f, finding 2: a bulk completion whose copy renumbers its group (a crowd longer than
    SPREAD_RUN_LIMIT both ways) locked FOR KEY SHARE NOWAIT the next occurrence and parent of
    every task of the group (_lock_group_references), though only a row written twice has its
    foreign keys checked at the COMMIT. `Done`'s next occurrence, moved to a list and held
    there by another transaction (a PATCH of it: FOR UPDATE), made the completion give way and
    wait for that transaction, though nothing of this one locks it."""
    done = make_task("Done", **RECURRING)
    client = client_for(user)
    answer = client.patch(f"/api/v1/tasks/{done.pk}/", {"completed": True}, format="json")
    elsewhere = TaskList.objects.create(owner=user, name="Elsewhere", position=POSITION_GAP)
    occurrence = answer.json()["next_occurrence"]
    moved = client.patch(f"/api/v1/tasks/{occurrence}/", {"list": str(elsewhere.pk)}, format="json")
    assert moved.status_code == 200, moved.content
    before = make_task("Before", **RECURRING)
    crowd = Task.objects.bulk_create(
        Task(owner=user, title=f"C{n}", position=-10_000 - n) for n in range(600)
    )
    order = [*crowd[:300], before, done, *crowd[300:]]
    for rank, task in enumerate(order, 1):  # packed: no room within 256 either way
        Task.objects.filter(pk=task.pk).update(position=rank)
    with connection_of_its_own(connection) as other:
        other.execute("BEGIN")
        other.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR UPDATE", [occurrence])
        completing = start_in_thread(lambda: bulk(user, "complete", [before.pk]))
        waited = wait_for_lock_waiters(connection, 1, timeout=3)
        other.execute("COMMIT")
        completed = completing()
    assert completed.status_code == 200, completed.content
    assert not waited, "the completion waited for a row it never needs"
    assert retries_logged(caplog) == []
    assert Task.objects.get(pk=done.pk).position % POSITION_GAP == 0  # renumbered


@pytest.mark.django_db(transaction=True)
def test_a_renumbering_completion_still_locks_the_references_of_a_task_it_wrote(
    user, make_task, monkeypatch, caplog
):
    """The patch's narrowed _lock_group_references still takes what the COMMIT would: `Again`
    (completed, reopened, its next occurrence C moved to a list) completed again in the bulk
    and moved again by the renumbering of its group, while a completion of C holds C and waits
    for the list's group, which the bulk holds (its `Other` there recurs too)."""
    again = make_task("Again", **RECURRING)
    client = client_for(user)
    answer = client.patch(f"/api/v1/tasks/{again.pk}/", {"completed": True}, format="json")
    occurrence = answer.json()["next_occurrence"]
    assert client.patch(f"/api/v1/tasks/{again.pk}/", {"completed": False}, format="json")
    elsewhere = TaskList.objects.create(owner=user, name="Elsewhere", position=POSITION_GAP)
    moved = client.patch(f"/api/v1/tasks/{occurrence}/", {"list": str(elsewhere.pk)}, format="json")
    assert moved.status_code == 200, moved.content
    other = make_task("Other", list=elsewhere, **RECURRING)
    before = make_task("Before", **RECURRING)
    crowd = Task.objects.bulk_create(
        Task(owner=user, title=f"C{n}", position=-10_000 - n) for n in range(600)
    )
    order = [*crowd[:300], before, again, *crowd[300:]]
    for rank, task in enumerate(order, 1):
        Task.objects.filter(pk=task.pk).update(position=rank)
    completed, copied = held_then_raced(
        monkeypatch,
        caplog,
        lambda: bulk(user, "complete", [before.pk, again.pk, other.pk]),
        lambda: completion_of(user, occurrence),
    )
    assert (completed.status_code, copied.status_code) == (200, 200)
    assert "SQLSTATE 55P03" in " ".join(retries_logged(caplog))
