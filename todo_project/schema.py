"""The OpenAPI schema's shared parts: every operation inherits the error answers it can give.

drf-spectacular documents the success answer of each operation; this AutoSchema adds, as
`application/problem+json` (the Problem / ValidationProblem components), the errors that the
shared machinery produces on every endpoint, so no view has to list them and the schema never
lies by omission (the fuzz test checks every answer against it):

- 400, 411, 413 and 414 everywhere: ApiProblemMiddleware answers them before any view,
  whatever the method (a query value that is not UTF-8, more than 1,000 query parameters, a
  `Content-Length` that is not a number; a chunked body; a body over the cap; a URL over
  its cap), and an
  operation that reads a body, query parameters or an Idempotency-Key refuses bad ones too;
  415 when it reads a body (POST, PUT, PATCH, and a DELETE marked `@delete_with_body`);
- 401 when it takes a token (even a public endpoint answers 401 to a broken one);
- 404 when its path names a resource; 406 everywhere (an `Accept` without JSON); 429
  everywhere (rate limits);
- 503 everywhere: the database is unavailable (todo_project.problems), and on writes also
  when PostgreSQL ended the transaction to settle a clash with a concurrent one (a deadlock,
  say); nothing was changed, and `Retry-After` says when to send it again;
- for ConditionalRequestMixin views: `ETag`, `If-None-Match` → 304, `If-Match` → 412; `ETag`
  and `Location` on a 201;
- for `@idempotent` methods: `Idempotency-Key`, `Idempotent-Replayed`, 409 and 422.

A body made of one of several shapes (a PolymorphicProxySerializer keyed on a field, as the
bulk action's) is required: drf-spectacular marks it optional, though every shape requires
its key.

Email addresses are `idn-email` (RFC 6531), not `email`: the API takes and answers domains in
Unicode (`anna@exämple.com`), which a client checking `email` (RFC 5322, ASCII) refuses.

drf-spectacular documents a request body for POST, PUT and PATCH only (OpenAPI 3.0 gives a
DELETE's no defined meaning) and ignores `extend_schema(request=...)` on a DELETE, with no
setting to change that; `@delete_with_body` makes this AutoSchema document it.

An error an operation declares itself (`extend_schema(responses=...)`) keeps its schema and
description, under `application/problem+json` (the only media type an error answer has).
"""

import json
import keyword
import re
from collections.abc import Callable
from typing import Any

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import force_instance, get_doc
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, PolymorphicProxySerializer
from rest_framework import serializers

from todo_project.conditional import ConditionalRequestMixin
from todo_project.idempotency import IDEMPOTENCY_HEADER, KEY_PATTERN, REPLAYED_HEADER
from todo_project.problems import (
    MAX_URL_BYTES,
    PROBLEM_CONTENT_TYPE,
    ProblemSerializer,
    ValidationProblemSerializer,
)

# What each error answer the shared machinery adds means, unless a view says it better.
ERROR_DESCRIPTIONS = {
    400: "Invalid input: `errors` names each field or query parameter (any parameter whose "
    "value is not UTF-8, unknown ones included), or says under `non_field_errors` what else "
    "is wrong with the request (more than 1,000 query parameters, a `Content-Length` that is "
    "not a number).",
    401: "Missing, invalid, expired or revoked access token. For one sent and refused, "
    '`WWW-Authenticate` says `error="invalid_token"` (RFC 6750 section 3.1).',
    404: "Not found, or not yours (the same answer either way).",
    406: "The `Accept` header allows no `application/json`, the only type the API answers "
    "(errors too are sent when it is accepted). Where a success has no body (every DELETE, "
    "sign-out, the password change and reset), `application/problem+json` alone is enough.",
    409: "Conflict with the current state (`detail` says which), e.g. a request with the same "
    "Idempotency-Key still running.",
    412: "If-Match no longer matches the current version (or lists no ETag of this resource: "
    "a value without its quotes, a weak tag), or If-None-Match matches it: nothing changed. "
    "`ETag` is the current one.",
    411: "A body without `Content-Length` (chunked), refused whatever the method: send its length.",
    413: "The body is larger than the server accepts, whatever the method.",
    414: f"The URL (path and query) is longer than {MAX_URL_BYTES:,} bytes, whatever the method.",
    415: "The body is not JSON.",
    422: "The Idempotency-Key was used before with another request.",
    429: "Rate limited: retry after `Retry-After` seconds.",
    503: (
        "For a write, a concurrent change got in the way (PostgreSQL ended the transaction): "
        "nothing was changed. A write of tasks, lists, tags or `auth/me/` answers this after "
        "the server ran it again twice (a conditional one compared again too). Or the "
        "database is unavailable (a restart, an outage): a write whose connection was lost "
        "while committing may have been applied, so send a create again with the same "
        "Idempotency-Key. Or a statement ran past the server's time limit and was cancelled "
        "(the request was not carried out). Either way, send the request again after "
        "`Retry-After` seconds."
    ),
}
BODY_METHODS = {"POST", "PUT", "PATCH"}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CONDITIONAL_READS = {"retrieve"}
CONDITIONAL_WRITES = {"update", "partial_update", "destroy"}

