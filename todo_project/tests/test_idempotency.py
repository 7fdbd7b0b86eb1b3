"""Idempotency-Key (todo_project.idempotency) on a test-only creating endpoint."""

import json
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone
from rest_framework import exceptions

from conftest import client_for
from tasks.models import IdempotencyRecord, TaskList
from todo_project.problems import ConcurrentChange, Conflict, PreconditionFailed
from todo_project.tests.hardening_urls import GATES, Gate, ProbeListViewSet

pytestmark = pytest.mark.urls("todo_project.tests.hardening_urls")

URL = "/api/v1/test/lists/"
PROBLEM = "application/problem+json"


def post(client, body: dict, key: str | None = "key-1", path: str = URL):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(path, body, format="json", **headers)


@pytest.mark.django_db
def test_a_retry_with_the_same_key_and_body_replays_the_first_answer_and_creates_nothing(
    api_client, user
):
    first = post(api_client, {"name": "Home"})
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first

    again = post(api_client, {"name": "Home"})
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content  # byte for byte: jsonb had reordered the keys
    assert TaskList.objects.filter(owner=user).count() == 1


@pytest.mark.django_db
def test_the_body_is_compared_as_json_not_as_bytes(api_client, user):
    api_client.post(
        URL,
        b'{"name": "Home", "color": null}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    again = api_client.post(
        URL,
        b'{"color":null,"name":"Home"}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert TaskList.objects.filter(owner=user).count() == 1


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_422_and_creates_nothing(api_client, user):
    post(api_client, {"name": "Home"})
    response = post(api_client, {"name": "Work"})
    assert response.status_code == 422
    assert response["Content-Type"] == PROBLEM
    assert response.json()["title"] == "Unprocessable content"
    assert "Idempotency-Key" in response.json()["detail"]
    assert list(TaskList.objects.filter(owner=user).values_list("name", flat=True)) == ["Home"]


@pytest.mark.django_db
def test_the_same_key_on_another_path_is_422(api_client):
    post(api_client, {"name": "Home"})
    response = post(api_client, {"name": "Home"}, path=URL + "?tasks=delete")
    assert response.status_code == 422


@pytest.mark.django_db
def test_keys_belong_to_one_user(api_client, other_client, user, other_user):
    assert post(api_client, {"name": "Home"}).status_code == 201
    response = post(other_client, {"name": "Home"})
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert TaskList.objects.filter(owner=other_user).count() == 1


@pytest.mark.django_db
def test_a_replay_is_of_ones_own_first_answer_when_two_users_share_a_key(api_client, other_client):
    firsts = {client: post(client, {"name": "Home"}) for client in (other_client, api_client)}
    for client, first in firsts.items():
        again = post(client, {"name": "Home"})
        assert again["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
    assert len({first.json()["id"] for first in firsts.values()}) == 2


@pytest.mark.django_db
def test_without_a_key_every_post_creates(api_client, user):
    post(api_client, {"name": "Home"}, key=None)
    post(api_client, {"name": "Work"}, key=None)
    assert TaskList.objects.filter(owner=user).count() == 2
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9"])
def test_a_key_outside_1_to_255_printable_ascii_characters_is_a_400(api_client, user, key):
    response = post(api_client, {"name": "Home"}, key=key)
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "Idempotency-Key": ["Must be 1 to 255 printable ASCII characters."]
    }
    assert not TaskList.objects.exists()


@pytest.mark.django_db
def test_a_key_of_255_characters_is_fine(api_client):
    assert post(api_client, {"name": "Home"}, key="k" * 255).status_code == 201


@pytest.mark.django_db
def test_a_400_is_kept_and_replayed_and_the_fixed_body_with_the_same_key_is_422(api_client, user):
    bad = post(api_client, {"name": ""})
    assert bad.status_code == 400 and "Idempotent-Replayed" not in bad
    record = IdempotencyRecord.objects.get()
    assert record.response_status == 400
    assert json.loads(record.response_body) == bad.json()

    again = post(api_client, {"name": ""})
    assert again.status_code == 400
    assert again["Idempotent-Replayed"] == "true"
    assert again["Content-Type"] == PROBLEM
    assert again.content == bad.content  # the first answer, its request_id included

    fixed = post(api_client, {"name": "Home"})
    assert fixed.status_code == 422
    assert not TaskList.objects.exists()


@pytest.mark.django_db
def test_a_400_raised_after_a_write_rolls_the_write_back_and_is_kept(api_client):
    first = post(api_client, {"name": "invalid"})
    assert first.status_code == 400
    assert first.json()["errors"] == {"name": ["A 400 after the write."]}
    assert not TaskList.objects.exists()
    assert IdempotencyRecord.objects.get().response_status == 400
    again = post(api_client, {"name": "invalid"})
    assert again.status_code == 400 and again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert not TaskList.objects.exists()


@pytest.mark.django_db
def test_a_4xx_raised_after_a_write_rolls_the_write_back_and_releases_the_key(api_client):
    response = post(api_client, {"name": "conflict"})
    assert response.status_code == 409
    assert not TaskList.objects.exists()
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "transient",
    [
        Conflict("a conflict that passes"),
        PreconditionFailed(),
        exceptions.Throttled(wait=1),
        ConcurrentChange(),
    ],
    ids=["409", "412", "429", "503"],
)
def test_a_transient_answer_is_not_kept_the_retry_runs_and_its_answer_is(
    api_client, monkeypatch, transient
):
    """The first run answers a retryable 4xx or a 5xx: released; the retry runs and answers a
    400, which is kept: a third request gets it replayed and runs nothing."""
    raised = iter([transient, exceptions.ValidationError({"name": ["Now invalid."]})])
    runs = []

    def perform_create(self, serializer):
        runs.append(serializer.validated_data["name"])
        raise next(raised)

    monkeypatch.setattr(ProbeListViewSet, "perform_create", perform_create)
    first = post(api_client, {"name": "Home"})
    assert first.status_code == transient.status_code
    assert not IdempotencyRecord.objects.exists()
    retried = post(api_client, {"name": "Home"})
    assert retried.status_code == 400 and "Idempotent-Replayed" not in retried
    assert retried.json()["request_id"] != first.json()["request_id"]
    again = post(api_client, {"name": "Home"})
    assert again.status_code == 400 and again["Idempotent-Replayed"] == "true"
    assert again.content == retried.content
    assert runs == ["Home", "Home"]  # the third request ran nothing
    assert not TaskList.objects.exists()


