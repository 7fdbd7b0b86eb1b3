"""Completing tasks through the API: subtasks, and the next occurrence of recurring tasks."""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks import services
from tasks.models import Task
from tasks.serializers import CLEARED_DATE_REPEATS

pytestmark = pytest.mark.django_db


def test_completing_a_recurring_task_creates_the_next_occurrence(
    api_client, make_task, make_list, frozen_now
):
    frozen_now(datetime(2026, 11, 22, 12, 0, tzinfo=ZoneInfo("UTC")))
    home = make_list("Home")
    rent = make_task(
        "Pay rent",
        description="landlord",
        priority=3,
        list=home,
        tags=["money"],
        due_date=date(2026, 12, 1),
        due_time=time(9, 0),
        recurrence="FREQ=MONTHLY;BYMONTHDAY=1",
    )
    after = make_task("after", list=home)

    response = api_client.patch(f"/api/v1/tasks/{rent.pk}/", {"completed": True})

    body = response.json()
    copy = Task.objects.get(pk=body["next_occurrence"])
    assert body["completed"] is True and body["version"] == 2
    assert (copy.title, copy.description, copy.priority, copy.list_id) == (
        "Pay rent",
        "landlord",
        3,
        home.pk,
    )
    assert (copy.due_date, copy.due_time, copy.recurrence) == (
        date(2027, 1, 1),
        time(9, 0),
        "FREQ=MONTHLY;BYMONTHDAY=1",
    )
    assert [t.name for t in copy.tags.all()] == ["money"]
    assert not copy.completed and copy.version == 1 and copy.next_occurrence is None
    assert copy.recurrence_start == date(2026, 12, 1)
    # Right after the completed task, before the next one.
    assert rent.position < copy.position < after.position


def test_an_overdue_daily_task_is_next_due_tomorrow_in_the_users_time_zone(
    api_client, user, make_task, frozen_now
):
    user.timezone = "Europe/Berlin"
    user.save()
    # 23:30 UTC on 22 November is already the 23rd in Berlin.
    frozen_now(datetime(2026, 11, 22, 23, 30, tzinfo=ZoneInfo("UTC")))
    task = make_task("Water plants", due_date=date(2026, 11, 1), recurrence="FREQ=DAILY")
    body = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"completed": True}).json()
    assert Task.objects.get(pk=body["next_occurrence"]).due_date == date(2026, 11, 24)


def test_completing_reopening_and_completing_again_makes_one_copy(api_client, make_task):
    task = make_task("daily", due_date=date(2999, 1, 1), recurrence="FREQ=DAILY")
    first = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"completed": True}).json()
    api_client.patch(f"/api/v1/tasks/{task.pk}/", {"completed": False})
    again = api_client.put(
        f"/api/v1/tasks/{task.pk}/",
        {
            "title": "daily",
            "completed": True,
            "due_date": "2999-01-01",
            "recurrence": "FREQ=DAILY",
        },
    ).json()
    assert again["next_occurrence"] == first["next_occurrence"]
    assert Task.objects.count() == 2


def test_no_copy_once_count_is_spent(api_client, make_task):
    task = make_task("twice", due_date=date(2999, 1, 1), recurrence="FREQ=DAILY;COUNT=2")
    second_id = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"completed": True}).json()[
        "next_occurrence"
    ]
    last = api_client.patch(f"/api/v1/tasks/{second_id}/", {"completed": True}).json()
    assert last["next_occurrence"] is None
    assert Task.objects.count() == 2


def _complete_the_series(api_client, task_id) -> list[str]:
    """Completes each next occurrence until there is none; the due dates of the series."""
    dates = []
    while task_id is not None:
        body = api_client.patch(f"/api/v1/tasks/{task_id}/", {"completed": True}).json()
        dates.append(body["due_date"])
        task_id = body["next_occurrence"]
    return dates


