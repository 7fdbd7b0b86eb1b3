"""A move's write in the statement that reads its anchor (services._ANCHOR_READ_AND_PLACED), its
one group lock without an array, and TaskMoveSerializer's fields built once (review 39a).

The first three fail before the change; the others guard that the merged statement writes what
task_save() wrote, and nothing when the read decides otherwise (a 400, "already there", a
spread): the rank _bisect() gives (floor, also below zero), the list, version and updated_at.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks.models import POSITION_GAP, Task
from tasks.serializers import TaskMoveSerializer

pytestmark = pytest.mark.django_db

ANOTHER = "Must be another task of the same list and parent, or null."


def ranked(make_task, home, **ranks: int) -> dict[str, Task]:
    tasks = {title: make_task(title, list=home) for title in ranks}
    for title, rank in ranks.items():
        Task.objects.filter(pk=tasks[title].pk).update(position=rank)
        tasks[title].refresh_from_db()
    return tasks


def moved(api_client, task: Task, body: dict) -> tuple[dict, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        response = api_client.post(f"/api/v1/tasks/{task.pk}/move/", body, format="json")
    assert response.status_code == 200, response.json()
    # Read before the GET: a request's start clears the connection's log.
    statements = [query["sql"] for query in captured.captured_queries]
    got = api_client.get(f"/api/v1/tasks/{task.pk}/")
    assert response.content == got.content and response["ETag"] == got["ETag"]
    return response.json(), statements


def test_a_reorder_writes_the_task_in_the_statement_that_reads_its_anchor(
    api_client, make_task, make_list
):
    tasks = ranked(make_task, make_list("Home"), a=1024, b=2048, c=3072)
    answer, statements = moved(api_client, tasks["c"], {"after": str(tasks["a"].pk)})
    assert answer["position"] == 1536 and answer["version"] == 2
    assert not [sql for sql in statements if sql.lstrip().upper().startswith("UPDATE")]
    assert len(statements) == 6  # the count test_query_counts asserts


def test_a_reorder_takes_its_one_group_lock_without_an_array(api_client, make_task, make_list):
    tasks = ranked(make_task, make_list("Home"), a=1024, b=2048, c=3072)
    _, statements = moved(api_client, tasks["c"], {"after": str(tasks["a"].pk)})
    locks = [sql for sql in statements if "pg_advisory_xact_lock" in sql]
    assert len(locks) == 1 and "unnest" not in locks[0] and locks[0].endswith("::bigint)")


def test_the_move_serializer_builds_its_fields_once():
    first, second = TaskMoveSerializer(data={}).fields, TaskMoveSerializer(data={}).fields
    assert "_built_fields" in TaskMoveSerializer.__dict__
    assert first["after"] is not second["after"]  # each serializer binds its own copy
    assert first["after"].parent is not second["after"].parent


@pytest.mark.parametrize(
    ("ranks", "expected"),
    [
        ({"a": 1024, "b": 2048, "c": 3072}, 1536),
        ({"a": 1024, "b": 1027, "c": 3072}, 1025),  # odd sum: floor
        ({"a": -1025, "b": -2, "c": 3072}, -514),  # below zero: floor, as Python's //, not -513
        ({"a": -2049, "b": -1024, "c": 3072}, -1537),
        # Past 16 digits, where a numeric `/ 2` rounds: 2**62 + 2 would be wrong.
        ({"a": 2**62, "b": 2**62 + 3, "c": 2**62 + 9000}, 2**62 + 1),
        ({"a": -(2**62), "b": 2**62, "c": 2**62 + 9000}, 0),  # b - a past bigint
        ({"a": -(2**62) - 5, "b": -(2**62) + 2, "c": 2**62}, -(2**62) - 2),
    ],
)
def test_a_reorder_lands_where_bisect_puts_it(api_client, make_task, make_list, ranks, expected):
    tasks = ranked(make_task, make_list("Home"), **ranks)
    answer, _ = moved(api_client, tasks["c"], {"after": str(tasks["a"].pk)})
    assert answer["position"] == expected == (ranks["a"] + ranks["b"]) // 2
    assert answer["version"] == 2


def test_a_move_after_the_last_task_goes_a_gap_after_it(api_client, make_task, make_list):
    tasks = ranked(make_task, make_list("Home"), a=1024, b=2048, c=5000)
    answer, _ = moved(api_client, tasks["a"], {"after": str(tasks["c"].pk)})
    assert answer["position"] == 5000 + POSITION_GAP and answer["version"] == 2


def test_a_move_right_after_its_anchor_already_writes_nothing(api_client, make_task, make_list):
    tasks = ranked(make_task, make_list("Home"), a=1024, b=2048, c=3072)
    before = api_client.get(f"/api/v1/tasks/{tasks['b'].pk}/")
    answer, statements = moved(api_client, tasks["b"], {"after": str(tasks["a"].pk)})
    assert answer == before.json() and answer["version"] == 1
    assert Task.objects.get(pk=tasks["b"].pk).updated_at == tasks["b"].updated_at
    assert "UPDATE tasks_task" in statements[-2]  # the merged statement ran, and wrote nothing


@pytest.mark.parametrize("anchor", ["itself", "another list", "a subtask"])
def test_a_refused_anchor_writes_nothing(api_client, make_task, make_list, anchor):
    home, work = make_list("Home"), make_list("Work")
    tasks = ranked(make_task, home, a=1024, b=2048)
    elsewhere = {
        "itself": tasks["b"],
        "another list": make_task("w", list=work),
        "a subtask": make_task("s", parent=tasks["a"]),
    }[anchor]
    response = api_client.post(
        f"/api/v1/tasks/{tasks['b'].pk}/move/", {"after": str(elsewhere.pk)}, format="json"
    )
    assert response.status_code == 400 and response.json()["errors"] == {"after": [ANOTHER]}
    after = Task.objects.get(pk=tasks["b"].pk)
    assert (after.position, after.version, after.list_id) == (2048, 1, home.pk)


def test_a_move_into_another_list_after_a_task_there_is_one_write_too(
    api_client, make_task, make_list
):
    home, work = make_list("Home"), make_list("Work")
    task = make_task("task", list=home)
    sub = make_task("sub", parent=task)
    w1, w2 = make_task("w1", list=work), make_task("w2", list=work)
    answer, statements = moved(api_client, task, {"after": str(w1.pk), "list": str(work.pk)})
    assert answer["list"] == str(work.pk) and answer["version"] == 2
    assert w1.position < answer["position"] < w2.position
    sub.refresh_from_db()
    assert sub.list_id == work.pk and sub.version == 2  # the subtasks' own UPDATE, as before
    assert len([sql for sql in statements if sql.lstrip().upper().startswith("UPDATE")]) == 1


def test_a_used_up_gap_still_spreads_then_places_the_task(api_client, make_task, make_list):
    tasks = ranked(make_task, make_list("Home"), a=1024, b=1025, c=3072)
    answer, statements = moved(api_client, tasks["c"], {"after": str(tasks["a"].pk)})
    assert [t.title for t in Task.objects.order_by("position")] == ["a", "c", "b"]
    assert answer["version"] == 2
    # The merged statement wrote nothing; the spread, then the read and task_save() as before.
    assert any(sql.startswith('UPDATE "tasks_task" SET "owner_id"') for sql in statements)
