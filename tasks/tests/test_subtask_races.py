"""Subtask rules under concurrent writes, through the API: a subtask's parent is top-level, a
task with subtasks is top-level, a subtask is in its parent's list.

Each race is played in both orders, deterministically: the test holds the group lock that the
first write takes once it holds its row locks, starts it, starts the second once the first
waits, lets both go once the second waits too (behind the first's row lock), then checks the
answers and the rows. One of two writes that cannot both apply gets the 400 the serial case
gives; two that can both apply both do, as if one by one."""

import logging
import time
from collections.abc import Callable
from datetime import date

import pytest
from django.db import connection, transaction
from rest_framework.response import Response

from conftest import client_for
from tasks import services
from tasks.models import NO_SUCH_TASK, Task
from todo_project.tests.helpers import start_in_thread, wait_for_lock_waiters

pytestmark = pytest.mark.django_db(transaction=True)

PARENT_IS_SUBTASK = {"parent": ["Subtasks are one level deep: the parent is a subtask."]}
HAS_SUBTASKS = {"parent": ["This task has subtasks, so it cannot become a subtask."]}
NOT_PARENTS_LIST = {"list": ["A subtask is in the same list as its parent."]}


@pytest.fixture
def rows(user, make_list, make_task):
    home, work = make_list("Home"), make_list("Work")
    return {
        "home": home,
        "work": work,
        "a": make_task("A", list=home),
        "b": make_task("B", list=home),
        "d": make_task("D", list=home),
    }


def _request(user, method: str, path: str, body: dict) -> Callable[[], Response]:
    def send() -> Response:
        return getattr(client_for(user), method)(path, body, format="json")

    return send


def _give_a_a_subtask(user, rows, how: str, **extra) -> Callable[[], Response]:
    """POST a new task C under A, or PATCH the top-level D under A."""
    a = str(rows["a"].pk)
    if how == "post":
        return _request(user, "post", "/api/v1/tasks/", {"title": "C", "parent": a, **extra})
    return _request(user, "patch", f"/api/v1/tasks/{rows['d'].pk}/", {"parent": a, **extra})


def _nest_a_under_b(user, rows, method: str) -> Callable[[], Response]:
    body = {"parent": str(rows["b"].pk)} | ({"title": "A"} if method == "put" else {})
    return _request(user, method, f"/api/v1/tasks/{rows['a'].pk}/", body)


def _move_a_to_work(user, rows, how: str) -> Callable[[], Response]:
    a, work = rows["a"].pk, str(rows["work"].pk)
    if how == "move":
        return _request(user, "post", f"/api/v1/tasks/{a}/move/", {"after": None, "list": work})
    if how == "bulk":
        body = {"action": "move", "ids": [str(a)], "list": work}
        return _request(user, "post", "/api/v1/tasks/bulk/", body)
    body = {"list": work} | ({"title": "A"} if how == "put" else {})
    return _request(user, how, f"/api/v1/tasks/{a}/", body)


def _race(user, held_group: services.GroupKey, first, second) -> tuple[Response, Response]:
    """`first` runs until it waits for `held_group`, `second` until it waits too; then both go."""
    with transaction.atomic():
        services._lock_groups(user.pk, [held_group])
        join_first = start_in_thread(first)
        first_waits = wait_for_lock_waiters(connection, 1)
        join_second = start_in_thread(second)
        second_waits = wait_for_lock_waiters(connection, 2, timeout=5)
    answers = join_first(), join_second()
    assert first_waits, "the first write never came to the held group lock"
    assert second_waits, "the second write did not queue behind the first"
    return answers


def _assert_subtask_rules(user) -> None:
    tasks = {task.pk: task for task in Task.objects.filter(owner=user)}
    for task in tasks.values():
        if task.parent_id is not None:
            parent = tasks[task.parent_id]
            assert parent.parent_id is None, f"{task} is two levels deep"
            assert task.list_id == parent.list_id, f"{task} is not in {parent}'s list"


@pytest.mark.parametrize("child", ["post", "patch"])
@pytest.mark.parametrize("method", ["patch", "put"])
def test_a_task_made_a_subtask_meanwhile_gets_no_subtask(user, rows, method, child):
    # A becomes B's subtask holding A's row; the write giving A a subtask waits for it, then
    # finds A a subtask: the two-level tree of the bug is refused.
    nest, refused = _race(
        user,
        (rows["home"].pk, rows["b"].pk),
        _nest_a_under_b(user, rows, method),
        _give_a_a_subtask(user, rows, child),
    )
    assert nest.status_code == 200, nest.json()
    assert refused.status_code == 400 and refused.json()["errors"] == PARENT_IS_SUBTASK
    assert Task.objects.get(pk=rows["a"].pk).parent_id == rows["b"].pk
    _assert_subtask_rules(user)


