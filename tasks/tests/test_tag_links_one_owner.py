"""A task's tags are its owner's, enforced by the database (migrations 0029, 0030), so that a
list filtered by tags alone counts its tasks from the tags' links (fast_read.TAGGED_TASK_COUNT).
"""

import importlib
import time
import uuid

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from conftest import client_for
from tasks import fast_read
from tasks.models import POSITION_GAP, Tag, Task
from tasks.tests.many_tasks import load_tasks
from todo_project.tests.helpers import connection_of_its_own, start_in_thread

links_checked = importlib.import_module("tasks.migrations.0030_tag_links_checked")


def task_of(owner, title: str = "task") -> Task:
    position = (Task.objects.filter(owner=owner).count() + 1) * POSITION_GAP
    return Task.objects.create(owner=owner, title=title, position=position)


@pytest.mark.django_db
def test_a_task_cannot_be_linked_to_another_owners_tag(user, other_user):
    task, theirs = task_of(user), Tag.objects.create(owner=other_user, name="theirs")
    mine = Tag.objects.create(owner=user, name="mine")
    with (
        pytest.raises(IntegrityError, match="a task's tag must be its owner's"),
        transaction.atomic(),
    ):
        task.tags.add(theirs)
    # One crossing link in a statement of many: none of them written.
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tasks_task_tags (task_id, tag_id) VALUES (%s, %s), (%s, %s)",
            [task.pk, mine.pk, task.pk, theirs.pk],
        )
    assert list(task.tags.all()) == []
    task.tags.add(mine)  # the owner's own
    # A link turned into one across owners (raw SQL's; the app never updates a link).
    with pytest.raises(IntegrityError), transaction.atomic():
        Task.tags.through.objects.filter(task=task).update(tag=theirs)
    assert list(task.tags.all()) == [mine]


@pytest.mark.django_db
def test_a_task_or_tag_with_links_cannot_change_owner(user, other_user):
    tagged, untagged = task_of(user, "tagged"), task_of(user, "untagged")
    tag = Tag.objects.create(owner=user, name="mine")
    tagged.tags.add(tag)
    with pytest.raises(IntegrityError, match="cannot change owner"), transaction.atomic():
        Task.objects.filter(pk=tagged.pk).update(owner=other_user)
    with pytest.raises(IntegrityError, match="cannot change owner"), transaction.atomic():
        Tag.objects.filter(pk=tag.pk).update(owner=other_user)
    # Without links they can (raw SQL's reassignment, whose task counts 0005 keeps).
    Task.objects.filter(pk=untagged.pk).update(owner=other_user)
    free = Tag.objects.create(owner=user, name="free")
    Tag.objects.filter(pk=free.pk).update(owner=other_user)
    assert Task.objects.get(pk=untagged.pk).owner_id == other_user.pk
    # A save that names every column but keeps the owner checks nothing.
    tagged.title = "renamed"
    tagged.save()


@pytest.mark.django_db
def test_the_migration_stops_at_links_written_before_its_triggers(user, other_user):
    task, theirs = task_of(user), Tag.objects.create(owner=other_user, name="theirs")
    with connection.schema_editor() as editor:
        links_checked.check_links(None, editor)  # none: passes
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no ALTER TABLE with checks pending
        cursor.execute("ALTER TABLE tasks_task_tags DISABLE TRIGGER task_tags_inserted_one_owner")
        cursor.execute(
            "INSERT INTO tasks_task_tags (task_id, tag_id) VALUES (%s, %s)", [task.pk, theirs.pk]
        )
        cursor.execute("ALTER TABLE tasks_task_tags ENABLE TRIGGER task_tags_inserted_one_owner")
    crossing = r"^1 tag link\(s\) join a task to a tag of another owner"
    with pytest.raises(RuntimeError, match=crossing), connection.schema_editor() as editor:
        links_checked.check_links(None, editor)