@pytest.mark.parametrize(
    ("resent", "count"),
    [
        ("COUNT=3;FREQ=DAILY", 3),  # the same rule, its parts in another order
        ("FREQ=DAILY;INTERVAL=01;COUNT=3", 3),  # the default INTERVAL, spelled out
        ("FREQ=DAILY;COUNT=5", 5),  # only COUNT changed: the same series, now 5 long
    ],
)
def test_the_same_series_sent_again_keeps_its_start_and_count(api_client, make_task, resent, count):
    """COUNT counts from the series' first task: re-sending its rule in other words restarted
    the series at the copy (4 tasks for COUNT=3, 6 for COUNT=5)."""
    task = make_task("daily", due_date=date(2999, 1, 1), recurrence="FREQ=DAILY;COUNT=3")
    second = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"completed": True}).json()
    copy = second["next_occurrence"]
    assert api_client.patch(f"/api/v1/tasks/{copy}/", {"recurrence": resent}).status_code == 200
    dates = ["2999-01-01", *_complete_the_series(api_client, copy)]
    assert dates == [f"2999-01-0{day}" for day in range(1, count + 1)]


def test_another_rule_starts_a_new_series_at_the_task(api_client, make_task):
    task = make_task("daily", due_date=date(2999, 1, 1), recurrence="FREQ=DAILY;COUNT=3")
    copy = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"completed": True}).json()[
        "next_occurrence"
    ]
    api_client.patch(f"/api/v1/tasks/{copy}/", {"recurrence": "FREQ=DAILY;INTERVAL=2;COUNT=2"})
    assert _complete_the_series(api_client, copy) == ["2999-01-02", "2999-01-04"]


def test_an_unchanged_put_of_a_rule_stored_before_a_newer_check_is_taken(api_client, make_task):
    """BYMONTHDAY with WEEKLY is refused now (RFC 5545), but a task that has it keeps working:
    a client's PUT of what it read back is no 400."""
    task = make_task("legacy", due_date=date(2999, 1, 1), recurrence="FREQ=DAILY")
    Task.objects.filter(pk=task.pk).update(recurrence="FREQ=WEEKLY;BYMONTHDAY=15")
    body = api_client.get(f"/api/v1/tasks/{task.pk}/").json()
    kept = api_client.put(f"/api/v1/tasks/{task.pk}/", body, format="json")
    assert kept.status_code == 200
    changed = api_client.patch(
        f"/api/v1/tasks/{task.pk}/", {"recurrence": "FREQ=WEEKLY;BYMONTHDAY=16"}
    )
    assert changed.status_code == 400
    assert "BYMONTHDAY" in changed.json()["errors"]["recurrence"][0]


@pytest.mark.parametrize(
    ("tz_name", "due", "until"),
    [
        # 09:00 UTC on 11 December is an hour after UNTIL.
        ("UTC", date(2026, 12, 10), "20261211T080000Z"),
        # UNTIL is 19:00 on 11 December in Los Angeles: 20:00 that day is after it.
        ("America/Los_Angeles", date(2026, 12, 10), "20261212T030000Z"),
    ],
)
def test_no_copy_after_a_utc_until_at_the_tasks_local_time(
    api_client, user, make_task, frozen_now, tz_name, due, until
):
    user.timezone = tz_name
    user.save()
    frozen_now(datetime(2026, 12, 10, 7, 0, tzinfo=ZoneInfo("UTC")))
    due_time = time(9, 0) if tz_name == "UTC" else time(20, 0)
    rule = f"FREQ=DAILY;UNTIL={until}"
    task = make_task("daily", due_date=due, due_time=due_time, recurrence=rule)
    body = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"completed": True}).json()
    assert body["completed"] is True and body["next_occurrence"] is None
    # Bulk completion takes the same path.
    other = make_task("other", due_date=due, due_time=due_time, recurrence=rule)
    response = api_client.post(
        "/api/v1/tasks/bulk/", {"action": "complete", "ids": [str(other.pk)]}, format="json"
    )
    assert response.json() == {"updated": 1}
    assert Task.objects.get(pk=other.pk).next_occurrence_id is None
    assert Task.objects.count() == 2


