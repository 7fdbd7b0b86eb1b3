"""A list's or a tag's name is stored composed (Unicode's NFC): "Café" typed with "é" and with
"e" + a combining acute accent is one name, so it cannot make two lists or two tags that look
the same. A name stored before the rule, sent back unchanged, stays as it is."""

from urllib.parse import quote

import pytest

from accounts.tests.helpers import assert_problem
from tasks import services
from tasks.models import Tag, Task, TaskList
from tasks.services import LIST_NAME_TAKEN

pytestmark = pytest.mark.django_db

COMPOSED = "Caf\u00e9"  # é, one character
DECOMPOSED = "Cafe\u0301"  # e + combining acute accent
# A name migration 0015 left as it was: U+0958 is two code points composed (a composition
# exclusion), so composed it is 120 characters, more than a list's name may have.
LEFT_DECOMPOSED = "\u0958" * 60
LISTS_URL = "/admin/tasks/tasklist/"
TAGS_URL = "/admin/tasks/tag/"


def test_a_list_name_is_stored_composed_and_its_other_spelling_is_taken(api_client):
    created = api_client.post("/api/v1/lists/", {"name": DECOMPOSED})
    assert created.status_code == 201
    assert created.json()["name"] == COMPOSED
    assert TaskList.objects.get().name == COMPOSED

    for spelling in (COMPOSED, "CAFE\u0301", " caf\u00e9 "):
        taken = api_client.post("/api/v1/lists/", {"name": spelling})
        assert assert_problem(taken, 400)["errors"] == {"name": [LIST_NAME_TAKEN]}
    assert TaskList.objects.count() == 1


def test_a_list_rename_to_another_lists_name_in_the_other_spelling_is_taken(api_client, user):
    services.list_create(user=user, name=COMPOSED, color=None, position=None)
    work = services.list_create(user=user, name="Work", color=None, position=None)

    response = api_client.patch(f"/api/v1/lists/{work.pk}/", {"name": DECOMPOSED})

    assert assert_problem(response, 400)["errors"] == {"name": [LIST_NAME_TAKEN]}


def test_a_names_length_is_counted_composed(api_client):
    # 100 characters stored; 200 code points as sent.
    response = api_client.post("/api/v1/lists/", {"name": "e\u0301" * 100})
    assert response.status_code == 201
    assert response.json()["name"] == "\u00e9" * 100


def test_the_spellings_of_a_tag_name_are_one_tag(api_client):
    first = api_client.post("/api/v1/tasks/", {"title": "a", "tags": [DECOMPOSED]})
    second = api_client.post("/api/v1/tasks/", {"title": "b", "tags": ["CAF\u00c9", COMPOSED]})

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["tags"] == [COMPOSED]
    assert second.json()["tags"] == [COMPOSED]
    assert api_client.get("/api/v1/tags/").json() == [{"name": COMPOSED, "task_count": 2}]


def test_a_tag_is_found_by_either_spelling_in_a_filter_a_bulk_action_and_its_url(api_client, user):
    task = services.task_create(user=user, data={"title": "a", "tags": [COMPOSED]})
    services.task_create(user=user, data={"title": "b"})

    found = api_client.get("/api/v1/tasks/", {"tag": DECOMPOSED})
    assert [row["title"] for row in found.json()["results"]] == ["a"]

    removed = api_client.post(
        "/api/v1/tasks/bulk/",
        {"action": "remove_tags", "ids": [str(task.pk)], "tags": [DECOMPOSED]},
    )
    assert removed.status_code == 200
    assert list(Task.objects.get(pk=task.pk).tags.all()) == []

    renamed = api_client.patch(f"/api/v1/tags/{quote(DECOMPOSED)}/", {"name": "Tea"})
    assert renamed.status_code == 200
    assert list(Tag.objects.values_list("name", flat=True)) == ["Tea"]


def test_a_tag_renamed_to_a_decomposed_name_is_stored_composed(api_client, user):
    services.task_create(user=user, data={"title": "a", "tags": ["cafe"]})

    response = api_client.patch("/api/v1/tags/cafe/", {"name": DECOMPOSED})

    assert response.json() == {"name": COMPOSED, "task_count": 1}
    assert Tag.objects.get().name == COMPOSED


