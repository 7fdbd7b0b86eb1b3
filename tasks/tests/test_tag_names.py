"""Two tag names are one tag when PostgreSQL's LOWER() says so, the rule of the unique index
(owner, LOWER(name)), wherever a name is looked up: never Python's str.lower(), which disagrees
for some valid names. 'İ' (Turkish dotted capital I) is 'i' to PostgreSQL but 'i̇' (two code
points) to Python; a capital sigma at the end of a word is 'σ' to PostgreSQL but the final 'ς'
to Python. Each used to be a 500 (a KeyError) on a write, and a filter that found nothing."""

import pytest
from django.db import connection

from tasks.models import Tag, Task

pytestmark = pytest.mark.django_db

# A name, and another spelling of it that PostgreSQL lowers to the same key (Python does not).
SPELLINGS = [("İstanbul", "istanbul"), ("ΟΔΟΣ", "οδοσ")]


def tag_names(task_id) -> list[str]:
    return sorted(Task.objects.get(pk=task_id).tags.values_list("name", flat=True))


def create(client, tags: list[str]) -> dict:
    response = client.post("/api/v1/tasks/", {"title": "x", "tags": tags})
    assert response.status_code == 201, response.json()
    return response.json()


def test_postgresql_and_python_lower_these_names_differently():
    """What the tests below rest on."""
    for name, other in SPELLINGS:
        with connection.cursor() as cursor:
            cursor.execute("SELECT LOWER(%s) = LOWER(%s)", [name, other])
            assert cursor.fetchone() == (True,)
        assert name.lower() != other.lower()


@pytest.mark.parametrize(("name", "other"), SPELLINGS)
def test_a_create_names_one_tag_in_either_spelling(api_client, user, name, other):
    first = create(api_client, [name])
    second = create(api_client, [other])
    assert first["tags"] == second["tags"] == [name]  # the stored spelling
    assert list(Tag.objects.owned_by(user).values_list("name", flat=True)) == [name]
    assert tag_names(second["id"]) == [name]


def test_one_request_naming_a_tag_in_two_spellings_makes_one_tag(api_client, user):
    task = create(api_client, ["ΟΔΟΣ", "οδοσ", "İstanbul", "istanbul", "ISTANBUL"])
    assert task["tags"] == ["İstanbul", "ΟΔΟΣ"]  # the first spelling of each
    assert sorted(Tag.objects.owned_by(user).values_list("name", flat=True)) == [
        "İstanbul",
        "ΟΔΟΣ",
    ]


def test_names_that_only_python_lowers_alike_are_two_tags(api_client, user):
    # 'ΟΔΟΣ' and 'οδος' (final sigma): 'οδος' to Python both; 'οδοσ' and 'οδος' to PostgreSQL,
    # whose unique index holds both.
    task = create(api_client, ["ΟΔΟΣ", "οδος"])
    assert sorted(task["tags"]) == ["ΟΔΟΣ", "οδος"]
    assert Tag.objects.owned_by(user).count() == 2


@pytest.mark.parametrize("method", ["patch", "put"])
@pytest.mark.parametrize(("name", "other"), SPELLINGS)
def test_a_patch_or_put_names_one_tag_in_either_spelling(
    api_client, make_task, user, method, name, other
):
    task = make_task("x", tags=["home"])
    url = f"/api/v1/tasks/{task.pk}/"
    response = getattr(api_client, method)(url, {"title": "x", "tags": [name, "HOME"]})
    assert response.status_code == 200, response.json()
    assert sorted(response.json()["tags"]) == sorted(["home", name])
    version = response.json()["version"]

    again = getattr(api_client, method)(url, {"title": "x", "tags": ["home", other]})
    assert again.status_code == 200, again.json()
    assert again.json()["tags"] == response.json()["tags"]
    assert again.json()["version"] == version  # the same tags: nothing changed
    assert tag_names(task.pk) == sorted(["home", name])
    assert Tag.objects.owned_by(user).count() == 2


@pytest.mark.parametrize(("name", "other"), SPELLINGS)
def test_bulk_add_and_remove_name_one_tag_in_either_spelling(
    api_client, make_task, user, name, other
):
    task = make_task("x")
    ids = [str(task.pk)]
    added = api_client.post(
        "/api/v1/tasks/bulk/", {"action": "add_tags", "ids": ids, "tags": [name]}
    )
    assert added.status_code == 200 and added.json() == {"updated": 1}, added.json()
    again = api_client.post(
        "/api/v1/tasks/bulk/", {"action": "add_tags", "ids": ids, "tags": [other, name]}
    )
    assert again.json() == {"updated": 0}
    assert tag_names(task.pk) == [name]

    removed = api_client.post(
        "/api/v1/tasks/bulk/", {"action": "remove_tags", "ids": ids, "tags": [other]}
    )
    assert removed.json() == {"updated": 1}
    assert tag_names(task.pk) == []
    assert list(Tag.objects.owned_by(user).values_list("name", flat=True)) == [name]


@pytest.mark.parametrize(("name", "other"), SPELLINGS)
def test_the_tag_filter_finds_a_tag_in_either_spelling(api_client, make_task, name, other):
    make_task("tagged", tags=[name])
    make_task("other", tags=["home"])
    for query in (name, other, f"{name}&tag={other}", name.upper()):
        response = api_client.get(f"/api/v1/tasks/?tag={query}")
        assert response.status_code == 200, response.json()
        assert [task["title"] for task in response.json()["results"]] == ["tagged"], query


@pytest.mark.parametrize(("name", "other"), SPELLINGS)
def test_a_tag_is_renamed_and_deleted_by_either_spelling(api_client, make_task, user, name, other):
    task = make_task("x", tags=[name])
    renamed = api_client.patch(f"/api/v1/tags/{other}/", {"name": other})
    assert renamed.status_code == 200, renamed.json()
    assert renamed.json() == {"name": other, "task_count": 1}
    assert tag_names(task.pk) == [other]
    assert api_client.delete(f"/api/v1/tags/{name}/").status_code == 204
    assert not Tag.objects.owned_by(user).exists()


@pytest.mark.parametrize(("name", "other"), SPELLINGS)
def test_renaming_into_another_spelling_of_an_existing_tag_merges_them(
    api_client, make_task, user, name, other
):
    both = make_task("both", tags=[name, "x"])
    one = make_task("one", tags=["x"])
    response = api_client.patch("/api/v1/tags/x/", {"name": other})
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": name, "task_count": 2}
    assert tag_names(both.pk) == tag_names(one.pk) == [name]
    assert list(Tag.objects.owned_by(user).values_list("name", flat=True)) == [name]