@pytest.mark.django_db
def test_a_crash_rolls_the_write_back_and_releases_the_key(api_client):
    api_client.raise_request_exception = False
    response = post(api_client, {"name": "explode"})
    assert response.status_code == 500
    assert not TaskList.objects.exists()
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
def test_an_expired_key_is_ignored(api_client, user):
    post(api_client, {"name": "Home"})
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = post(api_client, {"name": "Work"})
    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert TaskList.objects.filter(owner=user).count() == 2
    record = IdempotencyRecord.objects.get()
    assert json.loads(record.response_body)["name"] == "Work"
    assert record.expires_at > timezone.now() + timedelta(hours=23)


@pytest.mark.django_db
def test_a_key_left_in_progress_by_a_dead_worker_is_taken_over_after_a_while(
    api_client, user, settings
):
    IdempotencyRecord.objects.create(
        owner=user,
        key="key-1",
        fingerprint="whatever",
        created_at=timezone.now() - settings.IDEMPOTENCY_STALE_AFTER - timedelta(seconds=1),
        expires_at=timezone.now() + timedelta(hours=20),
    )
    response = post(api_client, {"name": "Home"})
    assert response.status_code == 201
    assert IdempotencyRecord.objects.get().response_status == 201


@pytest.mark.django_db
def test_a_fresh_key_in_progress_is_a_409(api_client, user):
    first = post(api_client, {"name": "Home"})
    IdempotencyRecord.objects.update(response_status=None, response_body=None)
    response = post(api_client, {"name": "Home"})
    assert first.status_code == 201
    assert response.status_code == 409
    assert response["Content-Type"] == PROBLEM
    assert "still being processed" in response.json()["detail"]
    assert response["Retry-After"] == "1"  # the first will have answered by then


