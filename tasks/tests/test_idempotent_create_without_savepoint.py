"""Review 41b: a create sent with an Idempotency-Key writes the task in the transaction that
stores its answer (todo_project.idempotency) without a savepoint of its own: SAVEPOINT and
RELEASE were two round trips of a keyed create's thirteen, and protected nothing that
transaction does not (any error out of the view rolls it back whole). These pin that, and
what the savepoint was thought to protect: a 4xx with nothing written (kept or not), a list
or tag that is not the caller's, the replay, creates racing for the group's end and the cap's
last place. They run on connections that commit (transaction=True), as in production: in a
test's own transaction every atomic block is a savepoint.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.exceptions import ValidationError

from conftest import client_for
from tasks import services
from tasks.models import POSITION_GAP, IdempotencyRecord, Tag, Task
from todo_project.tests.helpers import outcomes_in_threads

KEY = "HTTP_IDEMPOTENCY_KEY"
PROBLEM = "application/problem+json"


def _body(task_list, tags=("home", "work"), title="Pay rent") -> dict:
    body = {"title": title, "tags": list(tags), "due_date": "2030-01-15", "due_time": "09:30"}
    if task_list is not None:
        body["list"] = str(task_list.pk)
    return body


USER, LIST, TAGS = 'SELECT "accounts_user"', 'SELECT "tasks_tasklist"', "WITH wanted AS"
COUNT, INSERT = (
    "SELECT c.tasks FROM tasks_ownertaskcount",
    'WITH new_task AS (INSERT INTO "tasks_task"',
)
CLAIM, STORED = "INSERT INTO tasks_idempotencyrecord", "UPDATE tasks_idempotencyrecord"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("key", "round_trips"),
    [
        # The user, the list (autocommit); the tags, the group lock with the count, the task
        # with its rank and tags, in one transaction.
        (None, [USER, LIST, "BEGIN", TAGS, COUNT, INSERT, "COMMIT"]),
        # The key's claim committed on its own, in autocommit (review 41d: BEGIN and COMMIT
        # around it were two round trips more); then the work in the transaction that stores
        # its answer, without a SAVEPOINT and RELEASE of its own (13 round trips before 41b).
        (
            "create-1",
            [USER, CLAIM, "BEGIN", LIST, TAGS, COUNT, INSERT, STORED, "COMMIT"],
        ),
    ],
)
def test_a_create_takes_no_savepoint_with_a_key_or_without(user, make_list, key, round_trips):
    home = make_list("Home")
    services.tags_get_or_create(user=user, names=["home", "work"])
    services.task_create(user=user, data={"title": "In the Inbox"})
    extra = {KEY: key} if key else {}
    client = client_for(user)

    with CaptureQueriesContext(connection) as captured:
        response = client.post("/api/v1/tasks/", _body(home), format="json", **extra)

    assert response.status_code == 201, response.json()
    statements = [query["sql"] for query in captured]
    assert len(statements) == len(round_trips), statements
    assert all(map(str.startswith, statements, round_trips)), statements
    assert response.json()["tags"] == ["home", "work"]


@pytest.mark.django_db(transaction=True)
def test_a_keyed_create_naming_anothers_list_is_a_kept_400_that_writes_nothing(
    user, other_user, make_list
):
    theirs = make_list("Theirs", owner=other_user)
    client = client_for(user)
    body = _body(theirs, tags=["brand-new"])

    first = client.post("/api/v1/tasks/", body, format="json", **{KEY: "foreign-list"})
    again = client.post("/api/v1/tasks/", body, format="json", **{KEY: "foreign-list"})

    assert first.status_code == again.status_code == 400
    assert first["Content-Type"] == PROBLEM and "list" in first.json()["errors"]
    assert again["Idempotent-Replayed"] == "true" and again.content == first.content
    assert not Task.objects.exists()
    assert not Tag.objects.filter(owner=user).exists()


@pytest.mark.django_db(transaction=True)
def test_a_keyed_create_naming_anothers_tag_links_a_tag_of_the_callers_own(
    user, other_user, make_list
):
    secret = Tag.objects.create(owner=other_user, name="Secret")
    home = make_list("Home")
    client = client_for(user)

    first = client.post(
        "/api/v1/tasks/", _body(home, tags=["secret"]), format="json", **{KEY: "tag"}
    )
    again = client.post(
        "/api/v1/tasks/", _body(home, tags=["secret"]), format="json", **{KEY: "tag"}
    )

    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.content == first.content
    task = Task.objects.get()
    (linked,) = task.tags.all()
    assert linked.owner_id == user.pk and linked.pk != secret.pk and linked.name == "secret"
    assert not secret.tasks.exists()
    assert Tag.objects.filter(owner=other_user).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_keyed_create_refused_at_the_cap_after_making_a_tag_leaves_nothing_and_its_key_free(
    user, make_list, settings
):
    settings.MAX_TASKS_PER_USER = 1
    done = services.task_create(user=user, data={"title": "Done"})
    home = make_list("Home")
    client = client_for(user)
    body = _body(home, tags=["made-then-undone"])

    refused = client.post("/api/v1/tasks/", body, format="json", **{KEY: "cap"})

    assert refused.status_code == 409 and refused["Content-Type"] == PROBLEM
    # The tag was inserted before the cap's count refused the task: rolled back with it.
    assert not Tag.objects.filter(owner=user).exists()
    assert list(Task.objects.values_list("pk", flat=True)) == [done.pk]
    assert not IdempotencyRecord.objects.exists()  # a 409 is not kept: the key is free
    services.task_delete(owner_id=user.pk, task_id=done.pk)
    retried = client.post("/api/v1/tasks/", body, format="json", **{KEY: "cap"})
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried
    assert retried.json()["tags"] == ["made-then-undone"]
    assert Tag.objects.filter(owner=user).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_kept_4xx_raised_after_the_creates_writes_keeps_none_of_them(
    user, make_list, monkeypatch
):
    """A final 4xx raised inside the service, after it wrote (here: made a tag): the answer is
    kept and replayed, and nothing of the work stays, as with the savepoint."""
    home = make_list("Home")

    def refuse(*, owned: int, adding: int = 1) -> None:
        raise ValidationError({"title": ["Refused after the tags were written."]})

    monkeypatch.setattr(services, "ensure_room", refuse)
    client = client_for(user)
    body = _body(home, tags=["written-first"])

    first = client.post("/api/v1/tasks/", body, format="json", **{KEY: "late-400"})
    again = client.post("/api/v1/tasks/", body, format="json", **{KEY: "late-400"})

    assert first.status_code == again.status_code == 400
    assert again["Idempotent-Replayed"] == "true" and again.content == first.content
    assert not Tag.objects.filter(owner=user).exists()
    assert not Task.objects.exists()
    assert IdempotencyRecord.objects.get().response_status == 400


@pytest.mark.django_db(transaction=True)
def test_concurrent_keyed_creates_at_the_groups_end_take_distinct_ranks(user, make_list):
    home = make_list("Home")
    services.task_create(user=user, data={"title": "First", "list": home})

    def create(n: int):
        client = client_for(user)
        return [
            client.post(
                "/api/v1/tasks/", _body(home, title=f"t{n}-{i}"), format="json", **{KEY: f"{n}-{i}"}
            ).status_code
            for i in range(4)
        ]

    outcomes = outcomes_in_threads(3, create)

    assert outcomes == [[201] * 4] * 3, outcomes
    ranks = sorted(Task.objects.filter(list=home).values_list("position", flat=True))
    assert ranks == [POSITION_GAP * n for n in range(1, 14)]
    assert IdempotencyRecord.objects.filter(response_status=201).count() == 12


@pytest.mark.django_db(transaction=True)
def test_concurrent_keyed_creates_for_the_caps_last_place_one_wins_the_others_key_is_free(
    user, make_list, settings
):
    settings.MAX_TASKS_PER_USER = 2
    home = make_list("Home")
    services.task_create(user=user, data={"title": "First", "list": home})

    def create(n: int):
        return client_for(user).post(
            "/api/v1/tasks/", _body(home, tags=[f"tag-{n}"]), format="json", **{KEY: f"last-{n}"}
        )

    outcomes = outcomes_in_threads(2, create)

    assert sorted(response.status_code for response in outcomes) == [201, 409], outcomes
    (won,) = [response for response in outcomes if response.status_code == 201]
    assert Task.objects.count() == 2
    # The loser's tag, written before its count was refused, went with its transaction.
    assert list(Tag.objects.filter(owner=user).values_list("name", flat=True)) == won.json()["tags"]
    (kept,) = IdempotencyRecord.objects.all()
    assert kept.response_status == 201 and kept.key == f"last-{outcomes.index(won)}"
