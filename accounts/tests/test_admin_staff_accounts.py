"""Staff accounts stay out of support's reach when a superuser grants support the add or delete
permission on users (the Support group has neither): support deletes, and creates, only
accounts without staff rights (todo_project.admin_site.may_manage)."""

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages

from accounts.models import User
from tasks import services
from tasks.models import Task

USERS_URL = "/admin/accounts/user/"
PASSWORD = "a long enough passphrase 42"


def delete_selected(client, *users: User, confirmed: bool = True):
    data = {"action": "delete_selected", "_selected_action": [str(user.pk) for user in users]}
    return client.post(USERS_URL, {**data, "post": "yes"} if confirmed else data)


@pytest.mark.django_db
@pytest.mark.parametrize("whose", ["a superuser", "a colleague"])
def test_support_with_the_delete_right_cannot_delete_a_staff_account(
    granted_client, staff_accounts, user, whose
):
    staff = staff_accounts[whose]
    services.task_create(user=staff, data={"title": "Payroll"})

    page = granted_client.get(f"{USERS_URL}{staff.pk}/delete/")
    posted = granted_client.post(f"{USERS_URL}{staff.pk}/delete/", {"post": "yes"})
    asked = delete_selected(granted_client, user, staff, confirmed=False)
    confirmed = delete_selected(granted_client, user, staff)

    assert (page.status_code, posted.status_code) == (403, 403)
    # Refused before asking, naming the account and why: Django's confirmation said only "you
    # don't have permission to delete ... user" (review 31l).
    for answer in (asked, confirmed):
        assert answer.status_code == 302
        assert [str(m) for m in get_messages(answer.wsgi_request)][-1] == (
            f"Nothing deleted: {staff.email} is a staff account (or has acted in the admin): "
            "deactivate it instead. Their admin history is kept, so they are never deleted."
        )
    assert User.objects.filter(pk__in=[staff.pk, user.pk]).count() == 2
    assert Task.objects.filter(owner=staff).exists()
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


@pytest.mark.django_db
def test_a_superuser_deleting_a_selection_with_staff_accounts_is_told_which_and_why(
    admin_client, user, make_user
):
    """A superuser was told "your account doesn't have permission to delete the following types
    of objects: user", naming nobody (review 31l): each account kept is named, nothing goes."""
    colleague = make_user(email="colleague@example.com", is_staff=True)
    former = make_user(email="former@example.com")  # an agent once: their history stays
    LogEntry.objects.create(user=former, action_flag=DELETION, object_repr="x")

    asked = delete_selected(admin_client, user, colleague, former, confirmed=False)
    confirmed = delete_selected(admin_client, user, colleague, former)

    for answer in (asked, confirmed):
        assert answer.status_code == 302
        assert [str(m) for m in get_messages(answer.wsgi_request)][-1] == (
            "Nothing deleted: colleague@example.com, former@example.com are staff accounts (or "
            "have acted in the admin): deactivate them instead. Their admin history is kept, so "
            "they are never deleted."
        )
    assert User.objects.filter(pk__in=[user.pk, colleague.pk, former.pk]).count() == 3


@pytest.mark.django_db
def test_support_with_the_delete_right_deletes_users_without_staff_rights(
    granted_client, user, other_user
):
    services.task_create(user=user, data={"title": "Rent"})

    page = granted_client.post(f"{USERS_URL}{user.pk}/delete/", {"post": "yes"})
    selected = delete_selected(granted_client, other_user)

    assert page.status_code == selected.status_code == 302
    assert not User.objects.filter(pk__in=[user.pk, other_user.pk]).exists()
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_support_with_the_add_right_creates_accounts_without_staff_rights_only(granted_client):
    support = Group.objects.get(name="Support")

    response = granted_client.post(
        f"{USERS_URL}add/",
        {
            "email": "new@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "usable_password": "true",
            # Forged: not in the add form.
            "is_staff": "on",
            "is_superuser": "on",
            "groups": [support.pk],
        },
    )

    assert response.status_code == 302
    created = User.objects.get(email="new@example.com")
    assert (created.is_staff, created.is_superuser, created.groups.exists()) == (
        False,
        False,
        False,
    )


@pytest.mark.django_db
def test_a_superuser_deletes_users_but_never_a_staff_account(admin_client, staff_accounts, user):
    colleague = staff_accounts["a colleague"]

    refused = admin_client.post(f"{USERS_URL}{colleague.pk}/delete/", {"post": "yes"})
    deleted = admin_client.post(f"{USERS_URL}{user.pk}/delete/", {"post": "yes"})

    # Staff accounts are deactivated, never deleted, by anyone (accounts.services.
    # keeps_admin_history): their history is the audit trail.
    assert (refused.status_code, deleted.status_code) == (403, 302)
    assert list(User.objects.filter(pk__in=[colleague.pk, user.pk])) == [colleague]
