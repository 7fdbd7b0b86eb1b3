"""Content negotiation: DRF's, without `?format=` on the versioned API, and without a 406 for
an answer that has no body to represent.

DRF lets a `format` query parameter pick the renderer (URL_FORMAT_OVERRIDE) and answers 404
to one it has no renderer for: `GET /api/v1/tasks/?format=xml` said "Not found" of a
collection that exists, where every other unknown parameter is ignored. The API speaks JSON
only (a non-JSON `Accept` is a 406), so there `format` is ignored too; the schema view keeps it
(`/api/schema/?format=json`).

An operation whose success is a bare status (every DELETE, sign-out, the password change and
reset) can only ever send a problem document, and its schema lists `application/problem+json`
as its one media type. A client generated from the schema sends exactly that `Accept`; DRF
looked for a renderer of it and answered 406 without deleting anything. Such an `Accept` is
enough there: the success has no body, and an error is a problem, as it is everywhere.

A media type with `q=0` is "not acceptable" (RFC 9110 section 12.4.2); DRF took it as any other,
and answered `Accept: application/json;q=0` with JSON. Here the most specific range covering a
type decides (`*/*, application/json;q=0` refuses JSON). An empty `Accept` is read as none, as
the fast lane reads it (DRF answered it with a 406).

The media type a request is answered in carries no `q`: a weight is no parameter of a type
(RFC 9110 section 12.4.2), yet DRF kept it (`application/json;q=0.8` for a browser's `*/*;q=0.8`),
and the views that serve plain JSON (or the schema's common forms) from compiled reads or a
cache took it for an odd form: 2-5x the time for a task page, and the schema built per request
(review 43c).
"""

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.utils.mediatypes import _MediaType

from todo_project.middleware import API_V1_PREFIX


class _WithoutFormatOverride:
    """DRF's settings as its negotiation reads them (URL_FORMAT_OVERRIDE, and nothing else):
    no query parameter overriding the format."""

    URL_FORMAT_OVERRIDE = None


def answers_without_body(request: Request) -> bool:
    """Whether this request's success is a bare status: a DELETE's, or the methods a view
    names in `methods_answering_without_body` (an OPTIONS answers a body everywhere)."""
    view = request.parser_context.get("view")
    return request.method in getattr(view, "methods_answering_without_body", {"DELETE"})


def _q(media_type: _MediaType) -> float:
    try:
        return float(media_type.params.get("q", "1"))
    except ValueError:  # an unreadable q refuses nothing
        return 1.0


def _without_weight(media_type: str) -> str:
    """The media type without its `q` parameter (the rest as DRF gave it)."""
    if "q=" not in media_type.replace(" ", "").lower():
        return media_type
    kept = [part for part in media_type.split(";") if part.partition("=")[0].strip().lower() != "q"]
    return "; ".join(part.strip() for part in kept)


def _acceptable(media_type: str, accepts: list[_MediaType]) -> bool:
    """Whether `media_type` is acceptable: the most specific range of `accepts` that covers it
    has a q above 0 (RFC 9110 section 12.5.1: `*/*, application/json;q=0` refuses JSON)."""
    covering = [accepted for accepted in accepts if _MediaType(media_type).match(accepted)]
    return bool(covering) and _q(max(covering, key=lambda m: m.precedence)) > 0


class ApiContentNegotiation(DefaultContentNegotiation):
    def get_accept_list(self, request) -> list[str]:
        # An empty Accept is read as none, as the fast lane reads it (DRF: a 406). Its q=0
        # tokens are weighed in select_renderer, which hands DRF only the renderers they leave.
        return super().get_accept_list(request) or ["*/*"]

    def select_renderer(self, request, renderers, format_suffix=None):
        if request.path_info.startswith(API_V1_PREFIX):
            self.settings = _WithoutFormatOverride()
        accepts = [_MediaType(token) for token in self.get_accept_list(request)]
        refusing = any(_q(accepted) <= 0 for accepted in accepts)  # most Accepts refuse nothing
        usable = (
            [r for r in renderers if _acceptable(r.media_type, accepts)] if refusing else renderers
        )
        try:
            if not usable:
                raise NotAcceptable(available_renderers=renderers)
            renderer, media_type = super().select_renderer(request, usable, format_suffix)
            return renderer, _without_weight(media_type)
        except NotAcceptable:
            # Imported here: `problems` imports DRF's views, which import this class.
            from todo_project.problems import PROBLEM_CONTENT_TYPE

            if answers_without_body(request) and _acceptable(PROBLEM_CONTENT_TYPE, accepts):
                return renderers[0], renderers[0].media_type
            raise
