"""Review 38c. A subtask moved within its parent whose gap is used up: the spread moves the
subtask itself (it is in the run right after the anchor), so the move's own UPDATE of it is its
second row version in the transaction, and PostgreSQL checks its foreign keys at the COMMIT
whatever changed: `FOR KEY SHARE` on its parent, after the subtask's lock and the group's. A
writer of the parent that holds it and then waits for the subtask (a completion's cascade, a
move of the parent's list taking its subtasks along, a delete, a bulk action naming both)
closed a cycle: PostgreSQL's deadlock check ended one of them after deadlock_timeout (1 s) and
the request was run again. Each case holds the move right after its group lock, lets the
parent's writer take the parent and queue for the subtask, then lets the move go."""

import itertools
import threading
import time
from datetime import date
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import client_for
from tasks import services, views
from tasks.models import Task
from tasks.tests.deadlocks import (
    bulk,
    bulk_completion_gave_way_to_its_copys,
    completed_in_bulk_beside_its_next_occurrence,
    held_after_first_group_lock,
    let_go_without_deadlock,
    ranked,
    retries_logged,
)
from todo_project import retry
from todo_project.tests.helpers import (
    connection_of_its_own,
    deadlocks_run_again,
    start_in_thread,
    wait_for_lock_waiters,
)

RECURRING = {"due_date": date(2026, 12, 1), "recurrence": "FREQ=DAILY"}


def _crowded_subtasks(make_task, **where) -> tuple[Task, Task, Task, Task]:
    """(parent, anchor, neighbour, moving): the three subtasks at ranks 1024, 1025, 1026 with
    nothing after, so `move moving after anchor` spreads [neighbour, moving] up first. The
    parent's writer must come to wait for the moving subtask holding no other of the run (else
    the spread gives way to it at once, NeighboursHeld): the neighbour is completed (a
    completion's cascade passes it over) and its id sorts after the moving one's (ROW_LOCK_ORDER)."""
    parent = make_task("Parent", **where)
    anchor = make_task("Anchor", parent=parent)
    while True:
        neighbour = make_task("Neighbour", parent=parent, completed=True)
        moving = make_task("Moving", parent=parent)
        if moving.pk < neighbour.pk:
            break
        Task.objects.filter(pk__in=[neighbour.pk, moving.pk]).delete()
    for n, task in enumerate((moving, anchor, neighbour)):
        Task.objects.filter(pk=task.pk).update(position=-1000 - n)
    for task, rank in ((moving, 1026), (anchor, 1024), (neighbour, 1025)):
        Task.objects.filter(pk=task.pk).update(position=rank)
    return parent, anchor, neighbour, moving