@pytest.mark.parametrize("child", ["post", "patch"])
@pytest.mark.parametrize("method", ["patch", "put"])
def test_a_task_given_a_subtask_meanwhile_does_not_become_one(user, rows, method, child):
    # A gets a subtask, holding A's row (shared) until its commit; the write making A a subtask
    # waits for A's row, then finds A's subtask.
    given, refused = _race(
        user,
        (rows["home"].pk, rows["a"].pk),
        _give_a_a_subtask(user, rows, child),
        _nest_a_under_b(user, rows, method),
    )
    assert given.status_code in (200, 201), given.json()
    assert refused.status_code == 400 and refused.json()["errors"] == HAS_SUBTASKS
    assert Task.objects.get(pk=rows["a"].pk).parent_id is None
    assert Task.objects.filter(parent=rows["a"].pk).count() == 1
    _assert_subtask_rules(user)


MOVES = ["patch", "put", "move", "bulk"]


@pytest.mark.parametrize("child", ["post", "patch"])
@pytest.mark.parametrize("move", MOVES)
def test_a_subtask_made_while_its_parent_moves_goes_to_the_new_list(user, rows, move, child):
    moved, given = _race(
        user,
        (rows["work"].pk, None),
        _move_a_to_work(user, rows, move),
        _give_a_a_subtask(user, rows, child),
    )
    assert moved.status_code == 200, moved.json()
    assert given.status_code in (200, 201), given.json()
    assert given.json()["list"] == str(rows["work"].pk)
    assert Task.objects.get(parent=rows["a"].pk).list_id == rows["work"].pk
    _assert_subtask_rules(user)


@pytest.mark.parametrize("child", ["post", "patch"])
@pytest.mark.parametrize("move", MOVES)
def test_a_parent_moving_while_it_gets_a_subtask_takes_it_along(user, rows, move, child):
    given, moved = _race(
        user,
        (rows["home"].pk, rows["a"].pk),
        _give_a_a_subtask(user, rows, child),
        _move_a_to_work(user, rows, move),
    )
    assert given.status_code in (200, 201), given.json()
    assert moved.status_code == 200, moved.json()
    assert Task.objects.get(parent=rows["a"].pk).list_id == rows["work"].pk
    _assert_subtask_rules(user)


@pytest.mark.parametrize("child", ["post", "patch"])
def test_a_subtask_named_into_the_list_its_parent_just_left_is_a_400(user, rows, child):
    moved, refused = _race(
        user,
        (rows["work"].pk, None),
        _move_a_to_work(user, rows, "patch"),
        _give_a_a_subtask(user, rows, child, list=str(rows["home"].pk)),
    )
    assert moved.status_code == 200, moved.json()
    assert refused.status_code == 400 and refused.json()["errors"] == NOT_PARENTS_LIST
    assert not Task.objects.filter(parent=rows["a"].pk).exists()


@pytest.mark.parametrize("child", ["post", "patch"])
def test_a_subtask_of_a_parent_deleted_meanwhile_is_a_400(user, rows, child):
    a = rows["a"].pk
    with transaction.atomic():
        services.task_delete(owner_id=user.pk, task_id=a)
        join = start_in_thread(_give_a_a_subtask(user, rows, child))
        waits = wait_for_lock_waiters(connection, 1)
    refused = join()
    assert waits
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"parent": [NO_SUCH_TASK]}


def test_two_tasks_made_each_others_subtask_at_once_stay_one_level_deep(user, rows):
    # Both requests are held at their own row's lock, then let go together: each holds its own
    # row and wants the other's, a deadlock PostgreSQL breaks (the loser: a 503 to retry).
    a, b = rows["a"], rows["b"]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM tasks_task WHERE id = ANY(%s) FOR KEY SHARE", [[a.pk, b.pk]]
            )
        joins = [
            start_in_thread(
                _request(user, "patch", f"/api/v1/tasks/{x.pk}/", {"parent": str(y.pk)})
            )
            for x, y in ((a, b), (b, a))
        ]
        waits = wait_for_lock_waiters(connection, 2)
    answers = sorted((join() for join in joins), key=lambda response: response.status_code)
    assert waits
    assert [response.status_code for response in answers] in ([200, 400], [200, 503])
    if answers[1].status_code == 503:
        assert answers[1]["Retry-After"] == "1"
    assert Task.objects.filter(pk__in=[a.pk, b.pk], parent__isnull=False).count() == 1
    _assert_subtask_rules(user)


