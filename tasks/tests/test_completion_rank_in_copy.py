"""A PATCH completing a recurring task takes its group lock with the owner's task count in one
statement (as a create does), and its next occurrence's rank is read by the copy's own
statement, whose snapshot comes after that lock (review 40c: two round trips less with the
parent's lock in the task's read). A gap used up after the task makes that statement write
nothing; the gap is then opened as before."""

from datetime import date

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from conftest import client_for
from tasks import services
from tasks.models import POSITION_GAP, OwnerTaskCount, Task
from tasks.tests.deadlocks import run_while_the_count_row_is_held
from todo_project.tests.helpers import (
    start_in_thread,
    wait_for_lock_waiters,
)

RECURRING = {"due_date": date(2026, 12, 1), "recurrence": "FREQ=DAILY"}


def _complete(user, task):
    return client_for(user).patch(f"/api/v1/tasks/{task.pk}/", {"completed": True}, format="json")


@pytest.mark.django_db(transaction=True)
def test_a_completion_that_waited_for_the_group_ranks_its_copy_before_the_holders_task(user):
    # The create holds the group lock (and the count) with its task at the end, right after
    # the recurring one: a rank read in a snapshot older than the lock would be the create's
    # (a unique violation, a 500).
    task = services.task_create(user=user, data={"title": "Pay rent", **RECURRING})
    with transaction.atomic():
        created = services.task_create(user=user, data={"title": "Created meanwhile"})
        assert created.position == task.position + POSITION_GAP
        completing = start_in_thread(lambda: _complete(user, task))
        assert wait_for_lock_waiters(connection, 1)
    answer = completing()
    assert answer.status_code == 200, answer.content
    copy = Task.objects.get(pk=answer.json()["next_occurrence"])
    assert task.position < copy.position < created.position
    assert copy.position == task.position + POSITION_GAP // 2


@pytest.mark.django_db(transaction=True)
def test_a_completion_holds_its_group_lock_while_it_waits_for_the_count(user):
    # The count row held by another writer: the completion waits for it holding the group
    # lock, taken first, as every writer takes them.
    task = services.task_create(user=user, data={"title": "Pay rent", **RECURRING})
    assert run_while_the_count_row_is_held(user, lambda: _complete(user, task)).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("where", ["inbox", "list", "subtask", "list subtask"])
@pytest.mark.parametrize("next_rank", [None, 2, 3, 1024 + 2 * POSITION_GAP])
def test_the_copy_goes_right_after_the_task_as_bisect_puts_it(
    user, make_task, make_list, where, next_rank
):
    # Each group shape (IS NULL and = are different SQL), the task last of its group or not,
    # the gap after it used up (next rank 1 or 2 after it) or not: the copy where _bisect()
    # puts it, after the spread when there was no room.
    home = make_list("Home") if "list" in where else None
    parent = make_task("Parent", list=home) if "subtask" in where else None
    task = make_task("Pay rent", list=home, parent=parent, **RECURRING)
    Task.objects.filter(pk=task.pk).update(position=-(2**62) + 1)  # its rank extremes too
    neighbour = None
    if next_rank is not None:
        neighbour = make_task("Neighbour", list=home, parent=parent)
        Task.objects.filter(pk=neighbour.pk).update(position=-(2**62) + next_rank)
    client = client_for(user)
    with CaptureQueriesContext(connection) as captured:
        answer = client.patch(f"/api/v1/tasks/{task.pk}/", {"completed": True}, format="json")
    writes = [q["sql"] for q in captured if "INSERT INTO" in q["sql"]]  # before the next request
    assert answer.status_code == 200, answer.content
    assert answer.json() == client.get(f"/api/v1/tasks/{task.pk}/").json()
    task.refresh_from_db()
    copy = Task.objects.get(pk=answer.json()["next_occurrence"])
    assert (copy.list_id, copy.parent_id) == (task.list_id, task.parent_id)
    if neighbour is None:
        assert copy.position == task.position + POSITION_GAP
    else:
        neighbour.refresh_from_db()
        assert task.position < copy.position < neighbour.position
    spread = next_rank is not None and next_rank <= 2
    if neighbour is not None and not spread:
        assert copy.position == services._bisect(task.position, neighbour.position)
    # The copy's statement, once; twice when the gap was used up (the first wrote nothing).
    assert len(writes) == (2 if spread else 1), writes
    assert Task.objects.filter(next_occurrence=copy).count() == 1
    # The owner's maintained count: a statement that wrote nothing counted nothing.
    counted = OwnerTaskCount.objects.get(owner=user).tasks
    assert counted == Task.objects.filter(owner=user).count()
