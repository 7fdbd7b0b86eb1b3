"""The client's IP address, as our own proxies saw it: the rate limits' key and the access log's
`client_ip` (no model imported here: the logging setup loads request_id.py before the apps)."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR, or the address our own proxies put into X-Forwarded-For.

    With TRUSTED_PROXY_COUNT = n, the n-th entry from the right is the one the outermost of our
    proxies saw; whatever the client wrote to the left of it is ignored, so a rotating
    X-Forwarded-For cannot buy a fresh bucket. As a bucket key: ip_bucket (IPv6 to its /64).
    """
    remote = _valid_ip(request.META.get("REMOTE_ADDR", "")) or "0.0.0.0"
    hops = settings.TRUSTED_PROXY_COUNT
    if hops <= 0:
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    if len(forwarded) < hops:
        return remote
    return _valid_ip(forwarded[-hops]) or remote


def _valid_ip(value: str) -> str | None:
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # An IPv4 client of a dual-stack socket (HOST=::) or proxy comes as "::ffff:a.b.c.d": it is
    # that IPv4 address. As IPv6 its /64 (ip_bucket) is "::", every IPv4 client's at once.
    return str(getattr(ip, "ipv4_mapped", None) or ip)
