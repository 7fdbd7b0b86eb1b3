"""A big account's searched list (fast_read.SearchedRows) walks at most WALK_BOUND times its
expected length, then reads the matches and sorts them (CountedFirstRows._bounded_walk): a word
first used recently is on the newest tasks, the last in position order, and the walk read
every older task first (the bench's heavy user, a word on the newest 5,000 of 100,000 tasks:
249-405 ms a first page by position, 48-53 ms bounded). Same pages whichever branch runs."""

import re

import pytest
from django.db import connection

from tasks import fast_read
from tasks.fast_read import MATCHING_TASKS, CompiledRows, Requester, SearchedRows, listed_tasks
from tasks.tests.test_owner_share_plans import _plan, page_statements
from tasks.tests.test_tag_branches import SLICES, TASKS, criteria_of, tagged_account  # noqa: F401
from tasks.tests.test_tag_filter_plans import TASKS as BIG
from tasks.tests.test_tag_filter_plans import big_account_with_tags, tasks_read  # noqa: F401

NEWEST = 300
# The page walked over the owner's first tasks alone (fast_read.bounded_walk_sql) reads this.
BOUNDED_WALK = 'FROM (WITH "tasks_task" AS ('
LOOPS = re.compile(r"\(actual rows=\d+ loops=(\d+)\)")


def add_word_to_newest(owner, word: str, newest: int) -> None:
    """`word` at the end of the titles of the owner's `newest` last tasks in position order;
    the tables analyzed, and vacuumed outside a transaction (the old rows' index entries)."""
    analyze = "ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE tasks_task SET title = title || ' {word}' WHERE id IN (SELECT id FROM"
            " tasks_task WHERE owner_id = %s ORDER BY position DESC LIMIT %s)",
            [owner.pk, newest],
        )
        cursor.execute(f"{analyze} tasks_task")
        cursor.execute(f"{analyze} tasks_tasksearch")


@pytest.mark.django_db
def test_a_searched_lists_pages_are_alike_whichever_branch_runs(
    user, request, monkeypatch, subtests
):
    account = request.getfixturevalue("tagged_account")
    add_word_to_newest(user, "newest", NEWEST)
    bounded, ran = set(), []
    fetch_all = fast_read.fetch_all

    def noting_pages(alias, sql, params, **kwargs):
        ran.append("bounded" if BOUNDED_WALK in sql else "page")
        return fetch_all(alias, sql, params, **kwargs)

    monkeypatch.setattr(fast_read, "fetch_all", noting_pages)
    queries = [
        {"search": "alpha"},  # a third of the tasks, spread
        {"search": "emile"},  # a sixth
        {"search": "newest"},  # the last 300 in position order
        {"search": "alpha newest"},
        {"search": "zeta", "completed": "false"},
        {"search": "alpha", "priority": "high", "has_due": "true"},
    ]
    # The filters a search takes with it (no narrowing, no tag walk: SearchedRows has them all
    # in its walk and its count), in other orders: NULL due dates first and last, ties.
    combined = [
        ({"search": "alpha", "tag": "most"}, "updated_at"),
        ({"search": "newest", "tag": ["most", "half"]}, "position"),
        ({"search": "zeta", "list": str(account["list"].pk)}, "-due_date"),
        ({"search": "newest", "list": "inbox"}, "position"),
        ({"search": "alpha", "parent": str(account["parent"].pk)}, "position"),
        ({"search": "beta", "updated_since": account["since"].isoformat()}, "-updated_at"),
        ({"search": "emile newest", "overdue": "false", "due_before": "2099-01-01"}, "due_date"),
        ({"search": "alpha", "priority": "high,low", "completed": "true"}, "-position"),
    ]
    orderings = ["position", "-created_at", "due_date", "-priority"]
    cases = [(query, ordering) for query in queries for ordering in orderings] + combined
    for query, ordering in cases:
        params, criteria = criteria_of(user, {**query, "ordering": ordering})
        plain = CompiledRows(MATCHING_TASKS, count=lambda: 0, owner=user.pk, **criteria)
        with subtests.test(query=query, ordering=ordering):
            expected = {page: plain[slice(*page)] for page in SLICES}
            # The owner's task count and the bound's constants pick the branch: 10**9
            # tasks, always `few`; 1 task, the walk, never bounded (2, 4), or bounded at
            # the page's rows alone (0, -10**9): kept when they all match, else `few`;
            # the true count at WALK_BOUND's 2 (a given-up walk counted as free): kept
            # for a spread word, given up for `newest` in position order.
            for tasks, walk_bound, given_up in [
                (10**9, 2, 4),
                (1, 2, 4),
                (1, 0, -(10**9)),
                (TASKS, 2, 0),
            ]:
                monkeypatch.setattr(fast_read, "WALK_BOUND", walk_bound)
                monkeypatch.setattr(fast_read, "GIVEN_UP_WALK", given_up)
                rows = listed_tasks(params, Requester(user), lambda t=tasks: t)
                assert isinstance(rows, SearchedRows)
                for page in SLICES:
                    ran.clear()
                    assert rows[slice(*page)] == expected[page], (tasks, walk_bound)
                    if ran[:1] == ["bounded"]:
                        bounded.add(tuple(ran))
    # A bounded walk kept, and one given up for the `few` page.
    assert bounded == {("bounded",), ("bounded", "page")}, bounded


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("big_account_with_tags")
def test_a_big_accounts_search_for_a_word_of_its_newest_tasks_walks_a_bounded_length(
    user, api_client, subtests, settings
):
    # A word on the newest 2,000 of 20,000 tasks: the first page's walk is expected to read
    # ~500 tasks for 50, but it read 18,000 before the first match. Now it stops at 2,000 (the
    # matches' number, more than WALK_BOUND x 500), then the 2,000 are read and sorted; in the
    # newest-first orders the walk finds its page in its first 50 tasks, in one statement.
    settings.RATE_LIMIT_USER = "1000/m"
    add_word_to_newest(user, "zebrafish", 2_000)
    for ordering, statements in [("position", 2), ("-position", 1), ("-created_at", 1)]:
        with subtests.test(ordering=ordering):
            query = {"search": "zebrafish", "ordering": ordering}
            pages, answer = page_statements(api_client, query)
            assert len(pages) == statements, pages
            for sql, params in pages:
                text = _plan(sql, params, "force_custom_plan")
                assert "Gather" not in text, text
                # The `few` page's bitmap of ids may count the updated rows' old versions too,
                # which a VACUUM leaves while another test's transaction can still see them.
                at_most = 2_001 if BOUNDED_WALK in sql else 2 * 2_000
                assert max(tasks_read(text), *map(int, LOOPS.findall(text))) <= at_most, text
            assert answer["count"] == 2_000 and len(answer["results"]) == 50
            first = BIG - 1 if ordering.startswith("-") else BIG - 2_000
            assert answer["results"][0]["title"] == f"task {first:05d} zebrafish"
