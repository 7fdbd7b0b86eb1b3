"""A move's body `{"after": "<id>"}` validated without a serializer instance, and a write's
answer rendered once (review 40f).

The first three fail before the change (TaskMoveSerializer.plain_anchor does not exist; a
plain reorder built a TaskMoveSerializer; every write's answer was rendered by orjson, read
back, then rendered again by JSONRenderer). The others guard what must not change: the answer's
bytes and ETag are a GET's, an indented answer is still DRF's, an Idempotency-Key replay is the
first answer byte for byte, and any other body is still the serializer's to refuse.
"""

import json
import uuid

import pytest
from rest_framework.renderers import JSONRenderer

from tasks.models import Task
from tasks.serializers import TaskMoveSerializer

pytestmark = pytest.mark.django_db

ID = "0b6f8c1e-4a1d-4c8e-9a4f-2f4f6b1f7c11"


@pytest.mark.parametrize(
    "body",
    [
        {"after": ID},
        {"after": ID.upper()},
        {"after": None},  # null: first (the serializer's)
        {"after": ""},  # "" is null to a related field
        {"after": "not-an-id"},
        {"after": ID.replace("-", "")},  # undashed: StrictUUIDField refuses it
        {"after": "{" + ID + "}"},
        {"after": 5},
        {"after": [ID]},
        {"after": ID, "list": None},
        {"after": ID, "other": 1},
        {},
        [ID],
        ID,
    ],
)
def test_plain_anchor_is_the_serializers_value_or_leaves_the_body_to_it(body, rf, user):
    request = rf.post("/")
    request.user = user
    serializer = TaskMoveSerializer(data=body, context={"request": request})
    plain = TaskMoveSerializer.plain_anchor(body)
    if plain is not None:
        assert serializer.is_valid(), serializer.errors
        assert plain == dict(serializer.validated_data)
        assert isinstance(plain["after"], uuid.UUID)
    else:  # only {"after": "<canonical id>"} alone takes the short way
        assert not (
            isinstance(body, dict)
            and body.keys() == {"after"}
            and isinstance(body["after"], str)
            and len(body["after"]) == 36
            and body["after"].count("-") == 4
        )


def test_a_plain_reorder_builds_no_move_serializer(api_client, make_task, make_list, monkeypatch):
    home = make_list("Home")
    first, second = make_task("a", list=home), make_task("b", list=home)
    built = []
    original = TaskMoveSerializer.__init__

    def counted(self, *args, **kwargs):
        built.append(kwargs.get("data"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(TaskMoveSerializer, "__init__", counted)
    response = api_client.post(
        f"/api/v1/tasks/{first.pk}/move/", {"after": str(second.pk)}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert built == []
    # Any other body is the serializer's, as before.
    response = api_client.post(
        f"/api/v1/tasks/{first.pk}/move/", {"after": None, "list": str(home.pk)}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert len(built) == 1


def test_a_writes_answer_is_rendered_once(api_client, make_task, make_list, monkeypatch):
    home = make_list("Home")
    first, second = make_task("a", list=home), make_task("b\u2028c", list=home)
    rendered = []
    original = JSONRenderer.render

    def counted(self, data, *args, **kwargs):
        rendered.append(data)
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(JSONRenderer, "render", counted)

    def sent(method, path, body):  # encoded here: the test client encodes with JSONRenderer
        answer = getattr(api_client, method)(
            path, json.dumps(body), content_type="application/json"
        )
        got = api_client.get(f"/api/v1/tasks/{answer.json()['id']}/")
        assert answer.content == got.content and answer["ETag"] == got["ETag"]
        assert answer["Content-Type"] == "application/json"
        assert answer["Content-Length"] == str(len(answer.content))
        return answer

    answers = [
        sent("post", f"/api/v1/tasks/{second.pk}/move/", {"after": None}),
        sent("post", f"/api/v1/tasks/{first.pk}/move/", {"after": str(second.pk)}),
        sent("patch", f"/api/v1/tasks/{second.pk}/", {"priority": "high"}),
        sent("post", "/api/v1/tasks/", {"title": "new", "list": str(home.pk)}),
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 201]
    assert rendered == []
    assert b"\\u2028" in answers[0].content  # escaped as JSONRenderer does


def test_an_indented_answer_is_still_drfs(api_client, make_task, make_list):
    home = make_list("Home")
    first, second = make_task("a", list=home), make_task("b", list=home)
    answer = api_client.post(
        f"/api/v1/tasks/{first.pk}/move/",
        {"after": str(second.pk)},
        format="json",
        HTTP_ACCEPT="application/json; indent=4",
    )
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/json"  # DRF names the type without indent
    data = json.loads(answer.content)
    assert answer.content == JSONRenderer().render(data, "application/json; indent=4")
    assert answer.content.startswith(b'{\n    "id": ')
    got = api_client.get(f"/api/v1/tasks/{first.pk}/")
    assert data == got.json() and answer["ETag"] == got["ETag"]


def test_a_replayed_move_is_the_first_answer_byte_for_byte(api_client, make_task, make_list):
    home = make_list("Home")
    first, second = make_task("a", list=home), make_task("b", list=home)
    path, body = f"/api/v1/tasks/{first.pk}/move/", {"after": str(second.pk)}
    answers = [
        api_client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="move-once")
        for _ in range(2)
    ]
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].content == answers[1].content
    assert answers[0]["ETag"] == answers[1]["ETag"] == f'"{answers[0].json()["version"]}"'
    assert Task.objects.get(pk=first.pk).version == answers[0].json()["version"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"after": "not-an-id"}, "after"),
        ({"after": 5}, "after"),
        ({"after": ID}, "after"),  # well formed, unknown: read under the group lock
        ({"after": ID, "list": "nope"}, "after"),  # the unknown anchor named first
        ({}, "after"),  # required
    ],
)
def test_a_refused_move_is_refused_as_before(api_client, make_task, body, field):
    task = make_task("a")
    answer = api_client.post(f"/api/v1/tasks/{task.pk}/move/", body, format="json")
    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/problem+json"
    assert next(iter(answer.json()["errors"])) == field
