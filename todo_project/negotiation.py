"""Content negotiation: DRF's, without `?format=` on the versioned API.

DRF lets a `format` query parameter pick the renderer (URL_FORMAT_OVERRIDE) and answers 404
to one it has no renderer for: `GET /api/v1/tasks/?format=xml` said "Not found" of a
collection that exists, where every other unknown parameter is ignored. The API speaks JSON
only (a non-JSON `Accept` is a 406), so there `format` is ignored too; the schema view keeps it
(`/api/schema/?format=json`).
"""

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.settings import api_settings

from todo_project.middleware import API_V1_PREFIX


class _WithoutFormatOverride:
    """DRF's settings, but no query parameter overriding the format."""

    URL_FORMAT_OVERRIDE = None

    def __getattr__(self, name: str):
        return getattr(api_settings, name)


class ApiContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        if request.path_info.startswith(API_V1_PREFIX):
            self.settings = _WithoutFormatOverride()
        return super().select_renderer(request, renderers, format_suffix)
