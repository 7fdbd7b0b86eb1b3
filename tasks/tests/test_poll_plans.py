"""A poll of the task list (`updated_since`) in an order other than `updated_at`'s reads the
owner's changes alone when they are few, under custom and generic plans alike; and answers as
before, to the byte.

The list's page was one statement planned from estimates: a generic plan (a worker's connection
uses one after five runs) walked the owner's index of the page's order and filtered every task
changed before (the bench's heavy user, 29 changes of 100,000 tasks: 33-50 ms a page), and the
custom plan did too for an owner of most of the table (2.8-6.1 ms for 30 changes). The page now
counts the changes up to fast_read.FEW_MATCHES + 1 and runs one of two branches (NarrowedRows;
review 42b). Tables vacuumed and analyzed (transaction=True) for the plan tests."""

import functools
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.http import QueryDict
from django.utils import timezone

from tasks import fast_read
from tasks.fast_read import MATCHING_TASKS, CompiledRows, NarrowedRows, Requester, listed_tasks
from tasks.filters import TaskFilter, filter_criteria
from tasks.models import POSITION_GAP, Priority, Tag, Task
from tasks.tests.many_tasks import few_changes_among_others, load_tasks
from tasks.tests.test_owner_share_plans import (  # noqa: F401 - the fixture
    PLAN_CACHE_MODES,
    _plan,
    each_plan,
    most_of_the_table_quiet,
    page_statement,
)

POLL_ORDERINGS = ["position", "created_at", "-due_date", "priority", "title", "-title"]


def bounds_running_every_branch(owner, criteria: dict, matching: int) -> list[int]:
    """Values of FEW_MATCHES that between them run each of a narrowed page's branches that some
    value runs (the first narrowing whose count is within the bound, else the walk), and the
    bound below, at and above the page's `matching` tasks."""
    counts = []
    with connection.cursor() as cursor:
        for where, _, values in fast_read.narrowings_of(connection.alias, criteria):
            cursor.execute(
                f"SELECT count(*) FROM tasks_task WHERE owner_id = %s AND {where}", [owner, *values]
            )
            counts.append(cursor.fetchone()[0])
    bounds = {0, 1_000, matching - 1, matching, matching + 1, *counts, *[n - 1 for n in counts]}
    bounds = sorted(bound for bound in bounds if bound >= 0)

    def branch(bound: int) -> int:  # the narrowing's index, or len(counts) for the walk
        return next((n for n, count in enumerate(counts) if count <= bound), len(counts))

    runnable = {n for n, count in enumerate(counts) if all(count < c for c in counts[:n])}
    if not counts or min(counts) > 0:
        runnable.add(len(counts))
    assert {branch(bound) for bound in bounds} == runnable, (counts, bounds)
    return bounds


def few_changes_read_alone(user, api_client, ordering: str, plan_cache_mode: str, changes: int):
    """The poll of the last day's `changes` reads no row but them, under that plan."""
    since = timezone.now() - timedelta(days=1)
    (sql, params), answer = page_statement(
        api_client, {"updated_since": since.isoformat(), "ordering": ordering}
    )
    text = _plan(sql, params, plan_cache_mode)

    removed = sum(int(n) for n in re.findall(r"Rows Removed by Filter: (\d+)", text))
    assert removed == 0, text
    scanned = re.findall(r"on tasks_task(?: \w+)?  ?\(actual rows=(\d+)", text)
    # The count reads the changes, and the page reads them again: no other row.
    assert scanned and max(map(int, scanned)) <= changes, text
    assert answer["count"] == changes and len(answer["results"]) == changes


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("most_of_the_table_quiet")
def test_a_poll_of_few_changes_reads_them_alone_in_any_order(user, api_client, subtests):
    # The owner has 30,000 of the table's 50,000 tasks, 30 changed in the last day; 40 other
    # accounts changed all their 20,000 that day. Before: `Index Scan using task_owner_position`
    # (and the other orderings' indexes) or a Seq Scan, Rows Removed by Filter 29,970-49,970,
    # 2.8-6.1 ms; after: ~0.1 ms, no row read but the owner's 30 changes.
    for plan in each_plan(POLL_ORDERINGS):
        with subtests.test(**plan):
            few_changes_read_alone(user, api_client, **plan, changes=30)


