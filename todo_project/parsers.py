"""The API's JSON parser: DRF's, with a bound on nesting.

No body of this API nests deeper than a few levels, but a client may send anything, and an
unknown field is ignored rather than refused. Python's json module recurses once per level: a
2 KB body of a thousand nested arrays raised RecursionError (a 500) in the parser, and a few
hundred levels passed the parser only to overflow later code that walks the data (the
Idempotency-Key fingerprint). Past MAX_DEPTH the body is a 400 like any other malformed JSON.

A number of more digits than Python converts (4,300) is a 400 too, in a sentence for the
client: Python's own told it to call `sys.set_int_max_str_digits()`.

An object that names a key twice is a 400 too (RFC 8259 leaves its meaning to the reader: Python
kept the last silently, a proxy or client library may keep the first), as repeated query
values are where one is meant.

A body is read as UTF-8 whatever `charset` its Content-Type names (RFC 8259: JSON has no charset
parameter, "adding one really has no effect"): DRF decoded by it, and UTF-8 labelled ISO-8859-1
by some client helper was stored as "CafÃ©" without a word.
"""

import codecs
import json
import sys
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json as drf_json

MAX_DEPTH = 32


class RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: the object, unless it names a key twice."""
    data = dict(pairs)
    if len(data) < len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise RepeatedKey(key)
            seen.add(key)
    return data


def nesting_exceeds(data, limit: int) -> bool:
    """Whether arrays and objects in `data` nest deeper than `limit`; iterative, so a deep
    value cannot overflow the check itself."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth > limit:
            return True
        stack.extend((item, depth + 1) for item in value)
    return False


def _where(error: BaseException | None) -> str:
    """What is wrong with a body json could not read, for the problem's detail ("The body is
    not valid JSON: ..."): where, in a client's words, not DRF's "JSON parse error - " and
    Python's "'utf-8' codec can't decode byte 0xe9 in position 14"."""
    if isinstance(error, RepeatedKey):
        # The ellipsis out of the quotes: inside, json.dumps wrote it as \u2026, a key's text.
        shown = json.dumps(error.key[:50]) + ("…" if len(error.key) > 50 else "")
        return f"an object names {shown} twice"
    if isinstance(error, UnicodeDecodeError):
        return f"it is not UTF-8 (byte {error.start + 1} of the body)"
    if isinstance(error, json.JSONDecodeError):
        return (
            f"{error.msg[:1].lower()}{error.msg[1:]}, at line {error.lineno}, column {error.colno}"
        )
    if "int_max_str_digits" in str(error):
        return f"a number of more than {sys.get_int_max_str_digits()} digits"
    if "Out of range float values" in str(error):  # DRF's parse_constant, on NaN or Infinity
        constant = str(error).rpartition(": ")[2].strip("'")
        return f"{constant} is not a JSON number"
    return "it could not be read"


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        too_deep = ParseError(f"nested deeper than {MAX_DEPTH} levels")
        try:
            # DRF's JSONParser.parse, with the hook (it passes json.load none).
            data = drf_json.load(
                codecs.getreader("utf-8")(stream),
                parse_constant=drf_json.strict_constant if self.strict else None,
                object_pairs_hook=_unique_keys,
            )
        except RecursionError:
            raise too_deep from None
        except ValueError as error:
            raise ParseError(_where(error)) from None
        if nesting_exceeds(data, MAX_DEPTH):
            raise too_deep
        return data
