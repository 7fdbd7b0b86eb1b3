"""`GET tasks/changes/`: a client that syncs through it ends with exactly the server's tasks,
whatever is written while it pages (the audit's scenarios of 2026-12-03, where paging the list
with `updated_since` missed a task for good and never showed a deletion)."""

import base64
import importlib
import json
import threading
import time
import types
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.services import user_delete
from conftest import client_for
from tasks import filters, services, sync
from tasks.models import DeletedTask, Task
from todo_project.tests.helpers import connection_of_its_own, start_in_thread, wait_for_lock_waiters

pytestmark = pytest.mark.django_db

URL = "/api/v1/tasks/changes/"


class Device:
    """A client's local copy, kept by the documented procedure."""

    def __init__(self, api_client) -> None:
        self.api, self.tasks, self.cursor = api_client, {}, None

    def page(self, limit: int | None = None) -> dict:
        params = {k: v for k, v in (("cursor", self.cursor), ("limit", limit)) if v is not None}
        response = self.api.get(URL, params)
        assert response.status_code == 200, response.content
        body = response.json()
        for task in body["changed"]:
            self.tasks[task["id"]] = task
        for gone in body["deleted"]:
            self.tasks.pop(gone["id"], None)
        self.cursor = body["cursor"]
        return body

    def sync(self, limit: int | None = None, between_pages=lambda: None) -> int:
        pages = 1
        while self.page(limit)["has_more"]:
            between_pages()
            pages += 1
        return pages


def server_tasks(api_client) -> dict:
    """Every task as the list shows it (read while nothing writes)."""
    tasks, url = {}, "/api/v1/tasks/?limit=200"
    while url:
        page = api_client.get(url).json()
        tasks.update((task["id"], task) for task in page["results"])
        url = page["next"]
    return tasks


def test_a_sync_from_the_start_gives_every_task_as_the_api_shows_it(api_client, variety):
    device = Device(api_client)

    body = device.page()

    assert body["has_more"] is False and body["deleted"] == []
    assert device.tasks == server_tasks(api_client)  # subtasks included, same bytes of JSON
    in_order = Task.objects.order_by("updated_at", "id").values_list("id", flat=True)
    assert [t["id"] for t in body["changed"]] == [str(i) for i in in_order]


def test_writes_while_a_client_pages_never_make_it_miss_a_task(api_client, make_task):
    # With the list's offsets, the edit and the deletion after the first page shifted the
    # later rows: the 11th task was never sent, and the deleted one stayed on the device.
    tasks = [make_task(f"x{i:02}") for i in range(25)]
    device = Device(api_client)

    def another_device_writes():
        if not getattr(another_device_writes, "done", False):
            api_client.patch(f"/api/v1/tasks/{tasks[0].pk}/", {"title": "edited"})
            api_client.delete(f"/api/v1/tasks/{tasks[1].pk}/")
            another_device_writes.done = True

    pages = device.sync(limit=10, between_pages=another_device_writes)

    assert pages == 3
    assert device.tasks == server_tasks(api_client)
    assert device.tasks[str(tasks[0].pk)]["title"] == "edited"


def test_thousands_of_tasks_written_at_once_are_paged_past(api_client, make_task):
    # A bulk write gives them one updated_at: a client resuming from the last updated_at
    # received the same page again and again.
    ids = [str(make_task(f"t{i}").pk) for i in range(250)]
    api_client.post(
        "/api/v1/tasks/bulk/", {"action": "set_priority", "ids": ids, "priority": "high"}
    )
    assert Task.objects.filter(pk__in=ids).values("updated_at").distinct().count() == 1
    device = Device(api_client)

    pages = device.sync(limit=100)

    assert pages == 3
    assert device.tasks == server_tasks(api_client) and len(device.tasks) == 250


def test_every_way_a_task_goes_is_a_deletion_the_next_sync_sends(api_client, make_task, make_list):
    errands = make_list("Errands")
    alone, parent, in_bulk = make_task("alone"), make_task("parent"), make_task("bulk")
    subtask = make_task("sub", parent=parent)
    in_list, kept = make_task("listed", list=errands), make_task("kept")
    device = Device(api_client)
    device.sync()

    api_client.delete(f"/api/v1/tasks/{alone.pk}/")
    api_client.delete(f"/api/v1/tasks/{parent.pk}/")
    api_client.post("/api/v1/tasks/bulk/", {"action": "delete", "ids": [str(in_bulk.pk)]})
    api_client.delete(f"/api/v1/lists/{errands.pk}/?tasks=delete")
    body = device.page()

    gone = {alone, parent, subtask, in_bulk, in_list}
    assert {d["id"] for d in body["deleted"]} == {str(t.pk) for t in gone}
    assert set(device.tasks) == {str(kept.pk)}


