"""Review 39e (finding 4 of review 39d). A move of a parent to another list takes its subtasks
along (PATCH {"list"}, POST move/ with a list, a bulk move): a plain UPDATE of them locked them
in its plan's order, off the parent_id index the order they were inserted in, not
ROW_LOCK_ORDER. Holding the parent and a subtask, it waited for another whose id sorts first,
which a bulk action over two of them (locking them by id) held while it waited for the first:
a deadlock, 1 s. The subtasks are made in the order of falling ids (`first`, `middle`, `last`),
so the index reads them against ROW_LOCK_ORDER; a third connection holds `middle` until both
writers wait."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import client_for
from tasks import services
from tasks.models import Task
from tasks.tests.deadlocks import held_after_first_group_lock, held_before, let_go_without_deadlock
from todo_project.tests.helpers import (
    connection_of_its_own,
    deadlocks_run_again,
    start_in_thread,
    wait_for_lock_waiters,
)

LIST_MOVES = {
    "bulk move of the parent to a list": lambda user, parent, home: client_for(user).post(
        "/api/v1/tasks/bulk/",
        {"action": "move", "ids": [str(parent.pk)], "list": str(home.pk)},
        format="json",
    ),
    "PATCH moving the parent to a list": lambda user, parent, home: client_for(user).patch(
        f"/api/v1/tasks/{parent.pk}/", {"list": str(home.pk)}, format="json"
    ),
    "move of the parent to a list": lambda user, parent, home: client_for(user).post(
        f"/api/v1/tasks/{parent.pk}/move/", {"after": None, "list": str(home.pk)}, format="json"
    ),
}


def _subtasks_in_falling_id_order(make_task, parent, count: int) -> list[Task]:
    """`count` subtasks of `parent`, each made after the one before and with a smaller id:
    the parent_id index gives equal keys in the order of their rows (insertion), ids falling."""
    made: list[Task] = []
    while len(made) < count:
        task = make_task(f"S{len(made)}", parent=parent)
        if made and task.pk > made[-1].pk:
            Task.objects.filter(pk=task.pk).delete()
        else:
            made.append(task)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM tasks_task WHERE parent_id = %s ORDER BY ctid", [parent.pk])
        assert [row[0] for row in cursor.fetchall()] == [task.pk for task in made]
    return made


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("move", LIST_MOVES.values(), ids=LIST_MOVES.keys())
def test_a_parents_move_to_a_list_locks_its_subtasks_in_row_lock_order(
    user, make_task, make_list, caplog, move
):
    parent = make_task("Parent")
    home = make_list("Home")
    first, middle, last = _subtasks_in_falling_id_order(make_task, parent, 3)
    with connection_of_its_own(connection) as other:
        other.execute("BEGIN")
        other.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR UPDATE", [middle.pk])
        moving = start_in_thread(lambda: move(user, parent, home))
        # main: holds the parent and `first`, waits for `middle`; in order: holds `last`
        assert wait_for_lock_waiters(connection, 1)
        setting = start_in_thread(
            lambda: client_for(user).post(
                "/api/v1/tasks/bulk/",
                {
                    "action": "set_priority",
                    "ids": [str(first.pk), str(last.pk)],
                    "priority": "high",
                },
                format="json",
            )
        )
        # holds `last` (main) and waits for `first`, or waits for `last`
        assert wait_for_lock_waiters(connection, 2)
        started = time.monotonic()
        other.execute("COMMIT")
        moved, set_ = moving(), setting()
    took = time.monotonic() - started
    assert (moved.status_code, set_.status_code) == (200, 200)
    assert deadlocks_run_again(caplog) == [], f"{took:.2f} s"
    assert took < 0.9, f"{took:.2f} s: a deadlock's wait"
    assert set(Task.objects.filter(parent=parent).values_list("list_id", flat=True)) == {home.pk}
    versions = dict(Task.objects.filter(parent=parent).values_list("pk", "version"))
    assert versions == {first.pk: 3, middle.pk: 2, last.pk: 3}  # moved; and set_priority


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("move", LIST_MOVES.values(), ids=LIST_MOVES.keys())
def test_a_parents_move_to_a_list_writes_its_subtasks_in_one_statement_locking_them_in_order(
    user, make_task, make_list, move
):
    """The ordered lock is in the subtasks' UPDATE itself: no statement more than a parent
    without subtasks costs, whatever their number."""
    home = make_list("Home")
    counts = []
    for subtasks in (0, 1, 4):
        parent = make_task("Parent")
        for n in range(subtasks):
            make_task(f"S{n}", parent=parent)
        with CaptureQueriesContext(connection) as queries:
            assert move(user, parent, home).status_code == 200
        counts.append(len(queries.captured_queries))
        writing = [
            q["sql"]
            for q in queries.captured_queries
            if q["sql"].startswith("UPDATE tasks_task SET version")
        ]
        assert len(writing) == 1 and writing[0].startswith("UPDATE"), writing
        assert "ORDER BY parent_id, id FOR UPDATE))" in writing[0]
        assert Task.objects.filter(parent=parent).exclude(list=home).count() == 0
        assert set(Task.objects.filter(parent=parent).values_list("version", flat=True)) <= {2}
    assert counts[0] == counts[1] == counts[2], counts


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["move", "complete"])
def test_a_bulk_action_naming_a_parent_and_one_of_its_subtasks_locks_them_all_in_order(
    user, make_task, make_list, caplog, monkeypatch, action
):
    """A bulk move or complete naming a parent and one of its subtasks locked those two first,
    then the parent's other subtasks (the move's UPDATE of them, the cascade): out of
    ROW_LOCK_ORDER when one's id sorts before the named one's. A bulk action over the two,
    holding the first, waited for the named one: a deadlock, 1 s. A bulk move now locks the
    named tasks' subtasks in its first statement (_LOCKED_FOR_MOVE); a bulk complete, seeing
    that its cascade would lock out of order, lets go of its locks and locks them with the
    named tasks' open subtasks (_LOCKED_WITH_OPEN_SUBTASKS, review 40a)."""
    parent = make_task("Parent")
    home = make_list("Home")
    low, high = sorted((make_task(f"S{n}", parent=parent) for n in range(2)), key=lambda t: t.pk)
    if action == "move":
        reached, go = held_after_first_group_lock(monkeypatch)
        more = {"list": str(home.pk)}
    else:
        reached, go = held_before(monkeypatch, "_cascade_completion")
        more = {}
    acting = start_in_thread(
        lambda: client_for(user).post(
            "/api/v1/tasks/bulk/",
            {"action": action, "ids": [str(parent.pk), str(high.pk)], **more},
            format="json",
        )
    )
    assert reached.wait(10)  # holds the parent and `high` (main), or all three
    setting = start_in_thread(
        lambda: client_for(user).post(
            "/api/v1/tasks/bulk/",
            {"action": "set_priority", "ids": [str(low.pk), str(high.pk)], "priority": "high"},
            format="json",
        )
    )
    # It holds `low` (main) and waits for `high`.
    acted, set_ = let_go_without_deadlock(go, acting, setting, caplog)
    assert (acted.status_code, set_.status_code) == (200, 200)
    subtasks = Task.objects.filter(parent=parent)
    if action == "move":
        assert set(subtasks.values_list("list_id", flat=True)) == {home.pk}
    else:
        assert set(subtasks.values_list("completed", flat=True)) == {True}
    assert set(subtasks.values_list("priority", flat=True)) == {services.Priority.HIGH}