@pytest.fixture
def one_big_account_among_many(user, make_user):
    """The user's 20,000 tasks, 20 of them changed in the last day, the others 30 days ago;
    200 other accounts' 100 tasks each, changed over the last year: the bench's shape, small."""
    few_changes_among_others(user, [make_user() for _ in range(200)], 20_000, 100, "365 days")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("one_big_account_among_many")
def test_a_poll_of_a_big_accounts_few_changes_reads_them_alone(user, api_client, subtests):
    # Before, the generic plan walked the owner's index of the page's order: Rows Removed by
    # Filter 19,980 (the bench's heavy user, 100,000 tasks: 33-50 ms a page for 29 changes).
    for plan in each_plan(["position", "created_at", "title"]):
        with subtests.test(**plan):
            few_changes_read_alone(user, api_client, **plan, changes=20)


@pytest.fixture
def tied_tasks(user, other_user):
    """60 tasks of the user in groups of equal created_at, updated_at, priority, title and due
    date (ties the id breaks), 20 with a tag, 20 completed; 10 of another user."""
    tag = Tag.objects.create(owner=user, name="work")
    base = timezone.now().replace(microsecond=0) - timedelta(days=10)
    tasks = []
    for n in range(60):
        tasks.append(
            Task(
                owner=user,
                title=["Alpha", "alpha", "Émile", "beta", "Zeta"][n % 5],
                priority=[Priority.NONE, Priority.HIGH, Priority.LOW][n % 3],
                position=(n + 1) * POSITION_GAP,
                due_date=None if n % 4 == 0 else (base + timedelta(days=n % 6)).date(),
                completed=n % 3 == 0,
                completed_at=base if n % 3 == 0 else None,
            )
        )
    for n in range(10):
        tasks.append(Task(owner=other_user, title="other", position=(n + 1) * POSITION_GAP))
    Task.objects.bulk_create(tasks)
    for n, task in enumerate(tasks[:60]):
        Task.objects.filter(pk=task.pk).update(
            created_at=base + timedelta(hours=n % 7), updated_at=base + timedelta(days=n % 8)
        )
        if n % 3 == 1:
            task.tags.add(tag)
    Task.objects.filter(owner=other_user).update(updated_at=base + timedelta(days=9))
    return base


@pytest.mark.django_db
@pytest.mark.parametrize("days", [0, 3, 6, 7, 8])
@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"completed": "false"},
        {"priority": "high,low"},
        {"tag": "work"},
        {"has_due": "true", "completed": "true"},
    ],
)
def test_a_polls_pages_are_the_walks_whichever_branch_runs(
    user, tied_tasks, monkeypatch, days, filters
):
    # Old (CompiledRows, today's statement) against new (NarrowedRows) with the bound below, at
    # and above the number of changes, and at each narrowing's count: each branch (each
    # narrowing's page, the walk) answers every page of every ordering alike.
    since = tied_tasks + timedelta(days=days)
    matching = Task.objects.filter(owner=user, updated_at__gte=since).count()
    for ordering in [*POLL_ORDERINGS, "due_date", "-created_at", "-priority,title", "-position"]:
        params = QueryDict(mutable=True)
        params.update({"updated_since": since.isoformat(), "ordering": ordering, **filters})
        form = TaskFilter(params, Task.objects.none(), request=Requester(user))
        assert form.is_valid(), form.errors
        criteria = filter_criteria(form.form.cleaned_data, user)
        old = CompiledRows(MATCHING_TASKS, count=lambda: 0, owner=user.pk, **criteria)
        narrowings = fast_read.narrowings_of("default", criteria)
        new = NarrowedRows(
            MATCHING_TASKS, lambda: 0, narrowings=narrowings, owner=user.pk, **criteria
        )
        assert isinstance(listed_tasks(params, Requester(user), lambda: 60), NarrowedRows)
        for bound in bounds_running_every_branch(user.pk, criteria, matching):
            monkeypatch.setattr(fast_read, "FEW_MATCHES", bound)
            for start, stop in [(0, 50), (0, 7), (5, 12), (matching - 1, matching + 4), (90, 95)]:
                if start < 0:
                    continue
                assert new[start:stop] == old[start:stop], (ordering, bound, start)


