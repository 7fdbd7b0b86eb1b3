"""Serializer fields shared by the apps."""

import re
import unicodedata
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# One wording per kind of problem, in a body and in the query (tasks.filters): the project's
# "Must be ..." and "At most ..." rather than DRF's and Django's stock messages, which said one
# thing several ways ("Ensure this field has no more than 200 characters.", "Ensure this value
# has at most 200 characters (it has 201).", "Ensure this field has at least 1 elements.").
MAX_LENGTH_MESSAGE = "At most {max_length} characters."
UUID_MESSAGE = "Must be a valid UUID."  # DRF's, which the schema's `errors` description quotes
BOOLEAN_MESSAGE = "Must be true or false."


def at_most_characters(count: int) -> str:
    return MAX_LENGTH_MESSAGE.format(max_length=count)


def items(count: int) -> str:
    return f"{count:,} item{'' if count == 1 else 's'}"


def one_of(choices) -> str:
    """The error of a value that is none of `choices`, naming them: what to send instead. The
    value is not echoed: DRF quotes a number as a string ("\"3\" is not a valid choice.")."""
    return f"Must be one of: {', '.join(choices)}."


def each_one_of(choices, extra: str = "") -> str:
    """one_of for a comma-separated query parameter (`priority=high,low`)."""
    return f"Must be comma-separated values, each one of: {', '.join(choices)}{extra}."


class StrictCharField(serializers.CharField):
    """A text field that takes only JSON strings.

    DRF's CharField turns a number into its text (`0` → "0"); the contract wants a value of the
    wrong type to be a 400, and the schema says `string` (the fuzz test holds us to it).
    """

    default_error_messages = {"max_length": MAX_LENGTH_MESSAGE}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


# Characters that show nothing, beyond what str.strip() trims: formatting ones (zero-width
# space, joiners, direction marks, BOM: category Cf), controls, and the rest of Unicode's
# Default_Ignorable_Code_Point set that is not Cf (Hangul fillers, variation selectors, ...),
# plus the blank Braille pattern, which renders as a space.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
_INVISIBLE_RANGES = (
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x2065, 0x2065),
    (0x2800, 0x2800), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8),
    (0xE0000, 0xE0FFF),
)  # fmt: skip


def is_invisible(char: str) -> bool:
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _INVISIBLE_RANGES)


def shows_nothing(text: str) -> bool:
    """Blank to the eye: only invisible characters (or none). The API's rule for names and
    titles (VisibleCharField), and the admin's forms'."""
    return all(map(is_invisible, text))


# Line breaks, tabs, escapes: the C0 and C1 controls (Unicode's Cc), NUL aside, which DRF's own
# validator refuses with its message, and Unicode's own line and paragraph separators (U+2028,
# U+2029: mandatory breaks, UAX #14). A name or title is one line: a client shows them raw or
# breaks its layout on them. Its ends are trimmed first, so a pasted "Pay rent\n" is taken.
_CONTROL_CHARACTER = re.compile(r"[\x01-\x1f\x7f-\x9f\u2028\u2029]")
CONTROL_CHARACTERS_MESSAGE = "Line breaks, tabs and other control characters are not allowed."


def breaks_one_line(value: str, stored: str | None = None) -> bool:
    """A control character inside, unless `value` is what the row holds: a value stored
    before the rule, sent back unchanged, may stay (the API's fields and the admin's forms)."""
    return _CONTROL_CHARACTER.search(value) is not None and value != stored


class OneLineCharField(StrictCharField):
    """A name or title: one line, no line break, tab or other control character inside. A
    value stored before the rule is taken back unchanged (a PUT sends every field, the ones
    the user did not touch too). `one_line=False` leaves the rule to the caller (tag names:
    services.new_tag_name_error, for new names only).

    Its `max_length` counts what is kept, after trimming (the contract's "1–200 chars after
    trimming"). Checked here rather than by DRF's validator, which drf-spectacular writes into
    the schema as a `maxLength` of the value sent, surrounding spaces included: a bound that
    the server does not hold (" " + 200 characters is a valid title). The description says it.
    """

    default_error_messages = {"control": CONTROL_CHARACTERS_MESSAGE}

    def __init__(
        self, *, max_length: int | None = None, one_line: bool = True, **kwargs: Any
    ) -> None:
        if max_length is not None:
            one_line_text = " One line: no line breaks, tabs or other control characters."
            kwargs.setdefault(
                "help_text",
                f"At most {max_length} characters, surrounding whitespace not counted."
                + (one_line_text if one_line else ""),
            )
        super().__init__(**kwargs)
        self.max_kept_length = max_length
        self.one_line = one_line

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if self.max_kept_length is not None and len(value) > self.max_kept_length:
            self.fail("max_length", max_length=self.max_kept_length)
        if self.one_line and breaks_one_line(value, self._stored()):
            self.fail("control")
        return value

    def _stored(self) -> str | None:
        """What the row being written holds in this field (None for a new row)."""
        instance = getattr(self.parent, "instance", None)
        return getattr(instance, self.source, None) if self.source else None


