"""Writes of a user that race with other writes of the same user, on real PostgreSQL
transactions (each request on its own connection, as two gunicorn workers would be).

Most tests let a concurrent request commit at the worst moment of another: after the request's
authentication has read the user row, before its write. Authentication's read is the row the
request used to save whole, so whatever committed in between was written over: a password
change or a deactivation undone (and its revoked tokens alive again), a deleted account
re-created.
"""

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.messages import get_messages
from django.db import connection
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import user_deactivate, user_set_password, user_sign_out_everywhere
from accounts.tests.helpers import assert_problem, bearer, sign_in
from accounts.tokens import reset_link_tokens
from conftest import DEFAULT_PASSWORD, client_for
from tasks.models import IdempotencyRecord, Tag, Task, TaskList
from todo_project.tests.helpers import (
    connection_of_its_own,
    start_in_thread,
    wait_for_lock_waiters,
)

NEW_PASSWORD = "a-brand-new-passphrase"
ME = "/api/v1/auth/me/"

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def committed_after_authentication(concurrent: Callable[[], object]) -> Iterator[list]:
    """Runs `concurrent` to its commit, on a connection of its own, right after the first
    statement of this thread's next request (its authentication's read of the user); what it
    returned lands in the yielded list."""
    results: list = []

    def after_first_statement(execute, sql, params, many, context):
        outcome = execute(sql, params, many, context)
        if not results:
            assert '"accounts_user"' in sql, sql  # not the request's authentication: test bug
            results.append(start_in_thread(concurrent)())
        return outcome

    with connection.execute_wrapper(after_first_statement):
        yield results
    assert results, "the concurrent write never ran"


def change_password(client: APIClient) -> Callable[[], int]:
    def run() -> int:
        return client.post(
            "/api/v1/auth/password/",
            {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        ).status_code

    return run


def confirm_reset(user: User) -> Callable[[], int]:
    link = {
        "uid": urlsafe_base64_encode(force_bytes(user.pk)),
        "token": reset_link_tokens.make_token(User.objects.get(pk=user.pk)),  # as mailed
    }

    def run() -> int:
        return (
            APIClient()
            .post(
                "/api/v1/auth/password/reset/confirm/",
                {**link, "new_password": NEW_PASSWORD},
                format="json",
            )
            .status_code
        )

    return run


def by_service(service, user: User) -> Callable[[], None]:
    return lambda: service(user=User.objects.get(pk=user.pk))


def delete_account(client: APIClient) -> Callable[[], int]:
    return lambda: client.delete(ME, {"password": DEFAULT_PASSWORD}).status_code


# --- PATCH me/ against a revocation, another PATCH, the account's deletion --------------------


@pytest.mark.parametrize("revocation", ["password", "reset", "deactivate", "sign_out"])
def test_a_patch_of_me_never_undoes_a_revocation_committed_before_its_write(user, revocation):
    # The PATCH saved the row authentication had read, whole: the old password signed in again,
    # the new one was refused, the account was active again, and every token the revocation
    # had ended worked again (audit-concurrency #1). Now its token died before its write: the
    # PATCH is refused as the same request sent a moment later would be.
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    concurrent = {
        "password": lambda: change_password(client_for(user)),
        "reset": lambda: confirm_reset(user),
        "deactivate": lambda: by_service(user_deactivate, user),
        "sign_out": lambda: by_service(user_sign_out_everywhere, user),
    }[revocation]()

    with committed_after_authentication(concurrent) as results:
        response = bearer(pair["access"]).patch(ME, {"display_name": "Stale"})

    assert results[0] in (204, None)
    assert_problem(response, 401)
    row = User.objects.get(pk=user.pk)
    assert (row.display_name, row.token_generation) == ("Alice", 1)
    assert row.is_active is (revocation != "deactivate")
    assert row.check_password(
        NEW_PASSWORD if revocation in ("password", "reset") else DEFAULT_PASSWORD
    )
    assert_problem(bearer(pair["access"]).get(ME), 401)
    refresh = APIClient().post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]})
    assert_problem(refresh, 401)


def test_two_patches_of_different_fields_keep_both_changes(user):
    # Each saved the whole row: the one that wrote last put back the other's field as it had
    # read it (37 of 40 pairs lost a change in the audit, #4).
    mine, theirs = client_for(user), client_for(user)

    with committed_after_authentication(
        lambda: theirs.patch(ME, {"timezone": "Asia/Tokyo"}).status_code
    ) as results:
        response = mine.patch(ME, {"display_name": "Alice A."})

    assert results == [200]
    assert response.status_code == 200
    # The answer is the row as written: the other change included.
    assert (response.json()["display_name"], response.json()["timezone"]) == (
        "Alice A.",
        "Asia/Tokyo",
    )
    row = User.objects.get(pk=user.pk)
    assert (row.display_name, row.timezone) == ("Alice A.", "Asia/Tokyo")


