"""The search vectors' own table (tasks.TaskSearch, migrations 0019 and 0020): written by
PostgreSQL triggers whenever a task is created or its text changes, never by a version bump
(a change of `completed` or `priority` only rewrites those copies, in place: HOT), and gone
with its task whatever deletes it (review 32b, finding 1)."""

import json
import random
import re
import string
from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from psycopg import sql as psycopg_sql

from conftest import DEFAULT_PASSWORD, client_for
from tasks import fast_read, services
from tasks.filters import filter_tasks, prefix_tsquery
from tasks.models import POSITION_GAP, Priority, Task, TaskSearch

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


# A task's vector as tasks_task's generated column computed it until migration 0023 (spelled as
# `pg_get_expr` showed it), written out rather than task_search_vector(), which the triggers
# call: checked against this, the function cannot drift from what searches were built on.
VECTOR_OF_THE_DROPPED_COLUMN = (
    "task_search_lexemes(to_tsvector('simple'::regconfig, (((COALESCE(t.title, ''::character"
    " varying))::text || ' '::text) || COALESCE(t.description, ''::text))), \"left\"(replace("
    "(t.owner_id)::text, '-'::text, ''::text), 12))"
)


def out_of_step() -> list:
    """Tasks without their search row (or with another vector or owner), and rows without
    their task: none, ever."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.id, s.task_id FROM tasks_task t"
            " FULL JOIN tasks_tasksearch s ON s.task_id = t.id"
            " WHERE t.id IS NULL OR s.task_id IS NULL"
            f" OR s.search_vector IS DISTINCT FROM {VECTOR_OF_THE_DROPPED_COLUMN}"
            " OR s.owner_id <> t.owner_id"
            " OR s.completed <> t.completed OR s.priority <> t.priority"
        )
        return cursor.fetchall()


def row_versions(tasks) -> dict:
    """Each task's search row's xmin and xmax: the transactions that last wrote and locked it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT task_id, xmin::text, xmax::text FROM tasks_tasksearch WHERE task_id = ANY(%s)",
            [[task.pk for task in tasks]],
        )
        return {task_id: versions for task_id, *versions in cursor.fetchall()}


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


def test_an_edit_that_keeps_the_words_neither_writes_nor_locks_the_search_row(
    api_client, make_task
):
    task, other = make_task("Buy milk", description="at the shop"), make_task("Other")
    before = row_versions([task, other])
    for change in ({"title": "Buy milk!"}, {"description": "At the shop."}):
        answer = api_client.patch(f"/api/v1/tasks/{task.pk}/", change, format="json")
        assert answer.status_code == 200
    assert row_versions([task, other]) == before  # xmax too: an upsert's DO UPDATE locked it
    # A row missing (deleted by hand) comes back with the next edit, the same words or not.
    TaskSearch.objects.filter(task_id=task.pk).delete()
    answer = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"title": "Buy milk"}, format="json")
    assert answer.status_code == 200
    assert out_of_step() == []


def test_the_vector_function_is_inlined_into_the_triggers_statements():
    """task_search_vector() has no search_path of its own, so PostgreSQL inlines it: with one,
    each call planned task_search_lexemes' body again, ~150 us a row (an INSERT ... SELECT of
    20,000 tasks 1.5 s -> 5.3 s; review 35c)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN VERBOSE SELECT task_search_vector(title, description, owner_id)"
            " FROM tasks_task"
        )
        plan = "\n".join(row for (row,) in cursor.fetchall())
    assert "task_search_vector(" not in plan, plan
    assert "task_search_lexemes(to_tsvector(" in plan, plan


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
    bulk = {"action": "add_tags", "tags": ["u"], "ids": [str(t.pk) for t in tasks]}
    assert api_client.post("/api/v1/tasks/bulk/", bulk, format="json").status_code == 200
    # A single task's PATCH saves every column (title and description included): the triggers'
    # WHEN see the same vector, completion and priority and leave the row alone.
    patch = api_client.patch(
        f"/api/v1/tasks/{tasks[0].pk}/", {"due_date": "2030-01-02"}, format="json"
    )
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


def search_row_updates() -> tuple[int, int]:
    """This transaction's row updates of tasks_tasksearch so far: (all, HOT)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables"
            " WHERE relname = 'tasks_tasksearch'"
        )
        return cursor.fetchone()


