"""A tag's rename or delete against the writes linking the tag (services.TAG_LOCKS): the write
never answers a name the rename is replacing at a version the rename leaves as it is, and the
two never deadlock; the rename gives way."""

import threading
from collections.abc import Callable

import pytest
from django.db import connection, transaction
from django.forms import modelform_factory
from django.test.utils import CaptureQueriesContext

from tasks import services
from tasks.admin import TagAdminForm
from tasks.models import Tag, Task
from todo_project.tests.helpers import (
    connection_of_its_own,
    start_in_thread,
    wait_for_lock_waiters,
)

pytestmark = pytest.mark.django_db(transaction=True)

LOCK_TAGS = 'FROM "tasks_tag" WHERE "tasks_tag"."id" IN'  # _locked_tags, FOR UPDATE
LOCK_TASKS = "SELECT count(*) FROM ("  # a rename's or delete's first lock of the tag's tasks
LOCK_TASK = 'AS "has_open_subtasks"'  # a task write's lock of its task (task_to_write)


class Paused:
    """Runs a write in its own thread and holds it right after its first statement that
    contains `marker` (with the locks it has taken so far) until go(); with no marker, runs it
    through, only recording its statements."""

    def __init__(self, write: Callable[[], object], marker: str | None) -> None:
        self.reached, self.released = threading.Event(), threading.Event()
        self.statements: list[str] = []

        def wrapper(execute, sql, params, many, context):
            result = execute(sql, params, many, context)
            self.statements.append(sql)
            if marker is not None and marker in sql and not self.reached.is_set():
                self.reached.set()
                self.released.wait(20)
            return result

        def run() -> object:
            with connection.execute_wrapper(wrapper):
                return write()

        self.join = start_in_thread(run)
        if marker is not None:
            assert self.reached.wait(20), "the write never reached its pause"

    def go(self) -> object:
        self.released.set()
        return self.join()

    def count(self, marker: str) -> int:
        return sum(marker in sql for sql in self.statements)


def names_of(task_id) -> list[str]:
    return sorted(Task.objects.get(pk=task_id).tags.values_list("name", flat=True))


def as_stored(answer: Task) -> Task:
    """A write's answer is the task as stored at its version: the version moved, or the body
    (here its tags) is what the answer said."""
    stored = Task.objects.get(pk=answer.pk)
    if stored.version == answer.version:
        assert names_of(answer.pk) == sorted(answer.tag_names)
    return answer


@pytest.mark.parametrize("how", ["rename", "merge"])
@pytest.mark.parametrize("writer", ["update", "create", "bulk add_tags"])
def test_a_write_naming_a_tag_being_renamed_waits_and_answers_what_is_stored(
    user, make_task, how, writer
):
    """Read without a lock, the write linked the tag the rename held and answered its old name
    at a version that then showed the new one (the audit's repro_rename_link: 27-60 of 100
    rounds). It waits for the rename now; the name it asked for is then no longer that tag's,
    so it makes a tag of that name, as it would after the rename."""
    holder = make_task("holder", tags=["a"])
    x = make_task("x")
    renamed_to = "b"
    if how == "merge":
        make_task("other", tags=["b"])
    a = Tag.objects.get(name="a")
    marker = 'UPDATE "tasks_tag" SET "name"' if how == "rename" else "INSERT INTO tasks_task_tags"
    rename = Paused(lambda: services.tag_rename(user=user, tag=a, name=renamed_to), marker)
    write = {
        "update": lambda: services.task_update(task=x, user=user, data={"tags": ["a"]}),
        "create": lambda: services.task_create(user=user, data={"title": "c", "tags": ["a"]}),
        "bulk add_tags": lambda: services.tasks_bulk_apply(
            user=user, action="add_tags", ids=[x.pk], tags=["a"]
        ),
    }[writer]
    join = start_in_thread(write)
    waited = wait_for_lock_waiters(connection, 1)
    assert rename.go().name == "b"
    answer = join()
    assert waited, "the write did not wait for the rename"

    written = x.pk if writer != "create" else answer.pk
    assert names_of(written) == ["a"]
    assert Tag.objects.get(name="a").pk != a.pk  # made again: the old one is "b" now
    assert names_of(holder.pk) == ["b"]
    if writer != "bulk add_tags":
        as_stored(answer)


