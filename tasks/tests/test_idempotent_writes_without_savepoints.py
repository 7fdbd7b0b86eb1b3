"""Review 41d: a write sent with an Idempotency-Key costs two statements more than one without
(the key's claim, committed on its own, and its answer, stored in the write's transaction),
not the four to six round trips more it cost:

- the claim is one INSERT in autocommit (its own committed transaction), not BEGIN, INSERT,
  COMMIT; in a transaction begun before (a test's) it is still a savepoint;
- the claim's INSERT and the answer's UPDATE are SQL written once, not built by the ORM;
- a written task's answer is kept as the bytes already rendered, not rendered again;
- a list create, a move and a bulk action take no savepoints of their own inside the
  transaction that stores their answer (41b did the task create): any error out of them rolls
  that transaction back whole. A list create takes none inside its view's own transaction
  either, with a key or without. A bulk complete keeps the savepoint it goes on from.

These pin the round trips and what the savepoints were thought to protect. They run on
connections that commit (transaction=True), as in production: in a test's own transaction
every atomic block is a savepoint, and the claim takes the savepoint path.
"""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.renderers import JSONRenderer

from conftest import client_for
from tasks import services
from tasks.models import IdempotencyRecord, Tag, Task, TaskList
from tasks.serializers import TaskListSerializer

KEY = "HTTP_IDEMPOTENCY_KEY"
PROBLEM = "application/problem+json"

USER = 'SELECT "accounts_user"."password"'
CLAIM, STORED = "INSERT INTO tasks_idempotencyrecord", "UPDATE tasks_idempotencyrecord"
NAME_FREE, OWNER_LOCK = 'SELECT 1 AS "a" FROM "tasks_tasklist"', 'SELECT "accounts_user"."id"'
LISTS, NEW_LIST = 'SELECT COUNT("tasks_tasklist"."id")', 'INSERT INTO "tasks_tasklist"'
LIST_ANSWER, TASK_LOCKED = 'SELECT "tasks_tasklist"."id"', 'SELECT "tasks_task"."id"'
GROUP_LOCK, PLACED = "SELECT pg_advisory_xact_lock(", "\n    WITH anchor AS"
TASKS_LOCKED, BUMPED = 'SELECT "tasks_task"."id", "tasks_task"."owner_id"', 'UPDATE "tasks_task"'
COMPLETED = "UPDATE tasks_task SET completed = true"
SAVEPOINT, RELEASE = "SAVEPOINT", "RELEASE SAVEPOINT"


@pytest.fixture
def two_tasks(user, make_list):
    home = make_list("Home")
    first = services.task_create(user=user, data={"title": "A", "list": home})
    second = services.task_create(user=user, data={"title": "B", "list": home})
    return first, second


def _request(what: str, first: Task, second: Task) -> tuple[str, dict]:
    ids = [str(first.pk), str(second.pk)]
    return {
        "list": ("/api/v1/lists/", {"name": "Work"}),
        "move": (f"/api/v1/tasks/{first.pk}/move/", {"after": str(second.pk)}),
        "bulk": ("/api/v1/tasks/bulk/", {"action": "set_priority", "ids": ids, "priority": "high"}),
        "complete": ("/api/v1/tasks/bulk/", {"action": "complete", "ids": ids}),
    }[what]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("what", "key", "round_trips"),
    [
        # The view's transaction serves list_create and its INSERT: 12 round trips before.
        (
            "list",
            None,
            [USER, NAME_FREE, "BEGIN", OWNER_LOCK, LISTS, NEW_LIST, LIST_ANSWER, "COMMIT"],
        ),
        # 18 before: BEGIN and COMMIT around the claim, three savepoints.
        (
            "list",
            "l-1",
            [USER, CLAIM, "BEGIN", NAME_FREE, OWNER_LOCK, LISTS, NEW_LIST, LIST_ANSWER, STORED]
            + ["COMMIT"],
        ),
        ("move", None, [USER, "BEGIN", TASK_LOCKED, GROUP_LOCK, PLACED, "COMMIT"]),
        # 12 before.
        ("move", "m-1", [USER, CLAIM, "BEGIN", TASK_LOCKED, GROUP_LOCK, PLACED, STORED, "COMMIT"]),
        ("bulk", None, [USER, "BEGIN", TASKS_LOCKED, BUMPED, "COMMIT"]),
        # 11 before.
        ("bulk", "b-1", [USER, CLAIM, "BEGIN", TASKS_LOCKED, BUMPED, STORED, "COMMIT"]),
        ("complete", None, [USER, "BEGIN", TASK_LOCKED, COMPLETED, COMPLETED, "COMMIT"]),
        # 12 before. A complete keeps its savepoint: it goes on from its rollback (below).
        (
            "complete",
            "c-1",
            [USER, CLAIM, "BEGIN", SAVEPOINT, TASK_LOCKED, COMPLETED, COMPLETED, RELEASE, STORED]
            + ["COMMIT"],
        ),
    ],
)
def test_a_keyed_write_costs_two_statements_more_than_an_unkeyed_one(
    user, two_tasks, what, key, round_trips
):
    url, body = _request(what, *two_tasks)
    extra = {KEY: key} if key else {}
    client = client_for(user)

    with CaptureQueriesContext(connection) as captured:
        response = client.post(url, body, format="json", **extra)

    assert response.status_code < 300, response.content
    statements = [query["sql"] for query in captured]
    assert len(statements) == len(round_trips), statements
    assert all(map(str.startswith, statements, round_trips)), statements
    if key:
        record = IdempotencyRecord.objects.get(key=key)
        assert record.response_status == response.status_code
        assert record.response_body == response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_replay_takes_three_statements_and_answers_the_first_bytes(user, make_list):
    client = client_for(user)
    first = client.post("/api/v1/lists/", {"name": "Work"}, format="json", **{KEY: "again"})

    with CaptureQueriesContext(connection) as captured:
        again = client.post("/api/v1/lists/", {"name": "Work"}, format="json", **{KEY: "again"})

    # The claim fails on the key (no BEGIN and ROLLBACK around it now), the take-over probe,
    # the stored answer.
    statements = [query["sql"] for query in captured]
    assert len(statements) == 4, statements
    assert statements[1].startswith(CLAIM), statements
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert TaskList.objects.filter(owner=user).count() == 1