ETAG = OpenApiParameter(
    "ETag",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[200, 304],
    description=(
        'The version of the resource, as a strong entity tag: `"<version>"`; a list\'s adds its '
        'task counts, `"<version>-<task_count>-<open_task_count>"`, so a 304 never hides them.'
    ),
)
ETAG_OF_WRITE = OpenApiParameter(
    "ETag",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[200, 412],
    description=(
        "The version the write made (200), or the current one (412: a retry needs no GET); as "
        "a GET's `ETag`."
    ),
)
ETAG_OF_CREATE = OpenApiParameter(
    "ETag",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[201],
    description="As a GET's `ETag` of what was created, for a later `If-Match` (not in the "
    "replay of a list's creation: a list's body has no version).",
)
CREATED_AT = OpenApiParameter(
    "Location",
    OpenApiTypes.URI,
    OpenApiParameter.HEADER,
    response=[201],
    description="The URL of what was created (in a replay too).",
)
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="ETags the client holds: when one is current the answer is 304 without a body.",
)
IF_NONE_MATCH_ON_WRITE = OpenApiParameter(
    "If-None-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Write only if the resource does not have one of these ETags (`*`: only if it "
    "does not exist, which here is always a 412 or a 404); otherwise 412 and nothing changes "
    "(RFC 9110 13.1.2).",
)
IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description=(
        "Write only if the resource still has this ETag (or `*`: any version); otherwise 412 "
        "and nothing changes. Without it the last writer wins. A list's tag is compared by its "
        "version part alone: its counts change with its tasks, not with its own fields."
    ),
)
IDEMPOTENCY_KEY = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": KEY_PATTERN},
    OpenApiParameter.HEADER,
    description=(
        "Makes a retry safe: the first answer (status and body) is kept 24 h for (you, this "
        "key) and replayed for the same request, with `Idempotent-Replayed: true`, running "
        "nothing. Kept: every 2xx and the 4xx of what the request asked for (a 400, a 404). "
        "Not kept, so a retry runs: 409, 412 and 429 (they pass), a 5xx, and what is answered "
        "before the key is read (401, 406, 413, 415, a body that is not JSON). The same key "
        "with another request is a 422, a retry while the first still runs a 409."
    ),
)
WWW_AUTHENTICATE = OpenApiParameter(
    "WWW-Authenticate",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[401, 429],
    description='`Bearer realm="api"`, with `error="invalid_token"` when a token was sent and '
    "refused (RFC 6750 section 3.1). On a 429 only when the request was refused for its token "
    "(or for having none) and past its client IP's limit: refresh the token, do not send it "
    "again after `Retry-After`.",
)
REQUEST_ID = OpenApiParameter(
    "X-Request-ID",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=True,
    description=(
        "On every answer: the request's `X-Request-ID` when it sent a sane one (up to 128 of "
        "`A-Za-z0-9._:-`), else a new id; the problem body's `request_id` and the server's log "
        "line of the request carry the same. A replay (`Idempotent-Replayed: true`) answers "
        "the first answer as it was: its problem's `request_id` is the first request's, whose "
        "log line tells what happened."
    ),
)
CACHE_CONTROL = OpenApiParameter(
    "Cache-Control",
    {"type": "string", "enum": ["private, no-cache"]},
    OpenApiParameter.HEADER,
    response=True,
    description=(
        "One user's data (todo_project.middleware.ApiCacheControlMiddleware): no shared cache "
        "keeps it; a browser may, and asks again each time with the ETag it holds. Sent with "
        "`Vary: Authorization`."
    ),
)
IDEMPOTENT_REPLAYED = OpenApiParameter(
    REPLAYED_HEADER,
    {"type": "string", "enum": ["true"]},
    OpenApiParameter.HEADER,
    response=[200, 201, 400, 404],
    description="Present when this answer is the stored one of an earlier request with the key.",
)


