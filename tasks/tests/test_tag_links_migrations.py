"""Migrations 0029 and 0030 (the tag links kept within one owner) back and forth with links in the
tables, 0030 on a link across owners, and 0029's table locks beside a write in flight (review
46b)."""

import time

import psycopg
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tasks.models import POSITION_GAP, Tag, Task
from todo_project.tests.helpers import (
    connection_of_its_own,
    start_in_thread,
    wait_for_lock_waiters,
)
from todo_project.tests.test_migrations import (  # noqa: F401 - the autouse fixture
    _back_to_the_latest_migrations,
    migrate_to,
)

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("tasks", "0028_created_index_ends_in_the_id")
TRIGGERS = {
    "tag_owner_keeps_its_tasks",
    "task_owner_keeps_its_tags",
    "task_tags_inserted_one_owner",
    "task_tags_updated_one_owner",
}


def triggers() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname = ANY(%s)",
            [sorted(TRIGGERS)],
        )
        return {name for (name,) in cursor.fetchall()}


def pending() -> list:
    executor = MigrationExecutor(connection)
    return executor.migration_plan(executor.loader.graph.leaf_nodes())


def cross_link(task_id, tag_id) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tasks_task_tags (task_id, tag_id) VALUES (%s, %s)", [task_id, tag_id]
        )


def test_back_before_0029_and_forward_again_stopping_at_a_crossing_link(user, other_user):
    task = Task.objects.create(owner=user, title="mine", position=POSITION_GAP)
    mine, theirs = (
        Tag.objects.create(owner=o, name=n) for o, n in [(user, "a"), (other_user, "b")]
    )
    task.tags.add(mine)
    migrate_to(*BEFORE)
    assert triggers() == set()
    cross_link(task.pk, theirs.pk)  # no trigger: written
    with pytest.raises(RuntimeError, match="^1 tag link"):
        migrate_to()
    # 0029 committed (its triggers check every link since); 0030 and after not applied.
    assert triggers() == TRIGGERS
    assert [migration.name for migration, _ in pending()][:1] == ["0030_tag_links_checked"]
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM tasks_task_tags WHERE tag_id = %s", [theirs.pk])
    migrate_to()
    assert pending() == [] and triggers() == TRIGGERS
    assert list(task.tags.all()) == [mine]


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_0029_holds_no_table_while_it_waits_for_another(user, direction):
    """0029 took tasks_task's lock first, then asked for tasks_tag's and tasks_task_tags', each
    a lock_giving_way of its own: behind a write in flight on the links (a PATCH of a task's
    tags, between its links and its task's UPDATE), it held tasks_task (SHARE ROW EXCLUSIVE:
    every task write waited; reversed, ACCESS EXCLUSIVE: every read too) for as long as that
    write took, asking again up to GIVE_UP_AFTER; and the PATCH's own UPDATE of its task then
    waited for the migration that waited for it (a deadlock PostgreSQL broke by ending the
    PATCH, or both waited). All three asked for in one statement, a lock not taken lets go of
    the others."""
    task, other = (
        Task.objects.create(owner=user, title=title, position=(n + 1) * POSITION_GAP)
        for n, title in enumerate(["in flight", "other"])
    )
    tag = Tag.objects.create(owner=user, name="a")
    if direction == "reverse":
        after = lambda: migrate_to(*BEFORE)
        # A read of another task: reversed, 0029 takes ACCESS EXCLUSIVE. In flight, a rename
        # of a tag on no task (one on tasks holds them, and tasks_task, first).
        meanwhile = ("SELECT count(*) FROM tasks_task WHERE id = %s", [other.pk])
        write = ("UPDATE tasks_tag SET name = 'b' WHERE id = %s", [tag.pk])
    else:
        migrate_to(*BEFORE)
        after = migrate_to
        meanwhile = ("UPDATE tasks_task SET version = version + 1 WHERE id = %s", [other.pk])
        write = ("INSERT INTO tasks_task_tags (task_id, tag_id) VALUES (%s, %s)", [task.pk, tag.pk])
    with connection_of_its_own(connection) as in_flight, connection_of_its_own(connection) as nxt:
        in_flight.autocommit = False
        in_flight.execute(*write)
        migrated = start_in_thread(after)
        try:
            assert wait_for_lock_waiters(connection, 1)  # the migration, behind the write
            nxt.execute("SET lock_timeout = '2s'")
            for _ in range(3):  # whenever it comes, in 1.5 s of the migration's asking
                try:
                    nxt.execute(*meanwhile)
                    through = True
                except psycopg.errors.LockNotAvailable:
                    through = False
                    break
                time.sleep(0.5)
        finally:
            in_flight.commit()
            migrated()
    assert through, f"{meanwhile[0]} waited for 0029 ({direction}) behind {write[0]}"
