"""A big account's list filtered by tags: its page walks the page's order when many tasks have
the tags, and its count is planned with its values, one EXISTS a tag (review 43e).

The tags were one `id IN (SELECT task_id ... GROUP BY task_id HAVING count(tag_id) = n)`,
estimated at a few rows whatever the tags: every plan of the page read each tagged task by its
primary key and sorted them all (the bench's heavy user, a tag on 4,181 of 100,000 tasks:
18,245 buffers, 13-36 ms a first page), and every plan of the count probed the tasks once a
link (a tag on 60,000: 240,491 buffers, 190-230 ms). fast_read.TaggedRows now counts first,
then walks (filters.filter_tasks' `tags_walk`) when matches^2 > (offset + limit) x tasks, on
one process (fast_read.SERIAL_ONLY: the walk's estimate is low, and two workers read twice the
tasks). Tables vacuumed and analyzed (transaction=True) for the plan tests."""

import re

import pytest
from django.db import connection
from django.http import QueryDict

from tasks.fast_read import MATCHING_TASKS, CompiledRows, Requester
from tasks.filters import TaskFilter, filter_criteria
from tasks.models import POSITION_GAP, Priority, Tag, Task
from tasks.tests.many_tasks import load_tasks
from tasks.tests.test_owner_share_plans import (
    PLAN_CACHE_MODES,
    _plan,
    page_statement,
    page_statements,
)

TASKS, COMMON, RARE = 20_000, 4_000, 10
ORDERINGS = ["position", "title", "-created_at", "due_date", "-priority"]
# Any plan node's rows and loops.
ALL_READ = re.compile(r"\(actual rows=(\d+) loops=(\d+)\)")
# A plan node's rows and loops, for the tasks' table or one of its indexes.
READ = re.compile(r"on (?:tasks_task|task_\w+|tasks_task_pkey)\b.*?\(actual rows=(\d+) loops=(\d+)")


# A task's number in its owner's load_tasks(), in SQL.
N = f"(position / {POSITION_GAP} - 1)"


def tag_tasks(tag: Tag, condition: str) -> None:
    """Links `tag` to those of its owner's tasks that meet `condition` (SQL), then analyzes the
    links."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tasks_task_tags (task_id, tag_id) SELECT id, %s FROM tasks_task"
            f" WHERE owner_id = %s AND {condition.replace('%', '%%')}",
            [tag.pk, tag.owner_id],
        )
        cursor.execute("VACUUM ANALYZE tasks_task_tags")


@pytest.fixture
def big_account_with_tags(user, make_user):
    """The user's 20,000 tasks (created a second apart): `common` on every 5th (4,000), `rare`
    on 10, `third` on every 10th (2,000, all `common` ones too); 100 other accounts' 100 tasks, 30 of each with its own
    tag. Vacuumed and analyzed."""
    load_tasks((user.pk, f"task {n:05d}", "", (n + 1) * POSITION_GAP) for n in range(TASKS))
    others = [make_user() for _ in range(100)]
    load_tasks(
        (other.pk, f"busy {n}", "", (n + 1) * POSITION_GAP) for other in others for n in range(100)
    )
    tags = {name: Tag.objects.create(owner=user, name=name) for name in ("common", "rare", "third")}
    theirs = [Tag.objects.create(owner=other, name="errands") for other in others]
    for name, condition in [("common", "% 5 = 0"), ("rare", "% 2000 = 7"), ("third", "% 10 = 0")]:
        tag_tasks(tags[name], f"{N} {condition}")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE tasks_task SET created_at = now() - interval '40 days' + {N} * interval '1 s'"
            " WHERE owner_id = %s",
            [user.pk],
        )
        for tag in theirs:
            cursor.execute(
                "INSERT INTO tasks_task_tags (task_id, tag_id) SELECT id, %s FROM tasks_task"
                f" WHERE owner_id = %s AND {N} < 30",
                [tag.pk, tag.owner_id],
            )
        cursor.execute("VACUUM ANALYZE tasks_task")
        cursor.execute("VACUUM ANALYZE tasks_task_tags")


def tasks_read(text: str) -> int:
    """The most rows any one node of the plan read from tasks_task or its indexes (rows x
    loops)."""
    return max(int(rows) * int(loops) for rows, loops in READ.findall(text))


def walked_page(api_client, query: dict, read_at_most: int) -> dict:
    """The answer to a list query whose page, planned with its values, runs on one process
    and reads at most `read_at_most` rows of the tasks' table or its indexes."""
    (sql, params), answer = page_statement(api_client, query)
    text = _plan(sql, params, "force_custom_plan")
    assert "Gather" not in text, text
    assert tasks_read(text) <= read_at_most, text
    return answer


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("big_account_with_tags")
def test_a_big_accounts_tag_page_walks_its_order_or_reads_the_few_tagged(
    api_client, subtests, settings
):
    settings.RATE_LIMIT_USER = "1000/m"
    # Before, for the common tag: the 4,000 tagged tasks, each by its primary key (rows=1
    # loops=4000), sorted. Now ~250 tasks walked for 50 of 1 in 5 (the walk's own index, then
    # each one's links); the rare tag's 10 read alone.
    for tag, read_at_most, matches in [("common", 1_000, COMMON), ("rare", RARE, RARE)]:
        for ordering in ORDERINGS:
            with subtests.test(tag=tag, ordering=ordering):
                query = {"tag": tag, "ordering": ordering}
                answer = walked_page(api_client, query, read_at_most)
                assert answer["count"] == matches
                assert len(answer["results"]) == min(matches, 50)


