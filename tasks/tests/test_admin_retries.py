"""The admin's change, add and delete pages run a save that PostgreSQL ended to settle a clash
with a concurrent write again, as the API does (todo_project.admin_site.SavesRunAgain). As a
superuser: a flushed database (transaction=True) has no Support group."""

import logging
from typing import Any

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.messages import get_messages
from django.db import OperationalError, connection, transaction
from psycopg import errors as psycopg_errors

from accounts.models import User
from tasks import services
from tasks.models import Tag, Task, TaskList
from tasks.tests.deadlocks import deadlock, deadlocking, list_deleted_before_the_update
from todo_project.tests.helpers import (
    connection_of_its_own,
    start_in_thread,
    wait_for_lock_waiters,
)

TASKS_URL = "/admin/tasks/task/"
USERS_URL = "/admin/accounts/user/"


def change_form(task: Task, **changes: Any) -> dict:
    data = {
        "title": task.title,
        "description": task.description,
        "list": task.list_id or "",
        "parent": task.parent_id or "",
        "tags": "",
        "priority": task.priority,
        "due_date": "",
        "due_time": "",
        "opened_version": task.version,
    }
    return {**data, **changes}


@pytest.mark.django_db(transaction=True)
def test_a_change_page_save_that_loses_a_deadlock_is_run_again_and_saved(
    client, admin_user, user, make_list, caplog
):
    """The form locks the task, the save then waits for the Inbox's group, which the test holds
    and then asks for the task: PostgreSQL ends the save's transaction (a 500 page before)."""
    home = make_list("Home")
    task = services.task_create(user=user, data={"title": "Pay rent", "list": home})
    caplog.set_level(logging.INFO, logger="todo.retry")

    def save_to_the_inbox(_api_client):
        client.force_login(admin_user)
        return client.post(f"{TASKS_URL}{task.pk}/change/", change_form(task, list=""))

    (answer,) = deadlock(user, task, save_to_the_inbox)
    assert answer.status_code == 302, answer.content[:500]
    assert "SQLSTATE 40P01" in caplog.text
    task.refresh_from_db()
    assert (task.list_id, task.version) == (None, 2)
    messages = [str(message) for message in get_messages(answer.wsgi_request)]
    assert len(messages) == 1 and "was changed successfully" in messages[0]
    assert LogEntry.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_save_whose_list_is_deleted_before_its_commit_is_run_again_and_says_no_success(
    admin_client, user, make_list, monkeypatch
):
    """The list's foreign key fails at the COMMIT, after the first attempt said "changed
    successfully": run again, the form finds no such list, and that message is gone."""
    task = services.task_create(user=user, data={"title": "Pay rent"})
    home = make_list("Home")
    list_deleted_before_the_update(monkeypatch, home)
    answer = admin_client.post(f"{TASKS_URL}{task.pk}/change/", change_form(task, list=home.pk))
    assert answer.status_code == 200
    assert list(answer.context["adminform"].form.errors) == ["list"]
    assert [str(message) for message in get_messages(answer.wsgi_request)] == []
    task.refresh_from_db()
    assert (task.list_id, task.version) == (None, 1)
    assert not LogEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_save_ended_three_times_is_a_503_page_and_nothing_saved(admin_client, user, caplog):
    task = services.task_create(user=user, data={"title": "Pay rent"})
    ended, wrapper = deadlocking('UPDATE "tasks_task"', times=3)
    with caplog.at_level(logging.WARNING), connection.execute_wrapper(wrapper):
        answer = admin_client.post(
            f"{TASKS_URL}{task.pk}/change/", change_form(task, title="Pay the rent")
        )
    assert len(ended) == 3
    assert answer.status_code == 503
    assert answer["Retry-After"] == "1"
    assert "Nothing was saved" in answer.content.decode()
    assert [str(message) for message in get_messages(answer.wsgi_request)] == []
    task.refresh_from_db()
    assert (task.title, task.version) == ("Pay rent", 1)
    assert not LogEntry.objects.exists()
    # Once, as the API's 503: no ERROR line of Django's (django.request) after the WARNING.
    assert [(r.name, r.levelname) for r in caplog.records if r.name != "todo.access"] == [
        ("todo.problems", "WARNING")
    ]


