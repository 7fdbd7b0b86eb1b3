"""The admin's change, add and delete pages run a save that PostgreSQL ended to settle a clash
with a concurrent write again, as the API does (todo_project.admin_site.SavesRunAgain). As a
superuser: a flushed database (transaction=True) has no Support group."""

import logging
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.db import OperationalError, connection
from psycopg import errors as psycopg_errors

from accounts.models import User
from tasks import services
from tasks.models import Task, TaskList
from tasks.tests.deadlocks import deadlock
from todo_project.tests.helpers import connection_of_its_own

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


def deadlocking(statement_start: str, times: int, about: Any = None) -> tuple[list, Any]:
    """An execute wrapper that ends the first `times` statements starting so (and given `about`
    among their parameters, if given) as PostgreSQL ends a deadlock's loser; the list of the
    statements it ended."""
    ended: list[str] = []

    def wrapper(execute, sql, params, many, context):
        meant = about is None or about in (params or ())
        if sql.startswith(statement_start) and meant and len(ended) < times:
            ended.append(sql)
            raise OperationalError("deadlock detected") from psycopg_errors.DeadlockDetected()
        return execute(sql, params, many, context)

    return ended, wrapper


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
    update = services.task_update

    def list_deleted_meanwhile(**kwargs: Any):
        with connection_of_its_own(connection) as other:  # a concurrent DELETE lists/{id}/
            other.execute("DELETE FROM tasks_tasklist WHERE id = %s", [home.pk])
        return update(**kwargs)

    monkeypatch.setattr(services, "task_update", list_deleted_meanwhile)
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
    with connection.execute_wrapper(wrapper):
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
    assert [(r.name, r.levelname) for r in caplog.records if r.name == "todo.problems"] == [
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
def test_a_task_the_complete_action_cannot_get_through_is_left_and_named(admin_client, user):
    """Ended three times, the task is left as it was, and said so (the page was a 500, after
    completing the tasks before it)."""
    first, second = (services.task_create(user=user, data={"title": t}) for t in ("A", "B"))
    ended, wrapper = deadlocking("UPDATE", times=3, about=second.pk)
    with connection.execute_wrapper(wrapper):
        answer = complete(admin_client, first, second)
    assert len(ended) == 3
    assert answer.status_code == 302
    assert [str(message) for message in get_messages(answer.wsgi_request)] == [
        "Left 1 task(s) as they were: B: other changes got in the way, three times.",
        "Completed 1 task(s).",
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