def test_a_list_name_stored_before_the_rule_may_be_sent_back_unchanged(api_client, user):
    old = TaskList.objects.create(owner=user, name=LEFT_DECOMPOSED, position=2048)

    response = api_client.patch(
        f"/api/v1/lists/{old.pk}/", {"name": LEFT_DECOMPOSED, "color": "#112233"}
    )

    assert response.status_code == 200
    assert response.json()["name"] == LEFT_DECOMPOSED
    old.refresh_from_db()
    assert (old.name, old.color) == (LEFT_DECOMPOSED, "#112233")


def test_the_admin_stores_names_composed_and_finds_the_other_spelling_taken(
    admin_client, support_client, user
):
    added = admin_client.post(f"{TAGS_URL}add/", {"owner": user.pk, "name": DECOMPOSED})
    assert added.status_code == 302
    assert Tag.objects.get().name == COMPOSED

    services.list_create(user=user, name=COMPOSED, color=None, position=None)
    work = services.list_create(user=user, name="Work", color=None, position=None)
    renamed = support_client.post(
        f"{LISTS_URL}{work.pk}/change/", {"name": DECOMPOSED, "color": "", "opened_version": 1}
    )
    assert renamed.context["adminform"].form.errors == {
        "name": ["This user already has one with this name."]
    }


def test_the_admin_keeps_a_list_name_stored_before_the_rule(support_client, user):
    old = TaskList.objects.create(owner=user, name=LEFT_DECOMPOSED, position=2048)

    response = support_client.post(
        f"{LISTS_URL}{old.pk}/change/",
        {"name": LEFT_DECOMPOSED, "color": "#112233", "opened_version": 1},
    )

    assert response.status_code == 302
    old.refresh_from_db()
    assert (old.name, old.color) == (LEFT_DECOMPOSED, "#112233")


def test_a_tag_filter_counts_a_names_length_composed(api_client, user):
    services.task_create(user=user, data={"title": "a", "tags": ["\u00e9" * 50]})

    response = api_client.get("/api/v1/tasks/", {"tag": "e\u0301" * 50})

    assert [row["title"] for row in response.json()["results"]] == ["a"]


def test_a_list_name_stored_before_the_rule_may_come_back_with_spaces_around(api_client, user):
    old = TaskList.objects.create(owner=user, name=LEFT_DECOMPOSED, position=2048)

    response = api_client.patch(f"/api/v1/lists/{old.pk}/", {"name": f" {LEFT_DECOMPOSED} "})

    assert response.status_code == 200
    assert TaskList.objects.get(pk=old.pk).name == LEFT_DECOMPOSED


def test_the_service_composes_the_tag_names_it_is_given(user):
    # Callers other than the API's serializers (the admin, commands) name tags too.
    services.task_create(user=user, data={"title": "a", "tags": [COMPOSED]})

    tags = services.tags_get_or_create(user=user, names=[DECOMPOSED, "T\u0065\u0301a"])

    assert [tag.name for tag in tags] == [COMPOSED, "T\u00e9a"]
    assert Tag.objects.count() == 2


def test_a_tag_is_merged_and_deleted_by_a_decomposed_name(api_client, user):
    services.task_create(user=user, data={"title": "a", "tags": [COMPOSED]})
    services.task_create(user=user, data={"title": "b", "tags": ["tea"]})

    merged = api_client.patch("/api/v1/tags/tea/", {"name": "CAFE\u0301"})
    deleted = api_client.delete(f"/api/v1/tags/{quote(DECOMPOSED)}/")

    assert merged.json() == {"name": COMPOSED, "task_count": 2}
    assert deleted.status_code == 204
    assert not Tag.objects.exists()


# "ǰ" (U+01F0) has no composed capital: its upper case is "J" + U+030C, which lower-cases to
# "j" + U+030C, which composes to "ǰ". LOWER() alone, composed before or not, made them two.
J_CARON_WORD = "\u01f0ob"
ITS_UPPER_CASE = "J\u030cOB"


