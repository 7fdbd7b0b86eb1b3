"""The cron purges (purge_idempotency_keys, flushexpiredtokens, purge_deleted_tasks) delete in
batches that wait for no row lock (todo_project.purge): one statement each waited for the rows
an account deletion holds, which deletes them in another order, and deadlocked with it (review
34c). Here another connection holds one user's rows as an account deletion in progress does
(its DELETE, uncommitted), and a 2 s lock_timeout turns a wait into an error."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.tokens import purge_expired_tokens
from conftest import DEFAULT_PASSWORD
from tasks.models import DeletedTask, IdempotencyRecord
from tasks.sync import DELETIONS_KEPT, purge_deletions
from todo_project import purge
from todo_project.idempotency import purge_expired
from todo_project.tests.helpers import (
    connection_of_its_own,
    statement_timeout,
    statistics_of_an_emptied_table,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch):
    """Batches of 7: the 50 rows of a user take several, the last one partly held."""
    monkeypatch.setattr(purge, "PURGE_BATCH", 7)


LONG_AGO = DELETIONS_KEPT + timedelta(days=1)


def _expired_idempotency_records(owner, count: int) -> None:
    now = timezone.now()
    IdempotencyRecord.objects.bulk_create(
        IdempotencyRecord(
            owner=owner,
            key=uuid.uuid4().hex,
            fingerprint="f" * 64,
            response_status=201,
            response_body="{}",
            created_at=now - timedelta(days=2),
            expires_at=now - timedelta(days=1),
        )
        for _ in range(count)
    )


def _expired_refresh_tokens(owner, count: int) -> None:
    now = timezone.now()
    tokens = OutstandingToken.objects.bulk_create(
        OutstandingToken(
            user=owner,
            jti=uuid.uuid4().hex,
            token="x",
            created_at=now - timedelta(days=9),
            expires_at=now - timedelta(days=2),
        )
        for _ in range(count)
    )
    BlacklistedToken.objects.bulk_create(BlacklistedToken(token=token) for token in tokens)


def _old_deleted_task_ids(owner, count: int) -> None:
    DeletedTask.objects.bulk_create(
        DeletedTask(id=uuid.uuid4(), owner=owner, deleted_at=timezone.now() - LONG_AGO)
        for _ in range(count)
    )


def _purge_while_held(purge, *held_statements, params) -> int:
    """Runs `purge` while another transaction holds what `held_statements` delete (an account
    deletion in progress: user_delete's statements, uncommitted). A 2 s lock_timeout turns a
    wait for those rows into an error instead of a hang (or, in production, a deadlock)."""
    with connection_of_its_own(connection) as other, other.transaction():
        for statement in held_statements:
            other.execute(statement, params)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        try:
            return purge()
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")


# (rows made, the purge, the account deletion's statement: Django's cascade of user_delete,
# tasks.services.owned_data_delete's)
ROWS_PURGED = {
    "purge_idempotency_keys": (
        _expired_idempotency_records,
        purge_expired,
        "DELETE FROM tasks_idempotencyrecord WHERE owner_id = %s",
        IdempotencyRecord,
    ),
    "purge_deleted_tasks": (
        _old_deleted_task_ids,
        purge_deletions,
        "DELETE FROM tasks_deletedtask WHERE owner_id = %s",
        DeletedTask,
    ),
}


@pytest.mark.parametrize("command", list(ROWS_PURGED))
def test_a_purge_does_not_wait_for_an_account_deletion_in_progress(user, other_user, command):
    make_rows, purge_rows, held, model = ROWS_PURGED[command]
    make_rows(user, 50)
    make_rows(other_user, 50)
    assert _purge_while_held(purge_rows, held, params=[other_user.pk]) == 50
    assert not model.objects.exists()  # the held rows: the deletion's, committed


# Which account's tokens come first in the table: with the held ones first (an account whose
# tokens are older), more than a batch of them, a batch that deleted nothing ended the purge,
# with 0 (review 34d).
@pytest.mark.parametrize("held_first", [False, True])
def test_flushexpiredtokens_does_not_wait_for_an_account_deletion_in_progress(
    user, other_user, held_first
):
    for owner in (other_user, user) if held_first else (user, other_user):
        _expired_refresh_tokens(owner, 50)

    # accounts.services.user_delete's first statement
    deleted = _purge_while_held(
        purge_expired_tokens,
        "DELETE FROM token_blacklist_blacklistedtoken WHERE token_id IN"
        " (SELECT id FROM token_blacklist_outstandingtoken WHERE user_id = %s)",
        params=[other_user.pk],
    )

    assert deleted == 50
    assert not OutstandingToken.objects.filter(user=user).exists()
    # A token whose entry was held stayed with it: the deletion took the entries only.
    assert OutstandingToken.objects.filter(user=other_user).count() == 50
    assert not BlacklistedToken.objects.exists()
    assert purge_expired_tokens() == 50


def test_flushexpiredtokens_keeps_a_blacklist_entry_while_its_token_is_still_accepted(
    user, anon_client
):
    """simplejwt accepts a token LEEWAY past its `exp` (replicas' clock skew): a rotated refresh
    token's entry purged at its `exp` let it be used again meanwhile (review 35e)."""
    pair = anon_client.post(
        "/api/v1/auth/token/", {"email": user.email, "password": DEFAULT_PASSWORD}
    ).json()
    assert (
        anon_client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]}).status_code
        == 200
    )
    rotated = OutstandingToken.objects.get(token=pair["refresh"])
    leeway = api_settings.LEEWAY
    assert leeway >= timedelta(seconds=20)
    # Expired 10 s ago: still accepted for the rest of the leeway, were it not blacklisted.
    OutstandingToken.objects.filter(pk=rotated.pk).update(
        expires_at=timezone.now() - timedelta(seconds=10)
    )
    _expired_refresh_tokens(user, 3)  # expired two days ago
    assert purge_expired_tokens() == 3
    assert BlacklistedToken.objects.filter(token=rotated).exists()


@pytest.mark.django_db(transaction=True)
def test_a_purge_after_one_that_emptied_the_table_reads_each_batch_by_tuple(user, monkeypatch):
    # The statistics the previous night's purge left: pages, no rows. Every index looked alike
    # to the planner, and deleted_task_changes, with the id as a later column, was walked whole
    # per id: 10.5 s a batch of 5,000 (review 36f).
    from tasks.sync import purge_deletions

    monkeypatch.setattr(purge, "PURGE_BATCH", 5_000)  # as in production, not this module's 7
    insert_old = (
        "INSERT INTO tasks_deletedtask (id, owner_id, deleted_at) SELECT gen_random_uuid(), %s,"
        " now() - interval '400 days' FROM generate_series(1, 131070)"
    )
    statistics_of_an_emptied_table(connection, insert_old, [user.pk], "tasks_deletedtask")
    with connection.cursor() as cursor:
        cursor.execute(insert_old, [user.pk])
    with statement_timeout(connection, "1s"):  # a batch takes ~20 ms (2 s by the key)
        assert purge_deletions() == 131070
    assert not DeletedTask.objects.exists()