@pytest.mark.django_db(transaction=True)
def test_a_save_ended_twice_goes_through_at_the_third_attempt(admin_client, user):
    task = services.task_create(user=user, data={"title": "Pay rent"})
    ended, wrapper = deadlocking('UPDATE "tasks_task"', times=2)
    with connection.execute_wrapper(wrapper):
        answer = admin_client.post(
            f"{TASKS_URL}{task.pk}/change/", change_form(task, title="Pay the rent")
        )
    assert len(ended) == 2 and answer.status_code == 302
    task.refresh_from_db()
    assert (task.title, task.version) == ("Pay the rent", 2)
    assert LogEntry.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_user_delete_that_loses_a_deadlock_is_run_again(admin_client, user, make_list):
    """Account deletion against a create naming one of the account's tags could deadlock (the
    concurrency review's L1): the API ran it again, the admin's delete page answered a 500."""
    make_list("Home")
    ended, wrapper = deadlocking("DELETE FROM tasks_tasklist", times=1)
    with connection.execute_wrapper(wrapper):
        answer = admin_client.post(f"{USERS_URL}{user.pk}/delete/", {"post": "yes"})
    assert len(ended) == 1
    assert answer.status_code == 302
    assert not User.objects.filter(pk=user.pk).exists()
    assert not TaskList.objects.exists()
    assert LogEntry.objects.filter(action_flag=DELETION, object_id=str(user.pk)).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_page_that_only_reads_is_not_run_again(admin_client, user):
    """A GET is no save: an error there is the error page it was (here: the task's read)."""
    task = services.task_create(user=user, data={"title": "Pay rent"})
    ended, wrapper = deadlocking('SELECT "tasks_task"', times=3)
    with connection.execute_wrapper(wrapper), pytest.raises(OperationalError):
        admin_client.get(f"{TASKS_URL}{task.pk}/change/")
    assert len(ended) == 1


def complete(client, *tasks: Task):
    selected = [str(task.pk) for task in tasks]
    return client.post(TASKS_URL, {"action": "complete", "_selected_action": selected})


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("times", [1, 2])
def test_the_complete_action_runs_the_task_postgresql_ended_again_alone(admin_client, user, times):
    """A transaction per task: the one ended runs again, and is logged and counted once."""
    first, second = (services.task_create(user=user, data={"title": t}) for t in ("A", "B"))
    ended, wrapper = deadlocking("UPDATE", times=times, about=second.pk)
    with connection.execute_wrapper(wrapper):
        answer = complete(admin_client, first, second)
    assert len(ended) == times
    assert answer.status_code == 302
    assert [str(message) for message in get_messages(answer.wsgi_request)] == [
        "Completed 2 task(s)."
    ]
    assert set(Task.objects.values_list("completed", "version")) == {(True, 2)}
    assert LogEntry.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_task_the_complete_action_cannot_get_through_is_left_and_named(
    admin_client, user, caplog
):
    """Ended three times, the task is left as it was, and said so (the page was a 500, after
    completing the tasks before it)."""
    first, second = (services.task_create(user=user, data={"title": t}) for t in ("A", "B"))
    ended, wrapper = deadlocking("UPDATE", times=3, about=second.pk)
    with caplog.at_level(logging.WARNING), connection.execute_wrapper(wrapper):
        answer = complete(admin_client, first, second)
    assert len(ended) == 3
    assert answer.status_code == 302
    assert [str(message) for message in get_messages(answer.wsgi_request)] == [
        "Left 1 task(s) as they were: B: other changes got in the way, three times.",
        "Completed 1 task(s).",
    ]
    assert [(r.name, r.levelname) for r in caplog.records if r.name != "todo.access"] == [
        ("todo.problems", "WARNING")
    ]
    assert dict(Task.objects.values_list("title", "completed")) == {"A": True, "B": False}
    assert Task.objects.get(pk=second.pk).version == 1
    assert LogEntry.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_delete_selected_users_ended_once_runs_again_whole(admin_client, user, other_user):
    """One transaction for all the selected accounts: the one PostgreSQL ended runs again whole
    (the deletion of the first user of it rolled back too), and says so once."""
    ended, wrapper = deadlocking("DELETE FROM tasks_tasklist", times=1, about=other_user.pk)
    with connection.execute_wrapper(wrapper):
        answer = admin_client.post(
            USERS_URL,
            {
                "action": "delete_selected",
                "_selected_action": [user.pk, other_user.pk],
                "post": "yes",
            },
        )
    assert len(ended) == 1
    assert answer.status_code == 302
    assert not User.objects.filter(pk__in=[user.pk, other_user.pk]).exists()
    assert [str(message) for message in get_messages(answer.wsgi_request)] == [
        "Successfully deleted 2 users."
    ]
    assert LogEntry.objects.filter(action_flag=DELETION).count() == 2  # once each