def test_a_sync_sends_again_what_may_still_have_been_committing_and_nothing_older(
    api_client, make_task, user
):
    old = make_task("old")
    Task.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    device = Device(api_client)
    device.sync()
    # Stamped 10 s ago, committed only now: a write that was running during that sync.
    late = make_task("late")
    Task.objects.filter(pk=late.pk).update(updated_at=timezone.now() - timedelta(seconds=10))

    body = device.page()

    assert [t["id"] for t in body["changed"]] == [str(late.pk)]  # not `old` again


def test_one_users_changes_never_reach_another(api_client, other_client, make_task, other_user):
    make_task("mine")
    theirs = make_task("theirs", owner=other_user)
    other_client.delete(f"/api/v1/tasks/{theirs.pk}/")
    their_cursor = other_client.get(URL).json()["cursor"]
    make_task("theirs too", owner=other_user)

    for cursor in (None, their_cursor):
        body = api_client.get(URL, {"cursor": cursor} if cursor else {}).json()
        assert [t["title"] for t in body["changed"]] == ["mine"] and body["deleted"] == []


def test_a_page_is_one_statement_whatever_its_size(api_client, make_task, user):
    for i in range(30):
        make_task(f"t{i}", tags=[f"tag{i % 3}"])
    api_client.get(URL, {"limit": 1})  # the user's first request: nothing cached for it yet

    for limit in (5, 30):
        with CaptureQueriesContext(connection) as captured:
            assert api_client.get(URL, {"limit": limit}).status_code == 200
        changes = [q for q in captured.captured_queries if "tasks_deletedtask" in q["sql"]]
        assert len(changes) == 1
        assert len(captured.captured_queries) <= 2  # the user's authentication, the page


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not a cursor"},
        {"cursor": base64.urlsafe_b64encode(b"1.2.3").decode()},
        {"cursor": base64.urlsafe_b64encode(b"1." + b"0" * 32 + b"..5").decode()},
        {"cursor": base64.urlsafe_b64encode(b"9" * 40 + b"." + b"0" * 32 + b"..").decode()},
        {"cursor": ""},
        {"limit": "0"},
        {"limit": "many"},
        {"limit": ""},
    ],
)
def test_a_bad_cursor_or_limit_is_a_400_naming_it(api_client, params):
    response = api_client.get(URL, params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert list(response.json()["errors"]) == list(params)


def test_a_repeated_cursor_is_a_400(api_client):
    cursor = api_client.get(URL).json()["cursor"]
    response = api_client.get(f"{URL}?cursor={cursor}&cursor={cursor}")
    assert (response.status_code, list(response.json()["errors"])) == (400, ["cursor"])


def test_a_cursor_older_than_the_deletions_kept_is_a_410_and_a_fresh_sync_is_not(
    api_client, make_task
):
    task = make_task("from long ago")
    make_task("from long ago too")
    Task.objects.update(updated_at=timezone.now() - timedelta(days=400))
    device = Device(api_client)
    assert device.sync(limit=1) == 2  # its positions are old: no matter, it began just now
    stale = sync.Cursor(timezone.now() - sync.DELETIONS_KEPT - timedelta(minutes=1), task.pk)

    response = api_client.get(URL, {"cursor": stale.encode()})

    assert response.status_code == 410
    assert response["Content-Type"] == "application/problem+json"
    assert "sync again from the start" in response.json()["detail"]


def test_deleted_ids_are_purged_after_the_days_kept_and_with_their_account(
    api_client, make_task, user, other_user
):
    old, recent = make_task("old"), make_task("recent")
    mine = make_task("theirs", owner=other_user)
    for task in (old, recent):
        api_client.delete(f"/api/v1/tasks/{task.pk}/")
    client_for(other_user).delete(f"/api/v1/tasks/{mine.pk}/")
    DeletedTask.objects.filter(pk=old.pk).update(
        deleted_at=timezone.now() - sync.DELETIONS_KEPT - timedelta(seconds=1)
    )

    call_command("purge_deleted_tasks", verbosity=0)

    assert set(DeletedTask.objects.values_list("pk", flat=True)) == {recent.pk, mine.pk}
    user_delete(user=other_user)
    assert list(DeletedTask.objects.values_list("pk", flat=True)) == [recent.pk]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["the task", "its parent", "its list"])