def test_a_copy_exactly_at_a_utc_until_is_made_and_is_the_last(
    api_client, user, make_task, frozen_now
):
    user.timezone = "America/New_York"
    user.save()
    frozen_now(datetime(2026, 12, 10, 7, 0, tzinfo=ZoneInfo("UTC")))
    # 09:00 EST on 11 December is 14:00 UTC.
    task = make_task(
        "daily",
        due_date=date(2026, 12, 10),
        due_time=time(9, 0),
        recurrence="FREQ=DAILY;UNTIL=20261211T140000Z",
    )
    first = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"completed": True}).json()
    copy = Task.objects.get(pk=first["next_occurrence"])
    assert (copy.due_date, copy.due_time) == (date(2026, 12, 11), time(9, 0))
    last = api_client.patch(f"/api/v1/tasks/{copy.pk}/", {"completed": True}).json()
    assert last["next_occurrence"] is None


def test_an_all_day_task_ends_on_utc_untils_date_in_the_users_time_zone(
    api_client, user, make_task, frozen_now
):
    user.timezone = "Asia/Tokyo"
    user.save()
    frozen_now(datetime(2026, 12, 10, 1, 0, tzinfo=ZoneInfo("UTC")))
    # 22:00 UTC on 11 December is 12 December in Tokyo: the 11th and the 12th are in the series.
    task = make_task(
        "daily", due_date=date(2026, 12, 10), recurrence="FREQ=DAILY;UNTIL=20261211T220000Z"
    )
    first = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"completed": True}).json()
    second = Task.objects.get(pk=first["next_occurrence"])
    assert second.due_date == date(2026, 12, 11)
    body = api_client.patch(f"/api/v1/tasks/{second.pk}/", {"completed": True}).json()
    third = Task.objects.get(pk=body["next_occurrence"])
    assert third.due_date == date(2026, 12, 12)
    body = api_client.patch(f"/api/v1/tasks/{third.pk}/", {"completed": True}).json()
    assert body["next_occurrence"] is None


def test_a_recurring_task_needs_a_due_date_also_when_it_is_cleared(api_client, make_task):
    task = make_task("daily", due_date=date(2999, 1, 1), recurrence="FREQ=DAILY")
    response = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"due_date": None})
    assert response.json()["errors"] == {"due_date": [CLEARED_DATE_REPEATS]}  # the field sent


def test_services_complete_and_reopen_for_admin_actions(user, make_task):
    parent = make_task("parent", due_date=date(2999, 1, 1), recurrence="FREQ=WEEKLY")
    sub = make_task("sub", parent=parent)
    done = services.task_complete(task=parent, user=user)
    assert done.completed and done.next_occurrence is not None
    assert Task.objects.get(pk=sub.pk).completed
    assert services.task_complete(task=done, user=user).version == done.version  # no-op
    reopened = services.task_reopen(task=done, user=user)
    assert not reopened.completed and reopened.completed_at is None
    assert Task.objects.get(pk=sub.pk).completed  # subtasks stay as they are


@pytest.mark.parametrize("into", ["another list", "the inbox"])
def test_completing_while_moving_places_the_copy_after_the_task_where_it_lands(
    api_client, make_task, make_list, into
):
    home, work = make_list("Home"), make_list("Work")
    source, target = (home, work) if into == "another list" else (work, None)
    rent = make_task("Pay rent", list=source, due_date=date(2026, 12, 1), recurrence="FREQ=DAILY")
    behind_it = make_task("Behind it", list=source)
    there = [make_task(f"There {n}", list=target) for n in range(3)]

    response = api_client.patch(
        f"/api/v1/tasks/{rent.pk}/",
        {"completed": True, "list": None if target is None else str(target.pk)},
        format="json",
    )

    assert response.status_code == 200, response.json()
    rent.refresh_from_db()
    copy = Task.objects.get(pk=response.json()["next_occurrence"])
    assert rent.list_id == copy.list_id == (target.pk if target else None)
    in_target = Task.objects.filter(owner=rent.owner, list=target, parent=None)
    assert [task.title for task in in_target.order_by("position")] == [
        *(task.title for task in there),
        "Pay rent",
        "Pay rent",
    ]
    assert rent.position < copy.position
    behind_it.refresh_from_db()
    assert behind_it.list_id == source.pk


