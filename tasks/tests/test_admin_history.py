"""Every registered model's history page ("History" on a change page) opens, for a superuser and
for support: what was done to a row, and by whom, is what support reads there.

The task admin's paginator (PagedOffTheAdminIndex) states the admin index's condition on `version`
in the page it reads: Django's history_view pages the row's LogEntry rows through the same
get_paginator, and LogEntry has no `version`, so every task's history page was a 500 (review 44b).
"""

import pytest
from django.contrib.admin.models import CHANGE, LogEntry

from tasks import services
from tasks.models import Tag, TaskList


@pytest.fixture
def rows(user) -> dict[str, object]:
    task = services.task_create(user=user, data={"title": "Pay rent", "tags": ["home"]})
    return {
        "accounts/user": user,
        "tasks/task": task,
        "tasks/tasklist": TaskList.objects.create(owner=user, name="Errands"),
        "tasks/tag": Tag.objects.get(owner=user, name="home"),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["accounts/user", "tasks/task", "tasks/tasklist", "tasks/tag"])
@pytest.mark.parametrize("who", ["admin_client", "support_client"])
def test_every_models_history_page_lists_its_entries(request, rows, model, who, admin_user):
    client = request.getfixturevalue(who)
    row = rows[model]
    LogEntry.objects.log_actions(
        user_id=admin_user.pk, queryset=[row], action_flag=CHANGE, change_message="Looked into it."
    )

    response = client.get(f"/admin/{model}/{row.pk}/history/")

    assert response.status_code == 200
    assert "Looked into it." in response.content.decode()
    assert [entry.change_message for entry in response.context["action_list"]] == [
        "Looked into it."
    ]


@pytest.mark.django_db
def test_a_tasks_history_page_pages_its_entries(admin_client, admin_user, user):
    # Django's history_view pages by 100: a task edited and completed often has more.
    task = services.task_create(user=user, data={"title": "Water the plants"})
    for number in range(101):
        LogEntry.objects.log_actions(
            user_id=admin_user.pk, queryset=[task], action_flag=CHANGE, change_message=f"n{number}"
        )

    first = admin_client.get(f"/admin/tasks/task/{task.pk}/history/")
    second = admin_client.get(f"/admin/tasks/task/{task.pk}/history/?p=2")

    assert (first.status_code, second.status_code) == (200, 200)
    assert len(first.context["action_list"]) == 100
    assert [entry.change_message for entry in second.context["action_list"]] == ["n100"]


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["parent", "tags"])
def test_the_task_admins_autocomplete_pages_through_its_paginator(admin_client, user, field):
    # Django's AutocompleteJsonView pages through the target model's admin's get_paginator
    # (no autocomplete_fields needed: any relation of a registered model to a model with
    # search_fields); for `parent` that is TaskAdmin's, with a queryset of tasks (review 44e).
    for number in range(25):
        services.task_create(user=user, data={"title": f"Errand {number}", "tags": [f"t{number}"]})

    response = admin_client.get(
        "/admin/autocomplete/",
        {"app_label": "tasks", "model_name": "task", "field_name": field, "term": ""},
    )

    assert response.status_code == 200, response.content
    answer = response.json()
    assert len(answer["results"]) == 20 and answer["pagination"] == {"more": True}
