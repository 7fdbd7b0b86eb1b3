"""Optimistic concurrency: ETag / If-None-Match / If-Match from a row's `version`.

The ETag of a resource is its version as a strong entity tag, `"<version>"` (the URL already
names the row). It is strong because `If-Match` uses the strong comparison (RFC 9110 13.1.1):
a weak tag would never match there. `version` grows by one on every change of the row.
A representation that also shows values derived from other rows (a list's task counts) adds
them, `"<version>-<count>-…"`: a 304 must never hide a new count. `If-Match` guards the row's
own fields, so it compares the version alone: a task completed meanwhile fails no rename.

- GET one answers `ETag`; `If-None-Match` listing it (or `*`) is a 304 without a body.
- PATCH / PUT / DELETE with `If-Match` that lists neither the current tag nor `*` is a 412
  problem and nothing changes. Without `If-Match` the write goes through (last writer wins).
- A write with `If-None-Match` that lists the current tag (weak comparison) or `*` (the
  resource exists) is a 412 too (RFC 9110 13.1.2: a false condition on a write), after
  `If-Match` is evaluated (13.2.2).
- The comparison and the write happen in one transaction, the row locked (SELECT ... FOR
  UPDATE, or FOR NO KEY UPDATE where a viewset says so: `no_key_lock`) before comparing: of
  two clients holding the same ETag exactly one wins, the other waits for the lock, then sees
  the new version and gets its 412.
"""

import re
from typing import Any

from django.db import models, transaction
from django.urls import reverse
from django.utils.http import parse_etags, quote_etag
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from todo_project.problems import PreconditionFailed

WRITE_METHODS = {"PUT", "PATCH", "DELETE"}
CONDITION_HEADERS = frozenset({"If-Match", "If-None-Match"})
# "<version>" followed by `derived` "-<count>" parts, as etag_for() writes them.
VERSION, DERIVED = r"[1-9][0-9]{0,17}", r"-(?:0|[1-9][0-9]{0,17})"
SAFE_METHODS = {"GET", "HEAD"}


def etag_for(version: int, *derived: int) -> str:
    return quote_etag("-".join(map(str, (version, *derived))))


def has_preconditions(request: Request) -> bool:
    """Whether the request carries If-Match or If-None-Match, compared under the row's lock."""
    return any(header in request.headers for header in CONDITION_HEADERS)


def none_match(header: str | None, etag: str) -> bool:
    """True when `If-None-Match` lists the current tag (weak comparison, RFC 9110 13.1.2)."""
    if header is None:
        return False
    tags = parse_etags(header)
    return "*" in tags or etag in {tag.removeprefix("W/") for tag in tags}


def if_match(header: str, version: int, derived: int = 0) -> bool:
    """True when `If-Match` lists `*` or a strong tag of the current version, whatever values
    derived from other rows it carries (weak tags fail: the strong comparison); for a resource
    with `derived` values, the version alone matches too. A tag of another shape (`"2-x"`, or
    `"2-5-7"` for a task, which has none) is one the resource never sent: it matches nothing."""
    tags = parse_etags(header)
    shape = _etag_shape(derived)
    return "*" in tags or any(
        (match := shape.fullmatch(tag)) and int(match[1]) == version for tag in tags
    )


def lists_an_etag(header: str, derived: int = 0) -> bool:
    """Whether `If-Match` lists `*` or a tag the resource could have sent, of any version. If
    not, what failed is not a stale tag but no tag: the body's `version` without its quotes
    (Swagger UI's If-Match box), or a weak one, as a compressing proxy makes them."""
    tags = parse_etags(header)
    shape = _etag_shape(derived)
    return "*" in tags or any(shape.fullmatch(tag) for tag in tags)


def _etag_shape(derived: int) -> re.Pattern:
    return re.compile(f'"({VERSION})(?:(?:{DERIVED}){{{derived}}})?"')