@pytest.mark.parametrize(
    ("rule", "never_from", "repeats_from"),
    [
        # Every 4 years on 29 February: only from a leap year.
        ("FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29", "2025-01-10", "2024-01-10"),
        ("FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29;COUNT=5", "2025-01-10", "2024-01-10"),
        # Every 12 months on the 30th: never from a February.
        ("FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=30", "2025-02-10", "2025-03-10"),
        # Every other month in February: only from an even month's distance.
        ("FREQ=MONTHLY;INTERVAL=2;BYMONTH=2", "2025-01-10", "2024-12-10"),
    ],
)
def test_a_rule_that_never_repeats_after_its_due_date_is_a_400(
    api_client, rule, never_from, repeats_from
):
    refused = api_client.post(
        "/api/v1/tasks/", {"title": "t", "due_date": never_from, "recurrence": rule}
    )
    assert refused.status_code == 400 and list(refused.json()["errors"]) == ["recurrence"]
    assert never_from in refused.json()["errors"]["recurrence"][0]
    assert not Task.objects.exists()
    created = api_client.post(
        "/api/v1/tasks/", {"title": "t", "due_date": repeats_from, "recurrence": rule}
    )
    assert created.status_code == 201
    url = f"/api/v1/tasks/{created.json()['id']}/"
    # Moving the first task of its series restarts the series there: checked again.
    # Named under `due_date`, the one field the request sent (a form of the date alone has no
    # control for the rule), as the admin's form names it and as a cleared date's error is.
    moved = api_client.patch(url, {"due_date": never_from})
    assert moved.status_code == 400 and list(moved.json()["errors"]) == ["due_date"]
    assert never_from in moved.json()["errors"]["due_date"][0]
    assert api_client.get(url).json()["due_date"] == repeats_from
    # Sent with a rule, the rule is named, as on a create.
    both = api_client.patch(url, {"due_date": never_from, "recurrence": rule})
    assert both.status_code == 400 and list(both.json()["errors"]) == ["recurrence"]


def test_a_later_task_of_a_series_keeps_its_phase_when_its_due_date_moves(
    api_client, make_task, frozen_now
):
    frozen_now(datetime(2024, 1, 5, 12, 0, tzinfo=ZoneInfo("UTC")))
    rule = "FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29"
    first = make_task("leap", due_date=date(2024, 2, 29), recurrence=rule)
    done = api_client.patch(f"/api/v1/tasks/{first.pk}/", {"completed": True}).json()
    url = f"/api/v1/tasks/{done['next_occurrence']}/"
    assert api_client.get(url).json()["due_date"] == "2028-02-29"
    # Due in 2029 now, it is still in the series of 2024: its next date is 2032-02-29.
    moved = api_client.patch(url, {"due_date": "2029-01-10"})
    assert moved.status_code == 200
    again = api_client.patch(url, {"completed": True}).json()
    assert api_client.get(f"/api/v1/tasks/{again['next_occurrence']}/").json()["due_date"] == (
        "2032-02-29"
    )


def _copy_changed(api_client, first, *changes: dict) -> str:
    """`first` completed, its copy PATCHed with each of `changes` in turn: the copy's URL."""
    done = api_client.patch(f"/api/v1/tasks/{first.pk}/", {"completed": True}).json()
    url = f"/api/v1/tasks/{done['next_occurrence']}/"
    for change in changes:
        assert api_client.patch(url, change).status_code == 200
    return url


def _next_occurrence_after_moves(api_client, freeze, first, dates: list[str], completed_on: date):
    """`first` completed, its copy moved to each of `dates` in turn, then completed too on
    `completed_on` (`freeze`: frozen_now): the copy's own next occurrence's due date, or None."""
    url = _copy_changed(api_client, first, *({"due_date": day} for day in dates))
    freeze(datetime.combine(completed_on, time(12), ZoneInfo("UTC")))
    following = api_client.patch(url, {"completed": True}).json()["next_occurrence"]
    return following and Task.objects.get(pk=following).due_date