@pytest.mark.django_db
def test_a_poll_answers_byte_for_byte_whichever_branch_runs(
    user, api_client, tied_tasks, monkeypatch
):
    since = (tied_tasks + timedelta(days=4)).isoformat()
    for query in [
        {"updated_since": since},
        {"updated_since": since, "ordering": "title", "limit": "7", "offset": "3"},
        {"updated_since": since, "ordering": "-due_date", "completed": "false", "tag": "work"},
        {"updated_since": since, "ordering": "priority", "offset": "28"},
        {"updated_since": since, "ordering": "created_at", "limit": "5", "offset": "10"},
    ]:
        bodies = set()
        for bound in [0, 1_000]:  # the walk, the changes alone
            monkeypatch.setattr(fast_read, "FEW_MATCHES", bound)
            fast = api_client.get("/api/v1/tasks/", query)
            assert fast.status_code == 200
            bodies.add(fast.content)
        assert len(bodies) == 1, query


@pytest.mark.django_db
def test_a_poll_in_updated_at_order_or_with_a_search_keeps_its_statement(user):
    for params in ["updated_since=2026-01-01T00:00:00Z&ordering=-updated_at", "ordering=title"]:
        tasks = listed_tasks(QueryDict(params), Requester(user), lambda: 0)
        assert type(tasks) is CompiledRows


@pytest.mark.django_db
def test_a_walk_reading_the_table_elsewhere_is_run_as_it_is(user, tied_tasks, monkeypatch):
    # The CTE named as the table would stand for it in a subquery too: such a walk (no filter
    # makes one today) is run unchanged, and every filter's walk is read from the changes.
    nested = 'SELECT "tasks_task"."id" FROM "tasks_task" WHERE "tasks_task"."parent_id" IN'
    changed = (("updated_at >= %s", "updated_at, id"),)
    page_sql = functools.partial(fast_read.narrowed_page_sql, "default")
    assert page_sql(f'{nested} (SELECT "id" FROM "tasks_task")', changed) is None
    assert page_sql(f'{nested} (SELECT "task_id" FROM x)', changed) is not None
    since = (tied_tasks + timedelta(days=4)).isoformat()
    for filters in [
        {},
        {"tag": "work", "completed": "true", "priority": "high"},
        {"has_due": "true", "overdue": "false"},
    ]:
        params = QueryDict(mutable=True)
        params.update({"updated_since": since, "ordering": "title", **filters})
        polled = listed_tasks(params, Requester(user), lambda: 60)
        alias, walk_sql, _ = polled._query.statement(limit=5, offset=0, **polled._values)
        narrowings = tuple(narrowing[:2] for narrowing in polled._narrowings)
        assert fast_read.narrowed_page_sql(alias, walk_sql, narrowings) is not None, filters
        expected = polled[0:50]
        monkeypatch.setattr(fast_read, "narrowed_page_sql", lambda *_: None)
        assert polled[0:50] == expected, filters
        monkeypatch.undo()


@pytest.fixture
def an_owner_of_most_of_the_table_written_last(user, make_user):
    """5 other accounts' 1,000 tasks each, written first, then the user's 45,000: all changed
    now. Vacuumed and analyzed."""
    others = [make_user() for _ in range(5)]
    load_tasks(
        (other.pk, f"other {n}", "", (n + 1) * POSITION_GAP)
        for other in others
        for n in range(1000)
    )
    load_tasks((user.pk, f"task {n}", "", (n + 1) * POSITION_GAP) for n in range(45_000))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE tasks_task")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("an_owner_of_most_of_the_table_written_last")
def test_a_polls_count_of_changes_reads_no_other_accounts_rows(user, api_client, subtests):
    # Before (review 42c): `Seq Scan on tasks_task tasks_task_2 ... Rows Removed by Filter:
    # 5000` under the count's Limit, custom plan (the bench's heavy user: 0.7 -> 3.0 ms).
    since = timezone.now() - timedelta(days=1)
    (sql, params), answer = page_statement(
        api_client, {"updated_since": since.isoformat(), "ordering": "title"}
    )
    assert answer["count"] == 45_000
    for plan_cache_mode in PLAN_CACHE_MODES:
        with subtests.test(plan_cache_mode=plan_cache_mode):
            text = _plan(sql, params, plan_cache_mode)
            assert "Seq Scan on tasks_task" not in text, text
            removed = sum(int(n) for n in re.findall(r"Rows Removed by Filter: (\d+)", text))
            assert removed == 0, text
