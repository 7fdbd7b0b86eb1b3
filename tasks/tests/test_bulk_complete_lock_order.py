"""Review 40a. A bulk complete locks the named tasks (with the parents of their open recurring
subtasks) in one statement, then its cascade locks the open subtasks of the named parents, in
(parent_id, id) order, after them: out of ROW_LOCK_ORDER when a named subtask sorts after one
of those, which is a named subtask of the same parent (review 39e's strict xfail, in
test_subtask_bump_lock_order.py) or of a parent sorting after a named one (here). A bulk action
over the two, holding the first, waited for the named one: a deadlock, 1 s. Locking the open
subtasks of the named tasks in every first statement (review 39h) cost the benchmark's bulk
complete 100 ~8 % of its req/s; the first statement's rows (as locked: a locked task's parent
cannot change) tell whether the cascade can lock out of order, and only then is it rolled back
and run again with the open subtasks locked first (_LOCKED_WITH_OPEN_SUBTASKS).

Findings (review-40a.md): test 1 is finding 2 and fails on main 9c3ee0d (a deadlock run
again, ~1 s); finding 1 is test_subtask_bump_lock_order.py's `complete` case, its xfail mark
removed. Tests 2-5 pin the fix (they need its names, so they fail on main too): only the
dangerous shapes take the wider statement (the common path's statements are main's), its bound
and plan, and the first attempt's locks let go before it (transaction or savepoint). Run:
copied into tasks/tests/,
`TODO_DATA_DIR=... .venv/bin/pytest -q -p no:cacheprovider tasks/tests/test_bulk_complete_lock_order.py`.
"""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import client_for
from tasks import services
from tasks.models import POSITION_GAP, Priority, Task
from tasks.tests.deadlocks import bulk, held_before, let_go_without_deadlock
from tasks.tests.many_tasks import load_subtasks, load_tasks
from todo_project.tests.helpers import (
    connection_of_its_own,
    start_in_thread,
)

_NARROW = "s.recurrence IS NOT NULL))"  # _LOCKED_FOR_COMPLETION's SQL ends so
_WIDE = "ORDER BY c.parent_id, c.id LIMIT"  # _LOCKED_WITH_OPEN_SUBTASKS's


def _first_locks(queries) -> list[str]:
    """Which of the two first statements of a bulk complete ran, in order."""
    return [
        "wide" if _WIDE in q["sql"] else "narrow"
        for q in queries.captured_queries
        if "FOR UPDATE" in q["sql"] and (_NARROW in q["sql"] or _WIDE in q["sql"])
    ]


def _two_parents(make_task) -> tuple[Task, Task]:
    first, second = sorted((make_task("P"), make_task("Q")), key=lambda t: t.pk)
    return first, second


@pytest.mark.django_db(transaction=True)
def test_a_bulk_complete_naming_a_parent_and_a_later_parents_subtask_locks_in_order(
    user, make_task, caplog, monkeypatch
):
    """[P, y], y a subtask of Q (not named), P's id before Q's: P and y were locked, then the
    cascade locked x, P's open subtask, which sorts before y. A bulk set_priority [x, y] held x
    and waited for y: a deadlock, 1 s."""
    parent, later = _two_parents(make_task)
    x = make_task("x", parent=parent)
    y = make_task("y", parent=later)
    reached, go = held_before(monkeypatch, "_cascade_completion")
    completing = start_in_thread(lambda: bulk(user, "complete", [parent.pk, y.pk]))
    assert reached.wait(10)  # holds P and y (main), or P, x and y
    setting = start_in_thread(lambda: bulk(user, "set_priority", [x.pk, y.pk], priority="high"))
    completed, set_ = let_go_without_deadlock(go, completing, setting, caplog)
    assert (completed.status_code, set_.status_code) == (200, 200)
    assert completed.json() == {"updated": 2}
    assert Task.objects.get(pk=x.pk).completed and Task.objects.get(pk=y.pk).completed
    assert not Task.objects.get(pk=later.pk).completed
    assert {Task.objects.get(pk=pk).priority for pk in (x.pk, y.pk)} == {Priority.HIGH}


