"""An account may hold 100,000 tasks (MAX_TASKS_PER_USER), more rows than PostgreSQL takes
parameters in one statement (65,535). What names every row in a parameter (Django's delete
cascade, a prefetch) failed there: deleting such an account (API and admin), exporting it
(admin) and deleting a task with that many subtasks (admin; the API bounds no parent's
subtasks) were 500s."""

import json

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts.models import User
from accounts.tests.helpers import bearer, sign_in
from conftest import DEFAULT_PASSWORD
from tasks.models import POSITION_GAP, Tag, Task, TaskList
from tasks.tests.many_tasks import (
    load_subtasks,
    load_tasks,
    tagged_tasks_under_emptied_statistics,
)
from todo_project.tests.helpers import statement_timeout

pytestmark = pytest.mark.django_db

MORE_THAN_PARAMETERS = 66_000


def load_many_tasks(*users: User) -> None:
    """66,000 Inbox tasks for each user (one bulk load: it alters the table, so before any
    other write of the test)."""
    load_tasks(
        (user.pk, f"task {i}", "", (i + 1) * POSITION_GAP)
        for user in users
        for i in range(MORE_THAN_PARAMETERS)
    )


def give_data(user: User) -> Task:
    """In a list, a tagged task with a subtask and a completed occurrence linked to it; the
    tagged task."""
    home = TaskList.objects.create(owner=user, name="Home")
    tagged = Task.objects.create(owner=user, title="Pay rent", list=home, position=1)
    tagged.tags.add(Tag.objects.create(owner=user, name="money"))
    Task.objects.create(owner=user, title="Find the IBAN", list=home, parent=tagged, position=1)
    Task.objects.create(
        owner=user,
        title="Done",
        list=home,
        position=2,
        completed=True,
        completed_at=timezone.now(),
        next_occurrence=tagged,
    )
    return tagged


def test_an_account_with_more_tasks_than_postgresql_takes_parameters_deletes_itself(
    user, other_user
):
    load_many_tasks(user, other_user)
    theirs = give_data(other_user)
    give_data(user)
    pair = sign_in(user.email, DEFAULT_PASSWORD)

    response = bearer(pair["access"]).delete(
        "/api/v1/auth/me/", {"password": DEFAULT_PASSWORD}, format="json"
    )

    assert response.status_code == 204, response.content
    assert not User.objects.filter(pk=user.pk).exists()
    for model in (Task, TaskList, Tag):
        assert not model.objects.filter(owner_id=user.pk).exists()
    assert not OutstandingToken.objects.filter(user_id=user.pk).exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tasks_task_tags")
        assert cursor.fetchone() == (1,)  # the other user's
    assert Task.objects.filter(owner=other_user).count() == MORE_THAN_PARAMETERS + 3
    assert Task.objects.get(title="Done", owner=other_user).next_occurrence_id == theirs.pk


def test_support_exports_an_account_with_more_tasks_than_postgresql_takes_parameters(
    support_client, user
):
    load_many_tasks(user)
    give_data(user)

    response = support_client.get(reverse("admin:accounts_user_export", args=[user.pk]))

    assert response.status_code == 200
    (exported,) = json.loads(b"".join(response.streaming_content))["users"]
    assert len(exported["tasks"]) == MORE_THAN_PARAMETERS + 3
    tags = {task["title"]: task["tags"] for task in exported["tasks"]}
    assert tags["Pay rent"] == ["money"]
    assert tags["Find the IBAN"] == tags["task 0"] == []


def test_an_export_of_several_users_holds_at_most_the_tasks_of_the_largest_account(
    support_client, support_user, user, other_user, settings
):
    from django.contrib.admin.models import LogEntry

    settings.MAX_TASKS_PER_USER = 3
    for owner in (user, other_user):
        for title in ("a", "b"):
            Task.objects.create(owner=owner, title=title, position=ord(title))
    selected = {"action": "export_data", "_selected_action": [str(user.pk), str(other_user.pk)]}

    response = support_client.post(reverse("admin:accounts_user_changelist"), selected, follow=True)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "the selected users have 4 tasks, more than one download holds (3)" in (
        response.content.decode()
    )
    assert not LogEntry.objects.filter(user=support_user).exists()
    selected["_selected_action"] = [str(user.pk)]
    response = support_client.post(reverse("admin:accounts_user_changelist"), selected)
    assert response["Content-Type"] == "application/json"
    assert len(json.loads(b"".join(response.streaming_content))["users"][0]["tasks"]) == 2


def test_a_superuser_deletes_an_account_with_more_tasks_than_postgresql_takes_parameters(
    admin_client, user
):
    load_many_tasks(user)
    give_data(user)
    page = reverse("admin:accounts_user_delete", args=[user.pk])

    confirmation = admin_client.get(page)
    selected = admin_client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "delete_selected", "_selected_action": [str(user.pk)]},
    )

    # Both confirmation pages say what goes, counted rather than listed row by row.
    for response in (confirmation, selected):
        assert response.status_code == 200
        text = response.content.decode()
        assert f"Tasks: {MORE_THAN_PARAMETERS + 3:,}" in text
        assert "Task lists: 1" in text and "Tags: 1" in text
    deleted = admin_client.post(page, {"post": "yes"})
    assert deleted.status_code == 302
    assert not User.objects.filter(pk=user.pk).exists()
    assert not Task.objects.filter(owner_id=user.pk).exists()


def test_a_superuser_deletes_a_task_with_more_subtasks_than_postgresql_takes_parameters(
    admin_client, user
):
    parent_id = load_subtasks(user.pk, MORE_THAN_PARAMETERS)
    other = Task.objects.create(owner=user, title="Walk", position=1)
    page = reverse("admin:tasks_task_delete", args=[parent_id])

    confirmation = admin_client.get(page)
    selected = admin_client.post(
        reverse("admin:tasks_task_changelist"),
        {"action": "delete_selected", "_selected_action": [str(parent_id)]},
    )

    # Both confirmation pages list the task and count its subtasks, rather than list each.
    for response in (confirmation, selected):
        assert response.status_code == 200
        text = response.content.decode()
        assert "<li>Task: parent" in text and f"Subtasks: {MORE_THAN_PARAMETERS:,}" in text
        assert f"Tasks: {MORE_THAN_PARAMETERS + 1}<" in text  # Django's summary
    deleted = admin_client.post(page, {"post": "yes"})
    assert deleted.status_code == 302
    assert list(Task.objects.filter(owner=user)) == [other]


@pytest.mark.django_db(transaction=True)
def test_a_large_account_deleted_after_the_tables_were_analyzed_empty_reads_each_once(
    user, other_user
):
    # Statistics of tasks_task and tasks_task_tags taken while they were empty (an instance
    # emptied and refilled): the planner took each for one row and joined the whole table
    # against each task, past 60 s for 100,000 tasks (review 36f). By the owner now.
    tag = Tag.objects.create(owner=user, name="t")
    tagged_tasks_under_emptied_statistics(user.pk, tag.pk, 20_000)
    theirs = give_data(other_user)
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    with statement_timeout(connection, "2s"):  # each takes ~0.2 s
        response = bearer(pair["access"]).delete(
            "/api/v1/auth/me/", {"password": DEFAULT_PASSWORD}, format="json"
        )
    assert response.status_code == 204, response.content
    assert not Task.objects.filter(owner_id=user.pk).exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tasks_task_tags")
        assert cursor.fetchone() == (1,)  # the other user's
    assert Task.objects.get(title="Done", owner=other_user).next_occurrence_id == theirs.pk