PARENT_WRITERS = {
    # the write holding the parent, then waiting for the subtask
    "bulk complete of the parent": lambda user, parent, moving, home: bulk(
        user, "complete", [parent.pk]
    ),
    "bulk set_priority over the parent and the subtask": lambda user, parent, moving, home: bulk(
        user, "set_priority", [parent.pk, moving.pk], priority="high"
    ),
    "bulk move of the parent to a list": lambda user, parent, moving, home: bulk(
        user, "move", [parent.pk], list=str(home.pk)
    ),
    "bulk delete of the parent": lambda user, parent, moving, home: bulk(
        user, "delete", [parent.pk]
    ),
    "PATCH completing the parent": lambda user, parent, moving, home: client_for(user).patch(
        f"/api/v1/tasks/{parent.pk}/", {"completed": True}, format="json"
    ),
    "PATCH moving the parent to a list": lambda user, parent, moving, home: client_for(user).patch(
        f"/api/v1/tasks/{parent.pk}/", {"list": str(home.pk)}, format="json"
    ),
    "move of the parent to a list": lambda user, parent, moving, home: client_for(user).post(
        f"/api/v1/tasks/{parent.pk}/move/",
        {"after": None, "list": str(home.pk)},
        format="json",
    ),
    "DELETE of the parent": lambda user, parent, moving, home: client_for(user).delete(
        f"/api/v1/tasks/{parent.pk}/"
    ),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("writer", list(PARENT_WRITERS))
def test_a_subtasks_move_whose_spread_moves_it_never_deadlocks_with_a_writer_of_its_parent(
    user, make_task, make_list, monkeypatch, caplog, writer
):
    home = make_list("Home")
    parent, anchor, _, moving = _crowded_subtasks(make_task)
    reached, go = held_after_first_group_lock(monkeypatch)
    move = start_in_thread(
        lambda: client_for(user).post(
            f"/api/v1/tasks/{moving.pk}/move/", {"after": str(anchor.pk)}, format="json"
        )
    )
    assert reached.wait(10)  # the move holds the subtask and its parent's group
    writing = start_in_thread(lambda: PARENT_WRITERS[writer](user, parent, moving, home))
    # The parent's writer holds the parent and waits for the subtask; the move then spreads.
    moved, written = let_go_without_deadlock(go, move, writing, caplog)
    # The move gave way to the parent's writer (55P03), waited for it, and ran again.
    assert "SQLSTATE 55P03" in " ".join(retries_logged(caplog))
    assert moved.status_code in (200, 404), moved.content  # 404: the parent's delete went first
    assert written.status_code in (200, 204), written.content
    if moved.status_code == 200:
        titles = list(
            Task.objects.filter(parent=parent).order_by("position").values_list("title", flat=True)
        )
        assert titles == ["Anchor", "Moving", "Neighbour"]


@pytest.mark.django_db(transaction=True)
def test_a_subtasks_move_in_a_list_never_deadlocks_with_the_lists_delete(
    user, make_task, make_list, monkeypatch, caplog
):
    """list_delete locks the list's tasks in ROW_LOCK_ORDER: the parent, then its subtasks."""
    home = make_list("Home")
    _, anchor, _, moving = _crowded_subtasks(make_task, list=home)
    reached, go = held_after_first_group_lock(monkeypatch)
    move = start_in_thread(
        lambda: client_for(user).post(
            f"/api/v1/tasks/{moving.pk}/move/", {"after": str(anchor.pk)}, format="json"
        )
    )
    assert reached.wait(10)
    deleting = start_in_thread(
        lambda: client_for(user).delete(f"/api/v1/lists/{home.pk}/?tasks=delete")
    )
    moved, deleted = let_go_without_deadlock(go, move, deleting, caplog)
    assert moved.status_code in (200, 404), moved.content
    assert deleted.status_code == 204, deleted.content


@pytest.mark.django_db(transaction=True)
def test_a_spreads_wait_for_its_holders_never_deadlocks_with_a_cascade_taking_them_in_its_order(
    user, make_task, caplog
):
    """A spread that gave way (NeighboursHeld) waited for its whole run in one FOR SHARE
    statement, in ROW_LOCK_ORDER: holding the first rows while it waited for a later one. A
    completion's cascade locks the parent's open subtasks in the order it reads them (so does a
    move of the parent's list, bumping them): holding a later row, it came to a first one, held
    FOR SHARE by the wait: a deadlock, 1 s, and the wait's error was the move's 503. Here the
    cascade reads N2, X, N1 (in rank and in row order), N1's id sorting first; another
    transaction holds X for a while (a slow write), so the cascade holds N2 and waits."""
    parent = make_task("Parent")
    anchor = make_task("Anchor", parent=parent, completed=True)
    moving = make_task("Moving", parent=parent, completed=True)
    while True:
        n1, n2, x = (make_task(title, parent=parent) for title in ("N1", "N2", "X"))
        if n1.pk < min(n2.pk, x.pk):
            break
        Task.objects.filter(pk__in=[n1.pk, n2.pk, x.pk]).delete()
    for n, task in enumerate((anchor, moving, n1, n2, x)):
        Task.objects.filter(pk=task.pk).update(position=-1000 - n)
    for task, rank in ((anchor, 1024), (moving, 5000), (n2, 1025), (x, 1026), (n1, 1027)):
        Task.objects.filter(pk=task.pk).update(position=rank)
    with connection_of_its_own(connection) as other:
        other.execute("BEGIN")
        other.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR UPDATE", [x.pk])
        completing = start_in_thread(
            lambda: client_for(user).post(
                "/api/v1/tasks/bulk/", {"action": "complete", "ids": [str(parent.pk)]}, "json"
            )
        )
        assert wait_for_lock_waiters(connection, 1)  # the cascade holds N2, waits for X
        move = start_in_thread(
            lambda: client_for(user).post(
                f"/api/v1/tasks/{moving.pk}/move/", {"after": str(anchor.pk)}, format="json"
            )
        )
        assert wait_for_lock_waiters(connection, 2)  # the move gave way, and waits
        started = time.monotonic()
        other.execute("COMMIT")
        moved, completed = move(), completing()
    took = time.monotonic() - started
    assert (moved.status_code, completed.status_code) == (200, 200), (moved.content, took)
    assert deadlocks_run_again(caplog) == [], f"{took:.2f} s"
    assert took < 0.9, f"{took:.2f} s: a deadlock's wait"
    titles = Task.objects.filter(parent=parent).order_by("position").values_list("title")
    assert [title for (title,) in titles] == ["Anchor", "Moving", "N2", "X", "N1"]


@pytest.mark.django_db(transaction=True)
def test_a_neighbour_two_spreads_move_never_deadlocks_with_a_writer_of_its_next_occurrence(
    user, make_task, monkeypatch, caplog
):
    """Not a subtask: the same check at the COMMIT, of a neighbour that two spreads of one bulk
    completion move (its second row version in the transaction). R2's copy spreads N up by
    SPREAD_ROOM only, then R1's copy spreads A, B, R2, N and Y: N, a completed recurring task,
    is checked against its next occurrence C at the COMMIT, FOR KEY SHARE, after the group
    lock. A completion of C holds C and waits for that group."""
    recurring = {"due_date": date(2026, 12, 1), "recurrence": "FREQ=DAILY"}
    neighbour = make_task("N", **recurring)
    answer = client_for(user).patch(
        f"/api/v1/tasks/{neighbour.pk}/", {"completed": True}, format="json"
    )
    copy = Task.objects.get(pk=answer.json()["next_occurrence"])
    while True:  # R2's spread first (anchors in id order)
        r1, r2 = make_task("R1", **recurring), make_task("R2", **recurring)
        if r2.pk < r1.pk:
            break
        Task.objects.filter(pk__in=[r1.pk, r2.pk]).delete()
    a, b, y = make_task("A"), make_task("B"), make_task("Y")
    ranks = {copy: -100_000, r1: 1024, a: 1025, b: 1026, r2: 1027, neighbour: 1028, y: 1155}
    ranked(ranks)
    # The bulk gives way on C, waits for its completion, and runs again.
    bulk_completion_gave_way_to_its_copys(monkeypatch, caplog, user, [r1.pk, r2.pk], copy)
    titles = Task.objects.filter(position__gt=0).order_by("position").values_list("title")
    assert [title for (title,) in titles] == ["R1", "R1", "A", "B", "R2", "R2", "N", "Y"]


@pytest.mark.django_db(transaction=True)
def test_a_completed_task_a_spread_of_the_same_bulk_moves_never_deadlocks_with_its_next_occurrence(
    user, make_task, monkeypatch, caplog
):
    """Review 39d. One spread is enough when the bulk completed the row first: a recurring task
    completed, reopened (its next occurrence C stays) and completed again in one bulk with the
    recurring task right before it, whose copy's spread moves it. The completion was its first
    row version, the spread its second: C locked FOR KEY SHARE at the COMMIT, after the group
    lock, while a completion of C held C and waited for that group."""
    again = make_task("Again", **RECURRING)
    client = client_for(user)
    answer = client.patch(f"/api/v1/tasks/{again.pk}/", {"completed": True}, format="json")
    copy = Task.objects.get(pk=answer.json()["next_occurrence"])
    reopened = client.patch(f"/api/v1/tasks/{again.pk}/", {"completed": False}, format="json")
    assert reopened.status_code == 200, reopened.content
    before = make_task("Before", **RECURRING)
    completed_in_bulk_beside_its_next_occurrence(monkeypatch, caplog, user, before, again, copy)
    titles = Task.objects.filter(position__gt=0).order_by("position").values_list("title")
    assert [title for (title,) in titles] == ["Before", "Before", "Again"]


@pytest.mark.parametrize("moved", ["twice", "once"])
def test_only_a_row_two_spreads_move_has_its_references_locked(user, make_task, moved):
    """Review 39d: one statement more (the only FOR KEY SHARE), for a bulk completion whose
    spreads move a row twice; none when each row moves once (R1's spread then has room)."""
    while True:  # R2's spread first (anchors in id order)
        r1, r2 = make_task("R1", **RECURRING), make_task("R2", **RECURRING)
        if r2.pk < r1.pk:
            break
        Task.objects.filter(pk__in=[r1.pk, r2.pk]).delete()
    n, y = make_task("N"), make_task("Y")
    ranks = {r1: 1024, r2: 1027, n: 1028, y: 1155}
    if moved == "twice":  # R1's run reaches R2 and N
        a, b = make_task("A"), make_task("B")
        ranks |= {a: 1025, b: 1026}
    else:
        ranks[r1] = 0
    ranked(ranks)
    with CaptureQueriesContext(connection) as queries:
        answer = bulk(user, "complete", [r1.pk, r2.pk])
    assert answer.status_code == 200, answer.content
    locks = [q for q in queries.captured_queries if "FOR KEY SHARE" in q["sql"]]
    assert len(locks) == (moved == "twice")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("spread", ["moves the subtask", "moves only its neighbour", "none"])
def test_only_a_subtasks_move_whose_spread_moves_it_locks_the_parent(user, make_task, spread):
    """The parent's lock is one statement more, on those moves only: the same move of a
    top-level task costs one statement less; without it, the same."""
    counts = {}
    for kind in ("subtask", "top-level"):
        parent = make_task(f"Parent of {kind}") if kind == "subtask" else None
        where = {"parent": parent} if parent else {"list": None}
        anchor, neighbour, moving = (make_task(t, **where) for t in ("A", "N", "M"))
        ranks = {
            "moves the subtask": (1024, 1025, 1026),  # the run after A: N, M
            "moves only its neighbour": (1024, 1025, 9000),  # the run: N
            "none": (1024, 5000, 9000),  # room after A
        }[spread]
        for n, task in enumerate((anchor, neighbour, moving)):
            Task.objects.filter(pk=task.pk).update(position=-5000 - n)
        for task, rank in zip((anchor, neighbour, moving), ranks, strict=True):
            Task.objects.filter(pk=task.pk).update(position=rank + (0 if parent else 100_000))
        client = client_for(user)
        with CaptureQueriesContext(connection) as queries:
            answer = client.post(
                f"/api/v1/tasks/{moving.pk}/move/", {"after": str(anchor.pk)}, format="json"
            )
        assert answer.status_code == 200, answer.content
        counts[kind] = len(queries.captured_queries)
        locks = [q for q in queries.captured_queries if "FOR KEY SHARE" in q["sql"]]
        assert len(locks) == (kind == "subtask" and spread == "moves the subtask")
    assert counts["subtask"] - counts["top-level"] == (spread == "moves the subtask")


def _held_after_the_reruns_group_lock(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """The second call of services._lock_groups (the move's run after it gave way) stops once
    it has run, until `go`; every other call runs as it is."""
    reached, go = threading.Event(), threading.Event()
    original, calls = services._lock_groups, itertools.count(1)

    def held(*args, **kwargs):
        result = original(*args, **kwargs)
        if next(calls) == 2:
            reached.set()
            assert go.wait(20)
        return result

    monkeypatch.setattr(services, "_lock_groups", held)
    return reached, go


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("give_ways", [1, retry.GIVE_WAYS])
def test_a_subtasks_move_that_gave_way_on_its_parent_locks_it_first_when_it_runs_again(
    user, make_task, monkeypatch, caplog, give_ways
):
    """Review 38g. A move whose spread moved the subtask gave way on the parent (held by
    another transaction), waited, and ran again. Out of give-ways (GIVE_WAYS = 1 here: the
    last of them), the run again locked the parent after the subtask, without NOWAIT, and a
    writer that took the parent meanwhile and wanted the subtask (a completion's cascade)
    closed the cycle: a deadlock, 1 s (a 503 after three). With give-ways left, it gave way to
    that writer again. Run again, it locks the parent first, in ROW_LOCK_ORDER: the writer
    waits for the move, or the move for the writer, holding nothing; it gives way once."""
    monkeypatch.setattr(retry, "GIVE_WAYS", give_ways)
    parent, anchor, _, moving = _crowded_subtasks(make_task)
    reached, go = _held_after_the_reruns_group_lock(monkeypatch)
    with connection_of_its_own(connection) as other:
        other.execute("BEGIN")
        other.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR UPDATE", [parent.pk])
        move = start_in_thread(
            lambda: client_for(user).post(
                f"/api/v1/tasks/{moving.pk}/move/", {"after": str(anchor.pk)}, format="json"
            )
        )
        assert wait_for_lock_waiters(connection, 1)  # it gave way on the parent, and waits
        other.execute("COMMIT")
    assert reached.wait(10)  # run again: it holds the subtask and its parent's group
    completing = start_in_thread(lambda: bulk(user, "complete", [parent.pk]))
    moved, completed = let_go_without_deadlock(go, move, completing, caplog)
    assert (moved.status_code, completed.status_code) == (200, 200)
    assert len([line for line in retries_logged(caplog) if "55P03" in line]) == 1
    titles = Task.objects.filter(parent=parent).order_by("position").values_list("title")
    assert [title for (title,) in titles] == ["Anchor", "Moving", "Neighbour"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("write", ["move", "PATCH"])
def test_a_write_locks_the_parent_first_only_when_it_runs_again_after_giving_way(
    user, make_task, monkeypatch, write
):
    """The parent's lock first, on a run after a give-way only, is taken by the task's own
    locking read (models._PARENT_FIRST, its one-time filter): no statement more (one more
    before review 40c)."""
    parent = make_task("Parent")
    a, b, moving = (make_task(title, parent=parent) for title in "ABM")
    client = client_for(user)
    counts = []
    for given_way in (False, True):
        monkeypatch.setattr(views, "has_given_way", SimpleNamespace(get=lambda g=given_way: g))
        with CaptureQueriesContext(connection) as queries:
            if write == "move":
                after = b if given_way else a  # A M B, then A B M: a bisection each time
                answer = client.post(
                    f"/api/v1/tasks/{moving.pk}/move/", {"after": str(after.pk)}, format="json"
                )
            else:
                answer = client.patch(
                    f"/api/v1/tasks/{moving.pk}/", {"title": f"M{given_way}"}, format="json"
                )
        assert answer.status_code == 200, answer.content
        counts.append(len(queries.captured_queries))
        first = [q for q in queries.captured_queries if "FOR KEY SHARE OF p" in q["sql"]]
        assert len(first) == given_way
        assert all("FOR UPDATE" in q["sql"] for q in first)  # the task's read itself
    assert counts[1] == counts[0]


@pytest.mark.django_db(transaction=True)
def test_a_completions_cascade_locks_the_subtasks_in_row_lock_order(user, make_task, caplog):
    """Review 39d. The cascade picked a parent's open subtasks in the order its plan read them,
    not in ROW_LOCK_ORDER: off the parent_id index on an analyzed table (insertion order), a
    seq scan past ~40,000 (physical order), here off task_owner_due_id (due date order). A bulk
    action over two of them locks them by id: holding the one whose id sorts first, it waited
    for the other, which the cascade held while it waited for the first: a deadlock, 1 s."""
    parent = make_task("Parent")
    subtasks = sorted((make_task(f"S{k}", parent=parent) for k in range(3)), key=lambda t: t.pk)
    low, middle, high = subtasks
    for task, day in ((high, 1), (middle, 2), (low, 3)):  # read by due date: high, middle, low
        Task.objects.filter(pk=task.pk).update(due_date=date(2026, 12, day))
    with connection_of_its_own(connection) as other:
        other.execute("BEGIN")
        other.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR UPDATE", [middle.pk])
        completing = start_in_thread(lambda: bulk(user, "complete", [parent.pk]))
        assert wait_for_lock_waiters(connection, 1)  # the cascade waits for `middle`
        setting = start_in_thread(
            lambda: bulk(user, "set_priority", [low.pk, high.pk], priority="high")
        )
        assert wait_for_lock_waiters(connection, 2)  # the bulk action waits too
        started = time.monotonic()
        other.execute("COMMIT")
        completed, set_ = completing(), setting()
    took = time.monotonic() - started
    assert (completed.status_code, set_.status_code) == (200, 200)
    assert deadlocks_run_again(caplog) == [], f"{took:.2f} s"
    assert took < 0.9, f"{took:.2f} s: a deadlock's wait"
    assert set(Task.objects.values_list("completed", flat=True)) == {True}
