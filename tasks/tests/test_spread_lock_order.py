"""A write that has to open a used-up gap (a move's, a recurring completion's next occurrence)
moves the neighbours after the gap (tasks.services._spread_after) while it holds its task and
its sibling group's lock. A writer holding one of those neighbours and waiting for that group
(a bulk move or complete, a PATCH moving it to another list) or for the task (a bulk action
naming both) closed a cycle: PostgreSQL's deadlock check ended one of them after
deadlock_timeout (1 s), and the request was run again (review 37c). Each case holds the
spreading write right after its group lock, lets the other writer take the neighbour and queue,
then lets the spread go."""

import logging
import threading
import time
from datetime import date
from typing import Any

import pytest
from django.db import connection

from conftest import client_for
from tasks import services
from tasks.models import POSITION_GAP, Task
from tasks.tests.deadlocks import (
    held_after_first_group_lock,
    let_go_without_deadlock,
    ranked,
    retries_logged,
)
from todo_project.tests.helpers import (
    connection_of_its_own,
    start_in_thread,
    wait_for_lock_waiters,
)

RECURRING = {"due_date": date(2026, 12, 1), "recurrence": "FREQ=DAILY"}


def _crowded(
    user, make_task, spreader_data: dict, neighbour_data: dict, **where: Any
) -> tuple[Task, ...]:
    """(anchor, neighbour, spreader) in the Inbox: no room right after the anchor (ranks 1024,
    1025), the spreader further down (5000), the neighbour's id before the spreader's (a bulk
    action over both locks the neighbour first). A recurring spreader is its own anchor."""
    while True:
        neighbour = make_task("Neighbour", **neighbour_data, **where)
        spreader = make_task("Spreader", **spreader_data, **where)
        if neighbour.pk < spreader.pk:
            break
        Task.objects.filter(pk__in=[neighbour.pk, spreader.pk]).delete()
    anchor = spreader if spreader_data else make_task("Anchor", **where)
    for n, task in enumerate({anchor, neighbour, spreader}):  # out of the way first
        Task.objects.filter(pk=task.pk).update(position=-1000 - n)
    Task.objects.filter(pk=anchor.pk).update(position=1024)
    Task.objects.filter(pk=neighbour.pk).update(position=1025)
    if anchor != spreader:
        Task.objects.filter(pk=spreader.pk).update(position=5000)
    return anchor, neighbour, spreader


