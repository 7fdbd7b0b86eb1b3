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
- The first answer is kept when it is final, the answer to what the request asked for (API.md:
  "the first answer is kept"; a retry is a resend, not a second attempt at something else):
  every 2xx, and the 4xx the view gives from the request's content, returned or raised: a 400
  (validation: a name taken, a list that does not exist, ...), a 404 (the task of the path, a
  bulk request's missing ids), and any other 4xx but the retryable ones below. A 4xx raised
  after a write rolls the write back; its answer is stored after that, on its own.
- Not kept, so the record is released and a retry with the same key runs afresh: the answers a
  retry is meant to get past, RETRYABLE (409: the task cap, or a conflict with the current
  state; 412: an If-Match that no longer matches; 408, 423, 425, 428, 429), every 5xx (503: a
  concurrent change; 500: a crash), and any exception other than a DRF error or Http404. Those
  changed nothing. Answers given before the key is looked at are never kept either: the 401,
  403, 406 and 429 of DRF's authentication, permissions, negotiation and throttling (run before
  the view method), the 400/413/415 of a body that does not parse (read for the fingerprint,
  before the claim), and what the middleware answers (413, 411) before DRF.
- Records live IDEMPOTENCY_KEY_TTL (24 h); an expired one is ignored (taken over by the next
  request with that key) and `manage.py purge_idempotency_keys` deletes them. A record left
  "in progress" by a worker that died is taken over after IDEMPOTENCY_STALE_AFTER; one whose
  release failed with the database is released at the process's next request.
"""

import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable
from contextlib import nullcontext
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.core.signals import request_started
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import INVALID_TOKEN
from tasks.fast_read import WrittenTaskResponse
from tasks.models import IdempotencyRecord
from todo_project.problems import (
    FOREIGN_KEY_VIOLATION,
    PROBES,
    PROBLEM_CONTENT_TYPE,
    Conflict,
    UnprocessableContent,
)
from todo_project.purge import delete_expired

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Printable ASCII, as the IETF draft's sf-string: no control characters, nothing PostgreSQL
# or a log line would choke on.
KEY_PATTERN = r"^[\x20-\x7E]{1,255}$"
_KEY_RE = re.compile(KEY_PATTERN)
# 4xx answers that depend on the moment, not on the request: a retry is meant to get past them.
RETRYABLE = frozenset({408, 409, 412, 423, 425, 428, 429})
# The unique constraint on (owner, key) (tasks.IdempotencyRecord).
UNIQUE_PER_OWNER = "idempotency_key_unique_per_owner"


logger = logging.getLogger("todo.idempotency")

# Whether the view method runs in the transaction that also stores its answer (a request with
# the header). Whatever the method raises goes out through that transaction, which is then
# rolled back whole (the answer kept, if final, after it): a savepoint of the method's own
# protects nothing more, and costs two round trips (SAVEPOINT, RELEASE; tasks.views' create
# skips it, review 41b). Not for work whose error the method catches and goes on from: that
# work needs its savepoint.
_in_answer_transaction: ContextVar[bool] = ContextVar("in_answer_transaction", default=False)


def in_answer_transaction() -> bool:
    """True inside an idempotent request's transaction, the one its answer is stored in."""
    return _in_answer_transaction.get()


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


def is_kept(status_code: int) -> bool:
    """Whether an answer is final, so kept for the key and replayed (see the module's doc)."""
    return 200 <= status_code < 300 or (400 <= status_code < 500 and status_code not in RETRYABLE)


# The claim's record and its answer, as SQL written once: the ORM built and compiled the INSERT
# and the UPDATE again for every keyed request (review 41d). The same statements as the ORM's
# create() and update(): the text kept is a JSON string in the jsonb column, as JSONField stores
# it.
_CLAIM = (
    "INSERT INTO tasks_idempotencyrecord"
    " (owner_id, key, fingerprint, response_status, response_body, created_at, expires_at)"
    " VALUES (%s, %s, %s, NULL, NULL, %s, %s)"
)
_ANSWER = (
    "UPDATE tasks_idempotencyrecord SET response_status = %s, response_body = %s::jsonb"
    " WHERE owner_id = %s AND key = %s AND created_at = %s AND response_status IS NULL"
)


class _Claim:
    """This request owns (user, key) from `claimed_at` on; `claimed_at` tells its record from
    a later one that took the key over."""

    def __init__(self, owner_id: Any, key: str, claimed_at) -> None:
        self.owner_id, self.key, self.claimed_at = owner_id, key, claimed_at

    @property
    def records(self):
        return IdempotencyRecord.objects.filter(
            owner_id=self.owner_id,
            key=self.key,
            created_at=self.claimed_at,
            response_status__isnull=True,
        )

    def complete(self, response: HttpResponse) -> None:
        # Kept as its rendered text (a JSON string in the jsonb column, which would reorder an
        # object's keys): a replay is the first answer byte for byte. A problem (the exception
        # handler's) is an HttpResponse already rendered. A written task's answer has its
        # text already, the bytes JSONRenderer makes of its data (fast_read.WrittenTaskResponse):
        # not rendered again.
        if isinstance(response, WrittenTaskResponse):
            body = response.body.decode()
        elif isinstance(response, Response):
            data = response.data
            body = None if data is None else JSONRenderer().render(data).decode()
        else:
            body = response.content.decode() if response.content else None
        with connection.cursor() as cursor:
            cursor.execute(
                _ANSWER,
                [
                    response.status_code,
                    None if body is None else json.dumps(body),
                    self.owner_id,
                    self.key,
                    self.claimed_at,
                ],
            )

    def release(self) -> None:
        try:
            self.records.delete()
        except Exception:  # the database is gone: released at this process's next request
            logger.warning("could not release an idempotency key", exc_info=True)
            _unreleased.append(self)


