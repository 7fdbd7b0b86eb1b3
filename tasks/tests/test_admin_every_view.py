"""Every page the admin serves opens, for a superuser, a Support agent, an agent granted add and
delete, and signed out, with the status each should get (never a 5xx); a changelist reads a
page of 20 rows in as many queries as one of 2.

A smoke test from tables: every URL of the site and of every registered ModelAdmin's
get_urls() (test_the_tables_name_every_url keeps the tables complete), every changelist column
sorted, every filter choice, searches, "Show all", a second page, the raw-id lookup popups, and
every action's first step. Every task's History page was a 500 from 15ed2d6 to c93ea59 (review
44b) because no test had opened one; this module fails there (3 pages, for each role).

The statuses follow the README's "Support admin": the Support group views and changes users,
lists, tasks and tags, adds and deletes nothing, and has nothing on groups; a staff account and
its rows are view-only to support, and deleted by no agent; staff accounts are never deleted in
the admin; only superusers set passwords. Signed out, every page leads to the sign-in page.
"""

import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver

from tasks import services
from tasks.models import Tag, Task, TaskList

ROLES = ("superuser", "support", "granted", "anonymous")
LOGIN = 302  # signed out: to the sign-in page

# path (after /admin/), then the status for a superuser, a Support agent, an agent a superuser
# granted add and delete (conftest's `granted`: on accounts without staff rights only), and
# signed out. {alice} and her rows are an ordinary account's; {colleague} is another staff
# account, {staff_task} its task.
PAGES = [
    ("", 200, 200, 200, LOGIN),
    ("accounts/", 200, 200, 200, LOGIN),
    ("tasks/", 200, 200, 200, LOGIN),
    ("auth/", 200, 404, 404, LOGIN),  # support has nothing on groups: no such app for them
    ("login/", 302, 302, 302, 200),  # signed in: to the index
    ("logout/", 405, 405, 405, 302),  # Django 5: a POST only
    ("password_change/", 200, 200, 200, LOGIN),
    ("password_change/done/", 200, 200, 200, LOGIN),
    ("jsi18n/", 200, 200, 200, LOGIN),
    ("autocomplete/", 403, 403, 403, LOGIN),  # no autocomplete_fields anywhere: no field to serve
    # Signed out, Django's catch-all sends even a page that does not exist to the sign-in.
    ("no/such/page/", 404, 404, 404, LOGIN),
    ("r/1/1/", 404, 404, 404, LOGIN),  # Django's view_on_site, removed (admin_site.TodoAdminSite)
    ("token_blacklist/outstandingtoken/", 404, 404, 404, LOGIN),  # unregistered (TodoAdminConfig)
    ("accounts/user/", 200, 200, 200, LOGIN),
    ("accounts/user/add/", 200, 403, 200, LOGIN),
    ("accounts/user/{alice}/", 302, 302, 302, LOGIN),  # to the change page
    ("accounts/user/{alice}/change/", 200, 200, 200, LOGIN),
    ("accounts/user/{alice}/history/", 200, 200, 200, LOGIN),
    ("accounts/user/{alice}/delete/", 200, 403, 200, LOGIN),
    ("accounts/user/{alice}/export/", 200, 200, 200, LOGIN),
    ("accounts/user/{alice}/password/", 200, 403, 403, LOGIN),  # superusers only set passwords
    ("accounts/user/{colleague}/change/", 200, 200, 200, LOGIN),  # view-only to support
    ("accounts/user/{colleague}/history/", 200, 200, 200, LOGIN),
    ("accounts/user/{colleague}/delete/", 403, 403, 403, LOGIN),  # staff: deactivated, not deleted
    ("accounts/user/{colleague}/export/", 200, 403, 403, LOGIN),
    ("accounts/user/{colleague}/password/", 200, 403, 403, LOGIN),
    ("tasks/task/", 200, 200, 200, LOGIN),
    ("tasks/task/add/", 200, 403, 200, LOGIN),
    ("tasks/task/{task}/", 302, 302, 302, LOGIN),
    ("tasks/task/{task}/change/", 200, 200, 200, LOGIN),
    ("tasks/task/{task}/history/", 200, 200, 200, LOGIN),  # review 44b: a 500 for everyone
    ("tasks/task/{task}/delete/", 200, 403, 200, LOGIN),
    ("tasks/task/{subtask}/change/", 200, 200, 200, LOGIN),
    ("tasks/task/{subtask}/history/", 200, 200, 200, LOGIN),
    ("tasks/task/{staff_task}/change/", 200, 200, 200, LOGIN),  # view-only to support
    ("tasks/task/{staff_task}/history/", 200, 200, 200, LOGIN),
    ("tasks/task/{staff_task}/delete/", 200, 403, 403, LOGIN),
    ("tasks/tasklist/", 200, 200, 200, LOGIN),
    ("tasks/tasklist/add/", 200, 403, 200, LOGIN),
    ("tasks/tasklist/{list}/", 302, 302, 302, LOGIN),
    ("tasks/tasklist/{list}/change/", 200, 200, 200, LOGIN),
    ("tasks/tasklist/{list}/history/", 200, 200, 200, LOGIN),
    ("tasks/tasklist/{list}/delete/", 200, 403, 200, LOGIN),
    ("tasks/tag/", 200, 200, 200, LOGIN),
    ("tasks/tag/add/", 200, 403, 200, LOGIN),
    ("tasks/tag/{tag}/", 302, 302, 302, LOGIN),
    ("tasks/tag/{tag}/change/", 200, 200, 200, LOGIN),
    ("tasks/tag/{tag}/history/", 200, 200, 200, LOGIN),
    ("tasks/tag/{tag}/delete/", 200, 403, 200, LOGIN),
    ("auth/group/", 200, 403, 403, LOGIN),
    ("auth/group/add/", 200, 403, 403, LOGIN),
    # The redirect to a change page asks no permission; the page does.
    ("auth/group/{group}/", 302, 302, 302, LOGIN),
    ("auth/group/{group}/change/", 200, 403, 403, LOGIN),
    ("auth/group/{group}/history/", 200, 403, 403, LOGIN),
    ("auth/group/{group}/delete/", 200, 403, 403, LOGIN),
]

