"""Writes that meet a concurrent write of the same row: each test holds the row's lock in its
own transaction, as the other request would, makes that request's change, and lets the request
under test in only when it waits for the lock. Without the lock the interleaving is the same,
which is how these tests failed before the fixes they guard."""

import logging
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction

from conftest import client_for
from tasks import services
from tasks.models import Tag, Task, TaskList
from tasks.tests.deadlocks import list_deleted_before_the_update
from tasks.views import TaskListViewSet
from todo_project.tests.helpers import (
    connection_of_its_own,
    start_in_thread,
    wait_for_lock_waiters,
)


def _meanwhile(request: Callable[[], Any], concurrent_write: Callable[[], None]) -> Any:
    """`request`'s answer, when `concurrent_write` commits while the request waits for a lock
    it holds (concurrent_write locks first, then the request starts)."""
    with transaction.atomic():
        concurrent_write()
        join = start_in_thread(request)
        assert wait_for_lock_waiters(connection, 1)
    return join()


# --- Lists ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_list_patch_that_loses_to_its_delete_is_a_404_and_does_not_bring_it_back(user, make_list):
    home = make_list("Home")

    def delete() -> None:
        TaskList.objects.select_for_update().get(pk=home.pk).delete()

    answer = _meanwhile(
        lambda: client_for(user).patch(f"/api/v1/lists/{home.pk}/", {"color": "#112233"}),
        delete,
    )
    assert answer.status_code == 404
    assert answer["Content-Type"] == "application/problem+json"
    assert not TaskList.objects.filter(pk=home.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_two_list_patches_of_other_fields_keep_both_and_count_two_versions(user, make_list):
    home = make_list("Home")

    def recolor() -> None:  # a PATCH {"color"} of another client, as list_update writes it
        TaskList.objects.select_for_update().filter(pk=home.pk).update(color="#AABBCC", version=2)

    answer = _meanwhile(
        lambda: client_for(user).patch(f"/api/v1/lists/{home.pk}/", {"name": "House"}),
        recolor,
    )
    assert answer.status_code == 200
    body = answer.json()
    assert (body["name"], body["color"]) == ("House", "#AABBCC")
    assert answer["ETag"] == '"3-0-0"'  # the version, then the task counts
    home.refresh_from_db()
    assert (home.name, home.color, home.version) == ("House", "#AABBCC", 3)


# --- Tags -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_tag_rename_that_loses_to_its_delete_is_a_404(user, make_task):
    make_task(tags=["work"])
    tag = Tag.objects.get(name="work")

    def delete() -> None:
        Tag.objects.select_for_update().get(pk=tag.pk).delete()

    answer = _meanwhile(
        lambda: client_for(user).patch("/api/v1/tags/work/", {"name": "job"}), delete
    )
    assert answer.status_code == 404
    assert answer.json()["detail"] == "No tag of this name."
    assert not Tag.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_tag_rename_that_loses_to_another_rename_of_it_is_a_404(user, make_task):
    """The request named the tag `work`, which is `office` by the time it has the lock."""
    task = make_task(tags=["work"])
    tag = Tag.objects.get(name="work")

    def rename() -> None:
        Tag.objects.select_for_update().filter(pk=tag.pk).update(name="office")

    answer = _meanwhile(
        lambda: client_for(user).patch("/api/v1/tags/work/", {"name": "job"}), rename
    )
    assert answer.status_code == 404
    assert [tag.name for tag in task.tags.all()] == ["office"]


@pytest.mark.django_db(transaction=True)
def test_a_tag_delete_that_loses_to_a_rename_of_it_is_a_404_and_deletes_nothing(user, make_task):
    task = make_task(tags=["work"])
    tag = Tag.objects.get(name="work")

    def rename() -> None:
        Tag.objects.select_for_update().filter(pk=tag.pk).update(name="office")

    answer = _meanwhile(lambda: client_for(user).delete("/api/v1/tags/work/"), rename)
    assert answer.status_code == 404
    assert [tag.name for tag in task.tags.all()] == ["office"]


@pytest.mark.django_db(transaction=True)
def test_a_merge_answers_its_target_even_when_the_target_is_deleted_right_after(
    user, make_task, monkeypatch
):
    """The DELETE of the merge's target comes right after the merge's own statements: it waits
    for the answer to be read, then deletes (a 500 before: the answer read a deleted tag)."""
    make_task(tags=["work", "job"])
    rename = services.tag_rename
    deletes = []

    def rename_then_delete_the_target(**kwargs: Any) -> Tag:
        target = rename(**kwargs)
        deletes.append(start_in_thread(lambda: client_for(user).delete("/api/v1/tags/job/")))
        wait_for_lock_waiters(connection, 1, timeout=3)  # never, before: nothing locked it
        return target

    monkeypatch.setattr(services, "tag_rename", rename_then_delete_the_target)
    answer = client_for(user).patch("/api/v1/tags/work/", {"name": "job"})
    assert answer.status_code == 200
    assert answer.json() == {"name": "job", "task_count": 1}
    (deleted,) = deletes
    assert deleted().status_code == 204
    assert not Tag.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_tag_a_task_write_has_read_is_not_deleted_before_it_commits(user, make_task, monkeypatch):
    """The write reads its tags under FOR KEY SHARE (services.TAG_LOCKS): a DELETE of one of them
    waits for it (here it gives up at its lock_timeout), so the answer's tags are all there."""
    make_task("other", tags=["keep"])
    task = make_task("mine")
    reads = services._tags_by_key
    deletes = []

    def read_then_delete_keep(owner_id, names, **kwargs):
        found = reads(owner_id, names, **kwargs)
        if not deletes:
            with connection_of_its_own(connection) as other:  # a concurrent DELETE tags/keep/
                other.execute("SET lock_timeout = '100ms'")
                try:
                    other.execute("DELETE FROM tasks_tag WHERE name = 'keep'")
                    deletes.append("deleted")
                except psycopg.errors.LockNotAvailable:
                    deletes.append("waited for the write")
        return found

    monkeypatch.setattr(services, "_tags_by_key", read_then_delete_keep)
    answer = client_for(user).patch(f"/api/v1/tasks/{task.pk}/", {"tags": ["keep", "new"]})
    assert answer.status_code == 200
    assert deletes == ["waited for the write"]
    assert sorted(answer.json()["tags"]) == ["keep", "new"]
    assert sorted(Task.objects.get(pk=task.pk).tags.values_list("name", flat=True)) == [
        "keep",
        "new",
    ]


@pytest.mark.django_db(transaction=True)
def test_a_task_write_makes_again_a_tag_made_and_deleted_by_others_while_it_made_it(
    user, make_task
):
    """The write finds no tag "new" and inserts it; another request made it first (so the
    insert, ignoring the conflict, makes nothing) and another deletes it before the write reads
    it again: the write makes it again (a 500 before)."""
    task = make_task("mine")
    inserts = []

    def made_and_deleted_meanwhile(execute, sql, params, many, context):
        first = sql.startswith('INSERT INTO "tasks_tag"') and not inserts
        if first:
            with connection_of_its_own(connection) as other:
                other.execute(
                    "INSERT INTO tasks_tag (owner_id, name) VALUES (%s, 'new')", [user.pk]
                )
        result = execute(sql, params, many, context)
        if first:
            inserts.append(sql)
            with connection_of_its_own(connection) as other:
                other.execute("DELETE FROM tasks_tag WHERE name = 'new'")
        return result

    with connection.execute_wrapper(made_and_deleted_meanwhile):
        answer = client_for(user).patch(f"/api/v1/tasks/{task.pk}/", {"tags": ["new"]})
    assert answer.status_code == 200, answer.content
    assert answer.json()["tags"] == ["new"] and len(inserts) == 1
    assert list(Task.objects.get(pk=task.pk).tags.values_list("name", flat=True)) == ["new"]


# --- The answer of a task write ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("write", ["patch", "move"])
def test_a_task_write_that_waited_for_a_tagging_answers_the_tags_of_its_version(
    user, make_task, write
):
    """A bulk add_tags commits while the write waits for the task's lock: the answer's version
    includes it, so its tags must too (before: the tags of before, under the new version, and
    a GET of the same ETag showed others)."""
    task = make_task("mine")
    url = f"/api/v1/tasks/{task.pk}/"

    def tag_it() -> None:  # POST bulk/ {"action": "add_tags"}, as it writes
        services.tasks_bulk_apply(user=user, action="add_tags", ids=[task.pk], tags=["urgent"])

    def request() -> Any:
        client = client_for(user)
        if write == "patch":
            return client.patch(url, {"title": "Mine"})
        return client.post(f"{url}move/", {"after": None})

    with transaction.atomic():
        Task.objects.select_for_update().get(pk=task.pk)
        join = start_in_thread(request)
        assert wait_for_lock_waiters(connection, 1)
        tag_it()
    answer = join()
    assert answer.status_code == 200
    fresh = client_for(user).get(url)
    assert answer.json()["tags"] == fresh.json()["tags"] == ["urgent"]
    assert answer["ETag"] == fresh["ETag"]


@pytest.mark.django_db(transaction=True)
def test_a_tag_delete_and_a_task_write_linking_the_tag_do_not_deadlock(user, make_task, caplog):
    """The task write holds its task and links the tag (its foreign key takes FOR KEY SHARE of
    the tag at the commit); the DELETE locks the tag, then waits for the task. With the tag
    locked FOR UPDATE the two waited for each other until PostgreSQL broke the tie (40P01, a
    retry after a second)."""
    task = make_task("mine", tags=["work"])
    other = make_task("other")
    tag = Tag.objects.get(name="work")
    caplog.set_level(logging.INFO, logger="todo.retry")
    with transaction.atomic():
        list(Task.objects.select_for_update().filter(pk__in=[task.pk, other.pk]))
        Task.tags.through.objects.create(task=other, tag=tag)  # PATCH other {"tags": ["work"]}
        join = start_in_thread(lambda: client_for(user).delete("/api/v1/tags/work/"))
        assert wait_for_lock_waiters(connection, 1)
    assert join().status_code == 204
    assert not Tag.objects.exists()
    assert not [record for record in caplog.records if record.name == "todo.retry"]


@pytest.mark.django_db(transaction=True)
def test_a_list_patch_answers_the_etag_of_what_it_wrote_even_if_deleted_right_after(
    user, make_list, monkeypatch
):
    """The ETag of a list (whose body has no version) was read after the commit: a DELETE in
    between made the PATCH that worked a 500, a PATCH in between its ETag another body's."""
    home = make_list("Home")
    finalize = TaskListViewSet.finalize_response

    def deleted_before_the_etag(view, request, response, *args, **kwargs):
        with connection_of_its_own(connection) as other:
            other.execute("DELETE FROM tasks_tasklist WHERE id = %s", [home.pk])
        return finalize(view, request, response, *args, **kwargs)

    monkeypatch.setattr(TaskListViewSet, "finalize_response", deleted_before_the_etag)
    answer = client_for(user).patch(f"/api/v1/lists/{home.pk}/", {"name": "House"})
    assert answer.status_code == 200
    assert answer.json()["name"] == "House"
    assert answer["ETag"] == '"2-0-0"'


@pytest.mark.django_db(transaction=True)
def test_a_conditional_write_whose_list_is_deleted_before_its_commit_is_run_again_and_a_400(
    user, make_task, make_list, monkeypatch
):
    """The list a PATCH names is checked (its foreign key) at the COMMIT, which a conditional
    write (If-Match) made after DRF's dispatch: a failure there escaped as a 500, then was a
    503. Run again, the write finds no such list: the 400 a client sending it again gets."""
    task = make_task("mine")
    home = make_list("Home")
    list_deleted_before_the_update(monkeypatch, home)
    answer = client_for(user).patch(
        f"/api/v1/tasks/{task.pk}/", {"list": str(home.pk)}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert answer.status_code == 400, answer.content
    assert answer["Content-Type"] == "application/problem+json"
    assert list(answer.json()["errors"]) == ["list"]
    task.refresh_from_db()
    assert (task.list_id, task.version) == (None, 1)  # nothing of the write stayed