# Claims whose release failed (the database went away with their request): each left its key
# "in progress", a 409 to every retry until IDEMPOTENCY_STALE_AFTER (review 36a: 70 over 35 s
# after a 3 s restart). Released at the start of this process's next request, which under load
# comes within milliseconds of the database's return.
_unreleased: list[_Claim] = []
OWED_RELEASES_TRIED = "todo.owed_releases_tried"  # in the WSGI environ


def release_unreleased(
    environ: dict | None = None, scope: dict | None = None, **kwargs: Any
) -> None:
    if not _unreleased:
        return  # nearly every request
    if environ is not None:
        # Once a request: the fast lane sends request_started, and Django again when the lane
        # leaves the request to it (two connect attempts to a database still away).
        if environ.get(OWED_RELEASES_TRIED):
            return
        environ[OWED_RELEASES_TRIED] = True
        path = environ.get("PATH_INFO")
    else:  # ASGI: request_started has the scope
        path = (scope or {}).get("path", "").removeprefix((scope or {}).get("root_path", ""))
    if path in PROBES:
        return  # /healthz touches no database, even while it is away
    while _unreleased:
        try:
            _unreleased[0].records.delete()
        except DatabaseError:  # still away: the next request tries again
            return
        _unreleased.pop(0)


request_started.connect(release_unreleased, dispatch_uid="todo_project.idempotency.unreleased")


def _claim_or_replay(*, user, key: str, request_fingerprint: str) -> _Claim | HttpResponse:
    now = timezone.now()
    fresh = {
        "fingerprint": request_fingerprint,
        "response_status": None,
        "response_body": None,
        "created_at": now,
        "expires_at": now + settings.IDEMPOTENCY_KEY_TTL,
    }
    try:
        # In autocommit (a request's), one statement is its own transaction, committed when it
        # answers: BEGIN and COMMIT around it were two round trips more (review 41d). In a
        # transaction begun before (a test's, a caller's), a savepoint that a taken key's error
        # rolls back to.
        in_transaction = transaction.atomic() if connection.in_atomic_block else nullcontext()
        with in_transaction, connection.cursor() as cursor:
            cursor.execute(_CLAIM, [user.pk, key, request_fingerprint, now, fresh["expires_at"]])
        return _Claim(user.pk, key, now)
    except IntegrityError as error:
        # Only the unique constraint says the key is taken. The other one, the foreign key to
        # the owner, failing at the COMMIT: the account was deleted meanwhile (DELETE auth/me/
        # of another session), and read as a taken key that was a 409 "still being processed"
        # for a key nobody had sent. A 401, as for any request of a deleted account.
        cause = error.__cause__
        if getattr(getattr(cause, "diag", None), "constraint_name", None) != UNIQUE_PER_OWNER:
            if getattr(cause, "sqlstate", None) == FOREIGN_KEY_VIOLATION:
                raise exceptions.AuthenticationFailed(INVALID_TOKEN, "invalid_token") from error
            raise
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
    replayed = {REPLAYED_HEADER: "true"}
    if existing.response_status >= 400:  # a problem, replayed as the text it was
        return HttpResponse(
            body if isinstance(body, str) else "" if body is None else json.dumps(body),
            status=existing.response_status,
            content_type=PROBLEM_CONTENT_TYPE,
            headers=replayed,
        )
    if isinstance(body, str):  # the rendered text; a record from before kept the parsed value
        body = json.loads(body)
    return Response(body, status=existing.response_status, headers=replayed)


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
        if isinstance(claim, HttpResponse):  # the stored answer (Response is one too)
            return claim
        try:
            with transaction.atomic():
                inside = _in_answer_transaction.set(True)
                try:
                    response = action(view, request, *args, **kwargs)
                finally:
                    _in_answer_transaction.reset(inside)
                if is_kept(response.status_code):
                    claim.complete(response)
                    return response
        except (exceptions.APIException, Http404) as error:
            # Raised inside the transaction, which rolled the work back: a final answer is
            # kept all the same, the problem the exception handler makes of it.
            status = error.status_code if isinstance(error, exceptions.APIException) else 404
            if not is_kept(status):
                claim.release()
                raise
            try:
                response = view.handle_exception(error)
                claim.complete(response)
            except BaseException:
                claim.release()
                raise
            return response
        except BaseException:
            claim.release()
            raise
        # A non-final answer returned, not raised: none of our actions does (each answers 2xx or
        # raises), but one that did would have its work committed and the key free again.
        claim.release()
        return response

    wrapper.idempotent = True  # read by todo_project.schema to document the header
    return wrapper


def purge_expired(now=None) -> int:
    """Deletes the records past their 24 hours, in batches that leave the rows an account
    deletion holds to it (todo_project.purge); returns how many."""
    return delete_expired(IdempotencyRecord, "expires_at", now or timezone.now())