@pytest.mark.django_db(transaction=True)
def test_only_a_bulk_complete_whose_cascade_could_lock_out_of_order_takes_the_wider_lock(
    user, make_task
):
    """The common shapes keep the one narrow statement (as many statements as before review
    40a); a named subtask whose parent is not before every named open parent costs one narrow
    statement more, rolled back, then the wide one."""
    parent, later = _two_parents(make_task)
    for owner in (parent, later):
        make_task("open", parent=owner)
    early_sub = make_task("early", parent=parent)
    late_sub = make_task("late", parent=later)
    plain = [make_task(f"T{n}") for n in range(3)]

    def run(ids) -> list[str]:
        Task.objects.filter(owner=user).update(completed=False, completed_at=None)
        with CaptureQueriesContext(connection) as queries:
            response = bulk(user, "complete", [t.pk for t in ids])
        assert response.status_code == 200, response.json()
        assert response.json() == {"updated": len(ids)}
        return _first_locks(queries)

    assert run(plain) == ["narrow"]  # the benchmark's shape
    assert run([*plain, parent, later]) == ["narrow"]  # parents, no subtask named
    assert run([early_sub, late_sub]) == ["narrow"]  # subtasks only: no cascade
    assert run([early_sub, later]) == ["narrow"]  # P's subtask sorts before Q's subtasks
    assert run([late_sub, parent]) == ["narrow", "wide"]  # Q's subtask after P's
    assert run([early_sub, parent]) == ["narrow", "wide"]  # the parent's own: 39e's case
    assert not Task.objects.filter(parent=parent, completed=False).exists()
    # Completed already, the parent has no cascade: no wider lock.
    Task.objects.filter(owner=user).update(completed=False, completed_at=None)
    Task.objects.filter(pk=parent.pk).update(completed=True, completed_at=timezone.now())
    with CaptureQueriesContext(connection) as queries:
        assert bulk(user, "complete", [early_sub.pk, parent.pk]).json() == {"updated": 1}
    assert _first_locks(queries) == ["narrow"]


@pytest.mark.django_db(transaction=True)
def test_the_wider_lock_takes_as_many_open_subtasks_as_the_cascade_can_pick(user, monkeypatch):
    """1,005 open subtasks, the parent named with the first of them: the wide statement locks
    the parent and the first MAX_COMPLETED_PER_REQUEST + 1 subtasks in ROW_LOCK_ORDER (the
    named one among them), no more; then the cascade passes the bound: a 409 changing
    nothing."""
    parent_id = load_subtasks(user.pk, 1005)
    first = Task.objects.filter(parent_id=parent_id).order_by("id").first()
    locked = []
    rows = services._LOCKED_WITH_OPEN_SUBTASKS.rows

    def recorded(**values):
        found = rows(**values)
        locked.append(found)
        return found

    monkeypatch.setattr(services._LOCKED_WITH_OPEN_SUBTASKS, "rows", recorded)
    response = bulk(user, "complete", [parent_id, first.pk])
    assert response.status_code == 409, response.json()
    [found] = locked
    expected = Task.objects.filter(parent_id=parent_id).order_by("id")
    expected = [
        parent_id,
        *expected[: services.MAX_COMPLETED_PER_REQUEST + 1].values_list("id", flat=True),
    ]
    assert [row[0] for row in found] == expected  # ROW_LOCK_ORDER: the parent, then by id
    assert Task.objects.filter(parent_id=parent_id, completed=True).count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_wider_lock_reads_by_the_ids_on_a_big_account(user):
    """Each index read by the ids it is given (the pkey, the parent_id index): none of the
    owner's 30,000 tasks read whole."""
    load_tasks((user.pk, f"t{i}", "", (i + 1) * POSITION_GAP) for i in range(30_000))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tasks_task")
    ids = list(Task.objects.filter(owner=user).values_list("id", flat=True)[:10])
    queryset = services._LOCKED_WITH_OPEN_SUBTASKS._build(owner=user.pk, ids=ids)
    with transaction.atomic(), connection.cursor() as cursor:
        sql, params = queryset.query.get_compiler(queryset.db).as_sql()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    index_scans = [line for line in plan.splitlines() if "Index Scan" in line]
    assert "Seq Scan" not in plan and len(index_scans) >= 2, plan
    assert all(
        "tasks_task_pkey" in line or "tasks_task_parent_id" in line for line in index_scans
    ), plan


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("key", [None, "k-40a"], ids=["its own transaction", "idempotent"])
def test_the_wider_lock_is_taken_holding_nothing(user, make_task, monkeypatch, key):
    """The first attempt's locks are let go before the wide statement: its transaction rolled
    back, or its savepoint when the request is idempotent (the key's record and the work share
    a transaction). Kept, the named subtask would be held while the wide statement waited for
    the subtask before it."""
    parent, later = _two_parents(make_task)
    x = make_task("x", parent=parent)
    y = make_task("y", parent=later)
    free = []
    rows = services._LOCKED_WITH_OPEN_SUBTASKS.rows

    def checked(**values):
        with connection_of_its_own(connection) as other, other.transaction():
            locked = other.execute(
                "SELECT id FROM tasks_task WHERE id = ANY(%s) FOR UPDATE SKIP LOCKED",
                [[parent.pk, y.pk]],
            )
            free.append({row[0] for row in locked.fetchall()})
        return rows(**values)

    monkeypatch.setattr(services._LOCKED_WITH_OPEN_SUBTASKS, "rows", checked)
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    response = client_for(user).post(
        "/api/v1/tasks/bulk/",
        {"action": "complete", "ids": [str(parent.pk), str(y.pk)]},
        format="json",
        **headers,
    )
    assert response.json() == {"updated": 2}
    assert free == [{parent.pk, y.pk}]
    assert Task.objects.get(pk=x.pk).completed