@pytest.mark.parametrize("via_the_start", [False, True], ids=["moved", "moved-via-the-start"])
def test_a_copy_moved_onto_its_series_start_is_still_a_later_task(
    api_client, make_task, frozen_now, via_the_start
):
    """Its due date equal to the series' first one, a copy is still no first task: moving it
    on keeps the series' start, so COUNT is still counted from there, and the phase is the
    series' (review 29a)."""
    frozen_now(datetime(2026, 12, 1, 12, tzinfo=ZoneInfo("UTC")))
    start = ["2026-12-01"] if via_the_start else []
    first = make_task("A", due_date=date(2026, 12, 1), recurrence="FREQ=DAILY;COUNT=3")
    # 1, 2 and 3 December: the copy, done on the 3rd, was the last.
    assert (
        _next_occurrence_after_moves(
            api_client, frozen_now, first, [*start, "2026-12-03"], date(2026, 12, 3)
        )
        is None
    )
    every_other_day = make_task("B", due_date=date(2026, 12, 1), recurrence="FREQ=DAILY;INTERVAL=2")
    # 1, 3, 5 December: the copy moved to the 4th and done there is next due on the 5th.
    assert _next_occurrence_after_moves(
        api_client, frozen_now, every_other_day, [*start, "2026-12-04"], date(2026, 12, 4)
    ) == date(2026, 12, 5)


def test_a_copy_moved_onto_its_series_start_keeps_its_phase_for_the_never_repeats_check(
    api_client, make_task, frozen_now
):
    """Whether a rule repeats after a due date is the first task's check: a copy moved via the
    series' start is taken where one moved there straight is (it was a 400, the rule read
    from the copy's new date)."""
    frozen_now(datetime(2024, 12, 10, 12, tzinfo=ZoneInfo("UTC")))
    # Every other month from December, in February: 10 February each year.
    rule = "FREQ=MONTHLY;INTERVAL=2;BYMONTH=2"
    first = make_task("A", due_date=date(2024, 12, 10), recurrence=rule)
    assert _next_occurrence_after_moves(
        api_client, frozen_now, first, ["2024-12-10", "2025-01-10"], date(2025, 1, 10)
    ) == date(2025, 2, 10)


@pytest.mark.parametrize(
    "changes",
    [
        # Another series (not only COUNT or UNTIL changed): from the copy's date, 2 December.
        [{"recurrence": "FREQ=DAILY;INTERVAL=3;COUNT=2"}],
        # The same, on its maker's start date: the same start, yet another rule.
        [{"due_date": "2026-12-01"}, {"recurrence": "FREQ=DAILY;INTERVAL=3;COUNT=2"}],
    ],
    ids=["on-its-own-date", "on-its-makers-start"],
)
def test_a_copy_given_a_series_of_its_own_restarts_it_when_moved(
    api_client, make_task, frozen_now, changes
):
    """A copy given another rule is the first task of a new series, at its own due date: moved,
    it restarts that series at its new date, its maker (of the old series) notwithstanding
    (review 29g: the series stayed at the date it left, its next copy due on the 5th)."""
    frozen_now(datetime(2026, 12, 1, 12, tzinfo=ZoneInfo("UTC")))
    first = make_task("A", due_date=date(2026, 12, 1), recurrence="FREQ=DAILY")
    url = _copy_changed(api_client, first, *changes, {"due_date": "2026-12-04"})
    assert Task.objects.get(pk=url.split("/")[-2]).recurrence_start == date(2026, 12, 4)
    frozen_now(datetime(2026, 12, 4, 12, tzinfo=ZoneInfo("UTC")))
    following = api_client.patch(url, {"completed": True}).json()["next_occurrence"]
    assert Task.objects.get(pk=following).due_date == date(2026, 12, 7)  # 4 and 7 December


def test_the_first_task_of_a_series_moved_onto_nothing_else_restarts_it(
    api_client, make_task, frozen_now
):
    """The first task moved restarts its series at its new date (COUNT from there); a copy
    whose maker is deleted counts as first, as no task made it any more."""
    frozen_now(datetime(2026, 12, 1, 12, tzinfo=ZoneInfo("UTC")))
    first = make_task("A", due_date=date(2026, 12, 1), recurrence="FREQ=DAILY;COUNT=2")
    assert (
        api_client.patch(f"/api/v1/tasks/{first.pk}/", {"due_date": "2026-12-05"}).status_code
        == 200
    )
    first.refresh_from_db()
    assert first.recurrence_start == date(2026, 12, 5)
    copy = Task.objects.get(
        pk=api_client.patch(f"/api/v1/tasks/{first.pk}/", {"completed": True}).json()[
            "next_occurrence"
        ]
    )
    assert (copy.due_date, copy.recurrence_start) == (date(2026, 12, 6), date(2026, 12, 5))
    assert (
        api_client.patch(f"/api/v1/tasks/{copy.pk}/", {"due_date": "2026-12-05"}).status_code == 200
    )
    assert api_client.delete(f"/api/v1/tasks/{first.pk}/").status_code == 204
    assert (
        api_client.patch(f"/api/v1/tasks/{copy.pk}/", {"due_date": "2026-12-09"}).status_code == 200
    )
    copy.refresh_from_db()
    assert copy.recurrence_start == date(2026, 12, 9)