# Text JSONRenderer writes with care: non-ASCII as is, U+2028/9 escaped, quotes, a backslash.
TITLE = 'Zahlung \u00e9t\u00e9 \U0001f600 "quoted" </script> \\ back'
DESCRIPTION = "line\u2028separator\u2029paragraph\nnew line\ttab"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("accept", ["application/json", "application/json; indent=4"])
def test_a_keyed_create_keeps_the_bytes_jsonrenderer_makes_of_its_answer(user, make_list, accept):
    """The stored answer is the written task's body rendered once (fast_read's), which must be
    what JSONRenderer makes of its data: a replay is the first answer byte for byte."""
    home = make_list("Home")
    client = client_for(user)
    body = {
        "title": TITLE,
        "description": DESCRIPTION,
        "list": str(home.pk),
        "tags": ["\u00e9t\u00e9"],
    }

    first = client.post("/api/v1/tasks/", body, format="json", HTTP_ACCEPT=accept, **{KEY: "b"})
    again = client.post("/api/v1/tasks/", body, format="json", **{KEY: "b"})

    assert first.status_code == again.status_code == 201, first.content
    assert (first.json()["title"], first.json()["description"]) == (TITLE, DESCRIPTION)
    compact = JSONRenderer().render(json.loads(first.content))
    assert IdempotencyRecord.objects.get().response_body == compact.decode()
    assert again["Idempotent-Replayed"] == "true" and again.content == compact
    if accept == "application/json":
        assert first.content == compact


@pytest.mark.django_db(transaction=True)
def test_a_keyed_list_create_at_the_cap_writes_nothing_and_frees_its_key(user, make_list, settings):
    settings.MAX_LISTS_PER_USER = 1
    home = make_list("Home")
    client = client_for(user)

    refused = client.post("/api/v1/lists/", {"name": "Work"}, format="json", **{KEY: "cap"})

    assert refused.status_code == 409 and refused["Content-Type"] == PROBLEM
    assert list(TaskList.objects.values_list("name", flat=True)) == ["Home"]
    assert not IdempotencyRecord.objects.exists()
    home.delete()
    retried = client.post("/api/v1/lists/", {"name": "Work"}, format="json", **{KEY: "cap"})
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("key", [None, "clash"])
def test_a_list_name_taken_at_the_insert_is_a_400_with_nothing_written(
    user, make_list, monkeypatch, key
):
    """Two creates racing past the serializer's check: the second's INSERT fails on the unique
    index, without a savepoint of its own now. The 400 still comes, nothing stays, and with a
    key the 400 is kept and replayed."""
    make_list("Work")
    monkeypatch.setattr(TaskListSerializer, "validate_name", lambda self, value: value)
    client = client_for(user)
    extra = {KEY: key} if key else {}

    first = client.post("/api/v1/lists/", {"name": "work"}, format="json", **extra)

    assert first.status_code == 400 and first["Content-Type"] == PROBLEM
    assert first.json()["errors"] == {"name": [services.LIST_NAME_TAKEN]}
    assert list(TaskList.objects.values_list("name", flat=True)) == ["Work"]
    if key:
        again = client.post("/api/v1/lists/", {"name": "work"}, format="json", **extra)
        assert again["Idempotent-Replayed"] == "true" and again.content == first.content
        assert IdempotencyRecord.objects.get().response_status == 400
    else:
        assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_keyed_move_refused_under_its_lock_is_kept_and_moves_nothing(user, two_tasks):
    first, _ = two_tasks
    before = Task.objects.get(pk=first.pk)
    client = client_for(user)
    url, body = f"/api/v1/tasks/{first.pk}/move/", {"after": str(first.pk)}  # after itself

    refused = client.post(url, body, format="json", **{KEY: "self"})
    again = client.post(url, body, format="json", **{KEY: "self"})

    assert refused.status_code == again.status_code == 400
    assert again["Idempotent-Replayed"] == "true" and again.content == refused.content
    after = Task.objects.get(pk=first.pk)
    assert (after.position, after.version) == (before.position, before.version)


