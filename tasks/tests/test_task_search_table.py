"""The search vectors' own table (tasks.TaskSearch, migrations 0019 and 0020): written by
PostgreSQL triggers whenever a task is created or its text changes, never by a version bump,
and gone with its task whatever deletes it (review 32b, finding 1)."""

import json
import random
import string
from datetime import date

import pytest
from django.db import connection

from conftest import DEFAULT_PASSWORD, client_for
from tasks import services
from tasks.models import Priority, Task, TaskSearch

pytestmark = pytest.mark.django_db

_rnd = random.Random(32)


def _joined_words_description() -> str:
    """10,000 characters (the cap) of words joined by hyphens: ~4,700 lexemes, ~190 kB of
    vector (migration 0010 adds each word's parts)."""

    def word() -> str:
        return "".join(_rnd.choice(string.ascii_lowercase) for _ in range(3))

    return " ".join("-".join(word() for _ in range(17)) for _ in range(150))[:10_000]


def _wal_position() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        return cursor.fetchone()[0]


def _wal_since(start: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)", [start])
        return int(cursor.fetchone()[0])


def out_of_step() -> list:
    """Tasks without their search row (or with another vector or owner), and rows without
    their task: none, ever."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.id, s.task_id FROM tasks_task t"
            " FULL JOIN tasks_tasksearch s ON s.task_id = t.id"
            " WHERE t.id IS NULL OR s.task_id IS NULL"
            " OR s.search_vector IS DISTINCT FROM t.search_vector OR s.owner_id <> t.owner_id"
        )
        return cursor.fetchall()


def row_versions(tasks) -> dict:
    """Each task's search row's xmin: the transaction that last wrote it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT task_id, xmin::text FROM tasks_tasksearch WHERE task_id = ANY(%s)",
            [[task.pk for task in tasks]],
        )
        return dict(cursor.fetchall())


def searched(client, text: str) -> set[str]:
    answer = client.get("/api/v1/tasks/", {"search": text, "limit": 200})
    assert answer.status_code == 200
    return {task["title"] for task in answer.json()["results"]}


def test_a_tag_rename_costs_about_the_same_per_task_whatever_the_tasks_texts(api_client, make_task):
    """Review 32b's test. A tag rename (like a tag delete, a list delete, a bulk action, a
    parent's move) rewrites each task's row to bump its version. With the GIN index on
    tasks_task, every such row version re-inserted all of the task's search lexemes: on main,
    10,626,144 bytes of WAL for 20 tasks with 10,000-character descriptions against 31,984
    for 20 without. With the index on tasks_tasksearch, which a bump does not write, both
    renames write about the same WAL."""
    long_text = _joined_words_description()
    for n in range(20):
        make_task(f"short {n}", tags=["short"])
        make_task(f"long {n}", description=long_text, tags=["long"])

    start = _wal_position()
    assert (
        api_client.patch("/api/v1/tags/short/", {"name": "short2"}, format="json").status_code
        == 200
    )
    short_wal = _wal_since(start)

    start = _wal_position()
    assert (
        api_client.patch("/api/v1/tags/long/", {"name": "long2"}, format="json").status_code == 200
    )
    long_wal = _wal_since(start)

    assert long_wal < 10 * short_wal + 1_000_000, (
        f"renaming a tag on 20 tasks wrote {long_wal:,} bytes of WAL when the tasks have "
        f"10,000-character descriptions and {short_wal:,} when they have none: every bumped "
        "row re-inserts its whole search vector into the GIN index"
    )


def test_the_search_index_is_on_the_side_table_only():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, t.relname FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
            " JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'gin'"
            " AND t.relname IN ('tasks_task', 'tasks_tasksearch')"
        )
        assert cursor.fetchall() == [("tasksearch_vector", "tasks_tasksearch")]


def test_creates_of_every_kind_write_the_search_row(api_client, user, make_task, variety):
    # The API, the services, the ORM (variety: Task.objects.create), a bulk insert.
    assert (
        api_client.post("/api/v1/tasks/", {"title": "Buy apples"}, format="json").status_code == 201
    )
    make_task("Call the dentist", description="about the crown")
    Task.objects.bulk_create(
        [Task(owner=user, title=f"bulk {n}", position=90_000 + n) for n in range(3)]
    )
    assert out_of_step() == []
    assert TaskSearch.objects.filter(owner=user).count() == Task.objects.filter(owner=user).count()
    assert searched(api_client, "apple") == {"Buy apples"}
    assert searched(api_client, "crown") == {"Call the dentist"}


def test_a_copy_writes_the_search_rows(user):
    # As seed_bench and tests/many_tasks.py load tasks: COPY fires the statement trigger once.
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(
            "COPY tasks_task (id, owner_id, title, description, completed, priority, position,"
            " version, created_at, updated_at) FROM STDIN"
        ) as copy,
    ):
        for n in range(5):
            copy.write_row(
                (
                    f"00000000-0000-4000-8000-00000000000{n}",
                    user.pk,
                    f"copied {n}",
                    "by copy",
                    False,
                    0,
                    n * 1024,
                    1,
                    "2026-12-01T00:00:00Z",
                    "2026-12-01T00:00:00Z",
                )
            )
    assert TaskSearch.objects.filter(owner=user).count() == 5
    assert out_of_step() == []


