"""Queries whose cost must not grow with the owner's number of tasks, checked on their plans.

The ranks a create, move or completion asks for are index lookups, whatever the size of the
sibling group: no sort, no scan of the owner's other tasks (bench/README.md had 1.5-350 ms per
query for the heavy user before). Lists and tags count their tasks from an index, one subquery
per row, not by joining and grouping all of the owner's tasks.

Plans are PostgreSQL's own (EXPLAIN) on one owner's 6,000 tasks after ANALYZE."""

import re
import uuid
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks import services
from tasks.filters import due_before_now, order_tasks
from tasks.models import POSITION_GAP, Tag, Task, TaskList
from tasks.recurrence import past_times_of_day
from tasks.tests.many_tasks import load_tasks
from tasks.views import TagViewSet, TaskListViewSet

pytestmark = pytest.mark.django_db

PER_GROUP = 1_500


@pytest.fixture
def big_groups(user) -> dict[tuple, list[Task]]:
    """Four large sibling groups of one owner, one of each shape (list or Inbox, parent or
    none), with interleaved ranks: a query that mixed groups up would answer another's rank."""
    home = TaskList.objects.create(owner=user, name="Home", position=POSITION_GAP)
    parents = {
        list_id: Task.objects.create(owner=user, title="parent", list_id=list_id, position=-(10**9))
        for list_id in (None, home.pk)
    }
    groups = {}
    for shift, (list_id, parent) in enumerate(
        [(None, None), (home.pk, None), (None, parents[None].pk), (home.pk, parents[home.pk].pk)]
    ):
        groups[(list_id, parent)] = Task.objects.bulk_create(
            Task(
                id=uuid.uuid4(),
                owner=user,
                title="t",
                list_id=list_id,
                parent_id=parent,
                position=n * POSITION_GAP + shift,
            )
            for n in range(1, PER_GROUP + 1)
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tasks_task")
    return groups


def plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_rank_queries_of_each_group_shape_read_the_group_index_in_order(user, big_groups):
    for (list_id, parent_id), tasks in big_groups.items():
        given = {"list_id": list_id, "parent_id": parent_id}
        given = {key: value for key, value in given.items() if value is not None}
        shape = (list_id is not None, parent_id is not None)
        middle = tasks[PER_GROUP // 2]
        for queries, values in (
            (services._LAST_RANK, {}),
            (services._FIRST_OTHER_RANK, {"task": middle.pk}),
        ):
            _, sql, params = queries[shape].statement(owner=user.pk, **given, **values)
            text = plan(sql, params)
            assert "Sort" not in text and "task_position_unique_in_group" in text, text


def test_the_rank_after_each_anchor_is_its_own_groups_next_one_and_an_index_lookup(
    user, big_groups
):
    anchors = [tasks[i] for tasks in big_groups.values() for i in (0, PER_GROUP // 2, -1)]
    ids = [anchor.pk for anchor in anchors]

    owned, successors = services._successor_positions(user.pk, ids)
    text = plan(services._SUCCESSOR_POSITIONS, [user.pk, user.pk, ids])

    assert owned == Task.objects.filter(owner=user).count()  # the count a copy is capped by

    for tasks in big_groups.values():
        for i in (0, PER_GROUP // 2, -1):
            following = tasks[i + 1].position if i != -1 else None
            assert successors[tasks[i].pk] == (tasks[i].position, following)
    assert "Sort" not in text and "WindowAgg" not in text
    assert text.count("task_position_unique_in_group") == 4, text


def test_a_moves_anchor_comes_with_the_next_rank_among_the_other_tasks_from_an_index(
    user, big_groups
):
    for (list_id, parent_id), tasks in big_groups.items():
        anchor, right_after = tasks[PER_GROUP // 2], tasks[PER_GROUP // 2 + 1]
        # Moving the task right after the anchor: the rank after it is the next one's.
        for moving, following in (
            (tasks[-1], right_after),
            (right_after, tasks[PER_GROUP // 2 + 2]),
        ):
            params = {"owner": user.pk, "anchor": anchor.pk, "task": moving.pk}
            with connection.cursor() as cursor:
                cursor.execute(services._ANCHOR_AND_NEXT_OTHER_RANK, params)
                assert cursor.fetchall() == [
                    (list_id, parent_id, anchor.position, following.position)
                ]
    params = {"owner": user.pk, "anchor": tasks[-1].pk, "task": tasks[0].pk}
    with connection.cursor() as cursor:
        cursor.execute(services._ANCHOR_AND_NEXT_OTHER_RANK, params)
        assert cursor.fetchone()[3] is None  # the last of its group
    text = plan(services._ANCHOR_AND_NEXT_OTHER_RANK, params)
    assert "Sort" not in text and text.count("task_position_unique_in_group") == 4, text


def test_a_moves_anchor_read_that_writes_the_task_reads_the_ranks_from_the_index_too(
    user, big_groups
):
    """services._ANCHOR_READ_AND_PLACED: the same four index lookups as the plain read, and
    the task's UPDATE by its primary key (review 39a)."""
    for (list_id, parent_id), tasks in big_groups.items():
        anchor, moving = tasks[PER_GROUP // 2], tasks[-1]
        params = {
            "owner": user.pk,
            "anchor": anchor.pk,
            "task": moving.pk,
            "list": list_id,
            "parent": parent_id,
            "in_group": True,
            "position": moving.position,
            "version": moving.version + 1,
            "now": moving.updated_at,
        }
        text = plan(services._ANCHOR_READ_AND_PLACED, params)
        assert "Sort" not in text and "Seq Scan" not in text, text
        assert text.count("task_position_unique_in_group") == 4, text
        assert "Update on tasks_task" in text and "tasks_task_pkey" in text, text


def test_lists_and_tags_count_their_tasks_per_row_from_an_index(user):
    """60 lists and 60 tags of 100 tasks each, a third of them done."""
    lists = TaskList.objects.bulk_create(
        TaskList(owner=user, name=f"List {n}", position=n) for n in range(60)
    )
    tags = Tag.objects.bulk_create(Tag(owner=user, name=f"tag {n}") for n in range(60))
    tasks = Task.objects.bulk_create(
        Task(
            id=uuid.uuid4(),
            owner=user,
            title="t",
            list=task_list,
            position=n,
            completed=n % 3 == 0,
            completed_at=timezone.now() if n % 3 == 0 else None,
        )
        for task_list in lists
        for n in range(100)
    )
    links = Task.tags.through
    links.objects.bulk_create(
        links(task_id=task.pk, tag_id=tags[at // 100].pk) for at, task in enumerate(tasks)
    )
    Tag.objects.create(owner=user, name="unused")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tasks_task")
        cursor.execute("ANALYZE tasks_task_tags")
    request = SimpleNamespace(user=user)
    counted_lists = TaskListViewSet(request=request).get_queryset()
    counted_tags = TagViewSet(request=request).get_queryset()

    assert {(row.task_count, row.open_task_count) for row in counted_lists} == {(100, 66)}
    assert len(counted_lists) == 60
    assert [(row.name, row.task_count) for row in counted_tags][-2:] == [
        ("tag 9", 100),
        ("unused", 0),
    ]
    for queryset, index in (
        (counted_lists, "task_list_completed"),
        (counted_tags, "tasks_task_tags_tag_id"),
    ):
        text = plan(*queryset.query.sql_with_params())
        assert "GroupAggregate" not in text and "HashAggregate" not in text, text
        assert index in text and not re.search(r"Seq Scan on tasks_task(_tags)? ", text), text


def test_a_rare_word_reads_its_matches_off_the_search_index_and_a_common_one_walks(
    api_client, make_task
):
    # Which of the two statement shapes a search page takes is computed on every search, and
    # no test looked at the choice: turned round, the heavy user's rare-word search walked
    # their 100,000 tasks again (bench/README.md), with every answer still right.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for n in range(30):
        make_task(f"common errand {n}" + (" zebra" if n == 0 else ""))

    def task_sql(query: str) -> str:
        with CaptureQueriesContext(connection) as queries:
            response = api_client.get(f"/api/v1/tasks/?{query}")
        assert response.status_code == 200
        return " ".join(q["sql"] for q in queries if "tasks_task" in q["sql"])

    index_first = '"id" = ANY((ARRAY(SELECT U0."task_id"'
    assert index_first in task_sql("search=zebra")  # 1 match: 1 x 1 <= 50 x 30
    assert index_first not in task_sql("search=common&limit=1")  # 30 x 30 > 1 x 30


DATED = 30_000


@pytest.fixture
def dated_tasks(user) -> None:
    """30,000 tasks of one owner, as seed_bench's: three in five due on one of 180 days around
    today (one in three of those at a time of day), the others without a due date."""
    load_tasks((user.pk, f"task {n}", "", (n + 1) * POSITION_GAP) for n in range(DATED))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tasks_task SET due_date = CURRENT_DATE + (position / %(gap)s %% 180)::int - 60,"
            " due_time = CASE WHEN position / %(gap)s %% 3 = 0"
            " THEN time '07:00' + (position / %(gap)s %% 50) * interval '15 minutes' END"
            " WHERE owner_id = %(owner)s AND position / %(gap)s %% 5 < 3",
            {"gap": POSITION_GAP, "owner": user.pk},
        )
        cursor.execute("ANALYZE tasks_task")


def page_plan(api_client, query: str) -> tuple[list[dict], str]:
    """The answer's tasks and the plan of the page's statement, as the list runs it."""
    with CaptureQueriesContext(connection) as queries:
        response = api_client.get(f"/api/v1/tasks/?{query}")
    assert response.status_code == 200, response.content
    [sql] = [q["sql"] for q in queries if "ORDER BY" in q["sql"] and "tasks_task" in q["sql"]]
    return response.json()["results"], plan(sql, [])


def the_walk(text: str) -> str:
    """The plan of the walk alone: of a narrowed page (fast_read.NarrowedRows), its `many`
    branch, the one that runs when many tasks match (the `few` one sorts at most
    fast_read.FEW_MATCHES rows by design); else the whole plan."""
    branch = re.search(r"One-Time Filter: \(\$\d+ > ", text)
    return text if branch is None else text[branch.start() :]


def a_descending_due_date_page_reads_its_index_in_order(user, api_client, query: str) -> None:
    # Tasks without a due date come last in both directions: task_owner_due_id read backward
    # has them first, so each `-due_date` page sorted all of the owner's tasks (the heavy
    # user's 100,000: 24-47 ms, 111 ms at offset 50,000; bench/README.md).
    results, text = page_plan(api_client, query)
    walk = the_walk(text)
    # An index-only scan for a deep page (fast_read.DEFERRED_FROM).
    assert re.search(r"Index (Only )?Scan using task_owner_due_desc ", walk), text
    assert "Sort" not in walk, text
    offset = 1000 if "offset" in query else 0
    expected = sorted(
        Task.objects.owned_by(user).values_list("due_date", "due_time", "id"),
        key=lambda row: (row[0] is not None, row[0], row[1] is not None, row[1], row[2]),
        reverse=True,
    )[offset : offset + 50]
    assert [task["id"] for task in results] == [str(row[2]) for row in expected]


def overdue_gives_the_index_a_bound_on_the_due_date(user, api_client) -> None:
    # The OR of due_before_now() is no index condition: walking task_owner_due_desc from the
    # latest date, the heavy user's first page filtered ~40,000 future tasks away (24-55 ms).
    results, text = page_plan(api_client, "overdue=true&ordering=-due_date")
    assert re.search(r"Index Cond: .*due_date <= ", text), text
    assert "Sort" not in text, text
    # The same tasks as the filter without the bound.
    now = timezone.now().astimezone(ZoneInfo(user.timezone))
    overdue = Q(completed=False) & due_before_now(now.date(), past_times_of_day(now))
    expected = order_tasks(Task.objects.owned_by(user).filter(overdue), ["-due_date"])[:50]
    assert [task["id"] for task in results] == [str(task.pk) for task in expected]


def an_ascending_due_date_page_reads_its_index_in_order(user, api_client, query: str) -> None:
    # The tasks without a due date are one group of (owner, due_date, due_time): each page
    # reaching them sorted the whole group by the id (the heavy user's 40,000: 20-39 ms a
    # `has_due=false&ordering=due_date` page, 140-186 ms at offset 70,000; migration 0025).
    results, text = page_plan(api_client, query)
    walk = the_walk(text)
    # An index-only scan for a deep page (fast_read.DEFERRED_FROM).
    assert re.search(r"Index (Only )?Scan using task_owner_due_id ", walk), text
    assert "Sort" not in walk, text
    tasks = Task.objects.owned_by(user)
    if "has_due=false" in query:
        tasks = tasks.filter(due_date=None)
    offset = 1000 if "offset" in query else 0
    expected = sorted(
        tasks.values_list("due_date", "due_time", "id"),
        key=lambda row: (row[0] is None, row[0], row[1] is None, row[1], row[2]),
    )[offset : offset + 50]
    assert [task["id"] for task in results] == [str(row[2]) for row in expected]


def test_the_due_date_pages_read_their_indexes_in_order(user, api_client, dated_tasks, subtests):
    """Every case on one data set (30,000 rows, analyzed: ~3 s to build), each a subtest."""
    for query in [
        "ordering=-due_date",
        "ordering=-due_date&offset=1000",
        "completed=false&ordering=-due_date",
    ]:
        with subtests.test(query=query):
            a_descending_due_date_page_reads_its_index_in_order(user, api_client, query)
    with subtests.test(query="overdue=true&ordering=-due_date"):
        overdue_gives_the_index_a_bound_on_the_due_date(user, api_client)
    for query in [
        "ordering=due_date",
        "ordering=due_date&offset=1000",
        "has_due=false&ordering=due_date",
        "completed=false&ordering=due_date",
    ]:
        with subtests.test(query=query):
            an_ascending_due_date_page_reads_its_index_in_order(user, api_client, query)