# Each action's first step, posted from the changelist with the rows named selected (without
# `post=yes`), and what answers: a confirmation page (CONFIRM, ASK: 200), a download (200), or
# the action done, or refused with a message, and back to the list (302). An action support
# lacks the permission for is no choice of theirs: where the changelist offers other actions,
# Django's "No action selected" (302); where it offers none (lists, tags), the POST is no
# action at all and the list is shown again (LIST, 200). Nothing is deleted either way
# (test_support_deletes_nothing_by_an_action).
CONFIRM, ASK, LIST, DOWNLOAD = (
    (200, "admin/delete_selected_confirmation.html"),
    (200, "admin/accounts/user/action_confirmation.html"),
    (200, "admin/change_list.html"),
    (200, "download"),
)
BACK = (302, None)
ACTIONS = [  # model, action, the rows selected, then a superuser's, support's, granted's
    ("accounts/user", "delete_selected", ["alice"], CONFIRM, BACK, CONFIRM),
    ("accounts/user", "delete_selected", ["colleague"], BACK, BACK, BACK),  # refused, named
    ("accounts/user", "deactivate", ["alice"], ASK, ASK, ASK),
    ("accounts/user", "sign_out_everywhere", ["alice"], ASK, ASK, ASK),
    ("accounts/user", "send_password_reset", ["alice"], ASK, ASK, ASK),
    ("accounts/user", "export_data", ["alice"], DOWNLOAD, DOWNLOAD, DOWNLOAD),
    ("accounts/user", "export_data", ["alice", "colleague"], DOWNLOAD, BACK, BACK),  # refused
    ("tasks/task", "delete_selected", ["task", "subtask"], CONFIRM, BACK, CONFIRM),
    ("tasks/task", "delete_selected", ["staff_task"], CONFIRM, BACK, BACK),  # refused, named
    ("tasks/task", "complete", ["subtask"], BACK, BACK, BACK),
    ("tasks/task", "reopen", ["subtask"], BACK, BACK, BACK),
    ("tasks/tasklist", "delete_selected", ["list"], CONFIRM, LIST, CONFIRM),
    ("tasks/tag", "delete_selected", ["tag"], CONFIRM, LIST, CONFIRM),
    ("auth/group", "delete_selected", ["group"], CONFIRM, (403, None), (403, None)),
]