class ConditionalRequestMixin:
    """For a viewset over a model with `version`: ETag on read, 304, and 412 on a stale write;
    a 201 names what it created (`Location`) and its ETag.

    Put it before the DRF bases (`class TaskViewSet(ConditionalRequestMixin, ModelViewSet)`).
    It overrides no action, so a viewset's own `retrieve`, `update` or `destroy` keeps working:
    a conditional write runs in one transaction (`dispatch`), its `get_object()` locks the
    row and compares, and `finalize_response` adds the ETag or turns a fresh read into a 304.
    The schema (todo_project.schema.AutoSchema) documents the headers and answers it adds.
    """

    # POST actions that change one existing resource, and so honour If-Match as a PATCH does.
    # Each runs in a transaction of its own, which the lock and the comparison join.
    conditional_post_actions: frozenset[str] = frozenset()
    # Fields of the representation that other rows change (a list's task counts): they are in
    # the ETag, after the version, so that a 304 never hides them.
    etag_derived_fields: tuple[str, ...] = ()
    # The version a write made, set by a write whose representation has no `version` (a list)
    # while it holds the row's lock: read after the commit instead, it could be a later write's
    # (one ETag on another body) or gone (a DELETE right after: a 500 for a write that worked).
    written_version: int | None = None
    # Lock the row FOR NO KEY UPDATE rather than FOR UPDATE: it still serialises the comparison
    # against the row's other writers, but not against the foreign-key checks (FOR KEY SHARE)
    # of rows that refer to it. A list's: a write into the list takes the list's group lock,
    # then at its COMMIT that check; a conditional DELETE holding the row FOR UPDATE while it
    # queued for the group lock deadlocked with it (1 s each). The DELETE statement takes the
    # full lock itself, once list_delete holds the group lock. Tasks keep FOR UPDATE: a write
    # giving a task a parent must wait for the parent's writers (services._PARENT_LOCKED).
    no_key_lock = False

    def dispatch(self, request, *args: Any, **kwargs: Any):
        method = request.method.lower()
        if request.method in WRITE_METHODS and has_preconditions(request) and hasattr(self, method):
            # The lock, the comparison and the write in one transaction, the handler's own: its
            # COMMIT (where a foreign key to a list deleted meanwhile fails) is inside it, and
            # RetriedWrites, which wraps the handler later (initial()), runs the whole of it
            # again after a concurrent change, the comparison too.
            setattr(self, method, transaction.atomic()(getattr(self, method)))
        return super().dispatch(request, *args, **kwargs)

    def get_object(self) -> models.Model:
        instance = self._locked_if_matching()
        self.conditional_version = instance.version
        return instance

    def _locked_if_matching(self) -> models.Model:
        instance = super().get_object()  # 404 for someone else's id, exactly as for an unknown
        header = self.request.headers.get("If-Match")
        none_match_header = self.request.headers.get("If-None-Match")
        action = getattr(self, "action", None)
        # OPTIONS ("metadata") asks get_object() with its request cloned as a PUT: it writes
        # nothing, so it compares nothing (and has no transaction to lock in).
        if (
            (header is None and none_match_header is None)
            or action == "metadata"
            or not (self.request.method in WRITE_METHODS or action in self.conditional_post_actions)
        ):
            return instance
        current = self.locked_version(instance)
        if current is None:  # deleted between the read and the lock
            raise exceptions.NotFound()
        derived = len(self.etag_derived_fields)
        if header is not None and not if_match(header, current, derived):
            etag = self._current_etag(current, instance)
            if lists_an_etag(header, derived):
                detail = f"The resource has changed since you read it: its ETag is now {etag}."
            else:
                detail = (
                    f"If-Match lists no ETag of this resource: send the ETag header as it came, "
                    f"quotes included (now {etag}); a weak one (W/...) never matches."
                )
            raise PreconditionFailed(detail, etag=etag)
        if none_match_header is not None:
            etag = self._current_etag(current, instance)
            if none_match(none_match_header, etag):
                raise PreconditionFailed(
                    f"If-None-Match matches the resource (its ETag is {etag}): nothing changed.",
                    etag=etag,
                )
        # Written meanwhile (If-Match: *): the write must start from what the lock protects.
        return instance if current == instance.version else super().get_object()

    def locked_version(self, instance: models.Model) -> int | None:
        """Locks the row for the write and reads its version (None: deleted meanwhile). A
        viewset whose write locks more rows first overrides it to take them all at once."""
        # By primary key only: the viewset's queryset may carry joins or aggregates that FOR
        # UPDATE cannot take.
        return (
            type(instance)
            ._base_manager.select_for_update(no_key=self.no_key_lock)
            .filter(pk=instance.pk)
            .values_list("version", flat=True)
            .first()
        )

    def _current_etag(self, version: int, instance: models.Model) -> str:
        """The ETag a GET would send now, derived values included (read again under the lock)."""
        fresh = super().get_object() if self.etag_derived_fields else instance
        return etag_for(version, *(getattr(fresh, name) for name in self.etag_derived_fields))

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any):
        # Set by get_object(), or by a read path that skips it (tasks.fast_read).
        version = getattr(self, "conditional_version", None)
        action = getattr(self, "action", None)
        tagged = (
            response.status_code == status.HTTP_200_OK
            and action in {"retrieve", "update", "partial_update", *self.conditional_post_actions}
        ) or (response.status_code == status.HTTP_201_CREATED and action == "create")
        data = getattr(response, "data", None)
        if (
            response.status_code == status.HTTP_201_CREATED
            and isinstance(data, dict)
            and "id" in data
        ):
            # Where the new resource is (a replay's too, from its body's id).
            path = reverse(f"{self.basename}-detail", args=[data["id"]])
            response["Location"] = request.build_absolute_uri(path)
        if tagged and request.method not in SAFE_METHODS:
            # A create or a replayed POST (Idempotency-Key) read no object: the answer tells.
            version = self._version_after_write(response)
        if tagged and version is not None:
            derived = (response.data[name] for name in self.etag_derived_fields)
            etag = etag_for(version, *derived)
            if request.method in SAFE_METHODS and none_match(
                request.headers.get("If-None-Match"), etag
            ):
                response = Response(status=status.HTTP_304_NOT_MODIFIED)
            response["ETag"] = etag
        return super().finalize_response(request, response, *args, **kwargs)

    def _version_after_write(self, response: Response) -> int | None:
        """The answer's `version`, else the one the write set (written_version: never read
        again after the commit), else None: a replayed create of a list, answered untagged."""
        data = getattr(response, "data", None)
        if isinstance(data, dict) and "version" in data:
            return data["version"]
        return self.written_version
