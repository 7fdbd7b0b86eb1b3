"""Serializer fields shared by the apps."""

from typing import Any

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A text field that takes only JSON strings.

    DRF's CharField turns a number into its text (`0` → "0"); the contract wants a value of the
    wrong type to be a 400, and the schema says `string` (the fuzz test holds us to it).
    """

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only: DRF's BooleanField also takes "true", "yes", 1 and the like,
    where the schema says boolean."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    """JSON integers only: DRF's IntegerField also takes "5" and 5.0, where the schema says
    integer (a bool is refused too, though Python counts it as one)."""

    def to_internal_value(self, data: Any) -> int:
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)