def test_a_name_and_its_upper_case_are_one_tag_where_lower_case_composes_further(api_client, user):
    created = api_client.post("/api/v1/tasks/", {"title": "a", "tags": [J_CARON_WORD]})
    tagged = api_client.post("/api/v1/tasks/", {"title": "b", "tags": [ITS_UPPER_CASE]})
    both = api_client.post("/api/v1/tasks/", {"title": "c", "tags": ["X", ITS_UPPER_CASE.lower()]})

    assert [r.json()["tags"] for r in (created, tagged, both)] == [[J_CARON_WORD]] * 2 + [
        [J_CARON_WORD, "X"]
    ]
    assert Tag.objects.filter(name=J_CARON_WORD).count() == 1
    found = api_client.get("/api/v1/tasks/", {"tag": ITS_UPPER_CASE})
    assert sorted(row["title"] for row in found.json()["results"]) == ["a", "b", "c"]
    renamed = api_client.patch(f"/api/v1/tags/{quote(ITS_UPPER_CASE)}/", {"name": "job"})
    assert renamed.json() == {"name": "job", "task_count": 3}


def test_a_name_and_its_upper_case_are_one_list_where_lower_case_composes_further(
    api_client, admin_client, user
):
    assert api_client.post("/api/v1/lists/", {"name": J_CARON_WORD}).status_code == 201

    taken = api_client.post("/api/v1/lists/", {"name": ITS_UPPER_CASE})
    in_the_admin = admin_client.post(f"{LISTS_URL}add/", {"owner": user.pk, "name": ITS_UPPER_CASE})

    assert assert_problem(taken, 400)["errors"] == {"name": [LIST_NAME_TAKEN]}
    assert in_the_admin.context["adminform"].form.errors == {
        "name": ["This user already has one with this name."]
    }
    assert TaskList.objects.count() == 1


def test_the_admin_counts_a_names_length_composed(admin_client, user):
    # 100 "é" typed decomposed: 200 code points, 100 characters stored, as the API takes it.
    response = admin_client.post(f"{LISTS_URL}add/", {"owner": user.pk, "name": "e\u0301" * 100})

    assert response.status_code == 302
    assert TaskList.objects.get().name == "\u00e9" * 100


def test_a_tag_is_found_at_the_url_of_its_name_decomposed_where_lower_case_differs(
    api_client, user
):
    # "İ" lowers to "i", "I" + U+0307 (its decomposed form) to "i" + U+0307: a name is looked
    # for composed, as it is stored, before its key is taken.
    services.task_create(user=user, data={"title": "a", "tags": ["\u0130stanbul"]})

    decomposed = quote("I\u0307stanbul")
    renamed = api_client.patch(f"/api/v1/tags/{decomposed}/", {"name": "Ankara"})

    assert renamed.json() == {"name": "Ankara", "task_count": 1}


# Zero-width space (pasted from web pages), BOM (a Windows file's first line), word joiner,
# left-to-right mark (RTL-aware editors): with one at an end, a name was another name that
# showed the same (a sidebar of several "Work" lists, a task with two "home" chips).
@pytest.mark.parametrize("invisible", ["\u200b", "\ufeff", "\u2060", "\u200e"])
def test_invisible_characters_at_a_names_ends_are_trimmed_as_spaces_are(
    api_client, admin_client, user, invisible
):
    assert api_client.post("/api/v1/lists/", {"name": "Work"}).status_code == 201
    taken = api_client.post("/api/v1/lists/", {"name": f"{invisible}Work{invisible}"})
    assert assert_problem(taken, 400)["errors"] == {"name": [LIST_NAME_TAKEN]}
    task = api_client.post("/api/v1/tasks/", {"title": "x", "tags": ["home", f"home{invisible}"]})
    assert task.json()["tags"] == ["home"]
    found = api_client.get("/api/v1/tasks/", {"tag": f"{invisible}home"}).json()["results"]
    assert [row["title"] for row in found] == ["x"]
    added = admin_client.post(f"{TAGS_URL}add/", {"owner": user.pk, "name": f"{invisible}new"})
    assert added.status_code == 302 and Tag.objects.filter(name="new").exists()
    # Inside a name they stay: an emoji sequence needs its zero-width joiner.
    coder = api_client.post("/api/v1/lists/", {"name": "\U0001f469\u200d\U0001f4bb code"})
    assert coder.json()["name"] == "\U0001f469\u200d\U0001f4bb code"