class VisibleCharField(OneLineCharField):
    """A name or title that shows something: blank when it shows nothing, as one of only
    zero-width spaces does (str.strip() keeps those, and a list of blank-looking titles helps
    nobody)."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if shows_nothing(value):
            self.fail("blank")
        return value


def composed(value: str, stored: str | None = None) -> str:
    """A name as it is stored: in Unicode's composed form, NFC. "Café" typed with "é" and with
    "e" + a combining acute accent (U+0301), as some keyboards and pasted macOS file names send
    it, is one name: one list, one tag. A name stored before the rule, sent back unchanged,
    stays as it is (migration tasks.0015 composed the others)."""
    return value if value == stored else unicodedata.normalize("NFC", value)


def trimmed(value: str) -> str:
    """A name without what shows nothing at its ends: whitespace, and format characters (Cf: a
    zero-width space, a BOM, a word joiner, a direction mark) pasted from web pages, chats and
    files, with which "Work\u200b" was another list than "Work", shown the same. Inside a name
    they stay (emoji sequences and Persian words need them)."""

    def invisible(char: str) -> bool:
        return char.isspace() or unicodedata.category(char) == "Cf"

    start, end = 0, len(value)
    while start < end and invisible(value[start]):
        start += 1
    while end > start and invisible(value[end - 1]):
        end -= 1
    return value[start:end]


COMPOSED_HELP = " Stored in Unicode's composed form (NFC): 'e' + U+0301 is the same name as 'é'."


class NameField(VisibleCharField):
    """The name of a list or a tag, unique per user case-insensitively: composed (`composed`)
    before its length and uniqueness are checked."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.help_text = (self.help_text or "") + COMPOSED_HELP

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, str):  # trimmed first, as CharField would, so as the admin compares
            # A name stored before a rule, sent back unchanged (spaces around aside), stays.
            data = data.strip()
            data = data if data == self._stored() else composed(trimmed(data))
        return super().to_internal_value(data)


class BoundedListField(serializers.ListField):
    """A list refused for its length before any of its items is validated. DRF's ListField
    checks `max_length` last, after one child validation and one message per item: 500,000
    bad ids in a 1 MB body held a worker 26 s and answered 18 MB of errors, and as tags they
    outlasted gunicorn's timeout (review 31b)."""

    def __init__(self, **kwargs: Any) -> None:
        # In the right number ("At least 1 item.", not DRF's "at least 1 elements"); given
        # before ListField makes its validators of them.
        messages = kwargs.setdefault("error_messages", {})
        if kwargs.get("min_length") is not None:
            messages.setdefault("min_length", f"At least {items(kwargs['min_length'])}.")
        if kwargs.get("max_length") is not None:
            messages.setdefault("max_length", f"At most {items(kwargs['max_length'])}.")
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list:
        if self.max_length is not None and isinstance(data, list) and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only: DRF's BooleanField also takes "true", "yes", 1 and the like,
    where the schema says boolean."""

    default_error_messages = {"invalid": BOOLEAN_MESSAGE}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    """JSON integers only: DRF's IntegerField also takes "5" and 5.0, where the schema says
    integer (a bool is refused too, though Python counts it as one). Worded as the query's
    `limit` and `offset` are (tasks.views)."""

    default_error_messages = {
        "invalid": "Must be a whole number.",
        "min_value": "Must be a whole number of at least {min_value}.",
        "max_value": "Must be a whole number of at most {max_value}.",
    }

    def to_internal_value(self, data: Any) -> int:
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


# A UUID as the schema's `format: uuid` writes it (any letter case).
CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


class StrictUUIDField(serializers.UUIDField):
    """A UUID string of the 8-4-4-4-12 form only: DRF's UUIDField also takes a JSON number (and
    `true`) as UUID(int=...), and the undashed, `{...}` and `urn:uuid:` spellings, so
    `ids: [1]` was a 404 naming 00000000-...-0001 instead of a 400."""

    default_error_messages = {"invalid": UUID_MESSAGE}

    def to_internal_value(self, data: Any):
        if not isinstance(data, str) or not CANONICAL_UUID.fullmatch(data):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


# A date as the contract writes it; strptime alone also reads `2026-2-1` and `+2026-01-01`.
CANONICAL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The dates' words, in a body and in the query (tasks.filters.CanonicalDateFormField): a
# date of the right form that no calendar has (2026-02-30, 0000-01-01) is no format error.
DATE_FORMAT_MESSAGE = "Enter a date as YYYY-MM-DD."


def no_such_day(value: str) -> str:
    return f"The day {value} does not exist."


class CanonicalDateField(serializers.DateField):
    """`YYYY-MM-DD` exactly, as the contract writes dates (CANONICAL_DATE)."""

    default_error_messages = {"invalid": DATE_FORMAT_MESSAGE}

    def to_internal_value(self, data: Any):
        if not isinstance(data, str):
            return super().to_internal_value(data)  # a number: DRF's "invalid"
        if not CANONICAL_DATE.fullmatch(data):
            self.fail("invalid")
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError:
            raise serializers.ValidationError(no_such_day(data), code="invalid") from None


HOUR_MINUTE = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


@extend_schema_field({"type": "string", "pattern": HOUR_MINUTE, "example": "09:30"})
class HourMinuteField(serializers.TimeField):
    """`HH:MM` (24 h) exactly, in and out. The schema gives a pattern, not `format: time`, which
    means RFC 3339's `HH:MM:SS` with an offset; strptime alone also reads `9:00`."""

    # As the contract writes times (DRF's: "Time has wrong format. Use one of these formats
    # instead: hh:mm.").
    default_error_messages = {"invalid": "Enter a time as HH:MM (24 h)."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%H:%M", input_formats=["%H:%M"], **kwargs)

    def to_internal_value(self, data: Any):
        if isinstance(data, str) and not re.fullmatch(HOUR_MINUTE, data):
            self.fail("invalid")
        return super().to_internal_value(data)