@pytest.mark.django_db
@pytest.mark.parametrize("big", [False, True])
def test_tags_alone_are_counted_from_their_links(user, other_user, monkeypatch, settings, big):
    settings.RATE_LIMIT_USER = "1000/m"
    if big:  # a big account's list (TaggedRows) counts the same way
        monkeypatch.setattr(fast_read, "NARROWED_FROM", 10)
    load_tasks(
        (owner.pk, f"task {n}", "", (n + 1) * POSITION_GAP)
        for owner in (user, other_user)
        for n in range(60)
    )
    for owner in (user, other_user):
        tasks = list(Task.objects.filter(owner=owner).order_by("position"))
        for name, step in [("two", 2), ("three", 3)]:
            tag = Tag.objects.create(owner=owner, name=name)
            tag.tasks.add(*tasks[::step])
    client = client_for(user)
    for query, count in [("tag=two", 30), ("tag=three", 20), ("tag=two&tag=three", 10)]:
        with CaptureQueriesContext(connection) as captured:
            answer = client.get(f"/api/v1/tasks/?{query}&limit=5")
        assert answer.status_code == 200
        assert answer.json()["count"] == count, query
        # The count reads the links alone; the page is the one that reads tasks_task.
        counts = [q["sql"] for q in captured if "COUNT(*)" in q["sql"].upper()]
        assert counts and all('"tasks_task"' not in sql for sql in counts), counts
        assert all('"tasks_task_tags"' in sql for sql in counts), counts


def waits_for_a_lock(pid: int) -> None:
    """Returns once backend `pid` waits for a lock (or fails after 10 s)."""
    deadline = time.monotonic() + 10
    with connection_of_its_own(connection) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]
            ).fetchone()
            if row and row[0] == "Lock":
                return
            time.sleep(0.02)
    raise AssertionError("never waited for a lock")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["link", "owner"])
@pytest.mark.parametrize("moved", ["tasks_task", "tasks_tag"])
def test_a_link_and_an_owner_change_at_once_cannot_cross(user, other_user, first, moved):
    task, tag = task_of(user), Tag.objects.create(owner=user, name="mine")
    link = ("INSERT INTO tasks_task_tags (task_id, tag_id) VALUES (%s, %s)", [task.pk, tag.pk])
    moved_id = task.pk if moved == "tasks_task" else tag.pk
    move = (f"UPDATE {moved} SET owner_id = %s WHERE id = %s", [other_user.pk, moved_id])
    with connection_of_its_own(connection) as one, connection_of_its_own(connection) as two:
        (first_sql, first_params), (second_sql, second_params) = (
            (link, move) if first == "link" else (move, link)
        )
        one.execute("BEGIN")
        one.execute(first_sql, first_params)  # its trigger passes: nothing crosses yet
        second = start_in_thread(lambda: two.execute(second_sql, second_params))
        waits_for_a_lock(two.info.backend_pid)
        one.execute("COMMIT")
        with pytest.raises(psycopg.errors.CheckViolation):
            second()
    # One of the two writes, never both.
    linked = Task.tags.through.objects.filter(task=task, tag=tag).exists()
    moved_owner = (Task if moved == "tasks_task" else Tag).objects.get(pk=moved_id).owner_id
    if first == "link":
        assert linked and moved_owner == user.pk
    else:
        assert not linked and moved_owner == other_user.pk


@pytest.mark.django_db
@pytest.mark.parametrize("late", ["task", "tag"])
def test_a_link_written_before_its_task_or_tag_is_checked_too(user, other_user, late):
    """The links' foreign keys are checked at the commit (DEFERRABLE INITIALLY DEFERRED): in one
    transaction a link may come before its task or its tag (raw SQL; a data-level restore that
    loads tasks_task_tags first). The trigger read no task (or tag) for it and passed: a task
    of one owner then linked to another's tag, committed (review 46b)."""
    task_id = uuid.uuid4()
    theirs = Tag.objects.create(owner=other_user, name="theirs")
    mine_tag_id = Tag.objects.create(owner=user, name="mine").pk + 1000
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        if late == "task":
            cursor.execute(
                "INSERT INTO tasks_task_tags (task_id, tag_id) VALUES (%s, %s)",
                [task_id, theirs.pk],
            )
            task = Task(id=task_id, owner=user, title="late", position=POSITION_GAP)
            task.save(force_insert=True)
        else:
            task = task_of(user)
            cursor.execute(
                "INSERT INTO tasks_task_tags (task_id, tag_id) VALUES (%s, %s)",
                [task.pk, mine_tag_id],
            )
            cursor.execute(
                "INSERT INTO tasks_tag (id, owner_id, name) VALUES (%s, %s, 'late')",
                [mine_tag_id, other_user.pk],
            )
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the commit's key checks: they pass