# Each changelist: its columns (`?o=<index>` sorts by each; an index past them is ignored), the
# choices of each filter as the sidebar names them (each one opened), searches, and the raw-id
# lookup popup that lists its rows. A superuser and support see the same list, except groups.
CHANGELISTS = {
    "accounts/user": {
        "columns": [
            "action_checkbox",
            "email",
            "display_name",
            "is_active",
            "is_staff",
            "date_joined",
            "last_login",
            "task_counts",
        ],
        "filters": {
            "is active": ["All", "Yes", "No"],
            "is staff": ["All", "Yes", "No"],
            "date joined": ["Any date", "Today", "Past 7 days", "This month", "This year"],
        },
        "searches": ["alice@example.com", "ali", "Alice", "nobody"],
        "popup": "_to_field=id&_popup=1",  # an add form's owner
    },
    "tasks/task": {
        "columns": [
            "action_checkbox",
            "title",
            "owner_email",
            "list",
            "priority",
            "due_date",
            "completed",
            "updated_at",
        ],
        "filters": {
            "completed": ["All", "Yes", "No"],
            "priority": ["All", "none", "low", "medium", "high"],
            "due (in the owner's time zone)": [
                "All",
                "Overdue",
                "Today",
                "This week",
                "No due date",
            ],
            "recurrence": ["All", "Recurring", "One-off"],
        },
        "searches": ["alice@example.com", "rent", "ali", "nobody"],
        "popup": "_to_field=id&_popup=1&owner__id__exact={alice}",  # a task's parent
        # Over every task, only `updated` sorts (TaskAdmin.get_sortable_by): each column again
        # on one owner's tasks, where each sorts.
        "sorted_within": "owner__id__exact={alice}&",
    },
    "tasks/tasklist": {
        "columns": ["action_checkbox", "name", "owner_email", "color", "task_count", "updated_at"],
        "filters": {},
        "searches": ["alice@example.com", "Errands", "nobody"],
        "popup": "_to_field=id&_popup=1&owner__id__exact={alice}",
    },
    "tasks/tag": {
        "columns": ["action_checkbox", "name", "owner_email", "task_count"],
        "filters": {},
        "searches": ["alice@example.com", "home", "nobody"],
        "popup": "_popup=1&owner__id__exact={alice}",  # many-to-many: no _to_field
    },
    "auth/group": {
        "columns": ["action_checkbox", "__str__"],
        "filters": {},
        "searches": ["Support"],
        "popup": None,
    },
}

# The raw-id lookups a task's change page links (their popups are opened above).
TASK_LOOKUPS = [
    "/admin/tasks/tasklist/?_to_field=id&owner__id__exact={alice}",
    "/admin/tasks/task/?_to_field=id&owner__id__exact={alice}",
    "/admin/tasks/tag/?owner__id__exact={alice}",
]


@pytest.fixture
def rows(user, staff_accounts) -> dict[str, str]:
    """An ordinary account's list, tag, a recurring task and its subtask, and a staff account's
    task: the ids the tables' {names} stand for."""
    errands = services.list_create(user=user, name="Errands", color="#00aa00", position=None)
    task = services.task_create(
        user=user,
        data={
            "title": "Pay rent",
            "list": errands,
            "tags": ["home"],
            "priority": 3,
            "due_date": "2026-12-01",
            "recurrence": "FREQ=MONTHLY;BYMONTHDAY=1",
        },
    )
    subtask = services.task_create(
        user=user, data={"title": "Find the IBAN", "parent": task, "list": errands}
    )
    colleague = staff_accounts["a colleague"]
    staff_task = services.task_create(user=colleague, data={"title": "Staff note"})
    return {
        "alice": str(user.pk),
        "colleague": str(colleague.pk),
        "task": str(task.pk),
        "subtask": str(subtask.pk),
        "staff_task": str(staff_task.pk),
        "list": str(errands.pk),
        "tag": str(Tag.objects.get(owner=user, name="home").pk),
        "group": str(Group.objects.get(name="Support").pk),
    }


@pytest.fixture
def as_role(request, db):
    """`as_role(role)`: a test client signed in as that role (not re-raising a view's
    exception: a 500 is a status like another here)."""

    def client_for(role: str) -> Client:
        if role == "anonymous":
            client = Client()
        else:
            name = {"superuser": "admin_client"}.get(role, f"{role}_client")
            client = request.getfixturevalue(name)
        client.raise_request_exception = False
        return client

    return client_for


def opened(client: Client, url: str, data: dict | None = None) -> tuple[int, int]:
    """The status of `url` (GET, or POST of `data`), its body read to the end (a download that
    fails while streaming is a 500 too), and how many queries it made."""
    response, queries = answer(client, url, data)
    return response.status_code, queries