def test_the_copies_of_completed_recurring_tasks_are_searchable(api_client, make_task):
    daily = [
        make_task(f"water plant {n}", due_date=date(2026, 12, 1), recurrence="FREQ=DAILY")
        for n in range(3)
    ]
    answer = api_client.post(
        "/api/v1/tasks/bulk/",
        json.dumps({"action": "complete", "ids": [str(task.pk) for task in daily]}),
        content_type="application/json",
    )
    assert answer.status_code == 200
    copies = Task.objects.filter(previous_occurrence__in=daily)
    assert copies.count() == 3
    assert out_of_step() == []
    found = api_client.get("/api/v1/tasks/", {"search": "plant", "completed": "false"}).json()
    assert {task["id"] for task in found["results"]} == {
        str(pk) for pk in copies.values_list("pk", flat=True)
    }


def test_a_title_or_description_edit_rewrites_the_search_row(api_client, make_task):
    task = make_task("Pay rent", description="by friday")
    assert searched(api_client, "rent") == {"Pay rent"}
    answer = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"title": "Pay invoice"}, format="json")
    assert answer.status_code == 200
    assert searched(api_client, "rent") == set()
    assert searched(api_client, "invoice") == {"Pay invoice"}
    answer = api_client.patch(
        f"/api/v1/tasks/{task.pk}/", {"description": "before monday"}, format="json"
    )
    assert answer.status_code == 200
    assert searched(api_client, "friday") == set()
    assert searched(api_client, "monday") == {"Pay invoice"}
    # Raw SQL too: the trigger is PostgreSQL's.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE tasks_task SET title = 'Water plants' WHERE id = %s", [task.pk])
    assert searched(api_client, "plants") == {"Water plants"}
    assert out_of_step() == []


def test_an_owner_change_moves_the_search_row(user, make_user, make_task):
    task = make_task("Shared thing")
    other = make_user("other-owner@example.com")
    Task.objects.filter(pk=task.pk).update(owner=other)
    assert TaskSearch.objects.get(task_id=task.pk).owner_id == other.pk
    assert searched(client_for(other), "shared") == {"Shared thing"}
    assert searched(client_for(user), "shared") == set()
    assert out_of_step() == []


def test_version_bumps_do_not_write_the_search_rows(api_client, make_task):
    tasks = [make_task(f"bumped {n}", tags=["t"], description="some words") for n in range(4)]
    before = row_versions(tasks)
    assert len(before) == 4
    assert api_client.patch("/api/v1/tags/t/", {"name": "t2"}, format="json").status_code == 200
    bulk = {"action": "set_priority", "priority": "high", "ids": [str(t.pk) for t in tasks]}
    assert api_client.post("/api/v1/tasks/bulk/", bulk, format="json").status_code == 200
    bulk = {"action": "complete", "ids": [str(t.pk) for t in tasks]}
    assert api_client.post("/api/v1/tasks/bulk/", bulk, format="json").status_code == 200
    # A single task's PATCH saves every column (title and description included): the trigger's
    # WHEN sees the same vector and leaves the row alone.
    patch = api_client.patch(f"/api/v1/tasks/{tasks[0].pk}/", {"priority": "low"}, format="json")
    assert patch.status_code == 200
    assert Task.objects.get(pk=tasks[0].pk).version > 1
    assert row_versions(tasks) == before
    assert api_client.delete("/api/v1/tags/t2/").status_code == 204
    assert row_versions(tasks) == before


def test_deletes_of_every_kind_leave_no_search_row_behind(user, make_user, make_list, make_task):
    client = client_for(user)
    parent = make_task("parent")
    for n in range(3):
        make_task(f"sub {n}", parent=parent)
    single = make_task("single")
    bulk_deleted = [make_task(f"bulk {n}") for n in range(3)]
    home = make_list("Home")
    in_list = [make_task(f"listed {n}", list=home) for n in range(3)]
    kept = make_task("kept")
    assert TaskSearch.objects.count() == 12

    assert client.delete(f"/api/v1/tasks/{parent.pk}/").status_code == 204  # and its subtasks
    assert client.delete(f"/api/v1/tasks/{single.pk}/").status_code == 204
    bulk = {"action": "delete", "ids": [str(t.pk) for t in bulk_deleted]}
    assert client.post("/api/v1/tasks/bulk/", bulk, format="json").status_code == 200
    assert client.delete(f"/api/v1/lists/{home.pk}/?tasks=delete").status_code == 204
    assert list(TaskSearch.objects.values_list("task_id", flat=True)) == [kept.pk]
    assert not Task.objects.filter(pk__in=[t.pk for t in in_list]).exists()
    assert out_of_step() == []

    # Account deletion: the ORM's cascade deletes the tasks, PostgreSQL their search rows.
    other = make_user("leaving@example.com")
    services.task_create(user=other, data={"title": "theirs"})
    answer = client_for(other).delete(
        "/api/v1/auth/me/", {"password": DEFAULT_PASSWORD}, format="json"
    )
    assert answer.status_code == 204
    assert not TaskSearch.objects.filter(owner=other).exists()
    # The ORM itself: Task.delete() leaves the row to the database's cascade.
    kept.delete()
    assert TaskSearch.objects.count() == 0
    assert out_of_step() == []


def test_a_search_alone_and_a_search_with_filters_count_the_same_tasks(api_client, make_task):
    for n in range(7):
        make_task(f"report {n}", priority=Priority.HIGH if n % 2 else Priority.LOW)
    make_task("other")
    alone = api_client.get("/api/v1/tasks/", {"search": "rep"}).json()
    assert alone["count"] == 7 and len(alone["results"]) == 7
    filtered = api_client.get("/api/v1/tasks/", {"search": "rep", "priority": "high"}).json()
    assert filtered["count"] == 3
    # Both shapes of the page (few matches: the search index first; many: the order index).
    paged = api_client.get("/api/v1/tasks/", {"search": "rep", "limit": 2, "offset": 5}).json()
    assert paged["count"] == 7
    assert [task["title"] for task in paged["results"]] == ["report 5", "report 6"]
