"""Review 39h. The cascade's UPDATE (a parent's completion completing its open subtasks)
found the rows it picked by joining them to the table: under the statistics of an emptied
table (the planner takes it for one row) that was a nested loop reading every open task and
running the locking read again for each, 60-310 ms for 20 subtasks among 30,000 tasks,
1.3-7.4 s for 500, past 30 s for 5,000; it now finds them off the parent_id index by the
parents' ids, among the picked ones (an array). Fails before (8955ada)."""

import pytest
from django.db import connection

from conftest import client_for
from tasks.models import Task
from todo_project.tests.helpers import statistics_of_an_emptied_table

# Open tasks of an owner (subtasks of `parent` when it is given), inserted row by row: a COPY
# of many_tasks builds the indexes again, which writes the table's row count into pg_class.
_INSERT = (
    "INSERT INTO tasks_task (id, owner_id, parent_id, title, description, completed, priority,"
    " position, version, created_at, updated_at) SELECT gen_random_uuid(), %s, %s, 't' || n, '',"
    " false, 0, n * 1024 + %s, 1, now(), now() FROM generate_series(1, %s) AS n"
)


@pytest.mark.django_db(transaction=True)
def test_a_parents_completion_finds_its_subtasks_by_their_parent_under_an_emptied_tables_statistics(
    user, make_task
):
    statistics_of_an_emptied_table(connection, _INSERT, [user.pk, None, 10**9, 3000], "tasks_task")
    parent = make_task("Parent")
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, [user.pk, parent.pk, 0, 50])
        cursor.execute(_INSERT, [user.pk, None, 10**6, 3000])
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'tasks_task'")
        assert cursor.fetchone()[0] == 0  # the planner takes it for one row
    cascades = []

    def record(run, sql, params, many, context):
        if sql.startswith("UPDATE tasks_task SET completed = true") and "FOR UPDATE" in sql:
            cascades.append((sql, params))
        return run(sql, params, many, context)

    with connection.execute_wrapper(record):
        response = client_for(user).patch(
            f"/api/v1/tasks/{parent.pk}/", {"completed": True}, format="json"
        )
    assert response.status_code == 200, response.json()
    assert Task.objects.filter(parent=parent, completed=False).count() == 0
    [(sql, params)] = cascades
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # main: Nested Loop, Join Filter (tasks_task.id = picked.id), every open task read off
    # task_list_completed, the locking read run again for each.
    assert "Join" not in plan and "Nested Loop" not in plan, plan
    # The UPDATE's own scan keyed by the parents' ids; the locking read by an index too (under
    # these statistics every index ties: the parent's or the owner's, which CI's run once took).
    assert "Seq Scan" not in plan and plan.count("Index Cond: (parent_id = ANY") >= 1, plan
