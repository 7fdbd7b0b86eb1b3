"""TaskSerializer builds its fields from the model once per class (serializers.BuiltOnceFields)."""

from rest_framework import serializers
from rest_framework.utils import model_meta

from tasks.serializers import TaskSerializer


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
