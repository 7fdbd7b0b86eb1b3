"""The user admin: what support staff can see and do, and what they cannot."""

import json
import logging
import re
import smtplib
import socket
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth import HASH_SESSION_KEY
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.core.mail.backends import locmem
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from rest_framework.exceptions import PermissionDenied
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts.admin import UserAdmin
from accounts.mail import wait_until_idle
from accounts.models import User
from accounts.serializers import INVALID_RESET_LINK
from accounts.services import (
    REDACTED_MESSAGE,
    REDACTED_REPR,
    STAFF_NOT_DELETED,
    user_deactivate,
    user_delete,
    user_set_password,
)
from accounts.tests.helpers import assert_problem, bearer, give_colliding_data, sent_mail, sign_in
from accounts.tests.test_views import reset_link_params
from accounts.tokens import token_pair_for
from conftest import DEFAULT_PASSWORD, client_for
from tasks.models import Tag, Task, TaskList
from todo_project.fields import CONTROL_CHARACTERS_MESSAGE

USERS_URL = "/admin/accounts/user/"


def make_tasks(owner: User, count: int, *, completed: int = 0) -> list[Task]:
    now = timezone.now()
    return Task.objects.bulk_create(
        Task(
            owner=owner,
            title=f"Task {i}",
            position=(i + 1) * 1024,
            completed=i < completed,
            completed_at=now if i < completed else None,
        )
        for i in range(count)
    )


def action(client, name: str, *users: User, url: str = USERS_URL, confirmed: bool = True):
    """The action on these users, confirmed on its confirmation page (`post=yes`) unless not."""
    form = {"action": name, "_selected_action": [str(u.pk) for u in users]}
    return client.post(url, {**form, "post": "yes"} if confirmed else form)


def tokens_still_work(pair: dict) -> tuple[bool, bool]:
    """Whether the API still takes the pair's access token, and then its refresh token."""
    access = bearer(pair["access"]).get("/api/v1/auth/me/").status_code == 200
    refresh = APIClient().post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]})
    return access, refresh.status_code == 200


def opened_version(client, user: User) -> str:
    """The hidden version of `user`'s change form as `client` opens it (the row as it is now)."""
    page = client.get(f"{USERS_URL}{user.pk}/change/")
    return page.context["adminform"].form["opened_version"].value()


def superuser_form(client, user: User, **changes) -> dict:
    """The superuser's change form of `user` as `client` opens it and posts it unchanged, with
    `changes` on top."""
    return {
        "opened_version": opened_version(client, user),
        "email": user.email,
        "display_name": user.display_name,
        "timezone": user.timezone,
        "is_active": "on" if user.is_active else "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        **changes,
    }


# --- The Support group ------------------------------------------------------------------------


@pytest.mark.django_db
def test_support_group_may_view_and_change_users_lists_tasks_and_tags_and_nothing_else():
    group = Group.objects.get(name="Support")

    granted = set(group.permissions.values_list("content_type__app_label", "codename"))

    assert granted == {
        ("accounts", "view_user"),
        ("accounts", "change_user"),
        ("tasks", "view_tasklist"),
        ("tasks", "change_tasklist"),
        ("tasks", "view_task"),
        ("tasks", "change_task"),
        ("tasks", "view_tag"),
        ("tasks", "change_tag"),
    }
    # The migration named them as Django does: no duplicates next to post_migrate's own.
    assert Permission.objects.filter(codename="change_tasklist").count() == 1


@pytest.mark.django_db
def test_support_cannot_open_groups_or_permissions(support_client):
    assert support_client.get("/admin/auth/group/").status_code == 403
    assert support_client.get("/admin/auth/group/add/").status_code == 403


# --- Users changelist -------------------------------------------------------------------------


@pytest.mark.django_db
def test_users_changelist_shows_open_and_total_task_counts_linking_to_the_tasks(
    support_client, user
):
    make_tasks(user, 3, completed=1)

    response = support_client.get(USERS_URL, {"q": "alice@"})

    html = response.content.decode()
    assert response.status_code == 200
    assert f'<a href="/admin/tasks/task/?owner__id__exact={user.pk}">2 / 3</a>' in html
    for column in ("Email", "Display name", "Is active", "Is staff", "Date joined", "Last login"):
        assert column in html


@pytest.mark.django_db
@pytest.mark.parametrize("rows", [10, 100])
def test_users_changelist_runs_a_fixed_number_of_queries_whatever_the_page_size(
    support_client, make_user, rows, django_assert_max_num_queries
):
    for i in range(rows - 1):  # with support@ itself: `rows` users on the page
        make_tasks(make_user(email=f"user{i:03}@example.com"), 2, completed=1)

    with django_assert_max_num_queries(6):
        response = support_client.get(USERS_URL)  # 100 a page

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == rows


@pytest.mark.django_db
def test_users_are_found_by_email_or_display_name(support_client, user, other_user):
    by_email = support_client.get(USERS_URL, {"q": "mallory@exa"}).context["cl"].result_list
    by_name = support_client.get(USERS_URL, {"q": "alic"}).context["cl"].result_list

    assert [u.email for u in by_email] == ["mallory@example.com"]
    assert [u.email for u in by_name] == ["alice@example.com"]


@pytest.mark.django_db
def test_users_are_filtered_by_active_staff_and_date_joined(support_client, make_user):
    make_user(email="gone@example.com", is_active=False)
    make_user(email="old@example.com", date_joined=timezone.now() - timedelta(days=400))

    def emails(**params):
        result = support_client.get(USERS_URL, params).context["cl"].result_list
        return [u.email for u in result]

    assert emails(is_active__exact="0") == ["gone@example.com"]
    assert emails(is_staff__exact="1") == ["support@example.com"]
    now = timezone.now()
    past_7_days = {
        "date_joined__gte": (now - timedelta(days=7)).isoformat(),
        "date_joined__lt": (now + timedelta(days=1)).isoformat(),
    }
    assert "old@example.com" not in emails(**past_7_days)
    assert "gone@example.com" in emails(**past_7_days)


@pytest.mark.django_db
def test_the_user_page_links_to_their_lists_and_tasks(support_client, user):
    make_tasks(user, 2)
    TaskList.objects.create(owner=user, name="Home")

    html = support_client.get(f"{USERS_URL}{user.pk}/change/").content.decode()

    assert f'<a href="/admin/tasks/tasklist/?owner__id__exact={user.pk}">1 list</a>' in html
    assert f'<a href="/admin/tasks/task/?owner__id__exact={user.pk}">2 tasks, 2 open</a>' in html
    assert f'href="/admin/accounts/user/{user.pk}/export/"' in html


# --- What support may not do ------------------------------------------------------------------


@pytest.mark.django_db
def test_support_does_not_see_access_fields_nor_the_password_and_cannot_edit_the_email(
    support_client, user
):
    page = support_client.get(f"{USERS_URL}{user.pk}/change/")

    assert set(page.context["adminform"].form.fields) == {
        "display_name",
        "timezone",
        "is_active",
        "opened_version",
    }
    assert "alice@example.com" in page.content.decode()  # shown, read-only


