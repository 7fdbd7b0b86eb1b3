"""Deletes that lock before they delete: a DELETE with If-Match or If-None-Match (the row
locked to compare its version), a bulk delete (its ids found locked), a list's delete (its
tasks before the groups). Each takes its tasks in ROW_LOCK_ORDER, the previous occurrences it
unlinks included, before any other row: a list's conditional DELETE locked the list's row
first and deadlocked with a plain one or the account's deletion, which lock the tasks first
(1 s, one run again; review 35a), and a copy's previous occurrence was locked after the copy
(review 34f). Their answers and query counts stay as they were."""

import threading
from datetime import date
from typing import Any

import pytest
from django.db import connection

from conftest import DEFAULT_PASSWORD, client_for
from tasks import services
from tasks.models import DeletedTask, Task, TaskList
from todo_project.tests.helpers import deadlocks_run_again, start_in_thread, wait_for_lock_waiters


def _held_first(monkeypatch, name: str) -> tuple[threading.Event, threading.Event]:
    """Makes the first call of services.<name> stop before it runs until `go` (later calls, a
    concurrent request's, run on): a hold point inside one request of two that both call it."""
    reached, go = threading.Event(), threading.Event()
    original = getattr(services, name)
    first = threading.Lock()

    def held(*args: Any, **kwargs: Any) -> Any:
        if first.acquire(blocking=False):
            reached.set()
            assert go.wait(20)
        return original(*args, **kwargs)

    monkeypatch.setattr(services, name, held)
    return reached, go


# The tasks are locked once, by locked_version, not again by list_delete.
# With its tasks: each of the two locks of the tasks (before the groups, then again after
# them, for a task added meanwhile) reads their ids first, and the delete takes them as an
# array (review 37a): 3 more than the 12 of one statement each.
QUERIES_OF_A_CONDITIONAL_LIST_DELETE = {"": 14, "?tasks=delete": 15}
OTHER_DELETES = {
    "DELETE lists/{id}/": lambda user, task_list: client_for(user).delete(
        f"/api/v1/lists/{task_list.pk}/"
    ),
    "DELETE lists/{id}/?tasks=delete": lambda user, task_list: client_for(user).delete(
        f"/api/v1/lists/{task_list.pk}/?tasks=delete"
    ),
    "DELETE auth/me/": lambda user, task_list: client_for(user).delete(
        "/api/v1/auth/me/", {"password": DEFAULT_PASSWORD}, format="json"
    ),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("other", list(OTHER_DELETES))
@pytest.mark.parametrize("query", ["", "?tasks=delete"])
@pytest.mark.parametrize("header", ["HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH"])
def test_a_conditional_list_delete_never_deadlocks_with_another_delete_of_the_list_or_account(
    user, make_task, make_list, monkeypatch, caplog, other, query, header
):
    task_list = make_list("Bills")
    make_task("Rent", list=task_list)
    value = "*" if header == "HTTP_IF_MATCH" else '"no-such-etag"'
    # The conditional DELETE holds the list's tasks, then its row (locked_version).
    reached, go = _held_first(monkeypatch, "list_delete")
    conditional = start_in_thread(
        lambda: client_for(user).delete(f"/api/v1/lists/{task_list.pk}/{query}", **{header: value})
    )
    assert reached.wait(10)
    plain = start_in_thread(lambda: OTHER_DELETES[other](user, task_list))
    # The other delete waits for the tasks (before: it held them, then waited for the row).
    assert wait_for_lock_waiters(connection, 1)
    go.set()  # the conditional one deletes the list, the other then finds it gone
    answers = conditional(), plain()
    assert deadlocks_run_again(caplog) == []  # was: 40P01 after 1 s, one of the two run again
    assert not TaskList.objects.filter(pk=task_list.pk).exists()
    assert {answer.status_code for answer in answers} <= {204, 404}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("other", list(OTHER_DELETES))
@pytest.mark.parametrize("query", ["", "?tasks=delete"])
def test_a_conditional_list_delete_holds_nothing_before_it_locks_the_lists_tasks(
    user, make_task, make_list, monkeypatch, caplog, other, query
):
    """Held as it starts to lock the list's tasks (lock_list_tasks' first call, from
    locked_version), a conditional DELETE holds nothing yet: the other delete runs through,
    then the conditional one finds the list gone. The test above holds it later, past both
    locks: it passed with the row locked first too (review 35d)."""
    task_list = make_list("Bills")
    make_task("Rent", list=task_list)
    reached, go = _held_first(monkeypatch, "lock_list_tasks")
    conditional = start_in_thread(
        lambda: client_for(user).delete(f"/api/v1/lists/{task_list.pk}/{query}", HTTP_IF_MATCH="*")
    )
    assert reached.wait(10)
    other_answer = OTHER_DELETES[other](user, task_list)  # waits for nothing: it would hang
    go.set()
    answers = conditional(), other_answer
    assert deadlocks_run_again(caplog) == []
    assert [answer.status_code for answer in answers] == [404, 204]
    assert not TaskList.objects.filter(pk=task_list.pk).exists()


# A PATCH moving the previous occurrence (review 34e's open question): 40P01 before 25aed12.
@pytest.mark.django_db(transaction=True)
def test_a_list_delete_with_its_tasks_locks_an_outside_previous_occurrence_before_the_groups(
    user, make_task, make_list, monkeypatch, caplog
):
    bills, elsewhere = make_list("Bills"), make_list("Elsewhere")
    original = make_task(
        "Rent", list=elsewhere, due_date=date(2026, 12, 1), recurrence="FREQ=MONTHLY"
    )
    copy_id = services.task_complete(task=original, user=user).next_occurrence_id
    Task.objects.filter(pk=copy_id).update(list=bills)
    # The PATCH holds the original, not yet the groups (Elsewhere, Inbox).
    reached, go = _held_first(monkeypatch, "_lock_groups")
    moving = start_in_thread(
        lambda: client_for(user).patch(
            f"/api/v1/tasks/{original.pk}/", {"list": None}, format="json"
        )
    )
    assert reached.wait(10)
    deleting = start_in_thread(
        lambda: client_for(user).delete(f"/api/v1/lists/{bills.pk}/?tasks=delete")
    )
    assert wait_for_lock_waiters(connection, 1)  # the list's delete waits for the original
    go.set()
    moved, deleted = moving(), deleting()
    assert (moved.status_code, deleted.status_code) == (200, 204)
    assert deadlocks_run_again(caplog) == []
    kept = Task.objects.get(pk=original.pk)
    assert (kept.list_id, kept.next_occurrence_id) == (None, None)


@pytest.mark.django_db
def test_a_conditional_task_delete_runs_seven_queries(user, make_task, django_assert_num_queries):
    task = make_task("Rent")
    make_task("Sub", parent=task)
    client = client_for(user)
    # The user; savepoint, the task read (get_object), the ids that go read, then locked with
    # their previous occurrences (by that array: review 37a), deleted, release.
    with django_assert_num_queries(7):
        response = client.delete(f"/api/v1/tasks/{task.pk}/", HTTP_IF_MATCH=f'"{task.version}"')
    assert response.status_code == 204


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["", "?tasks=delete"])
def test_a_conditional_list_delete_locks_its_tasks_once(
    user, make_task, make_list, query, django_assert_num_queries
):
    task_list = make_list("Bills")
    make_task("Rent", list=task_list)
    client = client_for(user)
    with django_assert_num_queries(QUERIES_OF_A_CONDITIONAL_LIST_DELETE[query]):
        response = client.delete(f"/api/v1/lists/{task_list.pk}/{query}", HTTP_IF_MATCH="*")
    assert response.status_code == 204