@pytest.mark.django_db
def test_an_idempotent_create_and_its_replay_cost_a_bounded_number_of_queries(
    api_client, django_assert_max_num_queries
):
    # user, insert of the key (savepoint pair), uniqueness check, insert, storing the answer
    with django_assert_max_num_queries(10):
        assert post(api_client, {"name": "Home"}).status_code == 201
    # user, failed insert (in a savepoint), take-over probe, read of the stored answer
    with django_assert_max_num_queries(7):
        assert post(api_client, {"name": "Home"}).status_code == 201


@pytest.mark.django_db(transaction=True)
def test_a_retry_while_the_first_request_is_running_is_409_then_replayed(user):
    """Two real requests on two connections: the first is paused inside its transaction."""
    GATES["slow"] = gate = Gate()
    results = {}

    def first_request() -> None:
        try:
            results["first"] = post(client_for(user), {"name": "slow"})
        finally:
            connections.close_all()

    thread = threading.Thread(target=first_request)
    try:
        thread.start()
        assert gate.entered.wait(timeout=20)
        during = post(client_for(user), {"name": "slow"})
        gate.release.set()
        thread.join(timeout=20)
    finally:
        gate.release.set()
        GATES.pop("slow")

    assert during.status_code == 409
    assert results["first"].status_code == 201
    after = post(client_for(user), {"name": "slow"})
    assert after.status_code == 201 and after["Idempotent-Replayed"] == "true"
    assert after.json() == results["first"].json()
    assert TaskList.objects.filter(owner=user).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_requests_with_one_key_create_once(user):
    """Eight clients race with the same key and body: one creates, the rest get 409 or the
    replay; never a second row, never a 500."""
    GATES["race"] = gate = Gate()
    statuses = []
    barrier = threading.Barrier(8)

    def send() -> None:
        try:
            barrier.wait(timeout=20)
            statuses.append(post(client_for(user), {"name": "race"}).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        assert gate.entered.wait(timeout=20)
        gate.release.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        gate.release.set()
        GATES.pop("race")
    assert sorted(statuses).count(201) >= 1
    assert set(statuses) <= {201, 409}
    assert len(statuses) == 8
    assert TaskList.objects.filter(owner=user).count() == 1


@pytest.mark.django_db
def test_purge_deletes_only_expired_keys(user, other_user):
    now = timezone.now()
    for owner, key, expires in [
        (user, "old", now - timedelta(minutes=1)),
        (other_user, "older", now - timedelta(days=3)),
        (user, "fresh", now + timedelta(hours=1)),
    ]:
        IdempotencyRecord.objects.create(
            owner=owner, key=key, fingerprint="f", created_at=now, expires_at=expires
        )
    out = StringIO()
    call_command("purge_idempotency_keys", stdout=out)
    assert out.getvalue().strip() == "Deleted 2 expired idempotency key(s)."
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]
    quiet = StringIO()
    call_command("purge_idempotency_keys", verbosity=0, stdout=quiet)
    assert quiet.getvalue() == ""  # a cron job's silence


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [900, 940])
def test_a_deeply_nested_body_with_a_key_is_a_400_and_claims_nothing(api_client, user, depth):
    # Such bodies passed the parser and overflowed the fingerprint's json.dumps: a 500.
    body = '{"name": "Home", "extra": ' + "[" * depth + "]" * depth + "}"
    response = api_client.post(
        URL, data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="deep"
    )
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert not IdempotencyRecord.objects.filter(owner=user).exists()
    assert post(api_client, {"name": "Home"}, key="deep").status_code == 201


@pytest.mark.django_db
def test_a_record_kept_before_as_a_parsed_body_still_replays(api_client, user):
    first = post(api_client, {"name": "Home"})
    IdempotencyRecord.objects.update(response_body=first.json())
    again = post(api_client, {"name": "Home"})
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
