"""A caller's sync and poll read the caller's rows alone, whatever their share of the table.

An owner of most of tasks_task (a small instance, a team's one big account) whose recent
changes are few, beside other accounts that changed many tasks since: by that owner's share,
the custom plan took their recent changes for thousands and walked the all-owners
(updated_at, id) index in the feed's and the poll's order, filtering the others' 20,000 away
(5-16 ms against ~0.1; review 41c). That index is partial now, on a condition only the admin
states (migration 0027): these fail if a caller's statement can use it again. Tables
vacuumed and analyzed (transaction=True): the UPDATEs' dead tuples would distort the plan."""

import re
import uuid

import pytest
from django.db import connection
from django.utils import timezone
from psycopg import ClientCursor

from tasks import sync
from tasks.models import Task
from tasks.tests.many_tasks import few_changes_among_others

pytestmark = pytest.mark.django_db(transaction=True)

ZERO = uuid.UUID(int=0)
PLAN_CACHE_MODES = ["force_custom_plan", "force_generic_plan"]


@pytest.fixture
def most_of_the_table_quiet(user, make_user):
    """The user's 30,000 tasks, 30 of them changed in the last day; 40 other accounts' 20,000
    tasks, all changed in the last day."""
    few_changes_among_others(user, [make_user() for _ in range(40)], 30_000, 500, "1 day")


def test_a_sync_of_the_tables_main_owner_reads_their_changes_alone(
    user, api_client, most_of_the_table_quiet, subtests
):
    for plan_cache_mode in PLAN_CACHE_MODES:
        with subtests.test(plan_cache_mode=plan_cache_mode):
            a_sync_reads_the_callers_changes_alone(user, api_client, plan_cache_mode)


def a_sync_reads_the_callers_changes_alone(user, api_client, plan_cache_mode: str) -> None:
    since = timezone.now() - timezone.timedelta(days=1)
    numbered = {"owner": "$1::uuid", "at": "$2::timestamptz", "id": "$3::uuid", "n": "$4::int"}
    sql = sync.changes_sql("default") % {name: f"({value})" for name, value in numbered.items()}
    with connection.cursor() as cursor:
        cursor.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        cursor.execute(f"PREPARE changes AS {sql}")
        try:
            # Literals: a utility statement takes no parameters under server-side binding.
            cursor.execute(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE"
                f" changes('{user.pk}', '{since.isoformat()}', '{ZERO}', 201)"
            )
            text = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE changes")
            cursor.execute("RESET plan_cache_mode")

    # Before migration 0027 (custom plan): Index Scan using task_updated ... Rows Removed by Filter:
    # 20000, 4.6-5.7 ms; after, 0.26 ms.
    assert re.search(r"(Index|Bitmap Index) Scan (using|on) task_owner_updated_id", text), text
    assert "admin_updated" not in text and "Rows Removed by Filter" not in text, text
    cursor = sync.Cursor(since, ZERO).encode()
    changed = api_client.get(f"/api/v1/tasks/changes/?cursor={cursor}").json()["changed"]
    assert [task["id"] for task in changed] == [
        str(pk)
        for pk in Task.objects.owned_by(user)
        .filter(updated_at__gte=since)
        .order_by("updated_at", "id")
        .values_list("id", flat=True)
    ]
    assert len(changed) == 30


def _numbered(sql: str, params) -> tuple[str, list]:
    """`sql` with $1, $2, … for its %s placeholders, and their values in order."""
    counter = iter(range(1, 1000))
    return re.sub(r"(?<!%)%s", lambda _: f"${next(counter)}", sql).replace("%%", "%"), list(params)


def _plan(sql: str, params, plan_cache_mode: str) -> str:
    """EXPLAIN ANALYZE of the statement as prepared, its values given as literals (a utility
    statement takes no parameters under server-side binding)."""
    numbered, values = _numbered(sql, params)
    with connection.cursor() as cursor, ClientCursor(connection.connection) as client:
        literals = ", ".join(client.mogrify("%s", [value]) for value in values)
        cursor.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        cursor.execute(f"PREPARE page AS {numbered}")
        try:
            cursor.execute(
                f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE page({literals})"
            )
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE page")
            cursor.execute("RESET plan_cache_mode")


def page_statement(api_client, query: dict) -> tuple[tuple[str, list], dict]:
    """The task list's page statement (SQL and parameters) for `query`, and its answer."""
    (page,), answer = page_statements(api_client, query)
    return page, answer


def page_statements(api_client, query: dict) -> tuple[list[tuple[str, list]], dict]:
    """The task list's page statements for `query` (with_tags_sql's: one, but for a tag's walk
    given up, fast_read.TaggedRows), and its answer."""
    statements = []

    def keep(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        response = api_client.get("/api/v1/tasks/", query)
    assert response.status_code == 200, response.content
    return [(sql, params) for sql, params in statements if ") AS page" in sql], response.json()


def each_plan(orderings: list[str]) -> list[dict]:
    """Each ordering under each plan cache mode: a subtest's parameters."""
    return [
        {"ordering": ordering, "plan_cache_mode": plan_cache_mode}
        for ordering in orderings
        for plan_cache_mode in PLAN_CACHE_MODES
    ]


def test_a_poll_of_the_tables_main_owner_reads_their_changes_alone(
    user, api_client, most_of_the_table_quiet, subtests
):
    for plan in each_plan(["updated_at", "-updated_at"]):
        with subtests.test(**plan):
            a_poll_reads_the_callers_changes_alone(user, api_client, **plan)


def a_poll_reads_the_callers_changes_alone(
    user, api_client, ordering: str, plan_cache_mode: str
) -> None:
    # The task list's poll (`updated_since` with `ordering=updated_at`,
    # the order the README tells a poll to send). Before migration 0027, the custom plan walked
    # task_updated, forward or backward, filtering the 20,000 other accounts' changes of the
    # day to list the owner's 30 (4.5-16 ms against 0.07 off task_owner_updated_id).
    since = timezone.now() - timezone.timedelta(days=1)
    query = {"updated_since": since.isoformat(), "ordering": ordering}
    (sql, params), answer = page_statement(api_client, query)
    results = answer["results"]
    text = _plan(sql, params, plan_cache_mode)

    assert "task_owner_updated_id" in text and "admin_updated" not in text, text
    assert "Rows Removed by Filter" not in text, text
    expected = (
        Task.objects.owned_by(user)
        .filter(updated_at__gte=since)
        .order_by(ordering, f"{ordering[0] if ordering[0] == '-' else ''}id")
        .values_list("id", flat=True)
    )
    assert [task["id"] for task in results] == [str(pk) for pk in expected]
    assert len(results) == 30