def test_a_task_deleted_twice_at_once_is_a_404_for_the_later_not_a_500(
    user, make_task, make_list, first
):
    # Both statements wrote the task's id; the later one's insert failed on the key: a 500.
    home = make_list("Home")
    parent = make_task("parent", list=home)
    task = make_task("task", list=home, parent=parent)
    answers = []

    def delete_meanwhile() -> None:
        try:
            answers.append(client_for(user).delete(f"/api/v1/tasks/{task.pk}/"))
        finally:
            connections.close_all()

    deleting = threading.Thread(target=delete_meanwhile)
    with transaction.atomic():
        if first == "its list":
            services.list_delete(user=user, task_list=home, delete_tasks=True)
        else:
            services.task_delete(
                owner_id=user.pk, task_id=(task if first == "the task" else parent).pk
            )
        deleting.start()
        assert wait_for_lock_waiters(connection, 1)
    deleting.join(timeout=20)

    (answer,) = answers
    assert answer.status_code == 404
    assert DeletedTask.objects.filter(pk=task.pk).count() == 1


def test_a_sync_from_the_start_resumed_after_the_days_kept_is_a_410(
    api_client, make_task, monkeypatch
):
    # Its cursors were never refused: a deletion purged meanwhile was never sent.
    make_task("a"), make_task("b")
    cursor = api_client.get(URL, {"limit": 1}).json()["cursor"]
    later = timezone.now() + sync.DELETIONS_KEPT + timedelta(minutes=1)
    monkeypatch.setattr(sync.timezone, "now", lambda: later)

    assert api_client.get(URL, {"cursor": cursor}).status_code == 410


@pytest.mark.django_db(transaction=True)  # the migration commits a transaction a row
def test_a_name_migration_stamps_what_it_changes_when_it_writes_it(user, monkeypatch):
    """Migration 0015 renames a tag in a transaction of its own that gives way to the API's
    writes, for as long as they are in its way. Its stamp was the run's start: a sync made
    meanwhile had moved its cursor past it, and the device kept the old name and version for
    good (review 29e; 0016 the same). COMMIT_LAG shrunk to 1 s, the wait to 2.5 s: the same
    for any lag shorter than a run."""
    monkeypatch.setattr(sync, "COMMIT_LAG", timedelta(seconds=1))
    device = Device(client_for(user))
    task = services.task_create(user=user, data={"title": "Coffee", "tags": ["cafe"]})
    with connection.cursor() as cursor:  # a name stored decomposed, from before 0015
        cursor.execute(
            "UPDATE tasks_tag SET name = %s WHERE owner_id = %s", ["Cafe\u0301", user.pk]
        )
    device.sync()
    composed_names = importlib.import_module("tasks.migrations.0015_names_composed")
    in_its_way = connection_of_its_own(connection)  # a request holding the task
    with in_its_way.transaction():
        in_its_way.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR UPDATE", [task.pk])
        migrating = start_in_thread(
            lambda: composed_names.compose_names(None, types.SimpleNamespace(connection=connection))
        )
        time.sleep(2.5)
        device.sync()
    in_its_way.close()
    migrating()

    device.sync()
    task.refresh_from_db()
    assert device.tasks[str(task.pk)]["tags"] == ["Café"]
    assert device.tasks[str(task.pk)]["version"] == task.version == 2


def test_changes_reports_every_empty_parameter_in_one_answer(api_client):
    """69b806a replaced the view's own check, which collected both parameters, with
    single_value(), which raises at the first: `limit` is no longer reported with `cursor`."""
    response = api_client.get("/api/v1/tasks/changes/?cursor=&limit=")
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "cursor": [filters.NEEDS_A_VALUE],
        "limit": [filters.NEEDS_A_VALUE],
    }


def test_changes_with_an_indenting_accept_is_the_same_json_indented(api_client, make_task):
    make_task("One")
    make_task("Two")
    plain = api_client.get("/api/v1/tasks/changes/")
    indented = api_client.get("/api/v1/tasks/changes/", HTTP_ACCEPT="application/json; indent=4")
    assert (plain.status_code, indented.status_code) == (200, 200)
    assert indented["Content-Type"].startswith("application/json")
    # The cursor names the moment of the read (it moves between the two requests).
    strip = lambda body: {k: v for k, v in json.loads(body).items() if k != "cursor"}
    assert strip(indented.content) == strip(plain.content)
    assert len(json.loads(indented.content)["changed"]) == 2
    assert b'\n    "changed"' in indented.content
