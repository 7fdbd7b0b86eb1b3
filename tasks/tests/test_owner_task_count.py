"""OwnerTaskCount, kept by triggers on tasks_task (migration 0005): equal to COUNT(*) per owner
after every kind of write, with no row for an owner without tasks; and the default list's
`count` comes from it."""

import re
import threading
import uuid
from datetime import date
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services as account_services
from accounts.models import User
from bench.prepare import CREATED_TITLE, reset_write_scenarios
from conftest import client_for
from tasks import services
from tasks.management.commands.seed_bench import HEAVY_EMAIL
from tasks.models import POSITION_GAP, OwnerTaskCount, Task
from todo_project.problems import Conflict
from todo_project.tests.helpers import run_in_threads, wait_for_lock_waiters

pytestmark = pytest.mark.django_db


def counted() -> dict:
    return dict(OwnerTaskCount.objects.values_list("owner_id", "tasks"))


def actual() -> dict:
    per_owner = Task.objects.order_by().values("owner_id").annotate(n=Count("id"))
    return {row["owner_id"]: row["n"] for row in per_owner}


def assert_exact() -> dict:
    """The counts equal COUNT(*) per owner, and owners without tasks have no row."""
    counts = counted()
    assert counts == actual()
    return counts


def raw_insert(owner, n: int, start: int = 0) -> None:
    """n tasks for `owner` in one INSERT ... SELECT, as raw SQL would write them (ranks below
    zero, out of the way of the services' creates at the end of the Inbox)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tasks_task (id, owner_id, title, description, completed, priority,"
            " position, version, created_at, updated_at)"
            " SELECT gen_random_uuid(), %s, 'raw ' || n, '', false, 0, -n * %s, 1, now(), now()"
            " FROM generate_series(%s::integer, %s::integer) AS n",
            [owner.pk, POSITION_GAP, start + 1, start + n],
        )


# --- Every write path -----------------------------------------------------------------------


def test_creating_through_the_api_counts_each_task(api_client, user, other_user, make_task):
    make_task("Theirs", owner=other_user)
    for title in ("One", "Two"):
        assert api_client.post("/api/v1/tasks/", {"title": title}).status_code == 201
    assert assert_exact() == {user.pk: 2, other_user.pk: 1}


def test_bulk_create_is_counted_per_owner(user, other_user):
    Task.objects.bulk_create(
        Task(owner=owner, title=f"t{i}", position=i)
        for i, owner in enumerate([user, other_user] * 150)
    )
    assert assert_exact() == {user.pk: 150, other_user.pk: 150}


def test_deleting_a_parent_uncounts_its_subtasks(api_client, user, make_task):
    parent = make_task("Parent")
    for title in ("a", "b"):
        make_task(title, parent=parent)
    keep = make_task("Keep")
    assert counted() == {user.pk: 4}

    assert api_client.delete(f"/api/v1/tasks/{parent.pk}/").status_code == 204
    assert assert_exact() == {user.pk: 1}

    body = {"action": "delete", "ids": [str(keep.pk)]}
    assert api_client.post("/api/v1/tasks/bulk/", body).status_code == 200
    assert assert_exact() == {}  # the last task took the row with it


def test_completing_a_recurring_task_counts_the_next_occurrence(api_client, user, make_task):
    rent = make_task("Rent", due_date=date(2026, 12, 1), recurrence="FREQ=MONTHLY")
    water = make_task("Water", due_date=date(2026, 12, 1), recurrence="FREQ=WEEKLY")
    gas = make_task("Gas", due_date=date(2026, 12, 1), recurrence="FREQ=WEEKLY")

    assert api_client.patch(f"/api/v1/tasks/{rent.pk}/", {"completed": True}).status_code == 200
    assert assert_exact() == {user.pk: 4}
    body = {"action": "complete", "ids": [str(water.pk), str(gas.pk)]}
    assert api_client.post("/api/v1/tasks/bulk/", body).status_code == 200
    assert assert_exact() == {user.pk: 6}


def test_deleting_a_list_with_its_tasks_uncounts_them(api_client, user, make_list, make_task):
    home = make_list("Home")
    parent = make_task("Parent", list=home)
    make_task("Sub", parent=parent)
    make_task("Inbox")
    assert api_client.delete(f"/api/v1/lists/{home.pk}/?tasks=delete").status_code == 204
    assert assert_exact() == {user.pk: 1}


def test_deleting_the_account_leaves_no_count_behind(user, other_user, make_task):
    parent = make_task("Parent")
    make_task("Sub", parent=parent)
    make_task("Theirs", owner=other_user)
    account_services.user_delete(user=user)
    assert assert_exact() == {other_user.pk: 1}


def test_deletes_in_the_admin_are_counted(admin_client, user, other_user, make_task):
    parent = make_task("Parent")
    make_task("Sub", parent=parent)
    make_task("Other")
    make_task("Theirs", owner=other_user)

    url = f"/admin/tasks/task/{parent.pk}/delete/"
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert assert_exact() == {user.pk: 1, other_user.pk: 1}
    url = f"/admin/accounts/user/{other_user.pk}/delete/"
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert assert_exact() == {user.pk: 1}


def test_raw_sql_inserts_and_deletes_are_counted(user, other_user):
    raw_insert(user, 5000)
    raw_insert(other_user, 3)
    assert assert_exact() == {user.pk: 5000, other_user.pk: 3}
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM tasks_task WHERE owner_id = %s AND position >= %s",
            [user.pk, -1000 * POSITION_GAP],
        )
        cursor.execute("DELETE FROM tasks_task WHERE owner_id = %s", [other_user.pk])
    assert assert_exact() == {user.pk: 4000}


def test_copy_is_counted(user, other_user):
    columns = "id, owner_id, title, description, completed, priority, position, version"
    copy_sql = f"COPY tasks_task ({columns}, created_at, updated_at) FROM STDIN"
    now = timezone.now()
    with connection.cursor() as cursor, cursor.cursor.copy(copy_sql) as copy:
        for i in range(2000):
            owner = user if i % 4 else other_user
            copy.write_row((uuid.uuid4(), owner.pk, f"copied {i}", "", False, 0, i, 1, now, now))
    assert assert_exact() == {user.pk: 1500, other_user.pk: 500}


def test_moving_a_task_to_another_owner_moves_its_count(user, other_user, make_task):
    """Nothing in the app changes an owner; raw SQL could, and the counts follow."""
    task = make_task("Mine")
    make_task("Also mine")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tasks_task SET owner_id = %s, position = -1 WHERE id = %s",
            [other_user.pk, task.pk],
        )
    assert assert_exact() == {user.pk: 1, other_user.pk: 1}
    with connection.cursor() as cursor:
        cursor.execute("UPDATE tasks_task SET owner_id = %s", [other_user.pk])
    assert assert_exact() == {other_user.pk: 2}


def test_an_ordinary_save_leaves_the_counts_alone(user, make_task):
    task = make_task("Mine")
    task.title = "Renamed"
    task.save()  # names owner_id among its columns, with the same value
    assert assert_exact() == {user.pk: 1}


def test_truncate_empties_the_counts(user, make_task):
    make_task("Mine")
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no foreign-key checks left pending
        cursor.execute("TRUNCATE tasks_task CASCADE")
    assert assert_exact() == {}


def test_a_count_cannot_be_written_past_zero(user):
    """A row missing behind the triggers' back fails the next delete loudly, never silently."""
    raw_insert(user, 1)
    OwnerTaskCount.objects.all().delete()
    with pytest.raises(Exception, match="tasks_ownertaskcount"), transaction.atomic():
        Task.objects.filter(owner=user).delete()


