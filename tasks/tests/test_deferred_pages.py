"""A deep page (from fast_read.DEFERRED_FROM on) is read as its ids alone, then its rows by
primary key: the rows it skips are read off an index of the page's order, not from the table.
The same answer to the byte in every kind of list; the plan of a big account's deep page reads
an index alone, under custom and generic plans."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import client_for
from tasks import fast_read
from tasks.filters import order_tasks
from tasks.models import POSITION_GAP, Tag, Task
from tasks.tests.many_tasks import load_tasks
from tasks.tests.test_narrowed_plans import big_account_with_rare_values  # noqa: F401
from tasks.tests.test_owner_share_plans import PLAN_CACHE_MODES, _plan, page_statement
from tasks.tests.test_poll_plans import tied_tasks  # noqa: F401 - the fixture

# Each kind of list: plain, in an order, filtered, narrowed (a big account's), by tag, searched.
QUERIES = [
    {},
    {"ordering": "-created_at"},
    {"ordering": "title"},  # an index on an expression, without the id: ties sorted
    {"ordering": "-title"},
    {"completed": "false", "ordering": "due_date"},
    {"priority": "high,low", "ordering": "-priority,title"},
    {"has_due": "true", "completed": "true", "ordering": "-due_date"},
    {"tag": "work", "ordering": "title"},
    {"tag": "work", "completed": "false", "ordering": "-updated_at"},
    {"search": "alpha", "ordering": "-title"},
    {"search": "beta", "completed": "false", "ordering": "created_at"},
]


# The deferred page's order is the nested loop's over its ids: the same under any plan PostgreSQL
# may pick, a generic one (a prepared statement's after five runs; run three times, psycopg
# prepares it at the second) or one shared out to parallel workers (review 46a).
PLAN_SETTINGS = {
    "default": [],
    "generic": ["SET plan_cache_mode = force_generic_plan"],
    "parallel": [
        "SET parallel_setup_cost = 0",
        "SET parallel_tuple_cost = 0",
        "SET min_parallel_table_scan_size = 0",
        "SET min_parallel_index_scan_size = 0",
        "SET max_parallel_workers_per_gather = 2",
    ],
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("big", "plans"),
    # A small account's pages are prepared statements (generic plans after five runs); a big
    # account's filtered ones never are (fast_read.NARROWED_FROM): parallel plans for those.
    [(False, "default"), (True, "default"), (False, "generic"), (True, "parallel")],
)
def test_a_deferred_page_is_the_page(
    user,
    tied_tasks,  # noqa: F811
    monkeypatch,
    settings,
    subtests,
    big,
    plans,
):
    settings.RATE_LIMIT_USER = "10000/m"
    if big:  # the big account's kinds of rows: narrowed, tagged, searched
        monkeypatch.setattr(fast_read, "NARROWED_FROM", 10)
    with connection.cursor() as cursor:
        for statement in PLAN_SETTINGS[plans]:
            cursor.execute(statement)
    runs = 1 if plans == "default" else 3
    client = client_for(user)
    for query in QUERIES:
        for offset, limit in [(0, 50), (2, 3), (6, 30)]:
            page = {**query, "offset": offset, "limit": limit}
            with subtests.test(query=page):
                monkeypatch.setattr(fast_read, "DEFERRED_FROM", 10**9)
                plain = client.get("/api/v1/tasks/", page)
                monkeypatch.setattr(fast_read, "DEFERRED_FROM", offset)
                for _ in range(runs):
                    with CaptureQueriesContext(connection) as captured:
                        deferred = client.get("/api/v1/tasks/", page)
                    assert plain.status_code == deferred.status_code == 200
                    assert deferred.content == plain.content
                assert plain.json()["results"], "a page with rows"
                pages = [q["sql"] for q in captured if ") AS page" in q["sql"]]
                assert pages and all("AS ids CROSS JOIN LATERAL" in sql for sql in pages), pages
    with connection.cursor() as cursor:  # the requests ran under the settings
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone()[0] == ("force_generic_plan" if plans == "generic" else "auto")
        cursor.execute("SHOW parallel_setup_cost")
        assert cursor.fetchone()[0] == ("0" if plans == "parallel" else "1000")


@pytest.mark.django_db
def test_a_page_before_deferred_from_is_read_whole(user, tied_tasks):  # noqa: F811
    # The first pages stay one read of the table: 50 lookups by key would cost more than
    # the few rows skipped save.
    client = client_for(user)
    for offset in [0, fast_read.DEFERRED_FROM - 1]:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/tasks/", {"offset": offset}).status_code == 200
        [page] = [q["sql"] for q in captured if ") AS page" in q["sql"]]
        assert "LATERAL" not in page
    with CaptureQueriesContext(connection) as captured:
        client.get("/api/v1/tasks/", {"offset": fast_read.DEFERRED_FROM})
    assert any("LATERAL" in q["sql"] for q in captured)


# Each order whose index ends in the id, with the index (the ascending order's: a descending
# page reads it backward, but for -due_date's own).
INDEX_OF = {
    "position": "task_owner_position",
    "-position": "task_owner_position",
    "created_at": "task_owner_created_id",
    "-created_at": "task_owner_created_id",
    "-updated_at": "task_owner_updated_id",
    "priority": "task_owner_priority_id",
    "-priority": "task_owner_priority_id",
    "due_date": "task_owner_due_id",
    "-due_date": "task_owner_due_desc",
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("big_account_with_rare_values")
def test_a_big_accounts_deep_page_skips_its_rows_in_an_index_alone(
    user, api_client, settings, subtests
):
    # Before: the 15,000 rows skipped read from the table, by an index scan or all 20,000
    # read and sorted (the heavy user's 100,000 tasks: offset 20,000 8-18 ms, 50,000 66 ms;
    # the ids alone 3 and 6 ms).
    settings.RATE_LIMIT_USER = "1000/m"
    tasks = Task.objects.owned_by(user)
    for ordering, index in INDEX_OF.items():
        query = {"ordering": ordering, "offset": 15_000, "limit": 50}
        (sql, params), answer = page_statement(api_client, query)
        expected = order_tasks(tasks, [ordering]).values_list("id", flat=True)[15_000:15_050]
        assert [task["id"] for task in answer["results"]] == [str(pk) for pk in expected]
        for plan_cache_mode in PLAN_CACHE_MODES:
            with subtests.test(ordering=ordering, plan_cache_mode=plan_cache_mode):
                text = _plan(sql, params, plan_cache_mode)
                index_only = rf"Index Only Scan (Backward )?using {index} on tasks_task "
                assert re.search(index_only, text), text
                assert "Sort" not in text, text
                skipped = re.search(r"Index Only Scan .*\(actual rows=(\d+)", text)
                assert int(skipped[1]) == 15_050, text
                # Each of the page's rows once from the table, by its key.
                assert re.search(r"Index Scan using tasks_task_pkey .*loops=50\)", text), text


@pytest.mark.django_db
def test_a_bounded_walks_deep_page_is_deferred_too(user, monkeypatch, settings, subtests):
    # 1,000 tasks, a tag and a word on every 10th (the bounded walk finds the page) and on the
    # newest 100, the last in position (it gives up: the few page after it).
    settings.RATE_LIMIT_USER = "10000/m"
    load_tasks((user.pk, f"task {n}", "", (n + 1) * POSITION_GAP) for n in range(1_000))
    n = f"(position / {POSITION_GAP} - 1)"
    with connection.cursor() as cursor:
        for name, word, condition in [
            ("spread", "zebra", "%% 10 = 0"),
            ("newest", "yak", ">= 900"),
        ]:
            tag = Tag.objects.create(owner=user, name=name)
            cursor.execute(
                "INSERT INTO tasks_task_tags (task_id, tag_id) SELECT id, %s FROM tasks_task"
                f" WHERE owner_id = %s AND {n} {condition}",
                [tag.pk, user.pk],
            )
            cursor.execute(
                f"UPDATE tasks_task SET title = %s || ' ' || {n} WHERE {n} {condition}", [word]
            )
    monkeypatch.setattr(fast_read, "NARROWED_FROM", 10)  # a tag's page is TaggedRows'
    walks = []
    bounded_walk = fast_read.CountedFirstRows._bounded_walk

    def counted(self, *args, **kwargs):
        walks.append(self)
        return bounded_walk(self, *args, **kwargs)

    monkeypatch.setattr(fast_read.CountedFirstRows, "_bounded_walk", counted)
    client = client_for(user)
    for query in [{"tag": "spread"}, {"tag": "newest"}, {"search": "zebra"}, {"search": "yak"}]:
        # 100 matches of 1,000 tasks, offset 5, limit 3: no `few` page (100^2 > 8 x 1,000),
        # bounded at 160 tasks.
        page = {**query, "offset": 5, "limit": 3}
        with subtests.test(query=query):
            monkeypatch.setattr(fast_read, "DEFERRED_FROM", 10**9)
            plain = client.get("/api/v1/tasks/", page)
            monkeypatch.setattr(fast_read, "DEFERRED_FROM", 5)
            walks.clear()
            with CaptureQueriesContext(connection) as captured:
                deferred = client.get("/api/v1/tasks/", page)
            assert walks, "a bounded walk"
            assert deferred.content == plain.content
            assert len(plain.json()["results"]) == 3
            pages = [q["sql"] for q in captured if ") AS page" in q["sql"]]
            assert pages and all("AS ids CROSS JOIN LATERAL" in sql for sql in pages), pages
