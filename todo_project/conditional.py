"""Optimistic concurrency: ETag / If-None-Match / If-Match from a row's `version`.

The ETag of a resource is its version as a strong entity tag, `"<version>"` (the URL already
names the row). It is strong because `If-Match` uses the strong comparison (RFC 9110 13.1.1):
a weak tag would never match there. `version` grows by one on every change of the row.

- GET one answers `ETag`; `If-None-Match` listing it (or `*`) is a 304 without a body.
- PATCH / PUT / DELETE with `If-Match` that lists neither the current tag nor `*` is a 412
  problem and nothing changes. Without `If-Match` the write goes through (last writer wins).
- The comparison and the write happen in one transaction, the row locked (SELECT ... FOR
  UPDATE) before comparing: of two clients holding the same ETag exactly one wins, the other
  waits for the lock, then sees the new version and gets its 412.
"""

from typing import Any

from django.db import models, transaction
from django.utils.http import parse_etags, quote_etag
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from todo_project.problems import PreconditionFailed


def etag_for(version: int) -> str:
    return quote_etag(str(version))


def none_match(header: str | None, etag: str) -> bool:
    """True when `If-None-Match` lists the current tag (weak comparison, RFC 9110 13.1.2)."""
    if header is None:
        return False
    tags = parse_etags(header)
    return "*" in tags or etag in {tag.removeprefix("W/") for tag in tags}


def if_match(header: str, etag: str) -> bool:
    """True when `If-Match` lists the current tag or `*` (strong comparison: weak tags fail)."""
    tags = parse_etags(header)
    return "*" in tags or etag in tags


class ConditionalRequestMixin:
    """For a viewset over a model with `version`: ETag on read, 304, and 412 on a stale write.

    Put it first among the bases (`class TaskViewSet(ConditionalRequestMixin, ModelViewSet)`).
    The schema (todo_project.schema.AutoSchema) documents the headers and answers it adds.
    """

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        instance = self.get_object()
        etag = etag_for(instance.version)
        if none_match(request.headers.get("If-None-Match"), etag):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        response = Response(self.get_serializer(instance).data)
        response["ETag"] = etag
        return response

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with transaction.atomic():
            self._check_if_match(request)
            response = super().update(request, *args, **kwargs)
        if response.status_code == status.HTTP_200_OK and "version" in response.data:
            response["ETag"] = etag_for(response.data["version"])
        return response

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with transaction.atomic():
            self._check_if_match(request)
            return super().destroy(request, *args, **kwargs)

    def _check_if_match(self, request: Request) -> None:
        header = request.headers.get("If-Match")
        if header is None:
            return
        instance = self.get_object()  # 404 for someone else's id, exactly as for an unknown one
        # Lock by primary key only: the viewset's queryset may carry joins or aggregates that
        # FOR UPDATE cannot take. The write that follows reads the row again, after the lock.
        model: type[models.Model] = type(instance)
        current = (
            model._base_manager.select_for_update()
            .filter(pk=instance.pk)
            .values_list("version", flat=True)
            .first()
        )
        if current is None:  # deleted between the read and the lock
            raise exceptions.NotFound()
        if not if_match(header, etag_for(current)):
            raise PreconditionFailed(
                f"The resource has changed since you read it: its ETag is now {etag_for(current)}."
            )
