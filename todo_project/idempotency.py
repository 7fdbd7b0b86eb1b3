"""Idempotent retries of creating POSTs: the `Idempotency-Key` request header.

A client on a flaky network may send a POST again when it never saw the answer. With the same
`Idempotency-Key` (1–255 printable ASCII characters) the retry creates nothing:

- The first request inserts an "in progress" record for (user, key) with a fingerprint of the
  request (method, path, body) in its own, committed transaction; the unique constraint on
  (owner, key) makes exactly one of several concurrent requests the owner of the key.
- The view then runs in a transaction that also stores its answer (status and body) on the
  record, so the work and the stored answer are committed together or not at all.
- A retry with the same fingerprint gets the stored answer again, with `Idempotent-Replayed:
  true`; with another fingerprint a 422 problem; while the first is still running a 409 problem.
- Only successful (2xx) answers are kept. When the request fails (a 4xx or an exception) it
  changed nothing, so the record is released and a retry with the same key runs afresh: a
  transient 409 or a fixed validation error must not stick to the key for a day.
- Records live IDEMPOTENCY_KEY_TTL (24 h); an expired one is ignored (taken over by the next
  request with that key) and `manage.py purge_idempotency_keys` deletes them. A record left
  "in progress" by a worker that died is taken over after IDEMPOTENCY_STALE_AFTER.
"""

import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from tasks.models import IdempotencyRecord
from todo_project.problems import Conflict, UnprocessableContent

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Printable ASCII, as the IETF draft's sf-string: no control characters, nothing PostgreSQL
# or a log line would choke on.
KEY_PATTERN = r"^[\x20-\x7E]{1,255}$"
_KEY_RE = re.compile(KEY_PATTERN)

logger = logging.getLogger("todo.idempotency")


def fingerprint(request: Request) -> str:
    """sha256 of method, path and body; the body as canonical JSON, so key order and spacing
    of a re-sent body do not matter."""
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256()
    for part in (request.method, request.get_full_path(), body):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _validated_key(key: str) -> str:
    if not _KEY_RE.match(key):
        raise exceptions.ValidationError(
            {IDEMPOTENCY_HEADER: ["Must be 1 to 255 printable ASCII characters."]}
        )
    return key


class _Claim:
    """This request owns (user, key) from `claimed_at` on; `claimed_at` tells its record from
    a later one that took the key over."""

    def __init__(self, owner_id: Any, key: str, claimed_at) -> None:
        self.records = IdempotencyRecord.objects.filter(
            owner_id=owner_id, key=key, created_at=claimed_at, response_status__isnull=True
        )

    def complete(self, response: Response) -> None:
        # Kept as its rendered text (a JSON string in the jsonb column, which would reorder an
        # object's keys): a replay is the first answer byte for byte.
        body = None if response.data is None else JSONRenderer().render(response.data).decode()
        self.records.update(response_status=response.status_code, response_body=body)

    def release(self) -> None:
        try:
            self.records.delete()
        except Exception:  # the database is gone: the record expires instead
            logger.warning("could not release an idempotency key", exc_info=True)


def _claim_or_replay(*, user, key: str, request_fingerprint: str) -> _Claim | Response:
    now = timezone.now()
    fresh = {
        "fingerprint": request_fingerprint,
        "response_status": None,
        "response_body": None,
        "created_at": now,
        "expires_at": now + settings.IDEMPOTENCY_KEY_TTL,
    }
    try:
        with transaction.atomic():
            IdempotencyRecord.objects.create(owner=user, key=key, **fresh)
        return _Claim(user.pk, key, now)
    except IntegrityError:
        pass
    records = IdempotencyRecord.objects.filter(owner=user, key=key)
    # An expired record, or one whose request died, is taken over; one UPDATE wins the race.
    reclaimable = Q(expires_at__lte=now) | Q(
        response_status__isnull=True, created_at__lte=now - settings.IDEMPOTENCY_STALE_AFTER
    )
    if records.filter(reclaimable).update(**fresh):
        return _Claim(user.pk, key, now)
    existing = records.first()
    if existing is not None and existing.fingerprint != request_fingerprint:
        raise UnprocessableContent(
            "This Idempotency-Key was used with another request (method, path or body)."
        )
    if existing is None or existing.response_status is None:
        # Still running (or released this very moment, when its request failed): try later.
        # It will have answered in a moment: the retry then gets its stored answer.
        raise Conflict(
            "A request with this Idempotency-Key is still being processed.", retry_after=1
        )
    body = existing.response_body
    if isinstance(body, str):  # the rendered text; a record from before kept the parsed value
        body = json.loads(body)
    return Response(body, status=existing.response_status, headers={REPLAYED_HEADER: "true"})


def idempotent(action: Callable[..., Response]) -> Callable[..., Response]:
    """Decorates a creating view method (`create`, an `@action`, `post`): honours
    `Idempotency-Key`. Requests without the header are untouched."""

    @functools.wraps(action)
    def wrapper(view, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None or not getattr(request.user, "is_authenticated", False):
            return action(view, request, *args, **kwargs)
        claim = _claim_or_replay(
            user=request.user, key=_validated_key(key), request_fingerprint=fingerprint(request)
        )
        if isinstance(claim, Response):
            return claim
        try:
            with transaction.atomic():
                response = action(view, request, *args, **kwargs)
                if 200 <= response.status_code < 300:
                    claim.complete(response)
                    return response
        except BaseException:
            claim.release()
            raise
        claim.release()
        return response

    wrapper.idempotent = True  # read by todo_project.schema to document the header
    return wrapper


def purge_expired(now=None) -> int:
    """Deletes the records past their 24 hours; returns how many."""
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
