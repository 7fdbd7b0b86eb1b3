"""A big account's filtered list whose filter leaves few of its tasks reads them alone, under
custom and generic plans alike; and answers as before, to the byte.

The list's page was one statement planned from estimates. A generic plan (a worker's connection
settles on one after five runs) knows neither the owner nor the values: for `due_before` far
in the past or `due_after` far in the future it walked the owner's index of the page's order
and filtered out every task (the bench's heavy user, 20 matches of 100,000 tasks: 35-45 ms a
page against ~0.1). Custom plans walked too when the owner's share of a value is not the
table's, which is all their estimate knows: 20 completed, 20 `high` or 20 overdue tasks of
100,000 (32-45 ms), and an empty page (`priority=high&overdue=true`, none) walked them all.
The page now counts the owner's tasks that pass one of its filters up to
fast_read.FEW_MATCHES + 1, the next filter's when too many do, and runs the first one's page
within the bound or the walk (NarrowedRows, fast_read.narrowings_of; review 42d), for owners of
fast_read.NARROWED_FROM tasks or more. Tables vacuumed and analyzed
(transaction=True) for the plan tests."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext

from conftest import client_for
from tasks import fast_read
from tasks.fast_read import (
    MATCHING_TASKS,
    CompiledRows,
    NarrowedRows,
    Requester,
    listed_tasks,
)
from tasks.filters import TaskFilter, filter_criteria
from tasks.models import POSITION_GAP, Task
from tasks.tests.many_tasks import load_tasks
from tasks.tests.test_owner_share_plans import PLAN_CACHE_MODES, _plan, page_statement
from tasks.tests.test_poll_plans import (  # noqa: F401 - the fixture
    bounds_running_every_branch,
    tied_tasks,
)

ORDERINGS = ["position", "created_at", "-created_at", "priority", "title", "-updated_at"]
# Each of the big account's selective filters: its query and its matches (the fixture's).
SELECTIVE = {
    "due_before": ({"due_before": "2001-06-01"}, 20),
    "due_after": ({"due_after": "2098-01-01"}, 20),
    "completed": ({"completed": "true"}, 20),
    "priority": ({"priority": "high"}, 20),
    # Several: `IN (...)` on the index's second column read every entry of the owner's
    # (Rows Removed by Filter 19,980, twice: 5-7 ms; review 42e).
    "priorities": ({"priority": "high,medium"}, 20),
    "priorities apart": ({"priority": "high,low"}, 20),
    "overdue": ({"overdue": "true"}, 20),
    "none": ({"priority": "high", "overdue": "true"}, 0),
    # A filter most tasks pass before the selective one in narrowings_of's order: the
    # first's count passes FEW_MATCHES and the next one narrows (walked before: 19,980 read).
    "open and high": ({"completed": "false", "priority": "high"}, 20),
    "open and due": ({"completed": "false", "has_due": "true"}, 40),
    "none and due": ({"priority": "none", "has_due": "true"}, 40),
    "polled and high": ({"updated_since": "2000-01-01T00:00:00Z", "priority": "high"}, 20),
    # The other way round: the selective filter's count suffices, the next is never run.
    "completed, then none": ({"completed": "true", "priority": "none"}, 20),
}
# The cases whose first narrowing counts past the bound (FEW_MATCHES + 1 index entries).
BROAD_FIRST = {"open and high", "open and due", "none and due", "polled and high"}


@pytest.fixture
def big_account_with_rare_values(user, make_user):
    """The user's 20,000 open tasks (created a second apart) of priority none without a due
    date but for 20 due 2001-01-01, 20 due 2099-01-01, 20 completed and 20 `high`; 200 other
    accounts' 100 tasks each, 30 % completed, priorities evenly spread, 60 % due within months
    of today (the bench's shape). Vacuumed and analyzed."""
    load_tasks((user.pk, f"task {n}", "", (n + 1) * POSITION_GAP) for n in range(20_000))
    others = [make_user() for _ in range(200)]
    load_tasks(
        (other.pk, f"busy {n}", "", (n + 1) * POSITION_GAP) for other in others for n in range(100)
    )
    n = f"(position / {POSITION_GAP} - 1)"
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tasks_task SET completed = r < 0.3, completed_at = CASE WHEN r < 0.3"
            " THEN now() END, priority = (r * 1000)::int %% 4, due_date = CASE WHEN r < 0.6 THEN"
            " current_date + ((r * 100000)::int %% 180 - 60) END"
            " FROM (SELECT id AS rid, random() AS r FROM tasks_task) r"
            " WHERE id = rid AND owner_id <> %s",
            [user.pk],
        )
        cursor.execute(
            f"UPDATE tasks_task SET created_at = now() - interval '40 days' + {n} * interval '1 s',"
            f" updated_at = now() - interval '30 days' + {n} * interval '1 s' WHERE owner_id = %s",
            [user.pk],
        )
        for condition, change in [
            ("= 3", "due_date = '2001-01-01'"),
            ("= 5", "due_date = '2099-01-01'"),
            ("= 9", "completed = true, completed_at = now()"),
            ("= 11", "priority = 3"),
        ]:
            cursor.execute(
                f"UPDATE tasks_task SET {change} WHERE owner_id = %s AND {n} %% 1000 {condition}",
                [user.pk],
            )
        cursor.execute("VACUUM ANALYZE tasks_task")