def test_completion_and_priority_changes_rewrite_their_copies_in_place(api_client, make_task):
    tasks = [make_task(f"copied {n}", description="some words") for n in range(6)]
    ids = [str(t.pk) for t in tasks]
    updates, hot = search_row_updates()
    for body in (
        {"action": "set_priority", "priority": "high", "ids": ids},
        {"action": "complete", "ids": ids[:4]},
        {"action": "reopen", "ids": ids[:2]},
    ):
        assert api_client.post("/api/v1/tasks/bulk/", body, format="json").status_code == 200
    for change in ({"priority": "low"}, {"completed": True}):
        answer = api_client.patch(f"/api/v1/tasks/{ids[5]}/", change, format="json")
        assert answer.status_code == 200
    assert out_of_step() == []
    assert TaskSearch.objects.filter(completed=True).count() == 3
    # 6 + 4 + 2 + 1 + 1 row versions, every one on its own page (fillfactor 50): a HOT update
    # puts nothing in the search index, whatever the vector's size.
    after, hot_after = search_row_updates()
    assert (after - updates, hot_after - hot) == (14, 14)


def test_a_search_with_completion_and_priority_is_counted_on_the_search_table_alone(
    api_client, make_task
):
    for n in range(12):
        make_task(
            f"report {n}",
            priority=[Priority.HIGH, Priority.LOW, Priority.MEDIUM][n % 3],
            completed=n % 2 == 0,
        )
    make_task("other report", priority=Priority.HIGH)
    for query in (
        {"search": "rep", "completed": "false"},
        {"search": "rep", "priority": "high,low"},
        {"search": "rep", "completed": "true", "priority": "medium", "ordering": "-priority"},
    ):
        with CaptureQueriesContext(connection) as queries:
            fast = api_client.get("/api/v1/tasks/", query).json()
        counts = [q["sql"] for q in queries.captured_queries if "COUNT(*)" in q["sql"]]
        assert len(counts) == 1 and '"tasks_task"' not in counts[0], counts
        # The viewset's answer (?format=json) counts on tasks_task, joined: the same tasks.
        slow = api_client.get("/api/v1/tasks/", {**query, "format": "json"}).json()
        assert fast["count"] == slow["count"] > 0
        assert fast["results"] == slow["results"]


def prepared_plan(sql: str, params: list, mode: str) -> str:
    """EXPLAIN of `sql` as a prepared statement planned `mode`: force_custom_plan (the values
    known) or force_generic_plan (what PostgreSQL runs after five executions)."""
    numbered = iter(range(1, len(params) + 1))
    text = re.sub("%s", lambda _: f"${next(numbered)}", sql)
    raw = connection.connection
    values = ", ".join(psycopg_sql.Literal(value).as_string(raw) for value in params)
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL plan_cache_mode = {mode}")
        cursor.execute(f"PREPARE planned AS {text}")
        try:
            cursor.execute(f"EXPLAIN (ANALYZE) EXECUTE planned({values})")
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE planned")


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
def test_few_matches_are_listed_off_the_search_index_once_then_fetched_by_key(
    user, other_user, mode
):
    # 2,000 tasks each; 25 of the user's match. As `id IN (SELECT ... owner_id = ...)`, the
    # planner could walk the owner's tasks and probe the search table for each one (the bench:
    # 1,000 probes for 122 matches). The ids as an ARRAY() InitPlan cannot be turned round.
    rng = random.Random(5)
    Task.objects.bulk_create(
        Task(
            owner=owner,
            title=("quarterly report" if owner == user and n % 80 == 0 else "")
            + " ".join(rng.choices(["alpha", "beta", "gamma", "delta", "epsilon"], k=3)),
            position=(n + 1) * POSITION_GAP,
            priority=n % 4,
        )
        for owner in (user, other_user)
        for n in range(2_000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tasks_task")
        cursor.execute("ANALYZE tasks_tasksearch")
    search = prefix_tsquery("report", user)
    for criteria in (
        {"search": search, "ordering": ("-priority",)},
        {"search": search, "completed": False, "ordering": ("-updated_at",)},
    ):
        _, sql, params = fast_read.MATCHING_TASKS.statement(
            limit=50, offset=0, owner=user.pk, search_index_first=user.pk, **criteria
        )
        text = prepared_plan(sql, params, mode)
        # (At this size the search rows are read whole; the bench's data reads the index.)
        assert "InitPlan" in text and "id = ANY" in text, text
        assert "tasks_tasksearch_pkey" not in text, text  # no probe per task
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = [row[0] for row in cursor.fetchall()]
        walked = filter_tasks(Task.objects.owned_by(user), criteria)
        assert len(found) == 25
        assert found == list(walked.values_list("id", flat=True)[:50])
