"""Another user's ids: 404 in the path, a 400 field error in a body, and nothing changes."""

import uuid

import pytest

from tasks.models import NO_SUCH_LIST, NO_SUCH_TASK, Tag, Task, TaskList

pytestmark = pytest.mark.django_db


@pytest.fixture
def theirs(other_user, make_list, make_task):
    their_list = make_list("Theirs", owner=other_user)
    their_task = make_task("secret", owner=other_user, list=their_list, tags=["private"])
    return {"list": their_list, "task": their_task}


def snapshot() -> list:
    return [
        list(Task.objects.order_by("pk").values()),
        list(TaskList.objects.order_by("pk").values()),
        list(Tag.objects.order_by("pk").values()),
        list(Task.tags.through.objects.order_by("pk").values()),
    ]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/v1/tasks/{task}/", None),
        ("patch", "/api/v1/tasks/{task}/", {"title": "mine now"}),
        ("put", "/api/v1/tasks/{task}/", {"title": "mine now"}),
        ("delete", "/api/v1/tasks/{task}/", None),
        ("post", "/api/v1/tasks/{task}/move/", {"after": None}),
        ("get", "/api/v1/lists/{list}/", None),
        ("patch", "/api/v1/lists/{list}/", {"name": "mine now"}),
        ("delete", "/api/v1/lists/{list}/", None),
        ("delete", "/api/v1/lists/{list}/?tasks=delete", None),
        ("patch", "/api/v1/tags/private/", {"name": "public"}),
        ("delete", "/api/v1/tags/private/", None),
    ],
)
def test_another_users_id_in_the_path_is_a_404(api_client, theirs, method, path, body):
    before = snapshot()
    url = path.format(task=theirs["task"].pk, list=theirs["list"].pk)
    response = getattr(api_client, method)(url, body)
    assert response.status_code == 404
    assert response.json()["detail"] in ("Not found.", "No tag of this name.")
    assert snapshot() == before


def test_a_foreign_id_is_answered_like_an_unknown_one(api_client, theirs):
    foreign = api_client.get(f"/api/v1/tasks/{theirs['task'].pk}/").json()
    unknown = api_client.get("/api/v1/tasks/0b6f8c1e-4a1d-4c8e-9a4f-2f4f6b1f7c11/").json()
    assert {k: v for k, v in foreign.items() if k not in ("instance", "request_id")} == {
        k: v for k, v in unknown.items() if k not in ("instance", "request_id")
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/api/v1/tasks/", {"title": "x", "list": "{list}"}, "list"),
        ("post", "/api/v1/tasks/", {"title": "x", "parent": "{task}"}, "parent"),
        ("patch", "/api/v1/tasks/{mine}/", {"list": "{list}"}, "list"),
        ("patch", "/api/v1/tasks/{mine}/", {"parent": "{task}"}, "parent"),
        ("post", "/api/v1/tasks/{mine}/move/", {"after": "{task}"}, "after"),
        ("post", "/api/v1/tasks/{mine}/move/", {"after": None, "list": "{list}"}, "list"),
        (
            "post",
            "/api/v1/tasks/bulk/",
            {"action": "move", "ids": ["{mine}"], "list": "{list}"},
            "list",
        ),
    ],
)
def test_another_users_id_in_a_body_is_a_400_field_error(
    api_client, make_task, theirs, method, path, body, field
):
    mine = make_task("mine")
    before = snapshot()
    ids = {"task": theirs["task"].pk, "list": theirs["list"].pk, "mine": mine.pk}

    def fill(value):
        if isinstance(value, str):
            return value.format(**ids)
        if isinstance(value, list):
            return [fill(item) for item in value]
        return value

    response = getattr(api_client, method)(
        path.format(**ids), {key: fill(value) for key, value in body.items()}
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]
    assert snapshot() == before


@pytest.mark.parametrize(("field", "message"), [("list", NO_SUCH_LIST), ("parent", NO_SUCH_TASK)])
def test_an_unknown_or_foreign_id_in_a_body_or_a_filter_says_no_such_row_one_way(
    api_client, theirs, field, message
):
    """One plain wording (a list deleted on another device is the commonest error), the same in
    a body and in the query, and for an unknown id and someone else's: nothing leaks."""
    foreign = theirs["list" if field == "list" else "task"].pk
    for pk in (foreign, uuid.uuid4()):
        body = api_client.post("/api/v1/tasks/", {"title": "a", field: str(pk)})
        query = api_client.get(f"/api/v1/tasks/?{field}={pk}")
        for response in (body, query):
            assert response.status_code == 400
            assert response.json()["errors"] == {field: [message]}


def test_listings_show_only_the_callers_rows(api_client, theirs, make_task, make_list):
    make_task("mine", tags=["own"])
    make_list("Mine")
    assert [t["title"] for t in api_client.get("/api/v1/tasks/").json()["results"]] == ["mine"]
    assert [row["name"] for row in api_client.get("/api/v1/lists/").json()] == ["Mine"]
    assert api_client.get("/api/v1/tags/").json() == [{"name": "own", "task_count": 1}]
    assert api_client.get("/api/v1/tasks/?search=secret").json()["count"] == 0
    assert api_client.get("/api/v1/tasks/?tag=private").json()["count"] == 0


def test_bulk_with_another_users_id_is_a_404_and_changes_nothing(api_client, theirs, make_task):
    mine = make_task("mine")
    before = snapshot()
    for action, extra in (("delete", {}), ("complete", {}), ("add_tags", {"tags": ["x"]})):
        response = api_client.post(
            "/api/v1/tasks/bulk/",
            {"action": action, "ids": [str(mine.pk), str(theirs["task"].pk)], **extra},
        )
        assert response.status_code == 404
        assert response.json()["missing_ids"] == [str(theirs["task"].pk)]
    assert snapshot() == before


@pytest.mark.parametrize("kind", ["tasks", "lists", "tags"])
def test_options_of_another_users_row_is_a_404_like_an_unknown_one(
    api_client, other_client, make_task, make_list, kind
):
    # DRF described any id (leaving out the write actions): every other method says 404.
    if kind == "tasks":
        key = make_task("rent").pk
    elif kind == "lists":
        key = make_list("Home").pk
    else:
        key = make_task("rent", tags=["only-mine"]).tags.get().name
    url = f"/api/v1/{kind}/{key}/"
    assert api_client.options(url).status_code == 200
    theirs = other_client.options(url)
    assert theirs.status_code == 404 and theirs["Content-Type"] == "application/problem+json"
    unknown = url.replace(str(key), "0b6f8c1e-4a1d-4c8e-9a4f-2f4f6b1f7c11")
    assert other_client.options(unknown).status_code == 404