def test_a_rename_waits_for_a_write_holding_one_of_its_tasks_and_goes_on(user, make_task):
    """The write holds its task, then reads the tags it links; the rename takes the tag's tasks
    before the tag, so it waits for the write and goes on. Taking the tag first, it met every
    such write in the other order and gave way (one rename in twelve failed under one client
    writing the tag's tasks without a pause)."""
    x = make_task("x", tags=["t"])
    t = Tag.objects.get(name="t")
    write = Paused(
        lambda: services.task_update(task=x, user=user, data={"tags": ["t", "new"]}),
        LOCK_TASK,
    )
    rename = Paused(lambda: services.tag_rename(user=user, tag=t, name="u"), None)
    waited = wait_for_lock_waiters(connection, 1)  # for x
    answer = write.go()
    assert waited and rename.go().name == "u"
    assert rename.count(LOCK_TAGS) == 1  # never gave way
    assert (answer.version, sorted(answer.tag_names)) == (2, ["new", "t"])
    assert (Task.objects.get(pk=x.pk).version, names_of(x.pk)) == (3, ["new", "u"])


def test_a_rename_gives_way_to_a_parents_write_naming_the_tag_of_its_subtask(user, make_task):
    """The write holds the parent and the tag (FOR KEY SHARE), then wants the subtask to
    complete it; the rename holds the subtask and wants the tag. PostgreSQL would end one of
    them after a second (deadlock_timeout); the rename lets go after TAG_LOCK_WAIT instead,
    and starts again once the write is through."""
    parent = make_task("p")
    subtask = make_task("s", parent=parent, tags=["t"])
    parent = Task.objects.get(pk=parent.pk)
    t = Tag.objects.get(name="t")
    rename = Paused(lambda: services.tag_rename(user=user, tag=t, name="u"), LOCK_TASKS)
    join = start_in_thread(
        lambda: services.task_update(
            task=parent, user=user, data={"tags": ["t"], "completed": True}
        )
    )
    waited = wait_for_lock_waiters(connection, 1)  # for the subtask
    renamed = rename.go()
    answer = join()

    assert waited, "the write did not wait for the subtask"
    assert renamed.name == "u"
    assert rename.count(LOCK_TASKS) == 2  # gave way once
    assert (answer.version, answer.tag_names, answer.completed) == (2, ["t"], True)
    assert (Task.objects.get(pk=parent.pk).version, names_of(parent.pk)) == (3, ["u"])
    assert Task.objects.get(pk=subtask.pk).completed and names_of(subtask.pk) == ["u"]


def test_a_write_naming_only_tags_its_task_carries_does_not_lock_them(user, make_task):
    """Its task's lock keeps a rename of them away already (the rename holds the tag's tasks
    before it renames it); a lock on a tag writes to its row (a hot tag's page, a MultiXact
    when two writes share it)."""
    x = make_task("x", tags=["t", "u"])
    with CaptureQueriesContext(connection) as same:
        x = services.task_update(task=x, user=user, data={"tags": ["u", "t"], "title": "y"})
    with CaptureQueriesContext(connection) as more:
        services.task_update(task=x, user=user, data={"tags": ["u", "t", "v"]})
    assert not any("FOR KEY SHARE" in query["sql"] for query in same.captured_queries)
    assert any("FOR KEY SHARE" in query["sql"] for query in more.captured_queries)


