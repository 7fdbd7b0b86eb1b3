"""What a task's delete does with writes that race it (review 34f, of commit 4fd8baf): a
subtask created while its parent's delete waits (the foreign key fails at COMMIT and the delete
runs again: 201 then 204, both in the sync feed), on every delete path; the middle of a recurring chain; a parent and its subtask in one bulk
delete racing the subtask's own delete; a list's delete unlinking a previous occurrence in
another list."""

import threading
import uuid
from datetime import date

import pytest
from django.db import connection, transaction

from conftest import DEFAULT_PASSWORD, client_for
from tasks import services
from tasks.models import DeletedTask, Task
from tasks.tests.test_delete_lock_order import _held_before
from todo_project.tests.helpers import (
    connection_of_its_own,
    start_in_thread,
    wait_for_lock_waiters,
)


@pytest.mark.django_db(transaction=True)
def test_a_subtask_created_while_its_parents_delete_waits(user, make_task, monkeypatch):
    parent = make_task("Parent")
    # held after _place_under_parent (the parent FOR KEY SHARE), before the insert (the
    # group lock goes with the task count since review 39b)
    reached, go = _held_before(monkeypatch, "_lock_group_and_count")
    creating = start_in_thread(
        lambda: client_for(user).post(
            "/api/v1/tasks/", {"title": "New subtask", "parent": str(parent.pk)}, format="json"
        )
    )
    assert reached.wait(10)
    deleting = start_in_thread(lambda: client_for(user).delete(f"/api/v1/tasks/{parent.pk}/"))
    assert wait_for_lock_waiters(connection, 1)  # the DELETE waits for the parent
    go.set()
    created, deleted = creating(), deleting()
    print("CREATE", created.status_code, "DELETE", deleted.status_code, deleted.content[:300])
    assert created.status_code == 201
    assert deleted.status_code == 204, deleted.content
    assert not Task.objects.filter(pk=parent.pk).exists()
    assert not Task.objects.filter(parent_id=parent.pk).exists()
    # The DELETE ended on the foreign key (23503) and ran again: the new subtask went too.
    assert set(DeletedTask.objects.values_list("id", flat=True)) == {
        parent.pk,
        uuid.UUID(created.json()["id"]),
    }


DELETES = {
    "list ?tasks=delete": lambda user, parent: client_for(user).delete(
        f"/api/v1/lists/{parent.list_id}/?tasks=delete"
    ),
    "bulk delete": lambda user, parent: client_for(user).post(
        "/api/v1/tasks/bulk/", {"action": "delete", "ids": [str(parent.pk)]}, format="json"
    ),
    "account": lambda user, parent: client_for(user).delete(
        "/api/v1/auth/me/", {"password": DEFAULT_PASSWORD}, format="json"
    ),
    "If-Match": lambda user, parent: client_for(user).delete(
        f"/api/v1/tasks/{parent.pk}/", HTTP_IF_MATCH=f'"{parent.version}"'
    ),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("delete", list(DELETES))
def test_a_subtask_created_while_the_delete_waits_other_paths(
    user, make_task, make_list, monkeypatch, caplog, delete
):
    home = make_list("Home")
    parent = make_task("Parent", list=home)
    parent.refresh_from_db()
    reached, go = _held_before(monkeypatch, "_lock_group_and_count")
    creating = start_in_thread(
        lambda: client_for(user).post(
            "/api/v1/tasks/", {"title": "New subtask", "parent": str(parent.pk)}, format="json"
        )
    )
    assert reached.wait(10)
    deleting = start_in_thread(lambda: DELETES[delete](user, parent))
    waited = wait_for_lock_waiters(connection, 1, timeout=3)
    go.set()
    created, deleted = creating(), deleting()
    print(
        delete,
        "waited",
        waited,
        "CREATE",
        created.status_code,
        "DELETE",
        deleted.status_code,
        deleted.content[:200],
        [r.getMessage() for r in caplog.records if r.name == "todo.retry"],
    )
    assert deleted.status_code in (200, 204), deleted.content
    assert not Task.objects.filter(pk=parent.pk).exists()


from django.db import connection as _c


def _owner_count(user):
    with _c.cursor() as cursor:
        cursor.execute("SELECT * FROM tasks_ownertaskcount WHERE owner_id = %s", [user.pk])
        return cursor.fetchall()


def _search_rows(user):
    with _c.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM tasks_tasksearch s JOIN tasks_task t ON t.id = s.task_id"
            " WHERE t.owner_id = %s",
            [user.pk],
        )
        joined = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM tasks_tasksearch")
        return joined, cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_the_middle_of_a_recurring_chain_deleted(user, make_task):
    original = make_task("Rent", due_date=date(2026, 12, 1), recurrence="FREQ=MONTHLY")
    first = services.task_complete(task=original, user=user).next_occurrence
    first_copy = Task.objects.get(pk=first.pk)
    second_id = services.task_complete(task=first_copy, user=user).next_occurrence_id
    original.refresh_from_db()
    before = original.version
    count_before = Task.objects.filter(owner=user).count()
    response = client_for(user).delete(f"/api/v1/tasks/{first.pk}/")
    assert response.status_code == 204
    original.refresh_from_db()
    assert original.next_occurrence_id is None and original.version == before + 1
    second = Task.objects.get(pk=second_id)
    assert second.next_occurrence_id is None
    assert set(DeletedTask.objects.values_list("id", flat=True)) == {first.pk}
    assert Task.objects.filter(owner=user).count() == count_before - 1
    print("counts", _owner_count(user), Task.objects.filter(owner=user).count(), _search_rows(user))
    assert _owner_count(user)[0][-1] == Task.objects.filter(owner=user).count()
    joined, total = _search_rows(user)
    assert joined == total == Task.objects.count()


