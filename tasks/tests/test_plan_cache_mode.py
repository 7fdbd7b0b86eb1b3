"""The writes that force custom plans (tasks.services._CUSTOM_PLANS: deletes and tag writes,
whose arrays of ids a generic plan would not know the length of) put the usual mode back in
their last statement, before the COMMIT: the deferred foreign-key checks and the search
table's cascade run there, a query per deleted task and key, each planned again under the
forced mode (a list delete of 4,086 tasks with fresh statistics 405 -> 795 ms, its COMMIT
92 -> 404-418 ms; review 37e). And a bulk delete forces it before its first read, itself
planned for the array it gets (a generic plan from the 7th run on a connection: 13 -> 155-173
ms at 100,000 tasks under the statistics of an emptied table)."""

import pytest
from django.db import connection, transaction

from tasks import services
from tasks.models import POSITION_GAP, Tag, Task, TaskList
from tasks.tests.many_tasks import tagged_tasks_under_emptied_statistics
from todo_project.tests.helpers import statement_timeout

pytestmark = pytest.mark.django_db


def _plan_cache_mode() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('plan_cache_mode')")
        return cursor.fetchone()[0]


def _tasks(user, count: int, task_list=None) -> list[Task]:
    return Task.objects.bulk_create(
        Task(owner=user, title=f"t{n}", position=(n + 1) * POSITION_GAP, list=task_list)
        for n in range(count)
    )


def test_a_list_delete_puts_plan_cache_mode_back_before_the_commit(user):
    task_list = TaskList.objects.create(owner=user, name="L", position=POSITION_GAP)
    _tasks(user, 3, task_list)
    with transaction.atomic():
        services.list_delete(user=user, task_list=task_list, delete_tasks=True)
        # What the deferred foreign-key checks of the 3 deleted tasks are planned under.
        assert _plan_cache_mode() == "auto"
    assert not Task.objects.filter(owner=user).exists()


def test_a_bulk_delete_puts_plan_cache_mode_back_before_the_commit(user):
    ids = [task.pk for task in _tasks(user, 3)]
    with transaction.atomic():
        assert services.tasks_bulk_apply(user=user, action="delete", ids=ids) == 3
        assert _plan_cache_mode() == "auto"


def test_a_tag_merge_puts_plan_cache_mode_back_before_the_commit(user):
    source = Tag.objects.create(owner=user, name="a")
    Tag.objects.create(owner=user, name="b")
    for task in _tasks(user, 3):
        task.tags.add(source)
    with transaction.atomic():
        merged = services.tag_rename(user=user, tag=source, name="b")
        # The merge's new links are checked at the COMMIT, one query per link and key.
        assert _plan_cache_mode() == "auto"
    assert merged.tasks.count() == 3


@pytest.mark.django_db(transaction=True)
def test_repeated_bulk_deletes_read_their_ids_with_custom_plans(user, api_client):
    tag = Tag.objects.create(owner=user, name="t")
    tagged_tasks_under_emptied_statistics(user.pk, tag.pk, 2_000)
    ids = list(Task.objects.filter(owner=user).values_list("pk", flat=True))
    for n in range(10):  # one connection: the test's
        chunk = [str(pk) for pk in ids[n * 50 : (n + 1) * 50]]
        response = api_client.post(
            "/api/v1/tasks/bulk/", {"action": "delete", "ids": chunk}, format="json"
        )
        assert response.status_code == 200, response.content
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE %s AND generic_plans > 0",
            ["%ARRAY(SELECT id FROM tasks_task%"],
        )
        generic = cursor.fetchall()
    # 6a00cea..: the ids' read, prepared at its 2nd run, planned for any array from its 7th
    # (no length known, nothing hashed: each of the owner's tasks compared with each id).
    assert generic == []
    assert Task.objects.filter(owner=user).count() == 2_000 - 500


# services._LOCK_TAGGED and _BUMP_TAGGED as psycopg prepares them (LIKE: `_` is any character).
_LOCK_AND_BUMP = {
    "lock": "%FROM tasks_task WHERE owner_id = $1 AND id = ANY($2::uuid[])%FOR NO KEY UPDATE%",
    "bump": (
        "%UPDATE tasks_task SET version = version + 1, updated_at = $1"
        " WHERE owner_id = $2 AND id = ANY($3::uuid[])%"
    ),
}


def _prepared_plans(pattern: str) -> list[tuple[int, int]]:
    """(generic plans, custom plans) of each statement prepared on this connection like it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE regexp_replace(statement, '\\s+', ' ', 'g') LIKE %s",
            [pattern],
        )
        return cursor.fetchall()


@pytest.mark.django_db(transaction=True)
def test_a_tag_renamed_again_and_again_on_one_connection_locks_its_tasks_with_custom_plans(
    user, api_client
):
    # Prepared on the connection at its second run (DB_PREPARED_STATEMENTS), the lock and the
    # bump were planned once for any array after five runs (a generic plan: no length known,
    # no array hashed): with these statistics each of the owner's tasks was compared with each
    # id, 4-8 s a rename of a tag on 5,000 of 100,000 tasks from the seventh on (review 37a).
    tag = Tag.objects.create(owner=user, name="t0")
    # Under an emptied table's statistics the planner takes the table for one row whatever it
    # holds: 2,000 tasks get the generic plans (without _CUSTOM_PLANS) as 20,000 did, in 1.4 s
    # instead of 18.
    tagged_tasks_under_emptied_statistics(user.pk, tag.pk, 2_000)
    with statement_timeout(connection, "10s"):
        for n in range(1, 9):
            response = api_client.patch(f"/api/v1/tags/t{n - 1}/", {"name": f"t{n}"}, format="json")
            assert response.status_code == 200, (n, response.content)
    plans = {name: _prepared_plans(pattern) for name, pattern in _LOCK_AND_BUMP.items()}
    # One prepared statement each (the bump's parameters are numbered from the time: $2, $3),
    # none of their runs planned generically.
    assert [len(found) for found in plans.values()] == [1, 1], plans
    (lock,), (bump,) = plans.values()
    # Six runs each at least: the sixth is the first PostgreSQL may plan generically.
    assert min(sum(lock), sum(bump)) >= 6, plans
    assert (lock[0], bump[0]) == (0, 0), plans
    assert min(lock[1], bump[1]) >= 6, plans
    assert set(Task.objects.filter(owner=user).values_list("version", flat=True)) == {9}
