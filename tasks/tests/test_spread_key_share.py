"""Review 40h. A spread's UPDATE of `position` is, for PostgreSQL's row locks, a key update:
task_position_unique_in_group is a unique index with no expression nor predicate, which
PostgreSQL counts as a key though it is deferrable, so the UPDATE takes the row FOR UPDATE and
waits for a FOR KEY SHARE holder. The run was locked FOR NO KEY UPDATE NOWAIT, which a FOR KEY
SHARE does not conflict with: the spread passed it, then waited in the UPDATE itself ("while
updating tuple"). A subtask's create holds its parent FOR KEY SHARE (_place_under_parent), then
waits for the owner's count (_lock_group_and_count); a recurring completion holding that count
whose spread moved the parent waited for the create: a deadlock, 1 s (review 40g, observation 1:
0-5 in an 8 s race over used-up gaps)."""

from datetime import date

import pytest
from django.db import connection

from conftest import client_for
from tasks.models import OwnerTaskCount, Task
from tasks.tests.deadlocks import completion_of, held_then_raced, ranked, retries_logged
from todo_project.tests.helpers import (
    connection_of_its_own,
    start_in_thread,
    wait_for_lock_waiters,
)

RECURRING = {"due_date": date(2026, 12, 1), "recurrence": "FREQ=DAILY"}
SPREAD_RUN_SQL = (
    "WITH run AS (SELECT id FROM tasks_task WHERE id = ANY(%s::uuid[]) FOR {mode} NOWAIT) "
    "UPDATE tasks_task SET position = position + 7 WHERE id IN (SELECT id FROM run)"
)


@pytest.mark.django_db(transaction=True)
def test_a_rank_update_waits_for_a_key_share_holder(user, make_task):
    """The premise: a FOR KEY SHARE holder blocks an UPDATE of the rank (a key update to
    PostgreSQL), though not a lock FOR NO KEY UPDATE; FOR UPDATE NOWAIT sees it."""
    task = make_task("T")
    with connection_of_its_own(connection) as holder, connection_of_its_own(connection) as writer:
        holder.autocommit = writer.autocommit = False
        holder.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR KEY SHARE", [task.pk])
        writer.execute("SET LOCAL lock_timeout = '200ms'")
        writer.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR NO KEY UPDATE NOWAIT", [task.pk])
        with pytest.raises(Exception, match="lock timeout"):
            writer.execute("UPDATE tasks_task SET position = position + 7 WHERE id = %s", [task.pk])
        writer.rollback()
        with pytest.raises(Exception, match="could not obtain lock"):
            writer.execute(SPREAD_RUN_SQL.format(mode="UPDATE"), [[task.pk]])
        writer.rollback()
        holder.rollback()


@pytest.mark.django_db(transaction=True)
def test_a_completions_spread_over_a_parent_gives_way_to_a_subtask_create(
    user, make_task, monkeypatch, caplog
):
    """Review 40h: R's completion holds its group and the owner's count (held there); a create
    of a subtask of P, the task right after R, locks P FOR KEY SHARE and waits for the count;
    R's copy finds the gap after R used up and its spread moves P up. It waited for the
    create's FOR KEY SHARE in its UPDATE: a deadlock, 1 s. Now its run is locked FOR UPDATE
    NOWAIT: it gives way (55P03), the create goes on, and the completion runs again."""
    r = make_task("R", **RECURRING)
    parent = make_task("P")
    ranked({r: 1024, parent: 1025})
    completed, created = held_then_raced(
        monkeypatch,
        caplog,
        lambda: completion_of(user, r.pk),
        lambda: client_for(user).post(
            "/api/v1/tasks/", {"title": "S", "parent": str(parent.pk)}, format="json"
        ),
    )
    assert (completed.status_code, created.status_code) == (200, 201), (
        completed.content,
        created.content,
    )
    assert "SQLSTATE 55P03" in " ".join(retries_logged(caplog))
    ranks = {
        str(pk): rank
        for pk, rank in Task.objects.filter(owner=user, parent=None).values_list("pk", "position")
    }
    copy = completed.json()["next_occurrence"]
    assert ranks[str(r.pk)] < ranks[copy] < ranks[str(parent.pk)]
    assert OwnerTaskCount.objects.get(owner=user).tasks == Task.objects.filter(owner=user).count()


@pytest.mark.django_db(transaction=True)
def test_a_spread_that_gave_way_to_a_key_share_holder_waits_for_it_once(user, make_task, caplog):
    """Review 40h: having given way to a FOR KEY SHARE holder of a task its run moves, a spread
    waits for it (FOR UPDATE, NeighboursHeld) before it runs again. A FOR SHARE wait, which
    that holder does not block, ran it again at once: it gave way GIVE_WAYS times in a row,
    then waited in its UPDATE, holding the group (the cycle above, with the count)."""
    r = make_task("R")
    parent = make_task("P")
    mover = make_task("M")
    ranked({r: 1024, parent: 1025, mover: 5000})
    with connection_of_its_own(connection) as holder:
        holder.autocommit = False
        holder.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR KEY SHARE", [parent.pk])
        moving = start_in_thread(
            lambda: client_for(user).post(
                f"/api/v1/tasks/{mover.pk}/move/", {"after": str(r.pk)}, format="json"
            )
        )
        assert wait_for_lock_waiters(connection, 1)
        holder.rollback()
    moved = moving()
    assert moved.status_code == 200, moved.content
    assert retries_logged(caplog) == [
        "write ended by a concurrent change (SQLSTATE 55P03), running it again"
    ]
    ranks = {str(pk): rank for pk, rank in Task.objects.values_list("pk", "position")}
    assert ranks[str(r.pk)] < ranks[str(mover.pk)] < ranks[str(parent.pk)]