# Every operation is rate limited (per user with a token, per client IP without; sign-in per
# email and IP too): its answers carry the counts of the tightest limit it was counted against.
RATE_LIMIT_HEADERS = [
    *(
        OpenApiParameter(
            name, OpenApiTypes.INT, OpenApiParameter.HEADER, response=True, description=text
        )
        for name, text in (
            ("RateLimit-Limit", "Requests allowed in the current window."),
            ("RateLimit-Remaining", "Requests left in the current window."),
            ("RateLimit-Reset", "Seconds until the window ends."),
        )
    ),
    OpenApiParameter(
        "Retry-After",
        OpenApiTypes.INT,
        OpenApiParameter.HEADER,
        response=[409, 429, 503],
        description="Seconds to wait before sending the request again (on a 409: only when "
        "the same Idempotency-Key is still running).",
    ),
]
# Answered before the request is counted against a limit (content negotiation, the body caps),
# so without the RateLimit-* headers.
UNCOUNTED_ANSWERS = {"406", "411", "413", "414"}


def answer_example(value: dict, name: str = "Answer", **kwargs) -> OpenApiExample:
    """An answer's example (drf-spectacular puts a list action's in a list or a page).
    test_schema.py validates every example against the schema it illustrates."""
    return OpenApiExample(name, value=value, response_only=True, **kwargs)


def delete_with_body(handler: Callable) -> Callable:
    """Marks a DELETE handler that reads a body, declared by its `extend_schema(request=...)`."""
    handler.reads_body = True
    return handler


class IdnEmailFieldExtension(OpenApiSerializerFieldExtension):
    """Every EmailField as `format: idn-email`, its other keywords (maxLength) kept. Addresses
    are stored and answered with the domain in Unicode: validators of `format: email` (RFC
    5322, ASCII: ajv-formats, Zod's `.email()`) refused `GET me/` of such a user, and their
    forms the addresses register and the password reset take."""

    target_class = serializers.EmailField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction: openapi.Direction) -> dict[str, Any]:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {**schema, "format": "idn-email"}