@pytest.mark.django_db(transaction=True)
def test_the_bench_seed_its_reset_and_its_replacement_keep_the_counts_exact():
    call_command("seed_bench", users=2, tasks_per_user=30, heavy_tasks=60)  # COPY
    counts = assert_exact()
    assert sorted(counts.values()) == [30, 30, 60]
    heavy = User.objects.get(email=HEAVY_EMAIL)
    services.task_create(user=heavy, data={"title": f"{CREATED_TITLE} 1"})
    reset_write_scenarios(heavy.date_joined)  # deletes what the create scenario made
    assert assert_exact() == counts
    call_command("seed_bench", users=1, tasks_per_user=10, heavy_tasks=20)
    assert sorted(assert_exact().values()) == [10, 20]


# --- Restores --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_count_triggers_work_under_the_empty_search_path_of_a_pg_dump_file(user, other_user):
    """Review 31g, finding 2. Every pg_dump file, and pg_restore, sets `search_path` to '' first.
    The triggers' functions named tasks_ownertaskcount without its schema: an INSERT or DELETE
    of tasks in such a session failed (`relation "tasks_ownertaskcount" does not exist`), so a
    data-level restore of the tasks restored none. Migration 0018 gives them their schema."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT quote_ident(current_schema())")
        (schema,) = cursor.fetchone()
        cursor.execute("SET search_path TO ''")
        try:
            cursor.execute(
                f"INSERT INTO {schema}.tasks_task (id, owner_id, title, description, completed,"
                " priority, position, version, created_at, updated_at)"
                " SELECT gen_random_uuid(), %s, 'Restored ' || n, '', false, 0, n, 1, now(),"
                " now() FROM generate_series(1, 3) AS n",
                [user.pk],
            )
            cursor.execute(  # the row-level trigger: a task moved to another owner
                f"UPDATE {schema}.tasks_task SET owner_id = %s WHERE title = 'Restored 3'",
                [other_user.pk],
            )
            cursor.execute(f"SELECT owner_id, tasks FROM {schema}.tasks_ownertaskcount")
            assert dict(cursor.fetchall()) == {user.pk: 2, other_user.pk: 1}
            cursor.execute(f"DELETE FROM {schema}.tasks_task WHERE owner_id = %s", [user.pk])
        finally:
            cursor.execute("SET search_path TO DEFAULT")
    assert assert_exact() == {other_user.pk: 1}


def readme_rebuild_of_the_counts() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    found = re.search(
        r"```sql\n(BEGIN;\n.*?tasks_ownertaskcount.*?COMMIT;)\n```", readme, re.DOTALL
    )
    assert found, "the README's rebuild of the task counts moved"
    return found.group(1)


@pytest.mark.django_db(transaction=True)
def test_the_readmes_rebuild_after_a_data_level_restore_makes_the_counts_exact(user, other_user):
    """A data-only restore into a migrated database loads the dumped counts and then the tasks,
    whose triggers count them again (or, restoring some tables only, counts whatever the file
    holds): the README's statements put the counts right, whatever they were."""
    raw_insert(user, 3)
    raw_insert(other_user, 2)
    with connection.cursor() as cursor:  # as a restore may leave them: doubled, and one stale
        cursor.execute("DELETE FROM tasks_task WHERE owner_id = %s", [other_user.pk])
        cursor.execute("UPDATE tasks_ownertaskcount SET tasks = tasks * 2")
        cursor.execute(
            "INSERT INTO tasks_ownertaskcount (owner_id, tasks) VALUES (%s, 7)", [other_user.pk]
        )
        assert counted() == {user.pk: 6, other_user.pk: 7}
        cursor.execute(readme_rebuild_of_the_counts())
    assert assert_exact() == {user.pk: 3}