def few_matches_read_alone(
    api_client, query: dict, matches: int, plan_cache_mode: str, broad_first: bool
) -> None:
    """The page of `query` reads no task of the owner's but the 20 or 40 that pass one of its
    filters (all its matches, or none of them)."""
    (sql, params), answer = page_statement(api_client, query)
    text = _plan(sql, params, plan_cache_mode)

    removed = sum(int(n) for n in re.findall(r"Rows Removed by Filter: (\d+)", text))
    assert removed <= 20, text
    read = re.compile(r"on tasks_task(?: \w+)?  ?\(actual rows=(\d+)")
    scans = [(line, int(read.search(line)[1])) for line in text.splitlines() if read.search(line)]
    rows = [n for line, n in scans if "Index Only Scan" not in line]
    assert rows and max(rows) <= max(matches, 20), text
    # The counts: the selective filter's, and before it the one that passes the bound if any.
    counted = sum(n for line, n in scans if "Index Only Scan" in line)
    assert counted <= fast_read.FEW_MATCHES * broad_first + max(matches, 20) + 1, text
    assert answer["count"] == matches and len(answer["results"]) == matches


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("big_account_with_rare_values")
def test_a_big_accounts_few_matches_are_read_alone_in_any_order(api_client, subtests, settings):
    settings.RATE_LIMIT_USER = "1000/m"  # a request a case
    # Before: Rows Removed by Filter 19,980-20,000 off task_owner_position, task_owner_created,
    # ... under the generic plan for every filter, under the custom one for completed,
    # priority and overdue (the table's share of completed, `high` and past due dates).
    for name, (query, matches) in SELECTIVE.items():
        for ordering in ORDERINGS:
            for plan_cache_mode in PLAN_CACHE_MODES:
                with subtests.test(filter=name, ordering=ordering, plan_cache_mode=plan_cache_mode):
                    few_matches_read_alone(
                        api_client,
                        {**query, "ordering": ordering},
                        matches,
                        plan_cache_mode,
                        broad_first=name in BROAD_FIRST,
                    )


# Broad filters of the big account whose page a prepared statement's generic plan read whole:
# it takes the owner for one of average size and sorts all the matches (6-19 ms against
# 0.25-0.5 ms planned with the values, at 20,000 tasks; five times that at 100,000).
BROAD = [
    {"completed": "false", "ordering": "due_date"},
    {"updated_since": "2000-01-01T00:00:00Z", "priority": "none", "ordering": "title"},
    {"updated_since": "2000-01-01T00:00:00Z", "priority": "none", "ordering": "-created_at"},
]


