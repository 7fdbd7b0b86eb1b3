"""The rows of staff accounts stay view-only to support when a superuser grants support the add
or delete permission (the Support group has neither): support deletes, and adds rows for, only
accounts without staff rights (todo_project.admin_site.may_manage)."""

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.messages import get_messages

from accounts.models import User
from tasks import services
from tasks.models import Priority, Tag, Task, TaskList

MODELS = {"task": Task, "tasklist": TaskList, "tag": Tag}
NOT_A_CHOICE = "Select a valid choice. That choice is not one of the available choices."


def url(model: str, suffix: str = "") -> str:
    return f"/admin/tasks/{model}/{suffix}"


def make_row(model: str, owner: User, name: str = "Payroll"):
    if model == "task":
        return services.task_create(user=owner, data={"title": name})
    if model == "tasklist":
        return services.list_create(user=owner, name=name, color=None, position=None)
    return services.tags_get_or_create(user=owner, names=[name])[0]


def add_form(model: str, owner: User, name: str = "New one") -> dict:
    return {
        "task": {"title": name, "owner": owner.pk, "priority": Priority.NONE, "tags": ""},
        "tasklist": {"owner": owner.pk, "name": name, "color": ""},
        "tag": {"owner": owner.pk, "name": name},
    }[model]


def delete_selected(client, model: str, *rows, confirmed: bool = True):
    data = {"action": "delete_selected", "_selected_action": [str(row.pk) for row in rows]}
    return client.post(url(model), {**data, "post": "yes"} if confirmed else data)


def said(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def exists(row) -> bool:
    return type(row).objects.filter(pk=row.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("whose", ["a superuser", "a colleague"])
def test_support_with_the_delete_right_cannot_delete_a_staff_accounts_row_on_its_page(
    granted_client, staff_accounts, model, whose
):
    row = make_row(model, staff_accounts[whose])

    page = granted_client.get(url(model, f"{row.pk}/delete/"))
    posted = granted_client.post(url(model, f"{row.pk}/delete/"), {"post": "yes"})
    change_page = granted_client.get(url(model, f"{row.pk}/change/"))

    assert (page.status_code, posted.status_code) == (403, 403)
    assert change_page.context["has_delete_permission"] is False  # no "Delete" link
    assert exists(row)
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("whose", ["a superuser", "a colleague"])
@pytest.mark.parametrize("confirmed", [False, True], ids=["asked", "confirmed"])
def test_support_with_the_delete_right_cannot_delete_a_selection_with_a_staff_accounts_row(
    granted_client, staff_accounts, user, model, whose, confirmed
):
    theirs = make_row(model, staff_accounts[whose])
    mine = make_row(model, user, "Groceries")

    response = delete_selected(granted_client, model, mine, theirs, confirmed=confirmed)

    assert response.status_code == 302  # back to the list, nothing asked or done
    plural = MODELS[model]._meta.verbose_name_plural
    refused = (
        f"Nothing deleted: 1 of the selected {plural} belongs to a staff account, whose data "
        "only superusers may delete."
    )
    assert said(response) == [refused]
    assert exists(theirs) and exists(mine)
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS)
def test_the_delete_confirmation_of_a_staff_accounts_row_says_it_is_not_permitted(
    granted, staff_accounts, model, rf
):
    # Behind the refusal above: Django's own confirmation, as the delete page and "delete
    # selected" build it, names what the agent may not delete (and refuses the POST).
    from django.contrib import admin

    row = make_row(model, staff_accounts["a colleague"])
    request = rf.get("/")
    request.user = granted
    model_admin = admin.site.get_model_admin(MODELS[model])

    _, _, perms_needed, _ = model_admin.get_deleted_objects([row], request)

    assert perms_needed == {MODELS[model]._meta.verbose_name}


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS)
def test_support_with_the_delete_right_deletes_a_users_rows(granted_client, user, model):
    one, two, three = (make_row(model, user, name) for name in ("One", "Two", "Three"))

    page = granted_client.post(url(model, f"{one.pk}/delete/"), {"post": "yes"})
    asked = delete_selected(granted_client, model, two, three, confirmed=False)
    confirmed = delete_selected(granted_client, model, two, three)

    assert page.status_code == 302
    assert asked.status_code == 200  # Django's confirmation page
    assert asked.context["perms_lacking"] == set()
    assert confirmed.status_code == 302
    assert not MODELS[model].objects.filter(pk__in=[one.pk, two.pk, three.pk]).exists()
    assert LogEntry.objects.filter(action_flag=DELETION).count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("whose", ["a superuser", "a colleague"])
def test_support_with_the_add_right_cannot_add_a_row_for_a_staff_account(
    granted_client, staff_accounts, model, whose
):
    response = granted_client.post(url(model, "add/"), add_form(model, staff_accounts[whose]))

    assert response.status_code == 200  # the form again, with its error
    assert response.context["adminform"].form.errors == {"owner": [NOT_A_CHOICE]}
    assert not MODELS[model].objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS)
def test_the_owner_choices_of_support_are_the_accounts_without_staff_rights(
    granted_client, admin_client, staff_accounts, user, model
):
    form = granted_client.get(url(model, "add/")).context["adminform"].form
    # The owner's raw-id lookup: the users' list, in a popup.
    popup = granted_client.get("/admin/accounts/user/", {"_popup": "1", "_to_field": "id"})
    plain = granted_client.get("/admin/accounts/user/")
    admins_popup = admin_client.get("/admin/accounts/user/", {"_popup": "1", "_to_field": "id"})

    assert list(form.fields["owner"].queryset) == [user]
    assert [row.email for row in popup.context["cl"].result_list] == ["alice@example.com"]
    staff = {"root@example.com", "colleague@example.com", "support@example.com"}
    assert staff < {row.email for row in plain.context["cl"].result_list}  # view-only, listed
    assert staff < {row.email for row in admins_popup.context["cl"].result_list}


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS)
def test_support_with_the_add_right_adds_a_row_for_a_user(granted_client, user, model):
    response = granted_client.post(url(model, "add/"), add_form(model, user))

    assert response.status_code == 302
    assert MODELS[model].objects.get().owner == user


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS)
def test_a_superuser_deletes_and_adds_the_rows_of_staff_accounts(
    admin_client, staff_accounts, user, model
):
    # `admin_client` is pytest-django's superuser: another superuser's and a colleague's rows.
    root, colleague = staff_accounts["a superuser"], staff_accounts["a colleague"]
    one, two, three = (make_row(model, root, "One"), make_row(model, colleague, "Two"), None)
    three = make_row(model, user, "Three")

    page = admin_client.post(url(model, f"{one.pk}/delete/"), {"post": "yes"})
    selected = delete_selected(admin_client, model, two, three)
    added = [admin_client.post(url(model, "add/"), add_form(model, o)) for o in (root, colleague)]

    assert page.status_code == selected.status_code == 302
    assert [response.status_code for response in added] == [302, 302]
    assert not MODELS[model].objects.filter(pk__in=[one.pk, two.pk, three.pk]).exists()
    owners = MODELS[model].objects.values_list("owner__email", flat=True)
    assert sorted(owners) == ["colleague@example.com", "root@example.com"]