@pytest.mark.django_db
def test_a_forged_post_by_support_cannot_change_the_email(
    support_client, user, mailoutbox, settings
):
    # The takeover: point the account at your own address, then send it a password reset.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    pair = token_pair_for(user)

    response = support_client.post(
        f"{USERS_URL}{user.pk}/change/",
        {
            "opened_version": opened_version(support_client, user),
            "email": "attacker@example.com",
            "display_name": "Alice",
            "timezone": "UTC",
            "is_active": "on",
        },
    )
    action(support_client, "send_password_reset", user)

    assert response.status_code == 302
    user.refresh_from_db()
    assert (user.email, user.token_generation) == ("alice@example.com", 0)
    assert [m.to for m in mailoutbox] == [["alice@example.com"]]
    assert tokens_still_work(pair) == (True, True)


@pytest.mark.django_db
def test_a_display_name_is_one_line_in_the_admin_too_but_one_stored_before_may_stay(
    support_client, user
):
    def save(display_name: str, timezone: str = "UTC"):
        return support_client.post(
            f"{USERS_URL}{user.pk}/change/",
            {
                "opened_version": opened_version(support_client, user),
                "display_name": display_name,
                "timezone": timezone,
                "is_active": "on",
            },
        )

    refused = save("Al\nice")
    assert refused.context["adminform"].form.errors == {
        "display_name": [CONTROL_CHARACTERS_MESSAGE]
    }
    User.objects.filter(pk=user.pk).update(display_name="Al\tice")
    assert save("Al\tice", timezone="GMT").status_code == 302
    user.refresh_from_db()
    assert (user.display_name, user.timezone) == ("Al\tice", "GMT")
    # A line break, shown in a textarea, which posts it as CRLF: kept as stored.
    User.objects.filter(pk=user.pk).update(display_name="Al\nice")
    assert save("Al\r\nice", timezone="UTC").status_code == 302
    user.refresh_from_db()
    assert (user.display_name, user.timezone) == ("Al\nice", "UTC")


@pytest.mark.django_db
def test_a_forged_post_by_support_cannot_make_anyone_staff_or_superuser(support_client, user):
    support = Group.objects.get(name="Support")
    any_permission = Permission.objects.get(codename="delete_user")

    response = support_client.post(
        f"{USERS_URL}{user.pk}/change/",
        {
            "opened_version": opened_version(support_client, user),
            "email": "alice@example.com",
            "display_name": "Alice B.",
            "timezone": "UTC",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "groups": [support.pk],
            "user_permissions": [any_permission.pk],
            "password": "!",
        },
    )

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.display_name == "Alice B."  # the form did save...
    assert (user.is_staff, user.is_superuser) == (False, False)  # ...but none of the rest
    assert not user.groups.exists()
    assert not user.user_permissions.exists()
    assert user.check_password("correct-horse-battery-staple")


@pytest.mark.django_db
def test_support_can_only_view_a_staff_account(support_client, make_user):
    colleague = make_user(email="colleague@example.com", is_staff=True)

    page = support_client.get(f"{USERS_URL}{colleague.pk}/change/")
    post = support_client.post(
        f"{USERS_URL}{colleague.pk}/change/",
        {"email": "attacker@example.com", "timezone": "UTC", "is_active": "on"},
    )

    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert post.status_code == 403
    colleague.refresh_from_db()
    assert colleague.email == "colleague@example.com"


@pytest.mark.django_db
def test_support_cannot_set_a_password_nor_delete_nor_add_users(support_client, user):
    assert support_client.get(f"{USERS_URL}{user.pk}/password/").status_code == 403
    assert support_client.post(f"{USERS_URL}{user.pk}/delete/", {"post": "yes"}).status_code == 403
    assert support_client.get(f"{USERS_URL}add/").status_code == 403
    actions = support_client.get(USERS_URL).context["action_form"].fields["action"].choices
    assert [name for name, _ in actions] == [
        "",
        "deactivate",
        "sign_out_everywhere",
        "send_password_reset",
        "export_data",
    ]
    assert User.objects.filter(pk=user.pk).exists()


