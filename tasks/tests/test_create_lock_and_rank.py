"""A create takes its group lock and the owner's task count in one statement, and its rank in
the INSERT (review 39b: one round trip less). The locks still go group, then count, and the
rank is read in a snapshot that comes after the group lock."""

import pytest
from django.db import connection, transaction

from tasks import services
from tasks.models import POSITION_GAP, Task
from todo_project.tests.helpers import (
    connection_of_its_own,
    start_in_thread,
    wait_for_lock_waiters,
)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("counted", [True, False])
def test_a_create_that_waited_for_the_group_takes_the_rank_after_the_holders(
    user, make_list, counted
):
    # The statement that takes the group lock has a snapshot older than the lock: a rank read
    # there would be the one before the holder's task (a unique violation, a 500).
    home = make_list("Home")
    if counted:
        services.task_create(user=user, data={"title": "Elsewhere"})  # a count row to lock
    with transaction.atomic():
        first = services.task_create(user=user, data={"title": "First", "list": home})
        second = start_in_thread(
            lambda: services.task_create(user=user, data={"title": "Second", "list": home})
        )
        assert wait_for_lock_waiters(connection, 1)
    second()
    ranks = dict(Task.objects.filter(list=home).values_list("title", "position"))
    assert ranks == {"First": first.position, "Second": first.position + POSITION_GAP}


@pytest.mark.django_db(transaction=True)
def test_a_create_holds_its_group_lock_while_it_waits_for_the_count(user):
    # The count row held by another writer (as a completion's copy holds it): the create waits
    # for it holding the group lock, taken first, as every writer takes them.
    services.task_create(user=user, data={"title": "First"})
    with connection_of_its_own(connection) as other, other.transaction():
        other.execute(
            "SELECT tasks FROM tasks_ownertaskcount WHERE owner_id = %s FOR NO KEY UPDATE",
            [user.pk],
        )
        waiting = start_in_thread(lambda: services.task_create(user=user, data={"title": "Second"}))
        assert wait_for_lock_waiters(connection, 1)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            assert cursor.fetchone()[0] == 1
    assert waiting().position == 2 * POSITION_GAP


@pytest.mark.django_db
def test_the_group_lock_is_taken_before_the_count_is_read():
    # An InitPlan as the scan's one-time filter: run once, before the count row is read and
    # locked, whether or not the owner has a count row.
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN " + services._LOCKED_GROUP_AND_COUNT,
            ["00000000-0000-0000-0000-000000000001", 1],
        )
        plan = "\n".join(row for (row,) in cursor.fetchall())
    assert "InitPlan" in plan and "pg_advisory_xact_lock" in plan, plan
    assert "One-Time Filter" in plan, plan
    assert plan.index("One-Time Filter") < plan.index("on tasks_ownertaskcount c"), plan


@pytest.mark.django_db
def test_the_group_lock_is_taken_for_an_owner_without_a_count_row(user):
    with transaction.atomic():
        services.task_create(user=user, data={"title": "First of all"})
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND pid = pg_backend_pid() AND granted"
            )
            assert cursor.fetchone()[0] == 1