@pytest.mark.parametrize("write", ["complete the parent", "a subtask under a tagged parent"])
def test_a_write_near_the_tasks_of_a_tag_being_renamed_does_not_deadlock(user, make_task, write):
    """The review's shapes of a parent and its subtask: a parent's write naming the tag of its
    subtask (the write locks the parent, the tag, then the subtask), and a new subtask naming
    its parent's tag (which checks the parent, FOR KEY SHARE, which the rename's FOR NO KEY
    UPDATE of the parent lets through)."""
    parent = make_task("p", tags=["t"] if write != "complete the parent" else [])
    if write == "complete the parent":
        make_task("s", parent=parent, tags=["t"])
        parent = Task.objects.get(pk=parent.pk)
        do = lambda: services.task_update(
            task=parent, user=user, data={"tags": ["t"], "completed": True}
        )
    else:
        do = lambda: services.task_create(
            user=user, data={"title": "s", "parent": parent, "tags": ["t"]}
        )
    t = Tag.objects.get(name="t")
    rename = Paused(lambda: services.tag_rename(user=user, tag=t, name="u"), LOCK_TAGS)
    join = start_in_thread(do)
    assert wait_for_lock_waiters(connection, 1)
    assert rename.go().name == "u"
    answer = as_stored(join())
    assert names_of(parent.pk) == ["u"] if write != "complete the parent" else ["t"]
    if write == "complete the parent":
        assert not Task.objects.filter(parent=parent, completed=False).exists()
    else:
        assert names_of(answer.pk) == ["t"]  # made again: the parent's is "u" now


@pytest.mark.parametrize("how", ["rename", "delete"])
def test_a_rename_or_delete_that_never_gets_its_tasks_is_a_503_and_changes_nothing(
    api_client, user, make_task, monkeypatch, how
):
    monkeypatch.setattr(services, "TAG_LOCK_WAIT", "20ms")
    x = make_task("x", tags=["t"])
    with connection_of_its_own(connection) as other, other.transaction():
        other.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR UPDATE", [x.pk])
        with CaptureQueriesContext(connection) as queries:
            if how == "rename":
                answer = api_client.patch("/api/v1/tags/t/", {"name": "u"}, format="json")
            else:
                answer = api_client.delete("/api/v1/tags/t/")

    assert answer.status_code == 503, answer.content
    assert answer["Content-Type"] == "application/problem+json" and answer["Retry-After"]
    attempts = sum(LOCK_TASKS in query["sql"] for query in queries.captured_queries)
    assert attempts == services.TAG_WRITE_ATTEMPTS
    assert names_of(x.pk) == ["t"] and Task.objects.get(pk=x.pk).version == 1
    with connection.cursor() as cursor:  # the request's lock_timeout went with it
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "0"


def test_of_two_admin_renames_of_one_tag_the_second_is_told_it_changed(
    user, make_task, admin_client
):
    """The form's lock until the save was FOR SHARE: each form's rename waited for the other's
    share lock, gave way and failed, both (FOR UPDATE alone, before: a write linking the tag
    waited for the form while holding a task the rename then wanted)."""
    x = make_task("x", tags=["t"])
    t = Tag.objects.get(name="t")
    url = f"/admin/tasks/tag/{t.pk}/change/"
    with transaction.atomic():  # the first form's change view
        first = modelform_factory(Tag, form=TagAdminForm, fields=["name"])(
            data={"name": "first", "opened_version": "t"}, instance=t
        )
        assert first.is_valid()
        second = start_in_thread(
            lambda: admin_client.post(url, {"name": "second", "opened_version": "t"})
        )
        waited = wait_for_lock_waiters(connection, 1)
        services.tag_rename(user=user, tag=first.locked_row, name="first")
    answer = second()

    assert waited, "the second form did not wait for the first"
    assert answer.status_code == 200
    assert "has changed since you opened it" in str(answer.context["adminform"].form.errors)
    assert names_of(x.pk) == ["first"] and Task.objects.get(pk=x.pk).version == 2


def test_the_lock_timeout_is_the_callers_again_after_a_rename_in_its_transaction(user, make_task):
    make_task("x", tags=["t"])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = '7s'")
        services.tag_rename(user=user, tag=Tag.objects.get(name="t"), name="u")
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "7s"
