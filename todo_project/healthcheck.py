"""The container's HEALTHCHECK (Dockerfile): `python -m todo_project.healthcheck` exits 0 when
GET /healthz on this container's PORT answers 200, else 1.

It sends a Host header that ALLOWED_HOSTS accepts, the first entry (`localhost` when the list
is empty or `*`). As `127.0.0.1` it got a 400 (DisallowedHost) wherever ALLOWED_HOSTS names the
service's own domain, so the container turned unhealthy. No Django import: a probe every 30 s.
"""

import os
import sys
import urllib.request
from collections.abc import Mapping


def probe_host(allowed_hosts: str) -> str:
    """A Host that the ALLOWED_HOSTS setting (its comma-separated environment value) accepts."""
    first = next((host.strip() for host in allowed_hosts.split(",") if host.strip()), "*")
    return "localhost" if first == "*" else first.lstrip(".")  # `.example.com`: any subdomain


def probe_url(environ: Mapping[str, str]) -> str:
    # An empty PORT is unset, as gunicorn.conf.py reads it: 8000, where `127.0.0.1:` was 80.
    return f"http://127.0.0.1:{environ.get('PORT', '').strip() or '8000'}/healthz"


def main(environ: Mapping[str, str] = os.environ) -> int:
    request = urllib.request.Request(
        probe_url(environ),
        headers={"Host": probe_host(environ.get("ALLOWED_HOSTS", "localhost"))},
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return 0 if response.status == 200 else 1
    except OSError:  # refused, timed out, or an error status (HTTPError)
        return 1


if __name__ == "__main__":
    sys.exit(main())