# --- Concurrency ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_for_one_owner_keep_the_count_exact(make_user):
    owner = make_user()
    doomed = [services.task_create(user=owner, data={"title": f"d{i}"}) for i in range(20)]

    def creates() -> None:
        for i in range(20):
            services.task_create(user=owner, data={"title": f"c{i}"})

    def raw_inserts() -> None:
        for i in range(20):
            with transaction.atomic():
                raw_insert(owner, 50, start=100 + 50 * i)

    def deletes() -> None:
        for task in doomed:
            services.task_delete(owner_id=task.owner_id, task_id=task.pk)

    assert run_in_threads(creates, raw_inserts, deletes) == []
    assert assert_exact() == {owner.pk: 20 + 20 * 50}


def _create_in_a_thread(owner, data: dict) -> tuple[threading.Thread, list]:
    errors: list[Exception] = []

    def create() -> None:
        try:
            services.task_create(user=owner, data=data)
        except Exception as error:  # noqa: BLE001 - reported by the caller
            errors.append(error)
        finally:
            connections.close_all()

    return threading.Thread(target=create), errors


def _wait_for_a_lock_waiter(errors: list) -> None:
    if not wait_for_lock_waiters(connection, 1):
        pytest.fail(f"the other transaction never waited: {errors}")


def _recurring(owner) -> Task:
    data = {"title": "Rent", "due_date": date(2026, 12, 1), "recurrence": "FREQ=DAILY"}
    return services.task_create(user=owner, data=data)


