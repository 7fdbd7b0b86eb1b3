"""What Django's error pages (DEBUG on) may show of the settings and the request."""

import re

from django.views import debug


class SafeExceptionReporterFilter(debug.SafeExceptionReporterFilter):
    """Django's, also hiding the URLs that carry the database's and Redis's passwords: its own
    hides names with KEY, PASS, SECRET, TOKEN..., so DATABASES' PASSWORD, but not DATABASE_URL
    and REDIS_URL (settings, and the environment `runserver` copies into request.META) nor the
    caches' LOCATION, the same passwords in clear."""

    hidden_settings = re.compile(
        debug.SafeExceptionReporterFilter.hidden_settings.pattern
        + "|DATABASE_URL|REDIS_URL|LOCATION",
        flags=re.IGNORECASE,
    )
