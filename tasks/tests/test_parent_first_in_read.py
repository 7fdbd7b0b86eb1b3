"""A completion's lock of an open subtask's parent (models._PARENT_FIRST) is taken by the
task's own locking read, as the one-time filter of its scan, not by a statement of its own
before it (review 40c: one round trip less for every completion, a top-level task's too). The
parent is still locked before the task, in ROW_LOCK_ORDER (test_delete_lock_order.py has the
race)."""

import itertools
import re

import pytest
from django.db import connection, transaction

from conftest import client_for
from tasks.models import _task_to_write_query


@pytest.mark.django_db
@pytest.mark.parametrize("parent", ["open", "any"])
@pytest.mark.parametrize("generic", [False, True])
def test_the_parent_is_locked_before_the_task_is_read(user, make_task, parent, generic):
    subtask = make_task("Subtask", parent=make_task("Parent"))
    with transaction.atomic(), connection.cursor() as cursor:
        _, sql, params = _task_to_write_query(parent).statement(owner=user.pk, pk=subtask.pk)
        if generic:  # the plan of a prepared statement run many times (psycopg prepares them)
            numbers = itertools.count(1)
            numbered = re.sub(r"%s", lambda _: f"${next(numbers)}", sql)
            cursor.execute("EXPLAIN (GENERIC_PLAN, COSTS OFF) " + numbered)
        else:
            cursor.execute("EXPLAIN (COSTS OFF) " + sql, params)
        plan = "\n".join(row for (row,) in cursor.fetchall())
    lines = plan.splitlines()
    # The InitPlan locks the parent (its own LockRows, FOR KEY SHARE) ...
    init = next(n for n, line in enumerate(lines) if "InitPlan" in line)
    assert any("LockRows" in line for line in lines[init : init + 4]), plan
    # ... and is the one-time filter of the node right above the task's scan: run before the
    # task is read, and so before the outer LockRows locks it.
    one_time = next(n for n, line in enumerate(lines) if "One-Time Filter" in line)
    scan = next(
        n
        for n, line in enumerate(lines)
        if re.search(r"Scan using \S+ on tasks_task$", line.rstrip())
    )
    assert init < one_time < scan, plan


@pytest.mark.django_db
def test_completing_a_top_level_task_reads_it_in_one_locking_statement(
    user, make_task, django_assert_num_queries
):
    # The user; savepoint, the task locked (the parent-first filter in it: none to lock), the
    # task saved, release (6 before review 40c: the parent's lock was a statement of its own).
    task = make_task("Plain")
    client = client_for(user)
    with django_assert_num_queries(5):
        response = client.patch(f"/api/v1/tasks/{task.pk}/", {"completed": True})
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.completed