def answer(client: Client, url: str, data: dict | None = None):
    with CaptureQueriesContext(connection) as queries:
        response = client.post(url, data) if data is not None else client.get(url)
        if response.streaming:
            b"".join(response.streaming_content)
    return response, len(queries)


def page_kind(response) -> tuple[int, str | None]:
    """A 200's page by its template (or a download); other statuses alone."""
    if response.status_code != 200:
        return response.status_code, None
    if response.streaming:
        return 200, "download"
    return 200, response.templates[0].name


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_every_page_opens_with_the_roles_status(as_role, rows, role):
    client = as_role(role)
    expected = {path: statuses[ROLES.index(role)] for path, *statuses in PAGES}

    found = {path: opened(client, f"/admin/{path.format(**rows)}")[0] for path in expected}

    assert found == expected


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["superuser", "support", "granted"])
def test_every_actions_first_step_answers_the_roles_status(as_role, rows, role):
    client = as_role(role)
    expected, found = {}, {}
    for model, action, selected, *statuses in ACTIONS:
        case = f"{model} {action} {'+'.join(selected)}"
        expected[case] = statuses[ROLES.index(role)]
        data = {"action": action, "_selected_action": [rows[name] for name in selected]}
        found[case] = page_kind(answer(client, f"/admin/{model}/", data)[0])

    assert found == expected


@pytest.mark.django_db
def test_support_deletes_nothing_by_an_action(support_client, rows):
    for model, name in [("tasks/task", "task"), ("tasks/tasklist", "list"), ("tasks/tag", "tag")]:
        data = {"action": "delete_selected", "_selected_action": [rows[name]], "post": "yes"}
        support_client.post(f"/admin/{model}/", data)

    assert Task.objects.filter(pk=rows["task"]).exists()
    assert TaskList.objects.filter(pk=rows["list"]).exists()
    assert Tag.objects.filter(pk=rows["tag"]).exists()


def changelist_urls(model: str, rows: dict[str, str]) -> tuple[list[str], list[str]]:
    """The variants of `model`'s changelist the table names: those that read the rows as the
    list does (each column sorted, the index of one that sorts nothing ignored; the popup;
    "Show all"), and the searches."""
    spec = CHANGELISTS[model]
    base = f"/admin/{model}/"
    urls = [base, f"{base}?all="]
    urls += [f"{base}?o={index}" for index in range(len(spec["columns"]))]
    if within := spec.get("sorted_within"):
        within = within.format(**rows)
        urls += [f"{base}?{within}o={index}" for index in range(len(spec["columns"]))]
    if spec["popup"]:
        urls.append(f"{base}?{spec['popup'].format(**rows)}")
    return urls, [f"{base}?q={term}" for term in spec["searches"]]


def filter_choice_urls(client: Client, model: str) -> tuple[dict[str, list[str]], list[str]]:
    """The filters of `model`'s changelist as its sidebar names them, and each choice's URL."""
    changelist = client.get(f"/admin/{model}/").context["cl"]
    names, urls = {}, []
    for spec in changelist.filter_specs:
        choices = list(spec.choices(changelist))
        names[str(spec.title)] = [str(choice["display"]) for choice in choices]
        urls += [f"/admin/{model}/{choice['query_string']}".rstrip("?") for choice in choices]
    return names, urls


def grow(model: str, user, make_user) -> None:
    """18 more rows of `model` (20 or more in all), of every kind the columns show."""
    for number in range(18):
        if model == "accounts/user":
            grown = make_user(email=f"grown-{number}@example.com", is_staff=number % 2 == 0)
            services.task_create(user=grown, data={"title": f"Theirs {number}"})
            TaskList.objects.create(owner=grown, name=f"Their list {number}", position=number)
        elif model == "tasks/task":
            data = {"title": f"Grown {number}", "tags": [f"tag {number % 3}"], "priority": 2}
            if number % 2:
                data.update(
                    list=services.list_create(
                        user=user, name=f"L{number}", color=None, position=None
                    )
                )
                data.update(due_date="2026-12-24", due_time="10:00")
            services.task_create(user=user, data=data)
        elif model == "tasks/tasklist":
            grown = services.list_create(
                user=user, name=f"List {number}", color=None, position=None
            )
            services.task_create(user=user, data={"title": f"In {number}", "list": grown})
        elif model == "tasks/tag":
            services.task_create(
                user=user, data={"title": f"Tagged {number}", "tags": [f"t{number}"]}
            )
        elif model == "auth/group":
            Group.objects.create(name=f"Group {number}")