def test_a_patch_of_me_never_brings_back_an_account_deleted_before_its_write(user):
    # Django's save() INSERTs when its UPDATE matches no row: the deleted account was back,
    # same id, email and password, its old tokens working again (audit-concurrency #2).
    Task.objects.create(owner=user, title="Mine", position=1024)
    patching, deleting = client_for(user), client_for(user)

    with committed_after_authentication(delete_account(deleting)) as results:
        response = patching.patch(ME, {"display_name": "Zombie"})

    assert results == [204]
    assert_problem(response, 401)  # what any request of a deleted account gets
    assert not User.objects.filter(pk=user.pk).exists()
    assert not Task.objects.exists()
    refused = APIClient().post(
        "/api/v1/auth/token/", {"email": user.email, "password": DEFAULT_PASSWORD}
    )
    assert_problem(refused, 401)


def test_a_patch_waiting_for_the_deletion_of_its_account_is_a_401(user):
    # The other order, the audit's usual one: the deletion holds the row when the PATCH comes
    # to write it. The PATCH's UPDATE waited, matched no row once the deletion committed, and
    # Django's save() INSERTed the account back.
    row_deleted, go_on = threading.Event(), threading.Event()

    def pause_before_commit(execute, sql, params, many, context):
        outcome = execute(sql, params, many, context)
        if sql.startswith('DELETE FROM "accounts_user"'):
            row_deleted.set()
            go_on.wait(timeout=10)
        return outcome

    def delete() -> int:
        with connection.execute_wrapper(pause_before_commit):
            return delete_account(client_for(user))()

    patching = client_for(user)
    deleting = start_in_thread(delete)
    try:
        assert row_deleted.wait(timeout=10)
        patch = start_in_thread(lambda: patching.patch(ME, {"display_name": "Zombie"}))
        assert wait_for_lock_waiters(connection, 1)  # the PATCH waits for the deleted row
    finally:
        go_on.set()

    assert deleting() == 204
    assert_problem(patch(), 401)
    assert not User.objects.filter(pk=user.pk).exists()


# --- password change and account deletion against each other ---------------------------------


