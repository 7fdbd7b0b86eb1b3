"""A title, a list's name and a tag's name are one line: no line breaks, tabs or other control
characters inside (their ends are trimmed). A description is text and keeps them. A value
stored before the rule may be sent back unchanged: a PUT sends the fields nobody touched too."""

import pytest

from accounts.tests.helpers import assert_problem
from tasks import services
from tasks.models import Tag, Task, TaskList
from todo_project.fields import CONTROL_CHARACTERS_MESSAGE

pytestmark = pytest.mark.django_db

# Line feed, carriage return, tab, escape, DEL, C1's "next line", a C1 control of no name, and
# Unicode's line and paragraph separators.
CONTROLS = ["\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\x9f", "\u2028", "\u2029"]


def field_errors(response) -> dict:
    return assert_problem(response, 400)["errors"]


@pytest.mark.parametrize("control", CONTROLS)
def test_a_title_with_a_control_character_inside_is_a_400(api_client, control):
    response = api_client.post("/api/v1/tasks/", {"title": f"Pay{control}rent"})
    assert field_errors(response) == {"title": [CONTROL_CHARACTERS_MESSAGE]}
    assert not Task.objects.exists()


def test_a_title_and_a_name_with_a_line_break_at_their_ends_are_trimmed(api_client):
    task = api_client.post("/api/v1/tasks/", {"title": "\tPay rent\r\n", "tags": ["money\n"]})
    tasklist = api_client.post("/api/v1/lists/", {"name": "Home\n"})
    assert (task.status_code, tasklist.status_code) == (201, 201)
    assert (task.json()["title"], task.json()["tags"]) == ("Pay rent", ["money"])
    assert tasklist.json()["name"] == "Home"


def test_a_description_keeps_its_line_breaks_and_tabs(api_client):
    response = api_client.post("/api/v1/tasks/", {"title": "a", "description": "1.\tmilk\n2.\tegg"})
    assert response.status_code == 201
    assert Task.objects.get().description == "1.\tmilk\n2.\tegg"


def test_a_list_name_with_a_control_character_is_a_400_on_create_and_on_rename(api_client, user):
    home = TaskList.objects.create(owner=user, name="Home", position=1024)
    created = api_client.post("/api/v1/lists/", {"name": "Work\tplace"})
    renamed = api_client.patch(f"/api/v1/lists/{home.pk}/", {"name": "Home\nsweet"})
    for response in (created, renamed):
        assert field_errors(response) == {"name": [CONTROL_CHARACTERS_MESSAGE]}
    assert list(TaskList.objects.values_list("name", flat=True)) == ["Home"]


def test_no_new_tag_is_named_with_a_control_character(api_client, user):
    task = services.task_create(user=user, data={"title": "Pay rent", "tags": ["money"]})
    created = api_client.post("/api/v1/tasks/", {"title": "a", "tags": ["bills", "to\tdo"]})
    updated = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"tags": ["money", "a\nb"]})
    bulk = api_client.post(
        "/api/v1/tasks/bulk/", {"action": "add_tags", "ids": [str(task.pk)], "tags": ["x\x1by"]}
    )
    renamed = api_client.patch("/api/v1/tags/money/", {"name": "mo\nney"})

    for response, index in ((created, 1), (updated, 1), (bulk, 0)):  # the item's index
        assert field_errors(response) == {"tags": [f"Item {index}: {CONTROL_CHARACTERS_MESSAGE}"]}
    assert field_errors(renamed) == {"name": [CONTROL_CHARACTERS_MESSAGE]}
    assert list(Tag.objects.values_list("name", flat=True)) == ["money"]
    assert Task.objects.count() == 1 and Task.objects.get().version == 1


def test_values_stored_before_the_rule_are_taken_back_unchanged(api_client, user):
    old_list = TaskList.objects.create(owner=user, name="Home\tWork", position=1024)
    old_tag = Tag.objects.create(owner=user, name="to\tdo")
    task = Task.objects.create(owner=user, title="Pay\trent", position=1024, list=old_list)
    task.tags.add(old_tag)

    put = api_client.put(
        f"/api/v1/tasks/{task.pk}/",
        {"title": "Pay\trent", "list": str(old_list.pk), "tags": ["to\tdo"], "priority": "high"},
    )
    list_patch = api_client.patch(
        f"/api/v1/lists/{old_list.pk}/", {"name": "Home\tWork", "color": "#112233"}
    )
    renamed_away = api_client.patch("/api/v1/tags/to%09do/", {"name": "todo"})

    assert (put.status_code, list_patch.status_code, renamed_away.status_code) == (200, 200, 200)
    assert put.json()["priority"] == "high" and put.json()["title"] == "Pay\trent"
    assert list_patch.json()["color"] == "#112233"
    assert list(Tag.objects.values_list("name", flat=True)) == ["todo"]
    # Changed to another such value, the rule holds.
    changed = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"title": "Pay\tthe rent"})
    assert field_errors(changed) == {"title": [CONTROL_CHARACTERS_MESSAGE]}


def test_a_tag_named_before_the_rule_keeps_its_name_and_takes_a_merge(api_client, user):
    old = Tag.objects.create(owner=user, name="to\tdo")
    Tag.objects.create(owner=user, name="todo")
    task = services.task_create(user=user, data={"title": "a", "tags": ["todo"]})

    assert api_client.patch("/api/v1/tags/to%09do/", {"name": "to\tdo"}).status_code == 200
    merged = api_client.patch("/api/v1/tags/todo/", {"name": "To\tDo"})

    assert merged.status_code == 200, merged.json()
    assert list(Tag.objects.values_list("pk", "name")) == [(old.pk, "to\tdo")]
    assert list(task.tags.values_list("name", flat=True)) == ["to\tdo"]


def test_a_tag_named_before_the_rule_takes_no_new_spelling_with_a_tab(api_client, user):
    Tag.objects.create(owner=user, name="to\tdo")
    response = api_client.patch("/api/v1/tags/to%09do/", {"name": "TO\tDO"})
    assert field_errors(response) == {"name": [CONTROL_CHARACTERS_MESSAGE]}
    assert list(Tag.objects.values_list("name", flat=True)) == ["to\tdo"]