class AutoSchema(openapi.AutoSchema):
    def _map_basic_serializer(self, serializer, direction: openapi.Direction) -> dict[str, Any]:
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "response" and isinstance(serializer, serializers.ModelSerializer):
            # A resource's answer carries every field (null where empty); drf-spectacular marks
            # only the ones a request must send, and generated clients made the rest optional.
            schema["required"] = sorted(schema["properties"])
        if direction == "request" and self._mapping_a_body:
            # A field left out of a PATCH keeps its value; one left out of a POST or PUT gets
            # its default, which the description states. Never as `default`: in a PATCH body
            # generated clients sent it (renaming a task reopened it and cleared its text), and
            # openapi-typescript types a property with a `default` as required.
            for field in schema.get("properties", {}).values():
                if "default" in field:
                    default = json.dumps(field.pop("default"), ensure_ascii=False)
                    if self.method != "PATCH":
                        stated = f"Default `{default}`."
                        field["description"] = " ".join(
                            filter(None, [field.get("description"), stated])
                        )
        return schema

    # Set while a request body's schema is built: a serializer given as query `parameters`
    # goes through _map_basic_serializer too, and a parameter keeps its `default`.
    _mapping_a_body = False

    def _get_request_for_media_type(self, serializer, direction="request") -> tuple[Any, bool]:
        self._mapping_a_body = True
        try:
            schema, required = super()._get_request_for_media_type(serializer, direction)
        finally:
            self._mapping_a_body = False
        serializer = force_instance(serializer)
        if (
            isinstance(serializer, PolymorphicProxySerializer)
            and serializer.resource_type_field_name
        ):
            # Every shape requires its key (`action`): no body is a 400, as `{}` is. drf-spectacular
            # left such a body optional, and generated clients typed it `body?`.
            required = True
        return schema, required

    def _get_request_body(self, direction: openapi.Direction = "request") -> dict | None:
        if self.method in BODY_METHODS or not self._reads_body():
            return super()._get_request_body(direction)
        # A marked DELETE: what drf-spectacular builds for a POST, from the declared serializer.
        schema, required = self._get_request_for_media_type(
            self.get_request_serializer(), direction
        )
        body = {"content": {media_type: {"schema": schema} for media_type in self.map_parsers()}}
        return {**body, "required": True} if required else body

    def get_override_parameters(self) -> list[Any]:
        parameters = [*super().get_override_parameters(), REQUEST_ID]
        named = {getattr(parameter, "name", None) for parameter in parameters}
        if "Cache-Control" not in named:
            parameters.append(CACHE_CONTROL)  # unless the view sends its own (tokens: no-store)
        parameters += [header for header in RATE_LIMIT_HEADERS if header.name not in named]
        if any(self.get_auth()):
            parameters.append(WWW_AUTHENTICATE)
        action = self._action()
        if action in CONDITIONAL_READS:
            parameters += [IF_NONE_MATCH, ETAG]
        elif self._is_conditional_write():
            parameters += [IF_MATCH, IF_NONE_MATCH_ON_WRITE, ETAG_OF_WRITE]
        elif action == "create":
            parameters += [CREATED_AT, ETAG_OF_CREATE]
        if self._is_idempotent():
            parameters += [IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED]
        return parameters

    def get_description(self) -> str:
        # A viewset's docstring describes its collection: drf-spectacular gave it to every
        # action without a docstring of its own ("ordered by position" on one list's DELETE).
        action = getattr(self.view, "action", None)
        if action in (None, "list"):
            return super().get_description()
        return get_doc(getattr(self.view, action, None))

    def _get_response_headers_for_code(self, status_code, direction="response") -> dict:
        headers = super()._get_response_headers_for_code(status_code, direction)
        if status_code in UNCOUNTED_ANSWERS:
            for header in RATE_LIMIT_HEADERS:
                headers.pop(header.name, None)
        return headers

    def _get_response_bodies(self, direction: openapi.Direction = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        if self._action() in CONDITIONAL_READS:
            responses.setdefault(
                "304", self._get_response_for_code(None, "304", direction=direction)
            )
            responses["304"]["description"] = "Not modified: the `If-None-Match` ETag is current."
        for code, response in responses.items():
            content = response.get("content", {})
            if code[0] in "45" and "application/json" in content:
                # Every error answer is a problem, whatever media type a view declared.
                content.setdefault(PROBLEM_CONTENT_TYPE, content.pop("application/json"))
        for code in sorted(self._error_codes()):
            serializer = ValidationProblemSerializer if code == 400 else ProblemSerializer
            responses.setdefault(
                str(code),
                self._get_response_for_code(
                    serializer, str(code), media_types=[PROBLEM_CONTENT_TYPE], direction=direction
                ),
            )
        for code, response in responses.items():
            if code.isdigit() and not response.get("description"):  # a view's own comes first
                response["description"] = ERROR_DESCRIPTIONS.get(int(code), "")
        return responses

    def _error_codes(self) -> set[int]:
        # 503: the database unavailable (todo_project.problems). 400, 411, 413 and 414: what
        # ApiProblemMiddleware answers before any view, whatever the method (a query value
        # that is not UTF-8, `?x=%FF` on any operation; a chunked or oversized body; a URL
        # over its cap).
        codes = {400, 406, 411, 413, 414, 429, 503}
        if self._reads_body():
            codes.add(415)
        if any(self.get_auth()):  # an empty requirement ({}) is "no token needed"
            codes.add(401)
        if "{" in self.path:
            codes.add(404)
        if self._is_conditional_write():
            codes.add(412)
        if self._is_idempotent():
            codes |= {409, 422}
        return codes

    def _is_conditional_write(self) -> bool:
        action = self._action()
        return action is not None and (
            action in CONDITIONAL_WRITES or action in self.view.conditional_post_actions
        )

    def _action(self) -> str | None:
        if not isinstance(self.view, ConditionalRequestMixin):
            return None
        return getattr(self.view, "action", None)

    def _handler(self) -> Callable | None:
        name = getattr(self.view, "action", None) or self.method.lower()
        return getattr(self.view, name, None)

    def _reads_body(self) -> bool:
        return self.method in BODY_METHODS or getattr(self._handler(), "reads_body", False)

    def _is_idempotent(self) -> bool:
        return getattr(self._handler(), "idempotent", False)


def document_the_probes(result: dict, generator, request, public) -> dict:
    """A postprocessing hook: /healthz and /readyz are plain Django views (no DRF, no auth),
    which drf-spectacular does not see; the contract lists them with the API."""
    headers = {
        "X-Request-ID": {"schema": {"type": "string"}, "description": REQUEST_ID.description}
    }

    def ok(*fields: str) -> dict:
        body = {
            "type": "object",
            "properties": {name: {"type": "string", "enum": ["ok"]} for name in fields},
            "required": list(fields),
        }
        return {"content": {"application/json": {"schema": body}}, "headers": headers}

    def problem(code: int, component: str = "Problem") -> dict:
        schema = {"$ref": f"#/components/schemas/{component}"}
        return {
            "description": ERROR_DESCRIPTIONS[code],
            "content": {PROBLEM_CONTENT_TYPE: {"schema": schema}},
            "headers": headers,
        }

    # What ApiProblemMiddleware refuses before any view, a probe's request too.
    refused = {
        "400": problem(400, "ValidationProblem"),
        "411": problem(411),
        "413": problem(413),
        "414": problem(414),
    }
    probe = {"tags": ["service"], "security": [{}]}
    result["paths"]["/healthz"] = {
        "get": {
            **probe,
            "operationId": "healthz",
            "summary": "Liveness: the process is up",
            "description": "Touches neither the database nor the cache. GET or HEAD.",
            "responses": {"200": {"description": "Up.", **ok("status")}, **refused},
        }
    }
    result["paths"]["/readyz"] = {
        "get": {
            **probe,
            "operationId": "readyz",
            "summary": "Readiness: the database and the cache answer",
            "description": "Each within 2 s (a database that never answers fails its connect "
            "after `DB_CONNECT_TIMEOUT`). GET or HEAD.",
            "responses": {
                "200": {"description": "Ready.", **ok("status", "database", "cache")},
                **refused,
                "503": {
                    **problem(503),
                    "description": "Not ready: `detail` names what did not answer "
                    "(`Not ready: database unavailable.`).",
                },
            },
        }
    }
    return result


def _member_name(value: str) -> str:
    """`-due_date` → `DESC_DUE_DATE`: the name a generated enum gives the value."""
    descending = value.startswith("-")
    name = re.sub(r"\W+", "_", value.removeprefix("-")).strip("_").upper()
    return f"DESC_{name}" if descending else name


def name_enum_members(result: dict, generator, request, public) -> dict:
    """A postprocessing hook: an enum with a value that is not an identifier (`-priority`)
    gets `x-enum-varnames`. Without it, openapi-python-client named `-created_at` …
    `-updated_at` VALUE_0 … VALUE_5 by their place in the enum, so one more ordering field
    sorted before them would have made a client's `-priority` silently sort by another."""
    enums = list(result["components"]["schemas"].values())
    for operations in result["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                enums.append(parameter["schema"].get("items", parameter["schema"]))
    for enum in enums:
        values = enum.get("enum", [])
        if not all(isinstance(value, str) for value in values) or all(
            value.isidentifier() and not keyword.iskeyword(value) for value in values
        ):
            continue
        names = [_member_name(value) for value in values]
        assert len(set(names)) == len(names), names  # two values must not share a name
        enum["x-enum-varnames"] = names
    return result