@pytest.mark.django_db
def test_a_superuser_still_sees_and_sets_access_fields(admin_client, user):
    support = Group.objects.get(name="Support")
    form = admin_client.get(f"{USERS_URL}{user.pk}/change/").context["adminform"].form
    assert {"is_staff", "is_superuser", "groups", "user_permissions", "password"} <= set(
        form.fields
    )

    admin_client.post(
        f"{USERS_URL}{user.pk}/change/",
        {
            "opened_version": opened_version(admin_client, user),
            "email": "alice@example.com",
            "timezone": "UTC",
            "is_active": "on",
            "is_staff": "on",
            "groups": [support.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )

    user.refresh_from_db()
    assert user.is_staff
    assert list(user.groups.all()) == [support]


@pytest.mark.django_db
def test_a_superuser_changing_an_email_ends_the_users_sessions_and_logs_both_addresses(
    admin_client, user
):
    pair = token_pair_for(user)

    response = admin_client.post(
        f"{USERS_URL}{user.pk}/change/",
        superuser_form(admin_client, user, email="Alice.New@Example.com"),
    )

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.email == "alice.new@example.com"
    assert tokens_still_work(pair) == (False, False)
    entry = LogEntry.objects.get(object_id=str(user.pk))
    assert entry.get_change_message() == (
        "Changed Email (from alice@example.com to alice.new@example.com)."
    )


@pytest.mark.django_db
def test_the_history_says_which_way_each_flag_went(admin_client, user):
    # Django's own message, "Changed Is active.", reads the same for both directions.
    user.is_active = False
    user.save(update_fields=["is_active"])

    admin_client.post(
        f"{USERS_URL}{user.pk}/change/",
        superuser_form(admin_client, user, is_active="on", is_staff="on", display_name="Al"),
    )
    admin_client.post(
        f"{USERS_URL}{user.pk}/change/",
        superuser_form(admin_client, User.objects.get(pk=user.pk), is_active=""),
    )

    assert [e.get_change_message() for e in LogEntry.objects.order_by("pk")] == [
        (
            "Changed Display name (from Alice to Al), Is active (from no to yes) and Is staff "
            "(from no to yes)."
        ),
        "Changed Is active (from yes to no) and Is staff (from yes to no).",
    ]


@pytest.mark.django_db
def test_the_previous_address_hears_of_an_email_change_once_it_is_committed(
    admin_client, user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        admin_client.post(
            f"{USERS_URL}{user.pk}/change/",
            superuser_form(admin_client, user, email="alice.new@example.com"),
        )
        user.refresh_from_db()
        admin_client.post(
            f"{USERS_URL}{user.pk}/change/", superuser_form(admin_client, user, display_name="Al")
        )
        assert sent_mail() == []  # not before the commit

    assert len(callbacks) == 1  # the second save left the email alone
    [notice] = sent_mail()
    assert notice.to == ["alice@example.com"]
    assert "from alice@example.com to alice.new@example.com" in notice.body


@pytest.mark.django_db(transaction=True)  # the commit, and the notice after it, in the request
def test_an_email_change_answers_at_once_when_the_notice_cannot_be_sent(
    admin_client, user, settings, caplog
):
    # Sent in the request after the commit, a notice the mail server refused was a 500 for a
    # change already made, and the notice was lost without a word in the log.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once the probe is closed
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, False
    caplog.set_level(logging.ERROR, logger="todo.mail")

    response = admin_client.post(
        f"{USERS_URL}{user.pk}/change/",
        superuser_form(admin_client, user, email="alice.new@example.com"),
    )

    assert response.status_code == 302
    assert User.objects.get(pk=user.pk).email == "alice.new@example.com"
    wait_until_idle()
    [record] = [record for record in caplog.records if record.name == "todo.mail"]
    assert record.getMessage().startswith(
        "mail not sent: The email address of your Todo account was changed: "
        "ConnectionRefusedError: "
    )


@pytest.mark.django_db
def test_an_email_changed_only_in_letter_case_or_spaces_is_no_change(
    admin_client, user, django_capture_on_commit_callbacks
):
    # The address is stored lower-cased: "changed" from x to x, it revoked every token and
    # mailed the user a notice of a change that was none.
    pair = token_pair_for(user)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"{USERS_URL}{user.pk}/change/",
            superuser_form(admin_client, user, email=" Alice@EXAMPLE.com "),
        )

    assert response.status_code == 302
    user.refresh_from_db()
    assert (user.email, user.token_generation) == ("alice@example.com", 0)
    assert tokens_still_work(pair) == (True, True)
    assert sent_mail() == []
    assert LogEntry.objects.get().get_change_message() == "No fields changed."


STALE = (
    "This user has changed since you opened it: reload the page to see the change, then make "
    "yours again."
)


@pytest.mark.django_db
@pytest.mark.parametrize("client_fixture", ["admin_client", "support_client"])
def test_a_stale_user_form_is_refused_and_keeps_the_changes_made_since(
    request, client_fixture, user, api_client, support_client
):
    # Django compares a POST with the row as the POST reads it: every value changed since the
    # form was opened looked changed, and was written back. The account was active again, the
    # user's own edits undone.
    client = request.getfixturevalue(client_fixture)
    url = f"{USERS_URL}{user.pk}/change/"
    opened = superuser_form(client, user)
    api_client.patch(
        "/api/v1/auth/me/", {"timezone": "Europe/Paris", "display_name": "Mine"}, format="json"
    )
    action(support_client, "deactivate", user)

    stale = client.post(url, opened)

    assert stale.status_code == 200
    assert stale.context["adminform"].form.errors == {"__all__": [STALE]}
    user.refresh_from_db()
    assert (user.is_active, user.timezone, user.display_name) == (False, "Europe/Paris", "Mine")
    assert [e.change_message for e in LogEntry.objects.all()] == [
        "Deactivated the account (admin action)."
    ]
    # Reloaded, the form saves on top of the changes made since.
    fresh = client.post(url, superuser_form(client, user, display_name="Yours"))
    assert fresh.status_code == 302
    user.refresh_from_db()
    assert (user.is_active, user.timezone, user.display_name) == (False, "Europe/Paris", "Yours")


@pytest.mark.django_db
def test_a_stale_superuser_form_keeps_the_groups_given_since(admin_client, user):
    # Groups and permissions are values of the form too: saved, it took the group away again.
    opened = superuser_form(admin_client, user)
    user.groups.add(Group.objects.get(name="Support"))

    stale = admin_client.post(f"{USERS_URL}{user.pk}/change/", opened)

    assert stale.status_code == 200
    assert stale.context["adminform"].form.errors == {"__all__": [STALE]}
    assert list(user.groups.values_list("name", flat=True)) == ["Support"]


@pytest.mark.django_db
def test_a_change_form_save_that_leaves_email_and_active_alone_keeps_the_tokens(admin_client, user):
    pair = token_pair_for(user)

    admin_client.post(
        f"{USERS_URL}{user.pk}/change/", superuser_form(admin_client, user, display_name="Al")
    )

    user.refresh_from_db()
    assert (user.display_name, user.token_generation) == ("Al", 0)
    assert tokens_still_work(pair) == (True, True)


@pytest.fixture
def user_writes_after_the_admin_reads(monkeypatch, user):
    """Lets `write(user_id)` commit right after the admin's POST read the user: what the user
    does through the API in the milliseconds between the admin's read and its save."""
    writes = []
    read = UserAdmin.get_object

    def read_then_write(self, request, object_id, from_field=None):
        found = read(self, request, object_id, from_field)
        if request.method == "POST":
            for write in writes:
                write(user.pk)
        return found

    monkeypatch.setattr(UserAdmin, "get_object", read_then_write)
    return writes.append


def change_password_and_sign_in(user_id) -> None:
    user_set_password(user=User.objects.get(pk=user_id), password="a-brand-new-passphrase")
    User.objects.filter(pk=user_id).update(last_login=SIGNED_IN_AT)


SIGNED_IN_AT = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)


@pytest.mark.django_db
@pytest.mark.parametrize("client_fixture", ["support_client", "admin_client"])
def test_a_change_form_save_writes_only_what_it_changed(
    request, client_fixture, user, user_writes_after_the_admin_reads
):
    # A full save wrote back the password and token generation as the POST read them: the
    # user's new password stopped working, the old one worked again, and so did the tokens the
    # password change had revoked.
    user_writes_after_the_admin_reads(change_password_and_sign_in)
    client = request.getfixturevalue(client_fixture)

    response = client.post(
        f"{USERS_URL}{user.pk}/change/", superuser_form(client, user, display_name="Al")
    )

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.display_name == "Al"
    assert user.check_password("a-brand-new-passphrase")
    assert (user.token_generation, user.last_login) == (1, SIGNED_IN_AT)


@pytest.mark.django_db
def test_a_deactivation_in_the_form_counts_on_top_of_a_revocation_meanwhile(
    support_client, user, user_writes_after_the_admin_reads
):
    # Both revocations count: the tokens issued between them die too.
    user_writes_after_the_admin_reads(change_password_and_sign_in)

    support_client.post(
        f"{USERS_URL}{user.pk}/change/", superuser_form(support_client, user, is_active="")
    )

    user.refresh_from_db()
    assert (user.is_active, user.token_generation) == (False, 2)
    assert user.check_password("a-brand-new-passphrase")


@pytest.mark.django_db
def test_a_password_set_in_the_admin_writes_nothing_else(
    admin_client, user, user_writes_after_the_admin_reads
):
    user_writes_after_the_admin_reads(user_deactivate_by_id)

    admin_client.post(
        f"{USERS_URL}{user.pk}/password/",
        {"password1": "another-long-passphrase", "password2": "another-long-passphrase"},
    )

    user.refresh_from_db()
    assert user.check_password("another-long-passphrase")
    assert (user.is_active, user.token_generation) == (False, 2)


@pytest.mark.django_db
def test_a_password_set_for_a_user_deleted_meanwhile_is_a_404_and_revives_nothing(
    admin_client, user, user_writes_after_the_admin_reads
):
    # Django's save(update_fields=...) found no row: a 500.
    user_writes_after_the_admin_reads(
        lambda user_id: user_delete(user=User.objects.get(pk=user_id))
    )

    response = admin_client.post(
        f"{USERS_URL}{user.pk}/password/",
        {"password1": "another-long-passphrase", "password2": "another-long-passphrase"},
    )

    assert response.status_code == 404
    assert not User.objects.filter(pk=user.pk).exists()


def user_deactivate_by_id(user_id) -> None:
    user_deactivate(user=User.objects.get(pk=user_id))


@pytest.mark.django_db
@pytest.mark.parametrize("client_fixture", ["support_client", "admin_client"])
def test_deactivating_and_reactivating_in_the_form_revokes_the_tokens(
    request, client_fixture, user
):
    # Unticking "active" must do what the deactivate action does, or reactivating the
    # account later brings its old tokens back to life.
    client = request.getfixturevalue(client_fixture)
    pair = token_pair_for(user)
    url = f"{USERS_URL}{user.pk}/change/"

    for active in ("", "on"):
        assert client.post(url, superuser_form(client, user, is_active=active)).status_code == 302

    user.refresh_from_db()
    assert user.is_active
    assert tokens_still_work(pair) == (False, False)
    assert tokens_still_work(token_pair_for(user)) == (True, True)


# --- Actions ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_deactivating_users_locks_them_and_records_who_did_it(
    support_client, support_user, user, other_user
):
    response = action(support_client, "deactivate", user, other_user)

    assert response.status_code == 302
    assert not User.objects.get(pk=user.pk).is_active
    assert not User.objects.get(pk=other_user.pk).is_active
    entries = LogEntry.objects.filter(action_flag=CHANGE).order_by("object_repr")
    assert [(e.user_id, e.object_id, e.change_message) for e in entries] == [
        (support_user.pk, str(user.pk), "Deactivated the account (admin action)."),
        (support_user.pk, str(other_user.pk), "Deactivated the account (admin action)."),
    ]


