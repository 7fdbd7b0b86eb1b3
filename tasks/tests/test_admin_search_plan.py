"""Searching tasks by owner email uses indexes, not a scan of the tasks table.

The plan is PostgreSQL's own (EXPLAIN) on ~50,000 tasks of 2,000 users after ANALYZE: enough
rows that a sequential scan would be the planner's choice if the query did not allow an index.
"""

import re

import pytest
from django.contrib.admin.sites import site
from django.db import connection
from django.test import RequestFactory

from accounts.models import User
from tasks.models import Task
from tasks.tests.many_tasks import load_tasks

USERS = 2_000
TASKS_PER_USER = 25


@pytest.fixture
def many_tasks(db) -> list[User]:
    users = User.objects.bulk_create(
        User(email=f"owner{i:05}@example.com", password="!") for i in range(USERS)
    )
    load_tasks((user.pk, f"Task {n}", "", n) for user in users for n in range(TASKS_PER_USER))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE accounts_user")
        cursor.execute("ANALYZE tasks_task")
    return users


def changelist_plan(admin_user: User, search: str) -> tuple[str, int]:
    """The plan of the page query the task changelist runs for `search`, and its match count."""
    request = RequestFactory().get("/admin/tasks/task/", {"q": search})
    request.user = admin_user
    changelist = site._registry[Task].get_changelist_instance(request)
    # The page as the changelist reads it: its paginator's (tasks.admin.PagedOffTheAdminIndex).
    return changelist.result_list.explain(), changelist.result_count


@pytest.mark.django_db
def test_the_owner_email_search_reads_through_the_email_and_owner_indexes(many_tasks, admin_user):
    owner = many_tasks[1234]

    owner_lookup = User.objects.filter(email=owner.email).values("pk").explain()
    prefix_lookup = User.objects.filter(email__startswith="owner0123").values("pk")[:100].explain()
    plan, rows = changelist_plan(admin_user, owner.email)

    print(f"owner lookup:\n{owner_lookup}\nprefix lookup:\n{prefix_lookup}\npage:\n{plan}")
    assert rows == TASKS_PER_USER
    assert "Index Cond: ((email)::text = " in owner_lookup  # unique email index, either opclass
    assert "Seq Scan" not in owner_lookup
    assert f"Index Cond: (owner_id = '{owner.pk}'::uuid)" in plan  # an owner-leading index
    assert not re.search(r"Seq Scan on tasks_task\b", plan)
    # Django gives a unique email column a varchar_pattern_ops twin index (..._like): LIKE 'x%'
    # is a range scan on it whatever the database collation.
    assert re.search(r"Index Scan (using|on) accounts_user_email_\w+_like", prefix_lookup)
    assert "(email)::text ~>=~ 'owner0123'" in prefix_lookup
    assert "Seq Scan" not in prefix_lookup
    assert changelist_plan(admin_user, "owner0123")[1] == 10 * TASKS_PER_USER


@pytest.mark.django_db
def test_the_task_changelist_reads_its_first_page_off_the_updated_index(many_tasks, admin_user):
    # Support's landing page: every user's tasks, newest change first. Without an index on
    # updated_at it sorted the whole table (~1 s for 1.1M tasks, 2-4 s for deep pages).
    plan, rows = changelist_plan(admin_user, "")

    print(plan)
    assert rows == USERS * TASKS_PER_USER
    assert "Index Scan Backward using task_admin_updated on tasks_task" in plan
    assert not re.search(r"Seq Scan on tasks_task\b", plan)
    assert "Sort" not in plan