@pytest.mark.django_db(transaction=True)
def test_bulk_delete_of_a_parent_and_its_subtask_while_the_subtask_is_deleted_alone(
    user, make_task
):
    parent = make_task("Parent")
    subtask = make_task("Sub", parent=parent)
    other = make_task("Other")
    with connection_of_its_own(_c) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR UPDATE", [subtask.pk])
        bulk = start_in_thread(
            lambda: client_for(user).post(
                "/api/v1/tasks/bulk/",
                {"action": "delete", "ids": [str(parent.pk), str(subtask.pk)]},
                format="json",
            )
        )
        assert wait_for_lock_waiters(_c, 1)
        single = start_in_thread(lambda: client_for(user).delete(f"/api/v1/tasks/{subtask.pk}/"))
        assert wait_for_lock_waiters(_c, 2)
        holder.execute("ROLLBACK")
    b, s = bulk(), single()
    print("bulk", b.status_code, b.content, "single", s.status_code, s.content)
    assert {b.status_code, s.status_code} <= {200, 204, 404}
    assert set(DeletedTask.objects.values_list("id", flat=True)) == {parent.pk, subtask.pk}
    assert list(Task.objects.values_list("pk", flat=True)) == [other.pk]
    print("counts", _owner_count(user))
    assert _owner_count(user)[0][-1] == 1
    joined, total = _search_rows(user)
    assert joined == total == 1


@pytest.mark.django_db(transaction=True)
def test_a_list_deleted_with_its_tasks_unlinks_the_previous_occurrence_elsewhere(
    user, make_task, make_list
):
    home, work = make_list("Home"), make_list("Work")
    original = make_task("Rent", list=home, due_date=date(2026, 12, 1), recurrence="FREQ=MONTHLY")
    copy_id = services.task_complete(task=original, user=user).next_occurrence_id
    Task.objects.filter(pk=copy_id).update(list=work)  # the copy in another list
    mine = make_task("Mine", list=work)
    original.refresh_from_db()
    v = original.version
    assert client_for(user).delete(f"/api/v1/lists/{work.pk}/?tasks=delete").status_code == 204
    original.refresh_from_db()
    assert original.next_occurrence_id is None and original.version == v + 1
    assert set(DeletedTask.objects.values_list("id", flat=True)) == {copy_id, mine.pk}


@pytest.mark.django_db(transaction=True)
def test_a_completion_whose_next_sibling_is_deleted_meanwhile_places_its_copy(user, make_task):
    # The copy of a completed recurring task goes right after it. No gap is left there, so the
    # ranks after it are spread (_spread_after). Meanwhile the next task is deleted: a delete
    # takes no group lock, only the owner's task count, which the completion waits for in the
    # statement that reads the ranks. That statement's snapshot still has the next task; the
    # spread's does not, finds nothing after and moves nothing ({}), and the copy's rank is
    # the stale gap's _bisect: None. Today: NotNullViolation on "position", a 500.
    task = make_task("daily", due_date=date(2999, 1, 1), recurrence="FREQ=DAILY")
    after = make_task("right after it")
    Task.objects.filter(pk=after.pk).update(position=task.position + 1)  # no gap left
    deleted, go = threading.Event(), threading.Event()

    def delete_held_before_its_commit():
        with transaction.atomic():
            services.task_delete(owner_id=user.pk, task_id=after.pk)  # locks the task count
            deleted.set()
            assert go.wait(20)

    deleting = start_in_thread(delete_held_before_its_commit)
    assert deleted.wait(10)
    completing = start_in_thread(
        lambda: client_for(user).patch(
            f"/api/v1/tasks/{task.pk}/", {"completed": True}, format="json"
        )
    )
    assert wait_for_lock_waiters(connection, 1)  # the completion waits for the task count
    go.set()
    deleting()
    answer = completing()
    assert answer.status_code == 200, answer.content
    copy = Task.objects.get(pk=answer.json()["next_occurrence"])
    assert copy.position > Task.objects.get(pk=task.pk).position
    assert not Task.objects.filter(pk=after.pk).exists()