@pytest.mark.django_db
def test_support_cannot_deactivate_a_staff_account_nor_themselves(
    support_client, support_user, make_user
):
    colleague = make_user(email="colleague@example.com", is_staff=True)

    response = action(support_client, "deactivate", colleague, support_user)

    assert response.status_code == 302
    assert User.objects.get(pk=colleague.pk).is_active
    assert User.objects.get(pk=support_user.pk).is_active
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_signing_users_out_everywhere_ends_their_tokens_and_nothing_else(
    support_client, support_user, user, make_user, client
):
    colleague = make_user(email="colleague@example.com", is_staff=True)
    mine, theirs = token_pair_for(user), token_pair_for(colleague)
    password = user.password

    response = action(support_client, "sign_out_everywhere", user, colleague)

    assert response.status_code == 302
    assert tokens_still_work(mine) == (False, False)
    assert tokens_still_work(theirs) == (True, True)  # staff: superusers only, as deactivate
    user.refresh_from_db()
    assert user.is_active and user.password == password
    assert client.login(email=user.email, password="correct-horse-battery-staple")
    (entry,) = LogEntry.objects.filter(action_flag=CHANGE)
    assert (entry.user_id, entry.object_id, entry.change_message) == (
        support_user.pk,
        str(user.pk),
        "Signed out everywhere: every token revoked (admin action).",
    )
    notes = [str(m) for m in get_messages(response.wsgi_request)]
    assert "Signed 1 user(s) out everywhere." in notes
    assert any("colleague@example.com" in note for note in notes)


@pytest.mark.django_db
def test_a_deactivated_user_cannot_sign_in(support_client, client, user):
    action(support_client, "deactivate", user)

    assert not client.login(email="alice@example.com", password="correct-horse-battery-staple")


