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

    A form is the renderer, the media type as asked (its parameters, `indent` say, change the
    body), the version asked and the language: the cache keeps the last few, so odd ones
    (`?version=`, `?lang=` take any value) cost what every request did before, and no more
    memory than a few bodies."""

    def _get_schema_response(self, request):
        version = self.api_version or request.version or self._get_version_parameter(request)
        renderer = request.accepted_renderer
        body, etag = _rendered_schema(
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


@functools.lru_cache(maxsize=8)
def _rendered_schema(view, renderer_class, media_type, version, language) -> tuple[bytes, str]:
    # `language` is in the key only: the view renders under its translation. No request: the
    # schema is public (SERVE_PUBLIC), the same for every caller.
    generator = view.generator_class(
        urlconf=view.urlconf, api_version=version, patterns=view.patterns
    )
    data = generator.get_schema(request=None, public=view.serve_public)
    body = renderer_class().render(data, media_type, {})
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'
