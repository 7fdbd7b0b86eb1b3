"""Review 40b. A write that writes a task twice in one transaction makes PostgreSQL check that
row's foreign keys at the COMMIT (FOR KEY SHARE on its next occurrence and parent), after the
group lock. A PATCH completing a parent it moves to another list writes each open subtask twice
(moved along to the list, then completed by the cascade): a subtask's next occurrence taken
out from under the parent, held by its own write waiting for the group, deadlocked with it
(6 of 6 runs, 1.01-1.07 s). The other writers audited write each task once here: a PATCH
moving the parent without completing it, a bulk move, a move into a list whose spread moves
the others (one run each of those below; the spreads moving a row written already are
test_subtask_spread_lock_order's and test_completion_references')."""

from datetime import date

import pytest

from conftest import client_for
from tasks.models import POSITION_GAP, Task, TaskList
from tasks.tests.deadlocks import (
    bulk,
    completion_of,
    held_after_first_group_lock,
    held_then_raced,
    let_go_without_deadlock,
    ranked,
    retries_logged,
)
from todo_project.tests.helpers import start_in_thread

RECURRING = {"due_date": date(2026, 12, 1), "recurrence": "FREQ=DAILY"}


def detached_occurrence(user, make_task) -> tuple[Task, Task, str]:
    """A parent (in the Inbox) with an open subtask S whose next occurrence (S completed once,
    then reopened) was taken out from under the parent: a top-level task of the Inbox."""
    parent = make_task("Parent")
    s = make_task("S", parent=parent, **RECURRING)
    client = client_for(user)
    answer = client.patch(f"/api/v1/tasks/{s.pk}/", {"completed": True}, format="json")
    occurrence = answer.json()["next_occurrence"]
    reopened = client.patch(f"/api/v1/tasks/{s.pk}/", {"completed": False}, format="json")
    assert reopened.json()["next_occurrence"] == occurrence
    detached = client.patch(f"/api/v1/tasks/{occurrence}/", {"parent": None}, format="json")
    assert detached.status_code == 200, detached.content
    return parent, s, occurrence


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("completed", [True, False])
def test_a_patch_moving_a_parent_to_a_list_never_deadlocks_with_a_subtasks_next_occurrence(
    completed, user, make_task, monkeypatch, caplog
):
    """The PATCH holds the Inbox's group; the occurrence's completion holds the occurrence and
    waits for that group. Completing too, the PATCH's cascade wrote S a second time, whose
    COMMIT locked the occurrence: a deadlock. Now it gives way (55P03), and only then."""
    parent, s, occurrence = detached_occurrence(user, make_task)
    elsewhere = TaskList.objects.create(owner=user, name="Elsewhere", position=POSITION_GAP)
    body = {"list": str(elsewhere.pk), **({"completed": True} if completed else {})}
    moved, copied = held_then_raced(
        monkeypatch,
        caplog,
        lambda: client_for(user).patch(f"/api/v1/tasks/{parent.pk}/", body, format="json"),
        lambda: completion_of(user, occurrence),
    )
    assert (moved.status_code, copied.status_code) == (200, 200)
    assert Task.objects.get(pk=s.pk).completed is completed
    assert Task.objects.get(pk=s.pk).list_id == elsewhere.pk
    gave_way = "SQLSTATE 55P03" in " ".join(retries_logged(caplog))
    assert gave_way is completed  # only the completion writes S twice


@pytest.mark.django_db(transaction=True)
def test_a_patch_completing_a_parent_it_moves_never_deadlocks_with_a_bulk_action_on_the_two(
    user, make_task, monkeypatch, caplog
):
    """The same cycle through rows alone: a bulk action naming S and its next occurrence locks
    the occurrence first (top-level: ROW_LOCK_ORDER), then waits for S, which the PATCH moved
    along and completed; the PATCH's COMMIT locked the occurrence (1 s before the fix)."""
    parent, s, occurrence = detached_occurrence(user, make_task)
    elsewhere = TaskList.objects.create(owner=user, name="Elsewhere", position=POSITION_GAP)
    reached, go = held_after_first_group_lock(monkeypatch, "_cascade_completion")
    body = {"list": str(elsewhere.pk), "completed": True}
    holding = start_in_thread(
        lambda: client_for(user).patch(f"/api/v1/tasks/{parent.pk}/", body, format="json")
    )
    assert reached.wait(10)
    waiting = start_in_thread(
        lambda: bulk(user, "set_priority", [occurrence, s.pk], priority="high")
    )
    moved, prioritised = let_go_without_deadlock(go, holding, waiting, caplog)
    assert (moved.status_code, prioritised.status_code) == (200, 200)
    assert Task.objects.get(pk=s.pk).completed
    assert "SQLSTATE 55P03" in " ".join(retries_logged(caplog))


@pytest.mark.django_db(transaction=True)
def test_a_bulk_move_of_a_parent_never_deadlocks_with_a_subtasks_next_occurrence(
    user, make_task, monkeypatch, caplog
):
    """A bulk move writes each subtask once: no check of its next occurrence at the COMMIT."""
    parent, _, occurrence = detached_occurrence(user, make_task)
    elsewhere = TaskList.objects.create(owner=user, name="Elsewhere", position=POSITION_GAP)
    moved, copied = held_then_raced(
        monkeypatch,
        caplog,
        lambda: bulk(user, "move", [parent.pk], list=str(elsewhere.pk)),
        lambda: completion_of(user, occurrence),
    )
    assert (moved.status_code, copied.status_code) == (200, 200)
    assert retries_logged(caplog) == []


@pytest.mark.django_db(transaction=True)
def test_a_move_into_a_list_whose_spread_moves_others_never_deadlocks_with_its_next_occurrence(
    user, make_task, monkeypatch, caplog
):
    """A move into another list right after an anchor with no gap after it: the spread moves
    the list's tasks, never the moved one (still in the Inbox's rows), which is written once;
    its next occurrence, in the Inbox, is held by its completion waiting for the Inbox."""
    x = make_task("X", **RECURRING)
    client = client_for(user)
    answer = client.patch(f"/api/v1/tasks/{x.pk}/", {"completed": True}, format="json")
    occurrence = answer.json()["next_occurrence"]
    reopened = client.patch(f"/api/v1/tasks/{x.pk}/", {"completed": False}, format="json")
    assert reopened.status_code == 200, reopened.content
    elsewhere = TaskList.objects.create(owner=user, name="Elsewhere", position=POSITION_GAP)
    a = make_task("A", list=elsewhere)
    b = make_task("B", list=elsewhere)
    ranked({a: 1024, b: 1025})
    moved, copied = held_then_raced(
        monkeypatch,
        caplog,
        lambda: client.post(
            f"/api/v1/tasks/{x.pk}/move/",
            {"after": str(a.pk), "list": str(elsewhere.pk)},
            format="json",
        ),
        lambda: completion_of(user, occurrence),
    )
    assert (moved.status_code, copied.status_code) == (200, 200)
    assert Task.objects.get(pk=b.pk).position != 1025  # spread
    assert retries_logged(caplog) == []