@pytest.mark.django_db
def test_sending_a_password_reset_mails_each_user_a_link_and_is_logged(
    support_client, support_user, user, mailoutbox, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    action(support_client, "send_password_reset", user)

    assert [m.to for m in mailoutbox] == [["alice@example.com"]]
    assert f"{settings.FRONTEND_URL}/reset-password?uid=" in mailoutbox[0].body
    entry = LogEntry.objects.get()
    assert (entry.user_id, entry.object_id) == (support_user.pk, str(user.pk))


@pytest.mark.django_db
def test_support_cannot_send_a_password_reset_to_a_staff_account(
    support_client, support_user, user, make_user, mailoutbox, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    colleague = make_user(email="colleague@example.com", is_staff=True)
    root = make_user(email="root@example.com", is_staff=True, is_superuser=True)

    response = action(support_client, "send_password_reset", user, colleague, root, support_user)

    assert [m.to for m in mailoutbox] == [["alice@example.com"]]
    assert [e.object_id for e in LogEntry.objects.all()] == [str(user.pk)]
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Not sent (staff accounts, superusers only): "
        + "colleague@example.com, root@example.com, support@example.com.",
        "Sent a password-reset email to 1 user(s).",
    ]


@pytest.mark.django_db
def test_a_superuser_may_send_a_password_reset_to_staff(
    admin_client, support_user, mailoutbox, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    action(admin_client, "send_password_reset", support_user)

    assert [m.to for m in mailoutbox] == [["support@example.com"]]


def disable_password_sign_in(admin_client, user: User) -> None:
    """As a superuser does it: "disabled" on the user's password page."""
    response = admin_client.post(
        f"{USERS_URL}{user.pk}/password/", {"usable_password": "false", "unset-password": "1"}
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert not user.has_usable_password()


@pytest.mark.django_db
def test_no_reset_link_goes_to_an_account_whose_password_sign_in_a_superuser_disabled(
    admin_client, support_client, support_user, user, other_user, settings
):
    """Its link would turn password sign-in back on: support, who may not set passwords, would
    undo what a superuser did. The API's reset mails no such account either."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    disable_password_sign_in(admin_client, user)

    response = action(support_client, "send_password_reset", user, other_user)

    assert [m.to for m in sent_mail()] == [[other_user.email]]
    assert [e.object_id for e in LogEntry.objects.filter(user=support_user)] == [str(other_user.pk)]
    skipped = "password sign-in disabled: a superuser turns it on, on the user's password page"
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"Not sent ({skipped}): alice@example.com.",
        "Sent a password-reset email to 1 user(s).",
    ]


@pytest.mark.django_db
def test_a_reset_link_mailed_before_a_superuser_disabled_password_sign_in_no_longer_works(
    admin_client, support_client, user, settings
):
    """Why the API's reset confirm needs no check of its own for such an account: Django's
    token is bound to the password hash, which disabling replaces. (Nothing mails a link to an
    account already disabled: neither the API's reset nor the admin's action.)"""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    action(support_client, "send_password_reset", user)
    (message,) = sent_mail()
    disable_password_sign_in(admin_client, user)

    response = APIClient().post(
        "/api/v1/auth/password/reset/confirm/",
        {**reset_link_params(message), "new_password": "chosen-by-whoever-reads-the-mail"},
    )

    assert assert_problem(response, 400)["errors"] == {"token": [INVALID_RESET_LINK]}
    user.refresh_from_db()
    assert not user.has_usable_password()


@pytest.mark.django_db
def test_support_cannot_export_a_staff_account(support_client, user, make_user):
    colleague = make_user(email="colleague@example.com", is_staff=True)

    selected = action(support_client, "export_data", user, colleague)
    one = support_client.get(f"{USERS_URL}{colleague.pk}/export/")
    page = support_client.get(f"{USERS_URL}{colleague.pk}/change/").content.decode()

    assert selected.status_code == 302  # back to the list, nothing downloaded
    assert [str(m) for m in get_messages(selected.wsgi_request)] == [
        "Nothing exported (staff accounts, superusers only): colleague@example.com."
    ]
    assert one.status_code == 403
    assert "/export/" not in page
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_a_superuser_may_export_a_staff_account(admin_client, support_user):
    selected = action(admin_client, "export_data", support_user)
    one = admin_client.get(f"{USERS_URL}{support_user.pk}/export/")

    for response in (selected, one):
        users = json.loads(b"".join(response.streaming_content))["users"]
        assert [u["email"] for u in users] == ["support@example.com"]


def _export_of(user: User) -> dict:
    """What the export holds for `user`, built from the rows directly."""
    home = user.task_lists.get()
    tag = user.tags.get()
    task = user.tasks.get(parent=None)
    subtask = user.tasks.get(parent=task)

    def stamp(value):
        # ISO 8601 in UTC to the millisecond, as Django's JSON encoder writes it.
        return DjangoJSONEncoder().default(value) if value else None

    def task_body(t, tags):
        return {
            "id": str(t.pk),
            "title": t.title,
            "description": t.description,
            "completed": t.completed,
            "completed_at": stamp(t.completed_at),
            "priority": t.get_priority_display(),
            "due_date": str(t.due_date) if t.due_date else None,
            "due_time": None,
            "list": str(t.list_id) if t.list_id else None,
            "parent": str(t.parent_id) if t.parent_id else None,
            "tags": tags,
            "position": t.position,
            "recurrence": t.recurrence,
            "version": t.version,
            "created_at": stamp(t.created_at),
            "updated_at": stamp(t.updated_at),
        }

    return {
        "id": str(user.pk),
        "email": user.email,
        "display_name": user.display_name,
        "timezone": "UTC",
        "is_active": True,
        "date_joined": stamp(user.date_joined),
        "last_login": None,
        "lists": [
            {
                "id": str(home.pk),
                "name": "Home",
                "color": "#00FF00",
                "position": 0,
                "created_at": stamp(home.created_at),
                "updated_at": stamp(home.updated_at),
            }
        ],
        "tags": [tag.name],
        "tasks": [task_body(task, [tag.name]), task_body(subtask, [])],
    }


def _give_data(user: User) -> None:
    home = TaskList.objects.create(owner=user, name="Home", color="#00FF00")
    tag = Tag.objects.create(owner=user, name=f"tag-of-{user.display_name}")
    task = Task.objects.create(
        owner=user, title="Pay rent", list=home, priority=3, due_date=date(2026, 12, 1)
    )
    task.tags.add(tag)
    Task.objects.create(owner=user, title="Find the IBAN", list=home, parent=task, position=1)


@pytest.mark.django_db
def test_exporting_selected_users_downloads_their_data_as_json_in_few_queries(
    support_client, support_user, user, other_user, django_assert_num_queries
):
    _give_data(user)
    _give_data(other_user)
    response = action(support_client, "export_data", user, other_user)

    # Streamed: the tasks are read as the download is written, one query per user for them
    # (through a server-side cursor), after the profiles with their lists and tags, read
    # before the response started (3 queries for any number of users).
    with django_assert_num_queries(2):
        content = b"".join(response.streaming_content)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="todo-export.json"'
    body = json.loads(content)
    assert set(body) == {"exported_at", "users"}
    assert body["users"] == [_export_of(user), _export_of(other_user)]
    assert LogEntry.objects.filter(user=support_user).count() == 2


@pytest.mark.django_db
def test_one_user_is_exported_from_their_page(support_client, user, other_user):
    _give_data(user)
    _give_data(other_user)

    response = support_client.get(f"{USERS_URL}{user.pk}/export/")

    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        'attachment; filename="todo-export-alice@example.com.json"'
    )
    assert json.loads(b"".join(response.streaming_content))["users"] == [_export_of(user)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "object_id",
    ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "%00", "-1", "😀", "9" * 400],
)
def test_exporting_an_unknown_user_or_a_bad_id_is_a_404(support_client, object_id):
    assert support_client.get(f"{USERS_URL}{object_id}/export/").status_code == 404


@pytest.mark.django_db
def test_the_export_needs_the_admin(client, user):
    response = client.get(f"{USERS_URL}{user.pk}/export/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# --- Change form saves are logged -------------------------------------------------------------


@pytest.mark.django_db
def test_a_change_form_save_is_recorded_with_the_actor(support_client, support_user, user):
    support_client.post(
        f"{USERS_URL}{user.pk}/change/",
        {
            "opened_version": opened_version(support_client, user),
            "email": "alice@example.com",
            "display_name": "Alice",
            "timezone": "Europe/Berlin",
        },
    )

    entry = LogEntry.objects.get()
    assert (entry.user_id, entry.object_id, entry.action_flag) == (
        support_user.pk,
        str(user.pk),
        CHANGE,
    )
    assert entry.get_change_message() == (
        "Changed Timezone (from UTC to Europe/Berlin) and Is active (from yes to no)."
    )
    user.refresh_from_db()
    assert user.timezone == "Europe/Berlin"
    assert not user.is_active  # an unticked box deactivates, as the action does


@pytest.mark.django_db
def test_a_deactivated_users_access_token_stops_working_at_once(support_client, api_client, user):
    assert api_client.get("/api/v1/tasks/").status_code == 200

    action(support_client, "deactivate", user)

    assert api_client.get("/api/v1/tasks/").status_code == 401


@pytest.mark.django_db
def test_a_superuser_may_set_a_password(admin_client, user):
    response = admin_client.post(
        f"{USERS_URL}{user.pk}/password/",
        {"password1": "another-long-passphrase", "password2": "another-long-passphrase"},
    )

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("another-long-passphrase")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "form",
    [
        {"password1": "another-long-passphrase", "password2": "another-long-passphrase"},
        {"usable_password": "false", "unset-password": "1"},  # disable password sign-in
    ],
)
def test_a_password_set_in_the_admin_ends_every_session(admin_client, user, form):
    # As the API's password change: every token issued before stops working.
    pair = token_pair_for(user)

    response = admin_client.post(f"{USERS_URL}{user.pk}/password/", form)

    assert response.status_code == 302
    assert tokens_still_work(pair) == (False, False)


@pytest.mark.django_db
def test_signing_a_staff_member_out_everywhere_ends_their_admin_session_too(
    admin_client, client, support_user
):
    # A lost laptop: its admin session outlived the action by up to SESSION_COOKIE_AGE.
    client.force_login(support_user)
    assert client.get(USERS_URL).status_code == 200

    action(admin_client, "sign_out_everywhere", support_user)

    signed_out = client.get(USERS_URL)
    assert signed_out.status_code == 302 and signed_out["Location"].startswith("/admin/login/")
    assert admin_client.get(USERS_URL).status_code == 200  # the superuser's own stays


@pytest.mark.django_db
def test_a_superuser_changing_their_own_email_stays_signed_in(admin_client, admin_user):
    # The change ends their tokens (and other sessions); the session that made it stays.
    form = superuser_form(admin_client, admin_user, email="new-admin@example.com", is_staff="on")
    form["is_superuser"] = "on"
    assert admin_client.post(f"{USERS_URL}{admin_user.pk}/change/", form).status_code == 302
    assert User.objects.get(pk=admin_user.pk).email == "new-admin@example.com"
    assert admin_client.get(USERS_URL).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("generation", "signed_in"), [(0, True), (1, False)])
def test_a_session_from_before_the_generation_was_in_its_hash_survives_until_tokens_end(
    client, support_user, generation, signed_in
):
    # Sessions opened before the deploy carry Django's own hash: kept (and moved to the new
    # one) unless the account's tokens were ended since.
    client.force_login(support_user)
    User.objects.filter(pk=support_user.pk).update(token_generation=generation)
    session = client.session
    session[HASH_SESSION_KEY] = AbstractBaseUser._get_session_auth_hash(support_user)
    session.save()

    assert (client.get(USERS_URL).status_code == 200) is signed_in
    if signed_in:
        fresh = User.objects.get(pk=support_user.pk)
        assert client.session[HASH_SESSION_KEY] == fresh.get_session_auth_hash()


@pytest.mark.django_db
def test_a_staff_members_own_password_change_keeps_them_signed_in_to_the_admin(
    client, support_user
):
    # Their tokens end (generation + 1), and Django keeps the session of the one who changed it.
    support_user.set_password("the-old-long-passphrase")
    support_user.save()
    client.force_login(support_user)
    client.post(
        "/admin/password_change/",
        {
            "old_password": "the-old-long-passphrase",
            "new_password1": "another-long-passphrase",
            "new_password2": "another-long-passphrase",
        },
    )
    assert client.get(USERS_URL).status_code == 200


@pytest.mark.django_db
def test_a_staff_members_own_password_change_ends_their_api_sessions(client, support_user):
    # Django builds /admin/password_change/'s form itself: it left the API tokens alive.
    support_user.set_password("the-old-long-passphrase")
    support_user.save()
    pair = token_pair_for(support_user)
    client.force_login(support_user)

    response = client.post(
        "/admin/password_change/",
        {
            "old_password": "the-old-long-passphrase",
            "new_password1": "another-long-passphrase",
            "new_password2": "another-long-passphrase",
        },
    )

    assert response.status_code == 302
    support_user.refresh_from_db()
    assert support_user.check_password("another-long-passphrase")
    assert tokens_still_work(pair) == (False, False)
    assert client.get("/admin/").status_code == 200  # the admin session itself goes on


@pytest.mark.django_db
def test_staff_without_the_view_permission_cannot_export(client, make_user, user):
    client.force_login(make_user(is_staff=True))

    assert client.get(f"{USERS_URL}{user.pk}/export/").status_code == 403


# --- Deleting users (superusers only) ---------------------------------------------------------


def _assert_nothing_left_of(user: User) -> None:
    assert not User.objects.filter(pk=user.pk).exists()
    assert not Task.objects.filter(owner_id=user.pk).exists()
    assert not TaskList.objects.filter(owner_id=user.pk).exists()
    assert not Tag.objects.filter(owner_id=user.pk).exists()
    assert not OutstandingToken.objects.filter(user_id=user.pk).exists()
    assert not OutstandingToken.objects.filter(user=None).exists()


@pytest.mark.django_db
def test_a_superuser_deletes_a_user_and_all_their_data_from_the_user_page(
    admin_client, user, other_user
):
    give_colliding_data(user)
    give_colliding_data(other_user)

    response = admin_client.post(f"{USERS_URL}{user.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    _assert_nothing_left_of(user)
    assert Task.objects.filter(owner=other_user).count() == 4
    assert OutstandingToken.objects.filter(user=other_user).count() == 1


@pytest.mark.django_db
def test_a_superuser_deletes_selected_users_and_all_their_data(admin_client, user, other_user):
    give_colliding_data(user)
    give_colliding_data(other_user)

    response = admin_client.post(
        USERS_URL,
        {"action": "delete_selected", "_selected_action": [user.pk, other_user.pk], "post": "yes"},
    )

    assert response.status_code == 302
    _assert_nothing_left_of(user)
    _assert_nothing_left_of(other_user)


@pytest.mark.django_db
def test_a_staff_account_is_never_deleted_so_its_history_stays(admin_client, support_user, user):
    # Django deletes a staff member's LogEntry rows with them: support's only audit trail.
    task = Task.objects.create(owner=user, title="Rent", position=1024)
    LogEntry.objects.log_actions(support_user.pk, [task], CHANGE, change_message="Edited")

    page = admin_client.post(f"{USERS_URL}{support_user.pk}/delete/", {"post": "yes"})
    selected = admin_client.post(
        USERS_URL,
        {
            "action": "delete_selected",
            "_selected_action": [support_user.pk, user.pk],
            "post": "yes",
        },
    )

    assert page.status_code == 403
    assert selected.status_code == 302  # refused before asking, naming it (review 31l)
    [refusal] = [str(m) for m in get_messages(selected.wsgi_request)]
    assert refusal.startswith(f"Nothing deleted: {support_user.email} is a staff account")
    assert User.objects.filter(pk__in=[support_user.pk, user.pk]).count() == 2
    assert LogEntry.objects.filter(user=support_user).count() == 1
    assert admin_client.post(f"{USERS_URL}{user.pk}/delete/", {"post": "yes"}).status_code == 302


@pytest.mark.django_db
def test_an_account_that_acted_in_the_admin_keeps_its_history_once_no_longer_staff(
    make_user, user, admin_client
):
    # The refusal checked staff rights only: an agent whose staff status was unticked (not
    # deactivated) deleted their account through the API, and every entry they wrote with it.
    agent = make_user(email="agent@example.com", is_staff=True)
    LogEntry.objects.log_actions(agent.pk, [user], CHANGE, change_message="Deactivated")
    agent.is_staff = False
    agent.save(update_fields=["is_staff"])
    response = client_for(agent).delete(
        "/api/v1/auth/me/", {"password": DEFAULT_PASSWORD}, format="json"
    )
    assert assert_problem(response, 403)["detail"] == STAFF_NOT_DELETED
    assert admin_client.get(f"/admin/accounts/user/{agent.pk}/delete/").status_code == 403
    assert LogEntry.objects.filter(user_id=agent.pk).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("rights", [{"is_staff": True}, {"is_staff": True, "is_superuser": True}])
def test_a_staff_account_deleting_itself_through_the_api_is_refused_and_its_history_stays(
    make_user, user, rights
):
    # DELETE auth/me/ with a staff member's own token was a 204, and Django's cascade took
    # every history entry that person wrote with the account (review 30j, finding 1).
    staff = make_user(email="agent@example.com", **rights)
    task = Task.objects.create(owner=user, title="Rent", position=1024)
    LogEntry.objects.log_actions(staff.pk, [user, task], CHANGE, change_message="Exported")
    pair = APIClient().post(
        "/api/v1/auth/token/",
        {"email": staff.email, "password": DEFAULT_PASSWORD},
        format="json",
    )
    assert pair.status_code == 200

    response = bearer(pair.json()["access"]).delete(
        "/api/v1/auth/me/", {"password": DEFAULT_PASSWORD}, format="json"
    )

    problem = assert_problem(response, 403)
    assert problem["detail"] == STAFF_NOT_DELETED
    assert "a superuser deactivates it" in problem["detail"]
    assert User.objects.filter(pk=staff.pk).exists()
    assert LogEntry.objects.filter(user_id=staff.pk).count() == 2
    with pytest.raises(PermissionDenied):  # the service refuses every caller, the admin's too
        user_delete(user=staff)
    assert User.objects.filter(pk=staff.pk).exists()


@pytest.mark.django_db
def test_a_deleted_accounts_email_names_and_titles_are_redacted_from_the_admin_history(
    admin_client, admin_user, support_client, support_user, user, other_user, api_client
):
    # API.md: "DELETE me/: the account and all its data are gone"; the history kept the email
    # (object_repr), the old and new values of changed fields and the tasks' titles for good.
    task = api_client.post("/api/v1/tasks/", {"title": "Oncology appointment"}).json()
    support_client.post(
        f"{USERS_URL}{user.pk}/change/",
        superuser_form(support_client, user, display_name="Alice Liddell"),
    )
    support_client.post(
        "/admin/tasks/task/",
        {"action": "complete", "_selected_action": [task["id"]], "post": "yes"},
    )
    user.refresh_from_db()
    admin_client.post(
        f"{USERS_URL}{user.pk}/change/",
        superuser_form(admin_client, user, email="alice.private@example.com"),
    )
    user.refresh_from_db()
    signed_in = bearer(sign_in(user.email, DEFAULT_PASSWORD)["access"])
    deleted_task = Task.objects.create(owner=user, title="Oncology follow-up", position=2048)
    LogEntry.objects.log_actions(support_user.pk, [deleted_task], CHANGE, "Title (from a to b)")
    assert signed_in.delete(f"/api/v1/tasks/{deleted_task.pk}/").status_code == 204
    # Entries about someone else, and entries the agent wrote about that someone, stay as they are.
    others = Task.objects.create(owner=other_user, title="Mallory's rent", position=1024)
    LogEntry.objects.log_actions(support_user.pk, [other_user, others], CHANGE, "Edited Mallory")
    assert LogEntry.objects.count() == 6
    assert "alice@example.com" in support_client.get("/admin/").content.decode()  # recent actions

    deleted = signed_in.delete("/api/v1/auth/me/", {"password": DEFAULT_PASSWORD}, format="json")

    assert deleted.status_code == 204
    entries = list(LogEntry.objects.order_by("id"))
    assert len(entries) == 6  # the fact of each action stays: who, when, what kind, its id
    left = [f"{entry.object_repr} | {entry.change_message}" for entry in entries]
    personal = ("alice@example.com", "alice.private@example.com", "Alice", "Oncology")
    assert [line for line in left if any(word in line for word in personal)] == []
    about_user = [entry for entry in entries if entry.object_id == str(user.pk)]
    assert [(e.user_id, e.action_flag) for e in about_user] == [
        (support_user.pk, CHANGE),
        (admin_user.pk, CHANGE),
    ]
    assert {e.object_repr for e in entries[:4]} == {REDACTED_REPR}
    assert {e.change_message for e in entries[:4]} == {REDACTED_MESSAGE}
    assert [(e.object_repr, e.change_message) for e in entries[4:]] == [
        ("mallory@example.com", "Edited Mallory"),
        ("Mallory's rent", "Edited Mallory"),
    ]
    recent_actions = support_client.get("/admin/").content.decode()  # the agent's own history
    assert [word for word in personal if word in recent_actions] == []


@pytest.mark.django_db
def test_the_admins_own_deletion_entry_does_not_name_the_email(admin_client, user, other_user):
    # Django's deletion entry is str(user): the email, kept in the history for good.
    admin_client.post(f"{USERS_URL}{user.pk}/delete/", {"post": "yes"})
    admin_client.post(
        USERS_URL,
        {"action": "delete_selected", "_selected_action": [other_user.pk], "post": "yes"},
    )

    entries = LogEntry.objects.order_by("id")
    assert [(e.object_id, e.action_flag, e.object_repr) for e in entries] == [
        (str(user.pk), DELETION, REDACTED_REPR),
        (str(other_user.pk), DELETION, REDACTED_REPR),
    ]


@pytest.mark.django_db
def test_an_email_taken_between_the_check_and_the_save_is_a_message_not_a_500(
    admin_client, user, monkeypatch
):
    # Two admins giving two users one address at the same moment: each form's uniqueness check
    # passed, and the second save was a 500 (IntegrityError) with a traceback.
    save = UserAdmin.save_model

    def another_takes_it_first(self, request, obj, form, change):
        User.objects.create_user(email="wanted@example.com", password="x" * 12)
        save(self, request, obj, form, change)

    monkeypatch.setattr(UserAdmin, "save_model", another_takes_it_first)
    url = f"{USERS_URL}{user.pk}/change/"

    response = admin_client.post(
        url, superuser_form(admin_client, user, email="wanted@example.com")
    )

    assert response.status_code == 302 and response["Location"] == url
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert message.startswith("Nothing saved: the email address was taken by another account")
    user.refresh_from_db()
    assert (user.email, user.token_generation) == ("alice@example.com", 0)
    assert not User.objects.filter(email="wanted@example.com").exists()  # rolled back too


class SecondMailFails(locmem.EmailBackend):
    """A mail server that refuses the second mail sent through it."""

    sent = 0

    def send_messages(self, messages):
        type(self).sent += 1
        if type(self).sent == 2:
            (address,) = messages[0].to
            raise smtplib.SMTPRecipientsRefused({address: (550, f"<{address}>: unknown".encode())})
        return super().send_messages(messages)


@pytest.mark.django_db
def test_a_mail_that_fails_names_its_user_and_the_others_are_sent_and_logged(
    support_client, support_user, make_user, mailoutbox, settings, monkeypatch, caplog
):
    settings.EMAIL_BACKEND = f"{__name__}.SecondMailFails"
    monkeypatch.setattr(SecondMailFails, "sent", 0)
    users = [make_user(email=f"{name}@example.com") for name in ("ann", "bob", "cid")]

    response = action(support_client, "send_password_reset", *users)

    assert response.status_code == 302
    assert [m.to for m in mailoutbox] == [["ann@example.com"], ["cid@example.com"]]
    assert {e.object_id for e in LogEntry.objects.all()} == {str(users[0].pk), str(users[2].pk)}
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Not sent (failed, see the log): bob@example.com.",
        "Sent a password-reset email to 2 user(s).",
    ]
    # The log names the account by id: the refusal's traceback named the address (review 30j).
    [logged] = [r for r in caplog.records if r.name == "todo.admin"]
    assert logged.getMessage() == (
        f"admin action failed for user {users[1].pk}: SMTPRecipientsRefused: 550 <<address>>: "
        "unknown"
    )
    assert logged.exc_info is None


class ServerGoneAtSecondMail(locmem.EmailBackend):
    """A mail server that stops answering at the second mail (each try would wait as long)."""

    sent = 0

    def send_messages(self, messages):
        type(self).sent += 1
        if type(self).sent >= 2:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return super().send_messages(messages)


@pytest.mark.django_db
def test_a_mail_server_that_fails_stops_the_action_and_names_who_got_nothing(
    support_client, make_user, mailoutbox, settings, monkeypatch
):
    settings.EMAIL_BACKEND = f"{__name__}.ServerGoneAtSecondMail"
    monkeypatch.setattr(ServerGoneAtSecondMail, "sent", 0)
    users = [make_user(email=f"{name}@example.com") for name in ("ann", "bob", "cid", "dan")]

    response = action(support_client, "send_password_reset", *users)

    assert [m.to for m in mailoutbox] == [["ann@example.com"]]
    assert ServerGoneAtSecondMail.sent == 2  # not tried for cid and dan
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Not sent (failed, see the log): bob@example.com.",
        "Not sent (not tried after that failure): cid@example.com, dan@example.com.",
        "Sent a password-reset email to 1 user(s).",
    ]
    assert [e.object_id for e in LogEntry.objects.all()] == [str(users[0].pk)]


@pytest.mark.django_db
def test_users_done_before_an_unexpected_error_are_in_the_history(
    support_client, make_user, monkeypatch
):
    from accounts import admin as accounts_admin

    users = [make_user(email=f"{name}@example.com") for name in ("ann", "bob")]

    def deactivate_then_fail(*, user):
        if user.email == "bob@example.com":
            raise RuntimeError("the database went away")
        User.objects.filter(pk=user.pk).update(is_active=False)

    monkeypatch.setattr(accounts_admin, "user_deactivate", deactivate_then_fail)

    with pytest.raises(RuntimeError):
        action(support_client, "deactivate", *users)

    assert [e.object_id for e in LogEntry.objects.all()] == [str(users[0].pk)]


@pytest.mark.django_db
def test_a_password_reset_is_not_sent_to_a_deactivated_user(
    support_client, user, make_user, mailoutbox, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    gone = make_user(email="gone@example.com", is_active=False)

    response = action(support_client, "send_password_reset", user, gone)

    assert [m.to for m in mailoutbox] == [["alice@example.com"]]
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Not sent (deactivated: reactivate first): gone@example.com.",
        "Sent a password-reset email to 1 user(s).",
    ]


@pytest.mark.django_db
def test_deactivating_ones_own_account_is_skipped_and_said(admin_client, admin_user, user):
    response = action(admin_client, "deactivate", admin_user, user)

    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"Not deactivated (your own account): {admin_user.email}.",
        "Deactivated 1 user(s).",
    ]
    assert User.objects.get(pk=admin_user.pk).is_active
    assert not User.objects.get(pk=user.pk).is_active


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["deactivate", "sign_out_everywhere", "send_password_reset", "export_data"]
)
def test_an_action_on_more_users_than_it_takes_at_once_does_nothing(
    support_client, mailoutbox, settings, monkeypatch, name
):
    from accounts import admin as accounts_admin

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    monkeypatch.setattr(accounts_admin, "MAX_USERS_PER_ACTION", 2)
    users = [User.objects.create_user(email=f"u{i}@example.com") for i in range(3)]

    response = action(support_client, name, *users)

    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Nothing done: 3 users selected, an action takes at most 2 at once."
    ]
    assert mailoutbox == [] and not LogEntry.objects.exists()
    untouched = User.objects.filter(pk__in=[u.pk for u in users], is_active=True)
    assert untouched.filter(token_generation=0).count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["deactivate", "sign_out_everywhere", "send_password_reset"])
def test_a_user_action_asks_first_and_does_nothing_until_confirmed(
    support_client, make_user, name, mailoutbox
):
    """A slip on a page's checkbox ran an action on 100 users at once, with no question."""
    bob = make_user(email="bob@example.com")
    generation = bob.token_generation

    asked = action(support_client, name, bob, confirmed=False)

    assert asked.status_code == 200
    page = asked.content.decode()
    assert "bob@example.com" in page and 'name="post" value="yes"' in page
    bob.refresh_from_db()
    assert (bob.is_active, bob.token_generation, len(mailoutbox)) == (True, generation, 0)
    assert action(support_client, name, bob).status_code == 302  # confirmed: done


@pytest.mark.django_db
def test_confirming_posts_back_the_whole_selection_and_the_action_says_whom_it_skips(
    support_client, make_user, mailoutbox
):
    """The page listed (and posted back) only the users the action kept: the deactivated one
    was silently left out, and a selection of only such users asked about "0 user(s)"."""
    make_user(email="bob@example.com")
    make_user(email="gone@example.com", is_active=False)
    selected = User.objects.filter(email__in=["bob@example.com", "gone@example.com"])

    page = action(support_client, "send_password_reset", *selected, confirmed=False)
    assert "bob@example.com" in page.content.decode()
    assert "gone@example.com" in page.content.decode()
    # What the page's own form posts back: its hidden inputs.
    posted = re.findall(
        r'<input type="hidden" name="([^"]+)" value="([^"]+)"', page.content.decode()
    )
    form: dict[str, list[str]] = {}
    for name, value in posted:
        form.setdefault(name, []).append(value)
    assert sorted(form["_selected_action"]) == sorted(str(user.pk) for user in selected)
    done = support_client.post(USERS_URL, form)

    shown = [str(m) for m in get_messages(done.wsgi_request)]
    assert "Not sent (deactivated: reactivate first): gone@example.com." in shown
    assert "Sent a password-reset email to 1 user(s)." in shown


@pytest.mark.django_db
def test_the_admin_says_its_times_are_utc(support_client, user):
    # Shown next to a user whose own time zone is another, "6:33 p.m." alone misled.
    user.timezone = "America/New_York"
    user.save(update_fields=["timezone"])
    page = support_client.get(f"{USERS_URL}{user.pk}/change/").content.decode()
    joined = user.date_joined.strftime("%Y")
    assert f"{joined}, " in page and " UTC</div>" in page


@pytest.mark.parametrize("name", ["deactivate", "sign_out_everywhere", "send_password_reset"])
def test_an_action_past_the_cap_is_refused_before_its_confirmation_page(
    support_client, mailoutbox, settings, monkeypatch, name
):
    # The suite checks the cap on the confirmed POST only (test_admin.py:1470); the first
    # click, which shows the "are you sure" page, was not: a regression there would show a
    # confirmation for 300 users, then refuse after the agent confirmed.
    from django.contrib.messages import get_messages

    from accounts import admin as accounts_admin

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    monkeypatch.setattr(accounts_admin, "MAX_USERS_PER_ACTION", 2)
    users = [User.objects.create_user(email=f"u{i}@example.com") for i in range(3)]
    form = {"action": name, "_selected_action": [str(u.pk) for u in users]}
    response = support_client.post("/admin/accounts/user/", form)
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Nothing done: 3 users selected, an action takes at most 2 at once."
    ]
    assert mailoutbox == []
    assert User.objects.filter(is_active=True, token_generation=0).count() == 4  # + the agent


def test_deleting_a_user_who_has_tasks_needs_the_right_to_delete_tasks_too(
    client, support_user, make_user
):
    from django.contrib.auth.models import Permission

    from tasks import services

    support_user.user_permissions.add(Permission.objects.get(codename="delete_user"))
    client.force_login(support_user)
    target = make_user(email="bob@example.com")
    services.task_create(user=target, data={"title": "Milk"})
    url = f"/admin/accounts/user/{target.pk}/delete/"
    page = client.get(url)
    assert page.status_code == 200
    assert page.context["perms_lacking"] == {"task"}
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert User.objects.filter(pk=target.pk).exists()
