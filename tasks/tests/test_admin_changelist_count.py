"""The task changelist's page states ADMIN_ONLY (`version >= 1`), its count does not.

The page must state it to read task_admin_updated, the all-owners index no API statement may
use (test_admin_search_plan.py). Stated in the count too, which it was for a while: `version` is
in no other index, so the count of every task read the table instead of a narrow index, 184 ms
against 52 at 1.1M tasks, on every changelist page (review 41e)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks.admin import TaskAdmin
from tasks.models import POSITION_GAP
from tasks.tests.many_tasks import load_tasks

COUNT = 'SELECT COUNT(*) AS "__count" FROM "tasks_task"'
VERSION_STATED = '"tasks_task"."version" >='


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["", "?completed__exact=0", "?priority__exact=0"])
def test_the_task_changelists_count_does_not_state_the_admin_indexs_condition(
    admin_client, user, query
):
    # Two pages' worth: the page is read through the paginator, as on a real changelist.
    load_tasks((user.pk, f"task {n}", "", (n + 1) * POSITION_GAP) for n in range(150))

    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(f"/admin/tasks/task/{query}")

    assert response.status_code == 200
    statements = [entry["sql"] for entry in captured]
    counts = [sql for sql in statements if sql.startswith(COUNT)]
    pages = [sql for sql in statements if 'ORDER BY "tasks_task"."updated_at" DESC' in sql]
    assert counts and pages, statements
    assert all(VERSION_STATED not in sql for sql in counts), counts
    assert all(VERSION_STATED in sql and "LIMIT 100" in sql for sql in pages), pages


def test_the_tag_names_column_keeps_its_label():
    # A method once inserted under its decorator took the label.
    assert TaskAdmin.tag_names.short_description == "tag names"