@pytest.mark.django_db(transaction=True)
def test_a_create_waiting_on_a_completion_of_the_same_owner_does_not_deadlock(make_user):
    """The completion inserts the next occurrence (the count stays locked until its commit),
    then commits while a create holds the cap's lock on the user: the commit's foreign-key
    check of the new occurrence must not wait for that lock."""
    owner = make_user()
    rent = _recurring(owner)
    # Another sibling group: the rank of the next occurrence is not what the create waits on.
    home = services.list_create(user=owner, name="Home", color=None, position=None)
    creator, errors = _create_in_a_thread(owner, {"title": "New", "list": home})
    with transaction.atomic():
        services.task_complete(task=rent, user=owner)
        creator.start()
        _wait_for_a_lock_waiter(errors)  # on the count
    creator.join(timeout=30)
    assert errors == []
    assert assert_exact() == {owner.pk: 3}


@pytest.mark.django_db(transaction=True)
def test_a_create_and_a_completion_making_the_same_tag_do_not_deadlock(make_user):
    """As a PATCH with new tags and `completed`: the tag first, the next occurrence last. The
    create waits for the tag before it inserts (and so before it holds the count)."""
    owner = make_user()
    rent = _recurring(owner)
    home = services.list_create(user=owner, name="Home", color=None, position=None)
    creator, errors = _create_in_a_thread(owner, {"title": "New", "list": home, "tags": ["x"]})
    with transaction.atomic():
        services.tags_get_or_create(user=owner, names=["x"])
        creator.start()
        _wait_for_a_lock_waiter(errors)  # on the tag
        services.task_complete(task=rent, user=owner)
    creator.join(timeout=30)
    assert errors == []
    assert assert_exact() == {owner.pk: 3}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("owned", [1, 0])
def test_two_creates_in_two_groups_cannot_both_take_the_last_free_place(make_user, settings, owned):
    """The second create waits for the first's commit, on the count row (owned 1), or on the
    owner's row when there is no count row yet (owned 0), then sees the count it left."""
    settings.MAX_TASKS_PER_USER = owned + 1
    owner = make_user()
    for i in range(owned):
        services.task_create(user=owner, data={"title": f"t{i}"})
    home = services.list_create(user=owner, name="Home", color=None, position=None)
    creator, errors = _create_in_a_thread(owner, {"title": "In Home", "list": home})
    with transaction.atomic():
        services.task_create(user=owner, data={"title": "In the Inbox"})
        creator.start()
        _wait_for_a_lock_waiter(errors)
    creator.join(timeout=30)
    assert [type(error) for error in errors] == [Conflict]
    assert assert_exact() == {owner.pk: owned + 1}


# --- The list's count -----------------------------------------------------------------------


def test_the_default_list_counts_from_the_count_row(user, make_task, api_client):
    for i in range(3):
        make_task(f"t{i}")
    with CaptureQueriesContext(connection) as captured:
        body = api_client.get("/api/v1/tasks/?limit=1&offset=1").json()
    assert body["count"] == Task.objects.filter(owner=user).count() == 3
    assert [task["title"] for task in body["results"]] == ["t1"]
    sql = " ".join(query["sql"] for query in captured.captured_queries)
    assert "tasks_ownertaskcount" in sql and "COUNT(" not in sql.upper()

    # Filters keep their COUNT(*) (for a full page): the count row counts all tasks.
    make_task("Not a match")
    with CaptureQueriesContext(connection) as captured:
        body = api_client.get("/api/v1/tasks/?search=t&limit=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2
    sql = " ".join(query["sql"] for query in captured.captured_queries)
    assert "COUNT(" in sql.upper()


def test_the_default_list_of_a_user_without_tasks_is_empty(api_client, other_user, make_task):
    make_task("Theirs", owner=other_user)
    body = api_client.get("/api/v1/tasks/").json()
    assert body == {"count": 0, "next": None, "previous": None, "results": []}


def test_the_default_list_reads_no_one_elses_count(make_user, make_task):
    owners = [make_user() for _ in range(2)]
    for i, owner in enumerate(owners):
        for n in range(i + 1):
            make_task(f"t{n}", owner=owner)
    assert [client_for(o).get("/api/v1/tasks/").json()["count"] for o in owners] == [1, 2]