@pytest.mark.django_db
def test_bulk_delete_counts_each_named_task_once_and_any_foreign_id_is_a_404(
    user, other_user, make_task
):
    parent = make_task("Parent")
    subtask = make_task("Sub", parent=parent)
    lone = make_task("Lone")
    foreign = make_task("Theirs", owner=other_user)
    client = client_for(user)

    def bulk(*ids) -> Any:
        body = {"action": "delete", "ids": [str(i) for i in ids]}
        return client.post("/api/v1/tasks/bulk/", body, format="json")

    answer = bulk(lone.pk, foreign.pk)
    assert answer.status_code == 404 and answer.json()["missing_ids"] == [str(foreign.pk)]
    unknown = "00000000-0000-4000-8000-000000000000"
    answer = bulk(unknown, lone.pk)
    assert answer.status_code == 404 and answer.json()["missing_ids"] == [unknown]
    assert Task.objects.filter(pk=lone.pk).exists()
    answer = bulk(parent.pk, subtask.pk, parent.pk, lone.pk)
    assert answer.status_code == 200 and answer.json() == {"updated": 3}
    assert set(DeletedTask.objects.values_list("id", flat=True)) == {
        parent.pk,
        subtask.pk,
        lone.pk,
    }
    assert Task.objects.filter(owner=other_user).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_conditional_task_delete_is_a_412_on_a_false_condition_and_a_404_once_gone(
    user, make_task, monkeypatch
):
    client = client_for(user)
    task = make_task("Rent")
    stale = f'"{task.version}"'
    client.patch(f"/api/v1/tasks/{task.pk}/", {"title": "Rent!"}, format="json")
    answer = client.delete(f"/api/v1/tasks/{task.pk}/", HTTP_IF_MATCH=stale)
    assert answer.status_code == 412 and answer["ETag"] == f'"{task.version + 1}"'
    answer = client.delete(f"/api/v1/tasks/{task.pk}/", HTTP_IF_NONE_MATCH="*")
    assert answer.status_code == 412
    answer = client.delete(f"/api/v1/tasks/{task.pk}/", HTTP_IF_NONE_MATCH=stale)
    assert answer.status_code == 204
    task = make_task("Again")
    answer = client.delete(f"/api/v1/tasks/{task.pk}/", HTTP_IF_MATCH="*")
    assert answer.status_code == 204
    # Deleted between the read (get_object) and the lock: 404.
    task = make_task("Gone meanwhile")
    original = services.lock_tasks_to_delete

    def deleted_first(owner_id, which, **params):
        # By another request, on a connection of its own, committed.
        start_in_thread(lambda: services.task_delete(owner_id=owner_id, task_id=task.pk))()
        return original(owner_id, which, **params)

    monkeypatch.setattr(services, "lock_tasks_to_delete", deleted_first)
    answer = client.delete(f"/api/v1/tasks/{task.pk}/", HTTP_IF_MATCH="*")
    assert answer.status_code == 404
