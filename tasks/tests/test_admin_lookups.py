"""Changelist URLs filter only by what the admin's filters offer (admin_site.FilterLookupsOnly)."""

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages

from accounts.admin import owner_changelist_url
from tasks.models import Task

pytestmark = pytest.mark.django_db

TASKS = "/admin/tasks/task/"
USERS = "/admin/accounts/user/"


@pytest.mark.parametrize(
    "query",
    [
        "title__regex=(",  # an invalid regex: was a 500
        "title__regex=x",  # a scan of every task
        "title__icontains=%00",  # a NUL: was a 500
        "due_date__year=99999999999",  # was a 500
        "description__iregex=[",
        "owner__email__startswith=a",  # not the owner link's lookup
        "completed__in=1,0",
    ],
)
def test_a_lookup_no_filter_offers_is_a_400_on_tasks(admin_client, query):
    assert admin_client.get(f"{TASKS}?{query}").status_code == 400


@pytest.mark.parametrize(
    "query", ["email__regex=(", "token_generation__gte=100", "password__startswith=argon2"]
)
def test_a_lookup_no_filter_offers_is_a_400_on_users(admin_client, query):
    # token_generation and password are never shown: no URL may probe them either.
    assert admin_client.get(f"{USERS}?{query}").status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "completed__exact=1",
        "priority__exact=3",
        "due=overdue",  # DueFilter's own parameter
        "completed__exact=1&priority__isnull=True",
    ],
)
def test_what_the_filters_offer_still_filters(support_client, make_task, query):
    make_task("rent", completed=True, priority=3)
    assert support_client.get(f"{TASKS}?{query}").status_code == 200


def test_the_owner_link_of_a_user_page_still_filters(support_client, make_task, other_user):
    mine = make_task("mine")
    Task.objects.create(owner=other_user, title="theirs", position=1024)
    response = support_client.get(owner_changelist_url(Task, mine.owner))
    assert response.status_code == 200
    assert b"mine" in response.content and b"theirs" not in response.content


@pytest.mark.parametrize(
    "query", ["is_active__exact=0", "is_staff__exact=1", "date_joined__gte=2026-01-01T00:00:00Z"]
)
def test_the_user_filters_still_filter(admin_client, query):
    assert admin_client.get(f"{USERS}?{query}").status_code == 200


def shown_messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        ("owner__id__exact=notauuid", ""),  # a mangled owner link
        ("e=1&owner__id__exact=notauuid", ""),  # was Django's "Database error" page
        ("q=mine&o=2&owner__id__exact=notauuid", "q=mine&o=2"),  # search and order stay
        # A raw-id lookup popup stays one.
        ("_to_field=id&_popup=1&owner__id__exact=notauuid", "_popup=1&_to_field=id"),
    ],
)
def test_a_filter_value_that_is_not_valid_is_left_out_and_named(
    support_client, make_task, other_user, query, kept
):
    make_task("mine")
    Task.objects.create(owner=other_user, title="theirs", position=1024)

    response = support_client.get(f"{TASKS}?{query}")

    # Django sent it to ?e=1: every user's tasks, without a word.
    assert response.status_code == 302 and response["Location"] == f"{TASKS}?{kept}"
    assert shown_messages(response) == [
        "These filters are not valid, so they are left out: "
        + ", ".join(
            part
            for part in query.split("&")
            if part.split("=")[0] not in {"q", "o", "_to_field", "_popup"}
        )
        + "."
    ]


def test_a_page_past_the_last_is_the_first_with_the_same_filters(
    support_client, make_task, monkeypatch
):
    monkeypatch.setattr(admin.site._registry[Task], "list_per_page", 1)
    make_task("rent", completed=True)
    make_task("water", completed=True)
    response = support_client.get(f"{TASKS}?completed__exact=1&p=9")
    assert response.status_code == 302
    assert response["Location"] == f"{TASKS}?completed__exact=1"
    assert shown_messages(response) == ["That page no longer exists: here is the first."]
    first = support_client.get(response["Location"])
    assert (first.context["cl"].page_num, first.context["cl"].result_count) == (1, 2)


@pytest.mark.parametrize(
    ("url", "action", "selected"),
    [
        (USERS, "deactivate", "notauuid"),
        (TASKS, "complete", "1"),
        (TASKS, "complete", "\x00"),
        ("/admin/tasks/tasklist/", "delete_selected", "notauuid"),
        ("/admin/tasks/tag/", "delete_selected", "notanint"),
    ],
)
def test_an_action_on_ids_that_are_not_valid_does_nothing_and_says_so(
    admin_client, make_task, url, action, selected
):
    task = make_task("rent")
    response = admin_client.post(
        url, {"action": action, "_selected_action": [str(task.pk), selected], "post": "yes"}
    )
    assert response.status_code == 302  # was a 500
    assert shown_messages(response) == ["The selection holds ids that are not valid: nothing done."]
    task.refresh_from_db()
    assert not task.completed
