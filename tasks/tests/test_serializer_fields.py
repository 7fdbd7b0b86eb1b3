"""TaskSerializer builds its fields from the model once per class (serializers.BuiltOnceFields),
and each instance gets shallow copies of them."""

import pytest
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.utils import model_meta

from tasks.models import MAX_TAG_ENTRIES
from tasks.serializers import TaskSerializer
from tasks.services import MAX_BULK_IDS


def test_the_fields_are_what_drf_builds_and_each_instance_has_its_own():
    built = TaskSerializer().fields
    again = TaskSerializer().fields
    by_drf = serializers.ModelSerializer.get_fields(TaskSerializer())

    assert list(built) == list(again) == list(by_drf) == TaskSerializer.Meta.fields
    assert {name: repr(field) for name, field in built.items()} == {
        name: repr(field) for name, field in by_drf.items()
    }
    for name in built:
        assert built[name] is not again[name]
    assert built["list"].parent is not again["list"].parent


def test_the_model_is_introspected_once_per_class(monkeypatch):
    TaskSerializer().fields  # noqa: B018 (built, if no test did before)
    calls = []
    original = model_meta.get_field_info
    monkeypatch.setattr(
        model_meta, "get_field_info", lambda model: calls.append(model) or original(model)
    )

    for _ in range(3):
        assert "title" in TaskSerializer().fields
    assert calls == []
    # What the class saves: DRF's ModelSerializer introspects on every instance.
    serializers.ModelSerializer.get_fields(TaskSerializer())
    assert len(calls) == 1


IMMUTABLE = (str, int, float, bool, type(None), tuple, frozenset)


def test_the_copies_share_nothing_a_request_changes():
    first, second = TaskSerializer(), TaskSerializer()

    for name, field in first.fields.items():
        built = TaskSerializer._built_fields[name]
        assert field.parent is first and second.fields[name].parent is second
        assert built.parent is None and built.field_name is None  # the class's stay unbound
        # A shared mutable default would carry one request's changes into the next.
        assert (
            field.default is empty
            or callable(field.default)
            or isinstance(field.default, IMMUTABLE)
        ), name


@pytest.mark.django_db
def test_an_invalid_instance_leaves_the_next_one_untouched(rf, user):
    request = rf.post("/")
    request.user = user
    context = {"request": request}
    invalid = TaskSerializer(
        data={"title": "", "tags": ["x" * 51], "priority": "urgent"}, context=context
    )
    valid = TaskSerializer(data={"title": "Pay rent", "tags": [" Home", "home "]}, context=context)

    assert not invalid.is_valid()
    assert set(invalid.errors) == {"title", "tags", "priority"}
    assert valid.is_valid(), valid.errors
    # Trimmed; which names are one tag is the service's to say (PostgreSQL's LOWER()).
    assert valid.validated_data["tags"] == ["Home", "home"]
    assert valid.validated_data["title"] == "Pay rent"


@pytest.mark.django_db
def test_a_default_changed_by_one_instance_is_not_the_next_ones(rf, user):
    request = rf.post("/")
    request.user = user
    first, second = (
        TaskSerializer(data={"title": "Pay rent"}, context={"request": request}) for _ in range(2)
    )

    assert first.is_valid(), first.errors
    first.validated_data["tags"].append("leaked")
    assert second.is_valid(), second.errors
    assert second.validated_data["tags"] == []


# 100,000 items (~200 kB of JSON, a fifth of the body cap), each invalid: DRF validated and
# reported every one before the count cap, 4-5 s in-process and 3.4 MB of errors a request
# (500,000 in 1 MB outlasted gunicorn's 30 s timeout; review 31b).
@pytest.mark.parametrize("where", ["create tags", "patch tags", "bulk ids", "bulk tags"])
def test_a_list_past_its_cap_is_refused_for_its_length_without_a_look_at_its_items(
    api_client, make_task, where
):
    task = make_task(title="Mine")
    many = [1] * 100_000
    method, path, body, field, cap = {
        "create tags": (
            "post",
            "/api/v1/tasks/",
            {"title": "x", "tags": many},
            "tags",
            MAX_TAG_ENTRIES,
        ),
        "patch tags": (
            "patch",
            f"/api/v1/tasks/{task.pk}/",
            {"tags": many},
            "tags",
            MAX_TAG_ENTRIES,
        ),
        "bulk ids": (
            "post",
            "/api/v1/tasks/bulk/",
            {"action": "complete", "ids": many},
            "ids",
            MAX_BULK_IDS,
        ),
        "bulk tags": (
            "post",
            "/api/v1/tasks/bulk/",
            {"action": "add_tags", "ids": [str(task.pk)], "tags": many},
            "tags",
            MAX_TAG_ENTRIES,
        ),
    }[where]
    response = getattr(api_client, method)(path, body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {field: [f"At most {cap} items."]}
    task.refresh_from_db()
    assert (task.title, task.completed, task.version) == ("Mine", False, 1)