def test_a_password_change_after_the_account_was_deleted_is_a_401_not_a_500(user):
    # Its save(update_fields=...) matched no row: "Save with update_fields did not affect any
    # rows", a DatabaseError, a 500.
    changing = client_for(user)  # (its token is written here, not inside the race)
    with committed_after_authentication(delete_account(client_for(user))) as results:
        response = changing.post(
            "/api/v1/auth/password/",
            {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        )

    assert results == [204]
    assert_problem(response, 401)
    assert not User.objects.filter(pk=user.pk).exists()


def test_deleting_the_account_with_a_token_a_password_change_ended_meanwhile_is_a_401(user):
    # The deletion was confirmed with the password as its request read it, and went through
    # after the password had changed and the request's token had died with it.
    deleting = client_for(user)
    with committed_after_authentication(change_password(client_for(user))) as results:
        response = deleting.delete(ME, {"password": DEFAULT_PASSWORD})

    assert results == [204]
    assert_problem(response, 401)
    assert User.objects.get(pk=user.pk).check_password(NEW_PASSWORD)


# --- DELETE me/ against the user's other clients ----------------------------------------------


def test_deleting_the_account_while_a_tag_link_commits_drops_the_link_too(user, caplog):
    # The deletion's statement for the tasks read which tag links to drop from its snapshot; a
    # link another client of the user committed while the statement waited for the task's lock
    # was not in it, and the COMMIT failed on the foreign key (23503): a 503 (audit #10), then
    # run again (todo_project.retry). The tasks are locked by a statement of their own now, and
    # the delete after it sees the link (review 37a).
    caplog.set_level(logging.INFO, logger="todo.retry")
    task = Task.objects.create(owner=user, title="Tagged meanwhile", position=1024)
    tag = Tag.objects.create(owner=user, name="errand")
    client = client_for(user)
    other = connection_of_its_own(connection)
    try:
        other.autocommit = False
        other.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR UPDATE", [task.pk])
        deleting = start_in_thread(lambda: client.delete(ME, {"password": DEFAULT_PASSWORD}))
        assert wait_for_lock_waiters(connection, 1)  # the deletion waits for the task
        other.execute(
            "INSERT INTO tasks_task_tags (task_id, tag_id) VALUES (%s, %s)", [task.pk, tag.pk]
        )
        other.commit()
    finally:
        other.close()

    response = deleting()

    assert response.status_code == 204, response.content
    assert "SQLSTATE 23503" not in caplog.text  # no failure, nothing run again
    assert not User.objects.filter(pk=user.pk).exists()
    assert not Task.objects.exists() and not Tag.objects.exists()


@pytest.mark.parametrize("url", ["/api/v1/tasks/", "/api/v1/lists/"])
def test_a_create_whose_account_is_deleted_meanwhile_is_a_401_at_once(user, url, caplog):
    # Its INSERT failed on the owner's foreign key at the COMMIT, and retry.py ran it again
    # twice, each time the same (the request's user is not read again): a 503 "Retry the
    # request", which could only ever get this 401 (review 30g #4).
    caplog.set_level(logging.INFO, logger="todo.retry")
    creating, deleting = client_for(user), client_for(user)

    with committed_after_authentication(delete_account(deleting)) as results:
        response = creating.post(url, {"title": "Pay rent", "name": "Home"}, format="json")

    assert results == [204]
    assert_problem(response, 401)
    assert "running it again" not in caplog.text
    assert not Task.objects.exists() and not TaskList.objects.exists()


def test_an_idempotent_create_whose_account_is_deleted_meanwhile_is_a_401_not_a_409(user):
    # The key's record failed on the owner's foreign key at the claim's COMMIT, read as "the
    # key is taken": a 409 "still being processed" for a key nobody had sent (review 30g #3).
    creating, deleting = client_for(user), client_for(user)

    with committed_after_authentication(delete_account(deleting)) as results:
        response = creating.post(
            "/api/v1/tasks/", {"title": "Pay rent"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
        )

    assert results == [204]
    assert_problem(response, 401)
    assert not Task.objects.exists() and not IdempotencyRecord.objects.exists()


# --- the services and the admin on a row that changed or went since it was read ---------------


@pytest.mark.django_db  # no other connection: the test's transaction will do
def test_a_hash_upgrade_never_sets_back_a_password_changed_since_the_row_was_read(user):
    # A password checked with an older hash is re-hashed and saved. Django saved it over
    # whatever the row held: a sign-in (or password check) that read the row just before a
    # password change committed made the old password work again, the new one not.
    User.objects.filter(pk=user.pk).update(
        password=make_password(DEFAULT_PASSWORD, hasher="pbkdf2_sha256")
    )
    read_before = User.objects.get(pk=user.pk)
    user_set_password(user=User.objects.get(pk=user.pk), password=NEW_PASSWORD)

    assert read_before.check_password(DEFAULT_PASSWORD)  # right as it was read

    row = User.objects.get(pk=user.pk)
    assert row.check_password(NEW_PASSWORD)
    assert not row.check_password(DEFAULT_PASSWORD)


@pytest.mark.django_db  # no other connection: the test's transaction will do
def test_a_hash_upgrade_of_a_deleted_account_is_no_error_and_brings_nothing_back(user):
    User.objects.filter(pk=user.pk).update(
        password=make_password(DEFAULT_PASSWORD, hasher="pbkdf2_sha256")
    )
    read_before = User.objects.get(pk=user.pk)
    User.objects.filter(pk=user.pk).delete()

    assert read_before.check_password(DEFAULT_PASSWORD)  # was a DatabaseError
    assert not User.objects.exists()


@pytest.mark.django_db  # no other connection: the test's transaction will do
def test_a_hash_upgrade_is_still_saved(user):
    User.objects.filter(pk=user.pk).update(
        password=make_password(DEFAULT_PASSWORD, hasher="pbkdf2_sha256")
    )
    assert User.objects.get(pk=user.pk).check_password(DEFAULT_PASSWORD)
    assert not User.objects.get(pk=user.pk).password.startswith("pbkdf2_sha256$")


@pytest.mark.django_db  # no other connection: the test's transaction will do
@pytest.mark.parametrize("service", [user_deactivate, user_sign_out_everywhere])
def test_revoking_a_deleted_account_says_so_and_brings_nothing_back(user, service):
    read_before = User.objects.get(pk=user.pk)
    User.objects.filter(pk=user.pk).delete()

    with pytest.raises(User.DoesNotExist):  # was a DatabaseError (a 500 in the admin)
        service(user=read_before)
    assert not User.objects.exists()


@pytest.mark.django_db  # no other connection: the test's transaction will do
@pytest.mark.parametrize(
    ("name", "not_done"),
    [("deactivate", "Not deactivated"), ("sign_out_everywhere", "Not signed out")],
)
def test_an_admin_action_on_a_user_deleted_meanwhile_names_it_and_goes_on(
    support_client, make_user, monkeypatch, name, not_done
):
    from accounts import admin as accounts_admin

    gone, kept = make_user(email="gone@example.com"), make_user(email="kept@example.com")
    attribute = {"deactivate": "user_deactivate", "sign_out_everywhere": "user_sign_out_everywhere"}
    service = getattr(accounts_admin, attribute[name])

    def deleted_just_before(*, user: User) -> None:
        if user.pk == gone.pk:
            User.objects.filter(pk=gone.pk).delete()  # by another admin, a moment before
        service(user=user)

    monkeypatch.setattr(accounts_admin, attribute[name], deleted_just_before)
    response = support_client.post(
        "/admin/accounts/user/",
        {"action": name, "_selected_action": [str(gone.pk), str(kept.pk)], "post": "yes"},
    )

    assert response.status_code == 302
    notes = [str(m) for m in get_messages(response.wsgi_request)]
    assert f"{not_done} (failed, see the log): gone@example.com." in notes
    assert not User.objects.filter(pk=gone.pk).exists()
    assert User.objects.get(pk=kept.pk).token_generation == 1


@pytest.mark.django_db  # no other connection: the test's transaction will do
def test_the_me_serializer_refuses_a_whole_row_save(user):
    from accounts.serializers import UserSerializer

    serializer = UserSerializer(user, data={"display_name": "x"}, partial=True)
    assert serializer.is_valid()
    with pytest.raises(NotImplementedError):
        serializer.save()
