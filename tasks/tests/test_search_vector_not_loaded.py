"""A task's search vector stays in PostgreSQL: no statement reads it back into a worker.

It is up to ~190 kB a task (a 10,000-character description of joined words gives ~4,700
lexemes): a bulk action on 500 such tasks took a gunicorn worker from 73 to 244 MB for good,
an admin page of them +40 MB (review 32b). The column is no field of Task (migration 0022):
it lives on in tasks_task only for the release before, and its copy in tasks_tasksearch is
filtered on in SQL only.
"""

from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks import services
from tasks.models import Task, TaskSearch

pytestmark = pytest.mark.django_db


def reads_the_vector(captured: CaptureQueriesContext) -> list[str]:
    """The statements whose select list has the column (a search only filters on it)."""
    return [
        query["sql"][:160]
        for query in captured.captured_queries
        if query["sql"].lstrip().upper().startswith(("SELECT", "WITH"))
        and '"search_vector"' in query["sql"].split(" FROM ", 1)[0]
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"action": "complete"},
        {"action": "reopen"},
        {"action": "set_priority", "priority": "high"},
        {"action": "add_tags", "tags": ["a"]},
        {"action": "remove_tags", "tags": ["a"]},
        {"action": "move", "list": None},
        {"action": "delete"},
    ],
)
def test_no_bulk_action_reads_the_search_vectors(api_client, make_task, body):
    parent = make_task("parent", description="words " * 100, tags=["a"])
    make_task("sub", parent=parent)
    ids = [str(parent.pk), str(make_task("other", recurrence=None).pk)]
    with CaptureQueriesContext(connection) as captured:
        answer = api_client.post("/api/v1/tasks/bulk/", {**body, "ids": ids}, format="json")
    assert answer.status_code == 200, answer.json()
    assert reads_the_vector(captured) == []


def test_the_admin_and_the_orm_leave_the_search_vectors_out(client, make_task, staff_accounts):
    task = make_task("a", description="words " * 100)
    make_task("sub", parent=task)
    client.force_login(staff_accounts["a superuser"])
    with CaptureQueriesContext(connection) as captured:
        assert client.get(f"/admin/tasks/task/?owner__id__exact={task.owner_id}").status_code == 200
        assert client.get(f"/admin/tasks/task/{task.pk}/change/").status_code == 200
        list(Task.objects.owned_by(task.owner))
        list(task.subtasks.all())
        services.task_update(task=task, user=task.owner, data={"title": "b"})
    assert reads_the_vector(captured) == []
    # Searching still works: the vector is in PostgreSQL, out of the app's reads.
    assert TaskSearch.objects.filter(search_vector__isnull=False, pk=task.pk).exists()


def test_a_forward_access_through_the_base_manager_leaves_the_vector_out(make_task):
    # Django's base manager defers nothing: while Task had the field, `subtask.parent` read the
    # parent's vector.
    parent = make_task("parent", description="words " * 100)
    subtask = Task.objects.get(pk=make_task("sub", parent=parent).pk)
    with CaptureQueriesContext(connection) as captured:
        assert subtask.parent == parent
        Task._base_manager.get(pk=parent.pk).refresh_from_db()
    assert len(captured) == 3
    assert reads_the_vector(captured) == []
    with connection.cursor() as cursor:  # the column is still there, for the release before
        cursor.execute("SELECT count(*) FROM tasks_task WHERE search_vector IS NOT NULL")
        assert cursor.fetchone() == (2,)


def test_the_admin_change_page_of_a_task_with_a_next_occurrence_leaves_the_vectors_out(
    client, make_task, staff_accounts, user
):
    # The read-only `next_occurrence` went through the forward key, Task's base manager, which
    # defers nothing; the copy has the original's description (review 32e).
    task = make_task(
        "daily", description="words " * 100, recurrence="FREQ=DAILY", due_date=date(2999, 1, 1)
    )
    services.task_complete(task=task, user=user)
    assert Task.objects.get(pk=task.pk).next_occurrence_id is not None
    client.force_login(staff_accounts["a superuser"])
    with CaptureQueriesContext(connection) as captured:
        assert client.get(f"/admin/tasks/task/{task.pk}/change/").status_code == 200
    assert reads_the_vector(captured) == []