@pytest.mark.django_db
@pytest.mark.parametrize("model", CHANGELISTS)
@pytest.mark.parametrize("role", ["superuser", "support"])
def test_every_changelist_view_opens_in_as_many_queries_for_20_rows_as_for_2(
    as_role, rows, make_user, user, monkeypatch, model, role
):
    client = as_role(role)
    if model == "auth/group" and role == "support":
        assert opened(client, f"/admin/{model}/?o=1")[0] == 403  # no permission on groups
        return
    # 10 rows a page: 20 rows are two pages, read through the model's paginator (the tasks'
    # PagedOffTheAdminIndex), where a list of one page is read without it.
    model_admin = next(
        a for m, a in admin.site._registry.items() if m._meta.label_lower == model.replace("/", ".")
    )
    monkeypatch.setattr(model_admin, "list_per_page", 10)
    filters, filter_urls = filter_choice_urls(client, model)  # also the first, warming, request
    assert filters == CHANGELISTS[model]["filters"]
    read_alike, searches = changelist_urls(model, rows)
    second_pages = [f"/admin/{model}/?p=2", f"/admin/{model}/?o=1&p=2"]
    # Filters and searches narrow the rows, which are read and shown as above: opened at 20.
    narrowed = [url for url in dict.fromkeys(searches + filter_urls) if url not in read_alike]

    few = {url: opened(client, url) for url in read_alike}
    grow(model, user, make_user)
    many = {url: opened(client, url) for url in read_alike + second_pages}
    statuses = {url: opened(client, url)[0] for url in narrowed}

    assert {url: status for url, (status, _) in few.items()} == dict.fromkeys(read_alike, 200)
    assert {url: status for url, (status, _) in many.items()} == dict.fromkeys(
        read_alike + second_pages, 200
    )
    assert statuses == dict.fromkeys(narrowed, 200)
    base = few[f"/admin/{model}/"][1]
    assert {url: count for url, (_, count) in many.items()} == {
        **{url: count for url, (_, count) in few.items()},
        **dict.fromkeys(second_pages, base),
    }


@pytest.mark.django_db
def test_a_tasks_change_page_links_the_lookups_opened_above(admin_client, rows):
    page = admin_client.get(f"/admin/tasks/task/{rows['task']}/change/").content.decode()

    lookups = re.findall(r'href="([^"]+)"[^>]*class="related-lookup"', page)

    assert [url.replace("&amp;", "&") for url in lookups] == [
        url.format(**rows) for url in TASK_LOOKUPS
    ]


def served_patterns() -> set[str]:
    """Every URL pattern of the admin site and of each registered ModelAdmin."""
    patterns = set()
    for pattern in admin.site.get_urls():
        if isinstance(pattern, URLPattern):
            patterns.add(str(pattern.pattern))
    for model, model_admin in admin.site._registry.items():
        prefix = f"{model._meta.app_label}/{model._meta.model_name}/"
        for pattern in model_admin.get_urls():
            assert not isinstance(pattern, URLResolver)
            patterns.add(prefix + str(pattern.pattern))
    return patterns


def test_the_tables_name_every_url():
    """A page or model added to the admin fails here until the tables above name it."""
    registered = {
        f"{model._meta.app_label}/{model._meta.model_name}" for model in admin.site._registry
    }
    assert registered == set(CHANGELISTS)
    assert served_patterns() == {
        "",
        "login/",
        "logout/",
        "password_change/",
        "password_change/done/",
        "autocomplete/",
        "jsi18n/",
        "^(?P<app_label>auth|tasks|accounts)/$",
        "(?P<url>.*)$",  # the catch-all: a 404 (no/such/page/ above)
        *(
            f"{model}/{page}"
            for model in CHANGELISTS
            for page in (
                "",
                "add/",
                "<path:object_id>/",
                "<path:object_id>/change/",
                "<path:object_id>/history/",
                "<path:object_id>/delete/",
            )
        ),
        "accounts/user/<path:object_id>/export/",
        "accounts/user/<id>/password/",
    }
    for model, model_admin in admin.site._registry.items():
        label = f"{model._meta.app_label}/{model._meta.model_name}"
        columns = CHANGELISTS[label]["columns"]
        assert ["action_checkbox", *model_admin.list_display] == columns, label