SPREADERS = {
    # the write, what makes it spread, the data its task is created with
    "move after the anchor": (
        lambda user, anchor, spreader: client_for(user).post(
            f"/api/v1/tasks/{spreader.pk}/move/", {"after": str(anchor.pk)}, format="json"
        ),
        {},
    ),
    "PATCH completing a recurring task": (
        lambda user, anchor, spreader: client_for(user).patch(
            f"/api/v1/tasks/{spreader.pk}/", {"completed": True}, format="json"
        ),
        RECURRING,
    ),
}
HOLDERS = {
    # the write holding the neighbour, then waiting; the data the neighbour is created with
    "bulk set_priority over both": (
        lambda user, neighbour, spreader, home: client_for(user).post(
            "/api/v1/tasks/bulk/",
            {
                "action": "set_priority",
                "priority": "high",
                "ids": [str(neighbour.pk), str(spreader.pk)],
            },
            format="json",
        ),
        {},
    ),
    "bulk move of the neighbour": (
        lambda user, neighbour, spreader, home: client_for(user).post(
            "/api/v1/tasks/bulk/",
            {"action": "move", "list": str(home.pk), "ids": [str(neighbour.pk)]},
            format="json",
        ),
        {},
    ),
    "bulk complete of a recurring neighbour": (
        lambda user, neighbour, spreader, home: client_for(user).post(
            "/api/v1/tasks/bulk/",
            {"action": "complete", "ids": [str(neighbour.pk)]},
            format="json",
        ),
        RECURRING,
    ),
    "PATCH moving the neighbour to a list": (
        lambda user, neighbour, spreader, home: client_for(user).patch(
            f"/api/v1/tasks/{neighbour.pk}/", {"list": str(home.pk)}, format="json"
        ),
        {},
    ),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("holder", list(HOLDERS))
@pytest.mark.parametrize("spreader_write", list(SPREADERS))
def test_a_spread_never_deadlocks_with_a_writer_holding_a_neighbour(
    user, make_task, make_list, monkeypatch, caplog, spreader_write, holder
):
    spread, spreader_data = SPREADERS[spreader_write]
    hold, neighbour_data = HOLDERS[holder]
    home = make_list("Home")
    anchor, neighbour, spreader = _crowded(user, make_task, spreader_data, neighbour_data)
    reached, go = held_after_first_group_lock(monkeypatch)
    spreading = start_in_thread(lambda: spread(user, anchor, spreader))
    assert reached.wait(10)  # the spreader holds its task and the Inbox's group
    holding = start_in_thread(lambda: hold(user, neighbour, spreader, home))
    # The holder has the neighbour, and waits; then the spread moves the neighbour up.
    spread_answer, hold_answer = let_go_without_deadlock(go, spreading, holding, caplog)
    assert (spread_answer.status_code, hold_answer.status_code) == (200, 200), (
        spread_answer.content,
        hold_answer.content,
    )
    ranks = dict(Task.objects.filter(list=None, parent=None).values_list("pk", "position"))
    if neighbour.pk in ranks and spreader.pk in ranks:  # both still in the Inbox
        assert ranks[anchor.pk] <= ranks[spreader.pk] < ranks[neighbour.pk] or (
            anchor == spreader and ranks[spreader.pk] < ranks[neighbour.pk]
        )


@pytest.mark.django_db(transaction=True)
def test_a_spread_in_a_list_never_deadlocks_with_the_lists_delete(
    user, make_task, make_list, monkeypatch, caplog
):
    """list_delete locks the list's tasks (the neighbour before the moved task, by id), then
    the Inbox's and the list's groups."""
    home = make_list("Home")
    anchor, _, spreader = _crowded(user, make_task, {}, {}, list=home)
    reached, go = held_after_first_group_lock(monkeypatch)
    spreading = start_in_thread(
        lambda: client_for(user).post(
            f"/api/v1/tasks/{spreader.pk}/move/", {"after": str(anchor.pk)}, format="json"
        )
    )
    assert reached.wait(10)
    deleting = start_in_thread(lambda: client_for(user).delete(f"/api/v1/lists/{home.pk}/"))
    moved, deleted = let_go_without_deadlock(go, spreading, deleting, caplog)
    assert moved.status_code in (200, 400), moved.content  # 400: the list went first
    assert deleted.status_code == 204, deleted.content
    titles = list(
        Task.objects.filter(list=None, parent=None)
        .order_by("position")
        .values_list("title", flat=True)
    )
    assert titles in (["Anchor", "Spreader", "Neighbour"], ["Anchor", "Neighbour", "Spreader"])


@pytest.mark.django_db(transaction=True)
def test_a_recurring_completions_spread_never_deadlocks_with_the_delete_of_a_neighbour(
    user, make_task, monkeypatch, caplog
):
    """The completion holds the owner's task count (its copy is a new task) before it spreads;
    the neighbour's DELETE holds the neighbour and waits for the count (its trigger)."""
    _, neighbour, spreader = _crowded(user, make_task, RECURRING, {})
    reached, go = held_after_first_group_lock(monkeypatch, "_successor_positions")
    completing = start_in_thread(
        lambda: client_for(user).patch(
            f"/api/v1/tasks/{spreader.pk}/", {"completed": True}, format="json"
        )
    )
    assert reached.wait(10)  # the task, the group and the count held
    deleting = start_in_thread(lambda: client_for(user).delete(f"/api/v1/tasks/{neighbour.pk}/"))
    completed, deleted = let_go_without_deadlock(go, completing, deleting, caplog)
    assert (completed.status_code, deleted.status_code) == (200, 204)


LIMIT = services.SPREAD_RUN_LIMIT


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("crowd", ["a run after the task", "the whole group"])
def test_a_spread_waits_for_a_neighbours_holder_outside_its_transaction(
    user, api_client, caplog, crowd
):
    """No cycle here: another transaction holds a neighbour for a while (a slow write). The
    completion gives way at once (55P03), waits for the holder holding nothing, and runs again
    once: a 200, not the 503 of three attempts that each met the held neighbour at once."""
    due = {"due_date": date(2026, 12, 1), "recurrence": "FREQ=DAILY"}
    if crowd == "a run after the task":
        ranks = {"t0": POSITION_GAP, "t1": POSITION_GAP + 1, "t2": 10 * POSITION_GAP}
    else:  # crowded both ways past SPREAD_RUN_LIMIT: the whole group is renumbered
        ranks = {f"t{rank}": rank for rank in range(-LIMIT - 1, LIMIT + 2)}
    Task.objects.bulk_create(
        Task(owner=user, title=title, position=rank, **(due if title == "t0" else {}))
        for title, rank in ranks.items()
    )
    task, neighbour = (Task.objects.get(title=title) for title in ("t0", "t1"))
    with connection_of_its_own(connection) as other:
        other.execute("BEGIN")
        other.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR UPDATE", [neighbour.pk])
        completing = start_in_thread(
            lambda: api_client.patch(
                f"/api/v1/tasks/{task.pk}/", {"completed": True}, format="json"
            )
        )
        assert wait_for_lock_waiters(connection, 1)  # gave way, and waits for the holder
        time.sleep(0.3)  # a slow holder: longer than the three attempts' 2-60 ms sleeps
        assert retries_logged(caplog) == [
            "write ended by a concurrent change (SQLSTATE 55P03), running it again"
        ]
        other.execute("COMMIT")
    answer = completing()
    assert answer.status_code == 200, answer.content
    assert len(retries_logged(caplog)) == 1
    titles = list(Task.objects.order_by("position").values_list("title", flat=True))
    assert titles[titles.index("t0") : titles.index("t0") + 3] == ["t0", "t0", "t1"]


@pytest.mark.django_db(transaction=True)
def test_a_move_whose_spread_moves_the_task_never_deadlocks_with_its_next_occurrences_writer(
    user, make_task, monkeypatch, caplog
):
    """Review 37c, finding 2. The spread moves the moved task itself (it is in the run after
    the anchor), so the move's own UPDATE of it is the second in the transaction: PostgreSQL
    then checks its foreign keys at the COMMIT whatever changed, and locked its next occurrence
    FOR KEY SHARE after the group lock. A completion of that next occurrence held it and waited
    for the group: a cycle. The move takes that lock before the group's now."""
    anchor, neighbour = make_task("Anchor"), make_task("Neighbour")
    moving = make_task("Moving", **RECURRING)
    response = client_for(user).patch(
        f"/api/v1/tasks/{moving.pk}/", {"completed": True}, format="json"
    )
    copy = Task.objects.get(pk=response.json()["next_occurrence"])
    ranks = {anchor: 1024, neighbour: 1025, moving: 1026, copy: 10000}
    ranked(ranks)
    reached, go = held_after_first_group_lock(monkeypatch)
    move = start_in_thread(
        lambda: client_for(user).post(
            f"/api/v1/tasks/{moving.pk}/move/", {"after": str(anchor.pk)}, format="json"
        )
    )
    assert reached.wait(10)
    completing = start_in_thread(
        lambda: client_for(user).patch(
            f"/api/v1/tasks/{copy.pk}/", {"completed": True}, format="json"
        )
    )
    # The completion waits: for the copy now; before, it held the copy and waited for the group.
    moved, completed = let_go_without_deadlock(go, move, completing, caplog)
    assert (moved.status_code, completed.status_code) == (200, 200)


@pytest.mark.django_db(transaction=True)
def test_a_move_never_deadlocks_with_the_delete_of_its_next_occurrence(
    user, make_task, monkeypatch, caplog
):
    """The move holds the completed recurring task (read under its lock), then asks its next
    occurrence FOR KEY SHARE (acbcd71). DELETE tasks/{occurrence}/ locks the occurrence and its
    previous one in ROW_LOCK_ORDER: with the occurrence's id first, it holds it and waits for the
    task. Measured: 1.01 s and a 40P01 run again (9 ms at acbcd71^, which took no such lock)."""
    anchor = make_task("Anchor")
    while True:  # an occurrence whose id sorts before its task's
        moving = make_task("Moving", **RECURRING)
        answer = client_for(user).patch(
            f"/api/v1/tasks/{moving.pk}/", {"completed": True}, format="json"
        )
        copy_id = answer.json()["next_occurrence"]
        if copy_id < str(moving.pk):
            break
    reached, go = threading.Event(), threading.Event()
    original = services._lock_next_occurrence_early

    def held(*args: Any) -> Any:
        reached.set()
        assert go.wait(20)
        return original(*args)

    monkeypatch.setattr(services, "_lock_next_occurrence_early", held)
    caplog.set_level(logging.INFO)
    move = start_in_thread(
        lambda: client_for(user).post(
            f"/api/v1/tasks/{moving.pk}/move/", {"after": str(anchor.pk)}, format="json"
        )
    )
    assert reached.wait(10)  # the move holds its task
    deleting = start_in_thread(lambda: client_for(user).delete(f"/api/v1/tasks/{copy_id}/"))
    # The delete holds the copy, and waits for the task.
    moved, deleted = let_go_without_deadlock(go, move, deleting, caplog)
    assert (moved.status_code, deleted.status_code) == (200, 204), (moved.content, deleted.content)
