"""`/api/schema/`: the OpenAPI document, served from a cache (a module of its own: drf-spectacular's
views import the AutoSchema of todo_project.schema through DRF's settings)."""

import functools
import hashlib

from django.http import HttpResponse
from django.utils import translation
from django.utils.cache import get_conditional_response
from drf_spectacular.views import SpectacularAPIView


class SchemaView(SpectacularAPIView):
    """`/api/schema/`, built and rendered once per process and form: it changes only with the
    code. Built per request it cost a worker 70 ms (JSON) to 160 ms (YAML) for one anonymous
    GET (50 ms building, the rest rendering 0.5–0.8 MB). An `ETag` lets the docs' pages
    revalidate it (304) instead of loading it again.

    The forms clients ask for (each renderer's own media type, no `?version=` or `?lang=`)
    are cached, a handful; any other (an `Accept` parameter such as `indent`, which changes
    the body, or those query parameters, which take any value) is built per request as
    before, so that alternating odd ones never pushes a common one out (review 33d)."""

    def _get_schema_response(self, request):
        version = self.api_version or request.version or self._get_version_parameter(request)
        renderer = request.accepted_renderer
        common = (
            request.accepted_media_type == renderer.media_type
            and version is None
            and "lang" not in request.GET
        )
        body, etag = (_cached_schema if common else _rendered_schema)(
            type(self),
            type(renderer),
            request.accepted_media_type,
            version,
            translation.get_language(),
        )
        content_type = renderer.media_type
        if renderer.charset:
            content_type = f"{content_type}; charset={renderer.charset}"
        response = HttpResponse(body, content_type=content_type)
        response["ETag"] = etag
        response["Content-Disposition"] = (
            f'inline; filename="{self._get_filename(request, version)}"'
        )
        return get_conditional_response(request, etag=etag, response=response)


def _rendered_schema(view, renderer_class, media_type, version, language) -> tuple[bytes, str]:
    # `language` is in the key only: the view renders under its translation. No request: the
    # schema is public (SERVE_PUBLIC), the same for every caller.
    generator = view.generator_class(
        urlconf=view.urlconf, api_version=version, patterns=view.patterns
    )
    data = generator.get_schema(request=None, public=view.serve_public)
    body = renderer_class().render(data, media_type, {})
    # A strong ETag names one representation: JSON's bytes go out as application/json and as
    # application/vnd.oai.openapi+json (YAML's as two types too), so the type is hashed with them.
    digest = hashlib.sha256(renderer_class.media_type.encode() + b"\n" + body)
    return body, f'"{digest.hexdigest()[:32]}"'


_cached_schema = functools.cache(_rendered_schema)