@pytest.mark.django_db(transaction=True)
def test_delete_selected_users_that_never_gets_through_deletes_and_logs_nothing(
    admin_client, user, other_user, make_list
):
    """The second account's deletion ended three times: the first one's, in the same
    transaction, is rolled back with it, and so is the history, which Django wrote before the
    deletion on its own (accounts of which it said they were deleted were still there)."""
    make_list("Home", owner=other_user)
    ended, wrapper = deadlocking("DELETE FROM tasks_tasklist", times=3, about=other_user.pk)
    form = {
        "action": "delete_selected",
        "_selected_action": [user.pk, other_user.pk],
        "post": "yes",
    }
    with connection.execute_wrapper(wrapper), pytest.raises(OperationalError):
        admin_client.post(USERS_URL, form)  # the test client raises what a 500 page reports
    assert len(ended) == 3
    assert User.objects.filter(pk__in=[user.pk, other_user.pk]).count() == 2
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


@pytest.mark.django_db(transaction=True)
def test_the_user_add_page_runs_a_save_postgresql_ended_again(admin_client, caplog):
    """Django's UserAdmin.add_view opens its transaction around changeform_view: run again
    inside it, the page gave up at once (the 503 page after one attempt)."""
    caplog.set_level(logging.INFO, logger="todo.retry")
    ended, wrapper = deadlocking('INSERT INTO "accounts_user"', times=1)
    form = {
        "email": "new@example.com",
        "password1": "a-Long-passw0rd!",
        "password2": "a-Long-passw0rd!",
        "usable_password": "true",
    }
    with connection.execute_wrapper(wrapper):
        answer = admin_client.post(f"{USERS_URL}add/", form)
    assert len(ended) == 1
    assert answer.status_code == 302, answer.content[:300]
    assert User.objects.filter(email="new@example.com").count() == 1
    assert "SQLSTATE 40P01" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_tag_rename_the_service_gave_up_on_is_the_503_page(admin_client, user):
    """The rename runs itself again (services.TAG_WRITE_ATTEMPTS) and then raises its own
    ConcurrentChange: the 503 page, not a 500, and nothing saved."""
    tag = Tag.objects.create(owner=user, name="errands")
    ended, wrapper = deadlocking('UPDATE "tasks_tag"', times=99)
    form = {"name": "chores", "opened_version": "errands"}
    with connection.execute_wrapper(wrapper):
        answer = admin_client.post(f"/admin/tasks/tag/{tag.pk}/change/", form)
    assert len(ended) == services.TAG_WRITE_ATTEMPTS
    assert answer.status_code == 503
    assert "Nothing was saved" in answer.content.decode()
    assert Tag.objects.get(pk=tag.pk).name == "errands"
    assert not LogEntry.objects.exists()


# --- Delete selected: tasks, lists and tags ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_delete_selected_tasks_runs_a_task_again_when_a_subtask_is_added_to_it_meanwhile(
    client, admin_user, user
):
    """Review 31g, finding 1. The user adds a subtask to a selected task from another device: the
    action's DELETE began before the subtask's COMMIT and waited for its lock on the parent (FOR
    KEY SHARE), so it deleted the parent and not the subtask it never saw, and the deferred
    foreign key failed (23503). As the API's DELETE and the delete page do, the task's delete
    runs again, and takes the subtask with it; it was a 500 page, with one of the two tasks
    deleted and a history entry for both."""
    first = services.task_create(user=user, data={"title": "First"})
    parent = services.task_create(user=user, data={"title": "Parent"})
    selected = {
        "action": "delete_selected",
        "_selected_action": [str(first.pk), str(parent.pk)],
        "post": "yes",
    }

    def delete_selected():
        client.force_login(admin_user)
        return client.post(TASKS_URL, selected)

    with transaction.atomic():
        # The user's POST tasks/ {"parent": ...}: holds the parent FOR KEY SHARE to its COMMIT.
        services.task_create(user=user, data={"title": "Subtask", "parent": parent})
        join = start_in_thread(delete_selected)
        assert wait_for_lock_waiters(connection, 1)  # the action's DELETE waits for the parent
    answer = join()

    assert answer.status_code == 302
    assert not Task.objects.filter(owner=user).exists()  # the subtask went with its parent
    logged = LogEntry.objects.filter(action_flag=DELETION).values_list("object_id", flat=True)
    assert sorted(logged) == sorted([str(first.pk), str(parent.pk)])
    assert [str(message) for message in get_messages(answer.wsgi_request)] == [
        "Successfully deleted 2 tasks (and 1 subtask with them)."
    ]


