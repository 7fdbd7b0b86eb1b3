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