def prepared_pages() -> list[tuple[str, int, int]]:
    """The task list's page statements prepared on this connection: (SQL, generic plans,
    custom plans)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE %s",
            ['%FROM (SELECT%"tasks_task"%'],
        )
        return cursor.fetchall()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("big_account_with_rare_values")
def test_a_big_accounts_filtered_pages_are_planned_with_their_values(
    api_client, make_user, settings
):
    settings.RATE_LIMIT_USER = "1000/m"
    for query in BROAD:
        for _ in range(8):  # prepared at the 2nd run, planned generically from the 7th
            assert api_client.get("/api/v1/tasks/", query).status_code == 200
    assert prepared_pages() == []
    # A normal account's same pages are prepared, as every other statement (and the pattern
    # finds them).
    small = make_user()
    Task.objects.create(owner=small, title="small", position=POSITION_GAP)
    for query in BROAD:
        for _ in range(3):
            assert client_for(small).get("/api/v1/tasks/", query).status_code == 200
    assert len(prepared_pages()) == len(BROAD)


def criteria_of(user, query: dict) -> dict:
    params = QueryDict(mutable=True)
    params.update(query)
    form = TaskFilter(params, Task.objects.none(), request=Requester(user))
    assert form.is_valid(), form.errors
    return filter_criteria(form.form.cleaned_data, user)


NARROWED_QUERIES = [
    {"due_before": "{d2}"},
    {"due_after": "{d4}"},
    {"due_after": "{d1}", "due_before": "{d3}", "tag": "work"},
    {"completed": "true"},
    {"completed": "false", "priority": "high,low"},
    {"priority": "high"},
    {"priority": "none,low", "has_due": "true"},
    {"overdue": "true"},
    {"has_due": "true"},
    {"has_due": "false", "tag": "work"},
    {"completed": "false", "priority": "high", "has_due": "true"},
    {"due_before": "{d5}", "overdue": "false", "priority": "none,low", "has_due": "true"},
]


@pytest.mark.django_db
def test_a_narrowed_lists_pages_are_the_walks_whichever_branch_runs(
    user,
    tied_tasks,  # noqa: F811 - the fixture
    monkeypatch,
    subtests,
):
    # Old (CompiledRows, today's statement) against new (NarrowedRows) with the bound below, at
    # and above the number of matches, and at each narrowing's count: each branch (each
    # narrowing's page, the walk) answers every page of every ordering alike.
    dates = {f"d{n}": (tied_tasks + timedelta(days=n)).date().isoformat() for n in range(6)}
    for template in NARROWED_QUERIES:
        query = {name: value.format(**dates) for name, value in template.items()}
        for ordering in [*ORDERINGS, "due_date", "-due_date", "-priority,title", "-title"]:
            criteria = criteria_of(user, {**query, "ordering": ordering})
            narrowings = fast_read.narrowings_of("default", criteria)
            if not narrowings:
                continue  # the page's order leads with the filter's column: the walk reads it
            old = CompiledRows(MATCHING_TASKS, count=lambda: 0, owner=user.pk, **criteria)
            new = NarrowedRows(
                MATCHING_TASKS, lambda: 0, narrowings=narrowings, owner=user.pk, **criteria
            )
            matching = len(old[0:100])
            with subtests.test(query=query, ordering=ordering):
                for bound in bounds_running_every_branch(user.pk, criteria, matching):
                    monkeypatch.setattr(fast_read, "FEW_MATCHES", bound)
                    for start, stop in [(0, 50), (0, 7), (5, 12), (max(matching - 1, 0), 99)]:
                        assert new[start:stop] == old[start:stop], (bound, start)


@pytest.mark.django_db
def test_only_a_big_account_or_a_poll_is_narrowed(user, monkeypatch):
    monkeypatch.setattr(fast_read, "NARROWED_FROM", 10)
    for params, tasks, narrowed in [
        ("completed=true", 10, True),
        ("completed=true", 9, False),
        ("due_before=2001-01-01&ordering=title", 10, True),
        ("due_before=2001-01-01&ordering=-due_date", 10, False),
        ("priority=high&ordering=-priority", 10, False),
        ("priority=high,low&ordering=-priority", 10, True),  # IN (...) is no ordered index read
        ("list=inbox", 10, False),
        ("updated_since=2026-01-01T00:00:00Z", 0, True),
    ]:
        listed = listed_tasks(QueryDict(params), Requester(user), lambda tasks=tasks: tasks)
        assert isinstance(listed, NarrowedRows) is narrowed, params


@pytest.mark.django_db
def test_whether_the_account_is_big_costs_the_fast_read_no_statement(user):
    # The fast read has the owner's task count from its token statement; the viewset's path
    # (an If-None-Match, `?format=`) reads the kept count once more for a filtered list (review
    # 42d; for any filter since a big account's page is planned with its values), and no more
    # for a page in some order, unfiltered.
    client = client_for(user)
    for path, headers, statements in [
        ("/api/v1/tasks/?completed=true", {}, 2),
        ("/api/v1/tasks/?completed=true", {"HTTP_IF_NONE_MATCH": '"x"'}, 3),
        ("/api/v1/tasks/?list=inbox", {"HTTP_IF_NONE_MATCH": '"x"'}, 3),
        ("/api/v1/tasks/?ordering=title", {"HTTP_IF_NONE_MATCH": '"x"'}, 2),
    ]:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path, **headers)
        assert response.status_code == 200
        assert len(captured) == statements, (path, headers, [q["sql"] for q in captured])