def count_statements(api_client, query: dict) -> list[tuple[str, list]]:
    statements = []

    def keep(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        assert api_client.get("/api/v1/tasks/", query).status_code == 200
    return [(sql, params) for sql, params in statements if "COUNT(*)" in sql.upper()]


def prepared_tag_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            # Not _plan()'s PREPARE, which psycopg prepares in turn when it runs it again.
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s"
            " AND statement NOT LIKE 'PREPARE %%'",
            ['%COUNT(*)%FROM "tasks_task"%tasks_task_tags%'],  # a count of tasks by tag
        )
        return [statement for (statement,) in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("big_account_with_tags")
def test_a_big_accounts_tag_count_is_planned_with_its_values(api_client, subtests, settings):
    settings.RATE_LIMIT_USER = "1000/m"
    for query in [{"tag": "common"}, {"tag": "rare"}, {"tag": "common", "list": "inbox"}]:
        for plan_cache_mode in PLAN_CACHE_MODES:
            with subtests.test(query=query, plan_cache_mode=plan_cache_mode):
                ((sql, params),) = count_statements(api_client, query)
                text = _plan(sql, params, plan_cache_mode)
                if query.keys() == {"tag"}:  # tags alone: their links only (migration 0029)
                    assert not READ.search(text), text
                else:
                    # Before: the 4,000 links, a primary key probe each (loops=4000).
                    assert tasks_read(text) <= TASKS and "loops=4000" not in text, text
    # With another filter, never prepared: its generic plan would come from the 7th run.
    for _ in range(8):
        count_statements(api_client, {"tag": "rare", "list": "inbox", "ordering": "title"})
    assert prepared_tag_statements() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("big_account_with_tags")
def test_a_tag_walks_pages_are_those_of_its_tasks_read_alone(user, subtests):
    # Old (the GROUP BY, its tasks read and sorted) against new (the walk, on one process):
    # every page alike, in every order, for one tag and two.
    for query in ["tag=common", "tag=common&tag=third", "tag=rare", "tag=third&tag=common"]:
        for ordering in [*ORDERINGS, "-title", "-due_date", "priority,title"]:
            form = TaskFilter(
                QueryDict(f"{query}&ordering={ordering}"),
                Task.objects.none(),
                request=Requester(user),
            )
            assert form.is_valid(), form.errors
            criteria = filter_criteria(form.form.cleaned_data, user)
            old = CompiledRows(MATCHING_TASKS, count=lambda: 0, owner=user.pk, **criteria)
            new = CompiledRows(
                MATCHING_TASKS,
                count=lambda: 0,
                owner=user.pk,
                serial=True,
                **criteria,
                tags_walk=True,
            )
            probed = CompiledRows(  # several tags: each task's links counted (review 43f)
                MATCHING_TASKS,
                count=lambda: 0,
                owner=user.pk,
                serial=True,
                **criteria,
                tags_walk=True,
                tags_probe=True,
            )
            with subtests.test(query=query, ordering=ordering):
                for start, stop in [(0, 50), (0, 7), (45, 60), (1_990, 2_010), (3_990, 4_010)]:
                    assert new[start:stop] == old[start:stop], start
                    assert probed[start:stop] == old[start:stop], start


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("big_account_with_tags")
def test_a_big_accounts_page_of_two_related_tags_walks_its_order(api_client, subtests, settings):
    # `third` is on every 10th task, each a `common` one too (tags that go together, as
    # `work` and `urgent` do): 2,000 of 20,000 tasks have both. One EXISTS a tag is estimated
    # as if the tags were independent (4,000 x 2,000 / 20,000 = ~400 tasks, then the owner's
    # share), so the walk looked long and every plan read the 2,000 tasks and sorted them,
    # as the GROUP BY did (review 43f: 6.7 -> 9.1 ms a first page). A walk of 1 in 10 reads
    # ~500 tasks for 50.
    settings.RATE_LIMIT_USER = "1000/m"
    for ordering in ORDERINGS:
        with subtests.test(ordering=ordering):
            query = {"tag": ["common", "third"], "ordering": ordering}
            answer = walked_page(api_client, query, 1_000)
            assert answer["count"] == 2_000 and len(answer["results"]) == 50


MOST = 12_000


@pytest.fixture
def a_tag_on_most_tasks(user, make_user, big_account_with_tags):
    """`most` on 3 of every 5 of the user's 20,000 tasks (12,000); another account's 30,000
    tasks, so that the user's are a third of the table's (the bench's heavy user: 100,000 of
    300,000). Analyzed."""
    other = make_user()
    load_tasks((other.pk, f"other {n}", "", (n + 1) * POSITION_GAP) for n in range(30_000))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE tasks_task")
    tag_tasks(Tag.objects.create(owner=user, name="most"), f"{N} % 5 IN (1, 2, 3)")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("a_tag_on_most_tasks")
def test_a_deep_page_of_a_big_accounts_common_tag_walks_its_order(api_client, subtests, settings):
    # A tag on 12,000 of 20,000 tasks, offset 1,500: ~2,600 tasks walked for the 1,550 first
    # (the walk is the plan: fast_read.TaggedRows). One EXISTS for the tag is estimated from its
    # links spread over every owner's tasks (12,000 x 20,000 / 60,000 = ~4,000), the walk
    # looked three times as long as it is, and the plan read the 20,000
    # tasks, joined them to the links and sorted the 12,000 (review 44a: a tag on 60,000 of
    # 100,000 at offset 4,000, 116-123 ms against 35 ms walked).
    settings.RATE_LIMIT_USER = "1000/m"
    for ordering in ORDERINGS:
        with subtests.test(ordering=ordering):
            query = {"tag": "most", "ordering": ordering, "offset": 1_500}
            answer = walked_page(api_client, query, 4_000)
            assert answer["count"] == MOST and len(answer["results"]) == 50


NEWEST = 2_000
# A node's runs: a walk probes the links of each task it walks, which the tasks' nodes do not
# count as read when the probe filters them out.
LOOPS = re.compile(r"\(actual rows=\d+ loops=(\d+)\)")


@pytest.fixture
def a_tag_on_the_newest_tasks(user, big_account_with_tags):
    """`newest` on the user's 2,000 newest tasks, the last in position and created_at order.
    Analyzed."""
    tag_tasks(Tag.objects.create(owner=user, name="newest"), f"{N} >= {TASKS - NEWEST}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("a_tag_on_the_newest_tasks")
def test_a_big_accounts_page_of_a_tag_on_its_newest_tasks_walks_a_bounded_length(
    api_client, subtests, settings
):
    # A tag first used recently is on the newest tasks: the last in `position` (new tasks are
    # appended) and `created_at` order. On 1 in 10 tasks, its first page's walk is expected to
    # read ~500 tasks for 50 (the walk is the plan: fast_read.TaggedRows), but it read 18,000
    # before the first match (review 44e F2). Now the walk stops at the 2,000 tagged tasks'
    # number (more than WALK_BOUND x 500), and the 2,000 tagged ones are read and sorted in a
    # second statement; in the newest-first orders the walk finds its page in its first 50
    # tasks, in one statement.
    settings.RATE_LIMIT_USER = "1000/m"
    # `has_due=false` (every task here) narrows: the walk is bounded before the narrowed page.
    for ordering, statements, more in [
        ("position", 2, {}),
        ("created_at", 2, {}),
        ("-position", 1, {}),
        ("-created_at", 1, {}),
        ("position", 2, {"has_due": "false"}),
    ]:
        with subtests.test(ordering=ordering, **more):
            query = {"tag": "newest", "ordering": ordering, **more}
            pages, answer = page_statements(api_client, query)
            assert len(pages) == statements, pages
            for sql, params in pages:
                text = _plan(sql, params, "force_custom_plan")
                assert "Gather" not in text, text
                # (2,001 for `created_at`: its incremental sort reads the row after its last group)
                assert max(tasks_read(text), *map(int, LOOPS.findall(text))) <= 2_001, text
            assert answer["count"] == NEWEST and len(answer["results"]) == 50
            first = TASKS - 1 if ordering.startswith("-") else TASKS - NEWEST
            assert answer["results"][0]["title"] == f"task {first:05d}"


@pytest.fixture
def a_tag_sparse_on_the_oldest_tasks(user, big_account_with_tags):
    """`late` on 1 in 30 of the user's 1,500 oldest tasks (50), then on 1 in 5 (3,700): 3,750,
    its first page 1,471 tasks into position and created_at order. Analyzed."""
    tag_tasks(
        Tag.objects.create(owner=user, name="late"),
        f"CASE WHEN {N} < 1500 THEN {N} % 30 = 0 ELSE {N} % 5 = 1 END",
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("a_tag_sparse_on_the_oldest_tasks")
def test_a_tags_page_just_past_its_walks_bound_costs_about_its_walk(api_client, subtests, settings):
    # The walk of a tag on 3,750 of 20,000 tasks is expected to read ~267 tasks for 50; this
    # one's first page reads 1,471 (review 45a). Bounded at 4 x 267 = 1,066, the walk was given
    # up and the 3,750 tagged tasks read and sorted after it (at 100,000 tasks, a tag on
    # 20,000 whose page is 3,000 tasks in: 4.6 -> 66.6 ms). The bound grows with the tasks the
    # `few` page reads, so that giving up costs a bounded multiple of the walk.
    settings.RATE_LIMIT_USER = "1000/m"
    for ordering in ["position", "created_at"]:
        with subtests.test(ordering=ordering):
            pages, answer = page_statements(api_client, {"tag": "late", "ordering": ordering})
            read = 0
            for sql, params in pages:
                text = _plan(sql, params, "force_custom_plan")
                read += max(tasks_read(text), *map(int, LOOPS.findall(text)))
            assert read <= 2 * 1_500, pages
            assert answer["count"] == 3_750 and len(answer["results"]) == 50
            assert answer["results"][0]["title"] == "task 00000"


@pytest.fixture
def tags_between_few_and_surely_walked(user, big_account_with_tags):
    """`spread` on 1 in 13 of the user's 20,000 tasks (1,539), `recent` on the newest 1,500:
    more than `few` (1,000 for a first page) and fewer than the old WALK_SURELY's 2,000.
    Analyzed."""
    tag_tasks(Tag.objects.create(owner=user, name="spread"), f"{N} % 13 = 5")
    tag_tasks(Tag.objects.create(owner=user, name="recent"), f"{N} >= {TASKS - 1_500}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("tags_between_few_and_surely_walked")
def test_a_tag_page_the_planner_chose_for_is_a_bounded_walk(api_client, subtests, settings):
    # Between `few` and four times it, one tag's page was the planner's choice between the walk
    # and the join, which flipped with the statistics' sample: on the bench's heavy user a
    # spread tag 4-6 ms one run, 15-17 the next, and a tag on the newest 4,400 tasks walked all
    # 100,000 (242 ms). Now it is the walk, bounded at the tagged tasks' number (more than
    # WALK_BOUND x the ~650 tasks a spread tag's first page walks here): one statement for the
    # spread tag, and for the recent one a walk given up, then its 1,500 read and sorted.
    settings.RATE_LIMIT_USER = "1000/m"
    for tag, statements, matches in [("spread", 1, 1_539), ("recent", 2, 1_500)]:
        for ordering in ["position", "created_at", "due_date"]:
            with subtests.test(tag=tag, ordering=ordering):
                pages, answer = page_statements(api_client, {"tag": tag, "ordering": ordering})
                # no due dates here: by the ids, where the newest are spread
                expected = 1 if ordering == "due_date" else statements
                assert len(pages) == expected, pages
                assert 'FROM (WITH "tasks_task" AS (' in pages[0][0], pages[0][0]
                for sql, params in pages:
                    text = _plan(sql, params, "force_custom_plan")
                    assert "Gather" not in text, text
                    read = max(tasks_read(text), *map(int, LOOPS.findall(text)))
                    assert read <= matches + 1, text
                assert answer["count"] == matches and len(answer["results"]) == 50
    # By title, which no bound serves, the plan is still the planner's (one EXISTS for the tag,
    # not the walk's grouped one): forced, the walk went through every title before a tag on
    # the titles last in order (the bench's heavy user, 2,300 tasks: 11 -> 290 ms).
    with subtests.test(tag="recent", ordering="title"):
        pages, answer = page_statements(api_client, {"tag": "recent", "ordering": "title"})
        assert len(pages) == 1 and "HAVING" not in pages[0][0], pages
        assert answer["count"] == 1_500 and len(answer["results"]) == 50


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("big_account_with_tags")
def test_a_tags_page_narrowed_to_few_tasks_probes_their_links(user, api_client, settings):
    # Few matches (`few`) and a narrowing within FEW_MATCHES: the narrowed page walked the
    # narrowed tasks against the tags' links grouped by task (the `few` page's GROUP BY),
    # estimated at one narrowed task, so in a nested loop that scanned the grouped links once a
    # narrowed task: 500 x 4,000 here, and at 100,000 tasks, a tag on 95,000 and 1,000 `high`,
    # 14.8 s a first page (review 45b). A page whose bounded walk was given up took it too.
    settings.RATE_LIMIT_USER = "1000/m"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE tasks_task SET priority = %s WHERE owner_id = %s AND {N} %% 40 = 0",
            [Priority.HIGH, user.pk],
        )
        cursor.execute("VACUUM ANALYZE tasks_task")
    for ordering in ["position", "-created_at"]:
        query = {"tag": "common", "priority": "high", "ordering": ordering}
        (sql, params), answer = page_statement(api_client, query)
        text = _plan(sql, params, "force_custom_plan")
        assert answer["count"] == 500 and len(answer["results"]) == 50
        assert "matches_0" in sql  # the narrowed page
        read = [int(rows) * int(loops) for rows, loops in ALL_READ.findall(text)]
        assert max(read) <= 4 * 4_000, text