def test_a_list_name_stored_with_an_invisible_end_may_be_sent_back_unchanged(api_client, user):
    old = TaskList.objects.create(owner=user, name="Work\u200b", position=2048)
    response = api_client.patch(
        f"/api/v1/lists/{old.pk}/", {"name": "Work\u200b", "color": "#112233"}
    )
    assert response.status_code == 200 and response.json()["name"] == "Work\u200b"


# A tag stored before the trimming rule (88fde2a, no data migration) keeps its name, and the
# README's promise holds for it as for a list: sent back unchanged it is that tag, wherever a
# tag is named (a task's `tags`, `tag=`, a bulk action), never the tag of its trimmed name.
LEGACY_TAG = "home\u200b"


@pytest.fixture
def task_with_legacy_tag(user, make_task):
    task = make_task("Pay rent")
    task.tags.add(Tag.objects.create(owner=user, name=LEGACY_TAG))
    return task


def test_a_tasks_tag_stored_with_an_invisible_end_sent_back_unchanged_stays(
    api_client, user, task_with_legacy_tag
):
    url = f"/api/v1/tasks/{task_with_legacy_tag.pk}/"
    shown = api_client.get(url).json()
    assert shown["tags"] == [LEGACY_TAG]
    # A PUT-style client sends back what it read, tags included: nothing changes.
    unchanged = api_client.patch(url, {"tags": shown["tags"]}).json()
    assert unchanged["tags"] == [LEGACY_TAG] and unchanged["version"] == shown["version"]
    renamed = api_client.patch(url, {"title": "Pay the rent", "tags": shown["tags"]})
    assert renamed.status_code == 200 and renamed.json()["tags"] == [LEGACY_TAG]
    assert list(Tag.objects.filter(owner=user).values_list("name", flat=True)) == [LEGACY_TAG]
    # Without a stored tag of that name, the name is trimmed as ever.
    other = api_client.post("/api/v1/tasks/", {"title": "x", "tags": ["work\u200b"]}).json()
    assert other["tags"] == ["work"]


def test_the_tag_filter_finds_a_tag_stored_with_an_invisible_end_by_its_name(
    api_client, make_task, task_with_legacy_tag
):
    make_task("Trimmed", tags=["home"])
    # tags/{name}/ finds it by that very name, and so does `tag=`; the trimmed name is the
    # other tag's.
    assert api_client.patch(f"/api/v1/tags/{LEGACY_TAG}/", {"name": LEGACY_TAG}).status_code == 200
    for name, titles in ((LEGACY_TAG, ["Pay rent"]), ("home", ["Trimmed"])):
        found = api_client.get("/api/v1/tasks/", {"tag": name}).json()["results"]
        assert [task["title"] for task in found] == titles


def test_bulk_tag_actions_of_a_name_stored_with_an_invisible_end_act_on_that_tag(
    api_client, make_task, task_with_legacy_tag
):
    both = make_task("Both", tags=["home"])
    both.tags.add(task_with_legacy_tag.tags.get())
    removed = api_client.post(
        "/api/v1/tasks/bulk/",
        {"action": "remove_tags", "ids": [str(both.pk)], "tags": [LEGACY_TAG]},
    )
    assert removed.status_code == 200
    assert api_client.get(f"/api/v1/tasks/{both.pk}/").json()["tags"] == ["home"]
    added = api_client.post(
        "/api/v1/tasks/bulk/",
        {"action": "add_tags", "ids": [str(both.pk)], "tags": [LEGACY_TAG]},
    )
    assert added.status_code == 200
    assert api_client.get(f"/api/v1/tasks/{both.pk}/").json()["tags"] == ["home", LEGACY_TAG]