# --- A parent completed while its subtasks change ----------------------------------------------


def _complete_parent_while_a_request_holds_its_subtasks(user, parent, meanwhile: str, *args):
    """Completes `parent` while another request holds its subtasks' rows and runs `meanwhile`
    (SQL); that request commits once the completion waits for it."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM tasks_task WHERE parent_id = %s FOR UPDATE", [parent.pk])
            cursor.execute(meanwhile, list(args))
        join = start_in_thread(lambda: services.task_complete(task=parent, user=user))
        waits = wait_for_lock_waiters(connection, 1)
    join()
    assert waits, "the completion never waited for the subtasks"


def test_subtasks_completed_meanwhile_are_passed_over_and_the_other_open_ones_completed(
    user, make_task, monkeypatch
):
    """Picked up to the bound, then completed by another request: the others open, not picked
    (the LIMIT had stopped), were left open under a completed parent, with no 409."""
    monkeypatch.setattr(services, "MAX_COMPLETED_PER_REQUEST", 3)
    parent = make_task("P")
    subtasks = [make_task(f"S{n}", parent=parent) for n in range(4)]
    done = [subtasks[0].pk, subtasks[1].pk]

    _complete_parent_while_a_request_holds_its_subtasks(  # raises a 409 if it gave one
        user,
        parent,
        "UPDATE tasks_task SET completed = true, completed_at = now() WHERE id = ANY(%s)",
        done,
    )

    assert dict(Task.objects.values_list("title", "completed")) == {
        "P": True, "S0": True, "S1": True, "S2": True, "S3": True,
    }  # fmt: skip


def test_a_subtask_made_top_level_meanwhile_is_not_completed_with_its_old_parent(user, make_task):
    parent = make_task("P")
    leaving, staying = make_task("S0", parent=parent), make_task("S1", parent=parent)

    _complete_parent_while_a_request_holds_its_subtasks(
        user,
        parent,
        "UPDATE tasks_task SET parent_id = NULL, position = 999999, version = version + 1 "
        "WHERE id = %s",
        leaving.pk,
    )

    leaving.refresh_from_db()
    staying.refresh_from_db()
    assert (leaving.parent_id, leaving.completed, staying.completed) == (None, False, True)


@pytest.mark.parametrize("how", ["patch", "bulk"])
def test_completing_a_recurring_subtask_and_its_parent_at_once_does_not_deadlock(
    user, make_task, how, caplog
):
    # The subtask's completion held the subtask, then its copy's foreign key locked the parent
    # at the COMMIT; the parent's completion held the parent and waited for the subtask: a
    # deadlock every time, the parent's write run again after 1 s (review 30g #2).
    caplog.set_level(logging.INFO, logger="todo.retry")
    parent = make_task("Clean the flat")
    sub = make_task(
        "Water the plants", parent=parent, due_date=date(2026, 12, 1), recurrence="FREQ=DAILY"
    )
    started = time.monotonic()
    with transaction.atomic():  # the subtask's completion, as its PATCH or bulk runs it
        if how == "patch":
            services.task_update(task=sub, user=user, data={"completed": True})
        else:
            services.tasks_bulk_apply(user=user, action="complete", ids=[sub.pk])
        completing = start_in_thread(
            lambda: client_for(user).patch(
                f"/api/v1/tasks/{parent.pk}/", {"completed": True}, format="json"
            )
        )
        assert wait_for_lock_waiters(connection, 1)  # the parent's completion waits
    answer = completing()

    assert answer.status_code == 200 and answer.json()["completed"] is True, answer.content
    assert "SQLSTATE 40P01" not in caplog.text
    assert time.monotonic() - started < 0.9  # PostgreSQL's deadlock check comes after 1 s
    copy = Task.objects.get(pk=Task.objects.get(pk=sub.pk).next_occurrence_id)
    assert (copy.parent_id, copy.completed) == (parent.pk, True)  # completed with its parent