# --- How many tasks one request completes ------------------------------------------------------


@pytest.fixture
def most_completed(monkeypatch):
    """MAX_COMPLETED_PER_REQUEST lowered to `most` (1,000 tasks would make the tests slow)."""

    def lower(most: int) -> None:
        monkeypatch.setattr(services, "MAX_COMPLETED_PER_REQUEST", most)

    return lower


def _open_subtasks(make_task, parent, count: int, **fields) -> list[Task]:
    return [make_task(f"{parent.title} {n}", parent=parent, **fields) for n in range(count)]


def _states(tasks) -> list[tuple]:
    return list(
        Task.objects.filter(pk__in=[task.pk for task in tasks])
        .order_by("title")
        .values_list("title", "completed", "version")
    )


def test_a_parent_with_its_open_subtasks_up_to_the_bound_is_completed(
    api_client, make_task, most_completed
):
    most_completed(3)
    parent = make_task("Move house")
    subtasks = _open_subtasks(make_task, parent, 2)
    make_task("Done already", parent=parent, completed=True)  # not completed again: not counted

    response = api_client.patch(f"/api/v1/tasks/{parent.pk}/", {"completed": True})

    assert response.status_code == 200
    assert _states([parent, *subtasks]) == [
        ("Move house", True, 2),
        ("Move house 0", True, 2),
        ("Move house 1", True, 2),
    ]


def test_a_parent_with_more_open_subtasks_than_one_request_completes_is_a_409_changing_nothing(
    api_client, make_task, most_completed
):
    """Each completed subtask costs work (a recurring one its next occurrence): 40,000 recurring
    subtasks ran past the worker's timeout, a 500. Past the bound: a 409, and nothing done."""
    most_completed(3)
    parent = make_task("Move house")
    subtasks = _open_subtasks(make_task, parent, 3, due_date="2026-12-01", recurrence="FREQ=DAILY")
    before = _states([parent, *subtasks])

    with CaptureQueriesContext(connection) as queries:
        response = api_client.patch(
            f"/api/v1/tasks/{parent.pk}/", {"completed": True, "title": "Moved house"}
        )

    assert response.status_code == 409
    # The cascade's UPDATE stopped one past the bound (the parent and 2 subtasks), so a parent
    # with any number of subtasks costs that much before the 409.
    [cascade] = [q["sql"] for q in queries.captured_queries if "AND NOT completed" in q["sql"]]
    assert cascade.startswith("UPDATE") and "LIMIT 3 FOR UPDATE)" in cascade
    assert response["Content-Type"] == "application/problem+json"
    assert "one request completes at most 3" in response.json()["detail"]
    assert _states([parent, *subtasks]) == before  # the title too: all or nothing
    assert Task.objects.count() == 4  # no next occurrence made


@pytest.mark.parametrize(("most", "status"), [(4, 200), (3, 409)])
def test_a_bulk_complete_counts_the_tasks_and_their_open_subtasks(
    api_client, make_task, most_completed, most, status
):
    most_completed(most)
    parents = [make_task("Kitchen"), make_task("Garden")]
    subtasks = [_open_subtasks(make_task, parent, 1)[0] for parent in parents]
    before = _states([*parents, *subtasks])

    response = api_client.post(
        "/api/v1/tasks/bulk/",
        {"action": "complete", "ids": [str(parent.pk) for parent in parents]},
        format="json",
    )

    assert response.status_code == status
    if status == 200:
        assert response.json()["updated"] == 2
        assert all(completed for _, completed, _ in _states([*parents, *subtasks]))
    else:
        assert "one request completes at most 3" in response.json()["detail"]
        assert _states([*parents, *subtasks]) == before