def ending_the_delete_of(kind: str, row) -> tuple[list, Any]:
    """An execute wrapper that ends every statement deleting `row` (a task, list or tag) as
    PostgreSQL ends a deadlock's loser; the list of those it ended."""
    ended: list[str] = []

    def wrapper(execute, sql, params, many, context):
        if kind == "task":  # services._DELETE_TASKS, its ids a parameter
            meant = "DELETE FROM tasks_task WHERE" in sql and params.get("ids") == [row.pk]
        else:  # the ORM's delete of the row
            meant = sql.startswith(f'DELETE FROM "tasks_{kind}" ') and row.pk in params
        if meant:
            ended.append(sql)
            raise OperationalError("deadlock detected") from psycopg_errors.DeadlockDetected()
        return execute(sql, params, many, context)

    return ended, wrapper


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["task", "tasklist", "tag"])
def test_a_row_delete_selected_never_gets_through_is_left_named_and_not_in_the_history(
    admin_client, user, kind, caplog
):
    """Each row is deleted in a transaction of its own, with its history entry, and the one
    PostgreSQL ended runs again alone. Ended every time, it is left as it was, named in the
    action's message, and the history does not say it was deleted: Django wrote the entries of
    the whole selection before deleting anything, so a deletion that then failed left entries
    for rows that still exist (and a 500 page)."""
    if kind == "task":
        kept, gone = (services.task_create(user=user, data={"title": t}) for t in ("A", "B"))
    elif kind == "tasklist":
        kept, gone = (
            services.list_create(user=user, name=n, color=None, position=None) for n in "AB"
        )
    else:
        kept, gone = (Tag.objects.create(owner=user, name=n) for n in "ab")
    model = type(kept)
    ended, wrapper = ending_the_delete_of(kind, kept)
    selected = {"action": "delete_selected", "_selected_action": [kept.pk, gone.pk]}
    with caplog.at_level(logging.WARNING), connection.execute_wrapper(wrapper):
        answer = admin_client.post(f"/admin/tasks/{kind}/", {**selected, "post": "yes"})

    attempts = services.TAG_WRITE_ATTEMPTS if kind == "tag" else 3
    assert len(ended) == attempts
    assert answer.status_code == 302
    name = model._meta.verbose_name
    assert [str(message) for message in get_messages(answer.wsgi_request)] == [
        f"Left 1 {name}(s) as they were: {kept}: "
        + (
            "other changes kept getting in the way."
            if kind == "tag"
            else "other changes got in the way, three times."
        ),
        f"Successfully deleted 1 {name}.",
    ]
    assert list(model.objects.all()) == [kept]
    logged = LogEntry.objects.filter(action_flag=DELETION).values_list("object_id", flat=True)
    assert list(logged) == [str(gone.pk)]


@pytest.mark.django_db(transaction=True)
def test_a_task_its_user_deletes_while_delete_selected_runs_is_said_and_not_in_the_history(
    admin_client, user
):
    """The user deletes the second task once the action has read the selection: its delete
    finds nothing, and the history, which says what the action did, has no entry for it."""
    first, second = (services.task_create(user=user, data={"title": t}) for t in ("A", "B"))
    deleted_by_the_user = []

    def wrapper(execute, sql, params, many, context):
        if "DELETE FROM tasks_task WHERE" in sql and not deleted_by_the_user:
            with connection_of_its_own(connection) as other:
                other.execute("DELETE FROM tasks_task WHERE id = %s", [second.pk])
            deleted_by_the_user.append(second.pk)
        return execute(sql, params, many, context)

    selected = {"action": "delete_selected", "_selected_action": [first.pk, second.pk]}
    with connection.execute_wrapper(wrapper):
        answer = admin_client.post(TASKS_URL, {**selected, "post": "yes"})

    assert answer.status_code == 302
    assert not Task.objects.exists()
    logged = LogEntry.objects.filter(action_flag=DELETION).values_list("object_id", flat=True)
    assert list(logged) == [str(first.pk)]
    assert [str(message) for message in get_messages(answer.wsgi_request)] == [
        "1 task(s) had been deleted meanwhile, by their owner or another agent: nothing to do.",
        "Successfully deleted 1 task.",
    ]