@pytest.mark.django_db(transaction=True)
def test_a_conditional_keyed_move_compares_in_the_answers_transaction(user, two_tasks):
    """If-Match is compared under the row's lock in the move's transaction, without a savepoint
    of its own now: a stale version is a 412, not kept (the key is free), nothing moved; the
    right one moves, and its replay answers the same bytes."""
    first, second = two_tasks
    client = client_for(user)
    url, body = f"/api/v1/tasks/{first.pk}/move/", {"after": str(second.pk)}

    stale = client.post(url, body, format="json", HTTP_IF_MATCH='"99"', **{KEY: "cond"})

    assert stale.status_code == 412
    assert not IdempotencyRecord.objects.exists()
    assert Task.objects.get(pk=first.pk).version == first.version
    match = {"HTTP_IF_MATCH": f'"{first.version}"', KEY: "cond"}
    moved = client.post(url, body, format="json", **match)
    again = client.post(url, body, format="json", **match)
    assert moved.status_code == again.status_code == 200, moved.content
    assert again["Idempotent-Replayed"] == "true" and again.content == moved.content
    assert Task.objects.get(pk=first.pk).version == first.version + 1


@pytest.mark.django_db(transaction=True)
def test_a_keyed_bulk_naming_a_missing_id_is_a_kept_404_that_changes_nothing(user, two_tasks):
    first, _ = two_tasks
    client = client_for(user)
    body = {"action": "add_tags", "ids": [str(first.pk), str(user.pk)], "tags": ["new"]}

    missing = client.post("/api/v1/tasks/bulk/", body, format="json", **{KEY: "404"})
    again = client.post("/api/v1/tasks/bulk/", body, format="json", **{KEY: "404"})

    assert missing.status_code == again.status_code == 404
    assert again["Idempotent-Replayed"] == "true" and again.content == missing.content
    assert not Tag.objects.exists()
    assert Task.objects.get(pk=first.pk).version == first.version


@pytest.mark.django_db(transaction=True)
def test_a_keyed_bulk_over_the_tag_cap_leaves_no_tag_and_frees_its_key(user, two_tasks, settings):
    settings.MAX_TAGS_PER_USER = 1
    first, _ = two_tasks
    client = client_for(user)
    body = {"action": "add_tags", "ids": [str(first.pk)], "tags": ["one", "two"]}

    refused = client.post("/api/v1/tasks/bulk/", body, format="json", **{KEY: "tags"})

    assert refused.status_code == 409 and refused["Content-Type"] == PROBLEM
    assert not Tag.objects.exists() and not IdempotencyRecord.objects.exists()
    settings.MAX_TAGS_PER_USER = 2
    retried = client.post("/api/v1/tasks/bulk/", body, format="json", **{KEY: "tags"})
    assert retried.status_code == 200 and retried.json() == {"updated": 1}
    assert "Idempotent-Replayed" not in retried


@pytest.mark.django_db(transaction=True)
def test_a_keyed_bulk_complete_goes_on_from_its_first_attempts_rollback(
    user, two_tasks, monkeypatch
):
    """The first attempt of a bulk complete may end in _CascadeAfterANamedSubtask, and the
    request goes on in the same transaction: without its savepoint, the second attempt failed
    in a transaction marked for rollback (a 500), or kept the first attempt's writes."""
    first, second = two_tasks
    real = services._bulk_complete
    attempts = []

    def first_attempt_gives_up(user, ids, *, with_subtasks=False):
        attempts.append(with_subtasks)
        done = real(user, ids, with_subtasks=with_subtasks)  # it wrote, then gives up
        if not with_subtasks:
            raise services._CascadeAfterANamedSubtask()
        return done

    monkeypatch.setattr(services, "_bulk_complete", first_attempt_gives_up)
    client = client_for(user)
    body = {"action": "complete", "ids": [str(first.pk), str(second.pk)]}

    done = client.post("/api/v1/tasks/bulk/", body, format="json", **{KEY: "complete"})

    assert attempts == [False, True]
    assert done.status_code == 200 and done.json() == {"updated": 2}
    for task in (first, second):
        written = Task.objects.get(pk=task.pk)
        assert written.completed and written.version == task.version + 1
    assert IdempotencyRecord.objects.get().response_body == done.content.decode()
