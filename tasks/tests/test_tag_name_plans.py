"""A task's tag names are read by its links' task_id, whatever the statistics say: the list's
and the changes feed's pages (fast_read.page_columns), one task's GET and a write's read of
its task (models.tag_names_of_task).

Joined to tasks_tag, the links could be read in tag_id order off their tag_id index, the task as
a filter: under the statistics of an emptied table (tasks_task and tasks_task_tags analyzed
empty, then refilled: one row each, to the planner) every link of the task's tag was read for
each task. With a tag on 20,000 tasks, a list page of 200 took 0.26-0.33 s and a changes page
of 1,000 1.6-1.9 s (review 38a; 1.67 s in review 37a); 7-16 ms now. Plans are PostgreSQL's own
(EXPLAIN ANALYZE), taken right after the tables are written (before autovacuum analyzes them)."""

import uuid

import pytest
from django.db import connection, transaction

from tasks import fast_read, sync
from tasks.models import Tag, Task, _task_to_write_query
from tasks.tests.many_tasks import tagged_tasks_under_emptied_statistics

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = 20_000
LINKS = Task.tags.through._meta.db_table


def link_scans(sql: str, params) -> list[dict]:
    """The plan's scans of the links (EXPLAIN ANALYZE), each with what it found and dropped."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0][0]["Plan"]
    return [node for node in _nodes(plan) if node.get("Relation Name") == LINKS]


def _nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def assert_looked_up_by_task(scans: list[dict], rows: int) -> None:
    assert scans, "no scan of the links"
    for scan in scans:
        shown = {key: scan.get(key) for key in ("Index Name", "Index Cond", "Filter")}
        shown["Removed"] = scan.get("Rows Removed by Filter")
        assert "task_id = " in scan.get("Index Cond", ""), shown
        assert not shown["Removed"], shown
        assert scan["Actual Rows"] <= 1 and scan["Actual Loops"] <= rows, shown


@pytest.fixture
def tagged(user) -> Tag:
    tag = Tag.objects.create(owner=user, name="t")
    tagged_tasks_under_emptied_statistics(user.pk, tag.pk, TASKS)
    return tag


def test_a_list_pages_tag_names_are_looked_up_by_task_under_an_emptied_tables_statistics(
    user, api_client, tagged
):
    alias, sql, params = fast_read.OWNER_TASKS_IN_ORDER.statement(
        owner=user.pk, limit=200, offset=0
    )
    assert_looked_up_by_task(link_scans(fast_read.with_tags_sql(alias, sql), params), 200)
    response = api_client.get("/api/v1/tasks/?limit=200")
    assert response.status_code == 200, response.content
    assert [task["tags"] for task in response.json()["results"]] == [["t"]] * 200


def test_a_changes_pages_tag_names_are_looked_up_by_task_under_an_emptied_tables_statistics(
    user, api_client, tagged
):
    alias = "default"
    sql = sync._CHANGES.format(
        columns=fast_read.page_columns(alias),
        nothing=", ".join(["NULL"] * len(fast_read.COLUMNS)),
    )
    params = {"owner": user.pk, "at": sync.BEGINNING, "id": uuid.UUID(int=0), "n": 1_001}
    assert_looked_up_by_task(link_scans(sql, params), 1_001)
    response = api_client.get("/api/v1/tasks/changes/?limit=1000")
    assert response.status_code == 200, response.content
    assert [task["tags"] for task in response.json()["changed"]] == [["t"]] * 1_000


def test_one_tasks_tag_names_are_looked_up_by_task_under_an_emptied_tables_statistics(
    user, api_client, tagged
):
    task = Task.objects.filter(owner=user).values_list("pk", flat=True)[:1][0]
    _, sql, params = fast_read.TASK_OF_OWNER.statement(owner=user.pk, task=task)
    assert_looked_up_by_task(link_scans(sql, params), 1)
    with transaction.atomic():  # the write's read locks its task
        _, sql, params = _task_to_write_query().statement(owner=user.pk, pk=task)
        assert_looked_up_by_task(link_scans(sql, params), 1)
    response = api_client.get(f"/api/v1/tasks/{task}/")
    assert response.status_code == 200 and response.json()["tags"] == ["t"], response.content
    response = api_client.patch(f"/api/v1/tasks/{task}/", {"title": "x"}, format="json")
    assert response.status_code == 200 and response.json()["tags"] == ["t"], response.content
