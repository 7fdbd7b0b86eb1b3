"""Rate limits: django-ratelimit's atomic counters in the shared cache, applied as DRF throttles.

A throttle runs after authentication, so an authenticated request is always counted against
its user (a `ratelimit` decorator on `dispatch` would run before DRF has seen the JWT and
silently count by IP). `RateLimitThrottle` is in DEFAULT_THROTTLE_CLASSES: every DRF view gets
it without code. Counters live in Redis, so a limit holds across workers and instances; when
Redis is down the limit fails open (logged) rather than refusing every request.
"""

import ipaddress
import logging
import time
from dataclasses import dataclass
from time import monotonic

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django_ratelimit import core as ratelimit_core
from django_ratelimit.core import get_usage
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from accounts.models import UserManager
from todo_project.client_ip import client_ip

logger = logging.getLogger("todo.ratelimit")

USAGE_ATTRIBUTE = "ratelimit_usage"


def ip_bucket(request: HttpRequest) -> str:
    """The client IP as a bucket key: an IPv6 client owns a whole /64, so it counts as one."""
    ip = ipaddress.ip_address(client_ip(request))
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


@dataclass(frozen=True)
class Usage:
    limit: int
    remaining: int
    reset: int  # seconds until the window ends
    exceeded: bool


def count_request(
    request: HttpRequest, group: str, key: str, rate: str, *, in_headers: bool = True
) -> Usage | None:
    """Counts this request in the bucket (group, key); None when the cache cannot count.
    `in_headers`: the bucket may be the one the RateLimit-* headers describe."""
    if outage.skips_the_cache():
        return None
    try:
        usage = _counted_usage(request, group=group, key=key, rate=rate)
    except Exception:
        if outage.cache_failed():
            logger.warning(
                "rate-limit cache unavailable; failing open, asking it again every %.0f s",
                outage.RETRY_SECONDS,
                exc_info=True,
            )
        return None
    outage.cache_answered()
    if usage is None:  # limits disabled (RATELIMIT_ENABLE), or the counter vanished: fail open
        return None
    result = Usage(
        limit=usage["limit"],
        remaining=max(0, usage["limit"] - usage["count"]),
        # time_left is the window's last whole second minus this one: the next window starts a
        # second after that last one (waiting time_left seconds got a second 429).
        reset=usage["time_left"] + 1,
        exceeded=usage["should_limit"],
    )
    if in_headers:
        _remember(request, result)
    return result


class CacheOutage:
    """While the rate-limit cache fails, requests are served uncounted (fail open) without asking
    it for RETRY_SECONDS: a Redis that accepts and never answers costs each call the socket
    timeout (1 s), every bucket of every request. The outage is logged when it starts (with
    the error) and when it ends, not once per request. Per process: each worker finds out."""

    RETRY_SECONDS = 5.0

    def __init__(self) -> None:
        self.since: float | None = None
        self.retry_at = 0.0

    def skips_the_cache(self) -> bool:
        return self.since is not None and monotonic() < self.retry_at

    def cache_failed(self) -> bool:
        """Records a failure; whether it starts an outage (the one to log, with its error)."""
        now = monotonic()
        self.retry_at = now + self.RETRY_SECONDS
        if self.since is not None:
            return False
        self.since = now
        return True

    def cache_answered(self) -> None:
        if self.since is not None:
            logger.warning(
                "rate-limit cache answers again after %.0f s; counting again",
                monotonic() - self.since,
            )
            self.since = None


outage = CacheOutage()


def _counted_usage(request: HttpRequest, *, group: str, key: str, rate: str) -> dict | None:
    """django-ratelimit's `get_usage(..., increment=True)`, in one Redis round trip.

    get_usage asks the cache three times (SET NX, EXISTS, INCR: ~0.3 ms a request under load,
    bench/README.md); our cache's `count()` is one INCR+EXPIRE script. Same bucket keys, windows
    and expiry (django-ratelimit's own helpers, version pinned), so both count the same bucket.
    Caches without `count()` (local memory when debugging) go through get_usage.
    """
    cache = caches[settings.RATELIMIT_USE_CACHE]
    if not hasattr(cache, "count") or not getattr(settings, "RATELIMIT_ENABLE", True):
        return get_usage(
            request, group=group, key=lambda _group, _request: key, rate=rate, increment=True
        )
    limit, period = ratelimit_core._split_rate(rate)
    window = ratelimit_core._get_window(key, period)
    cache_key = ratelimit_core._make_cache_key(group, window, rate, key, get_usage.ALL)
    count = cache.count(cache_key, period + ratelimit_core.EXPIRATION_FUDGE)
    return {
        "count": count,
        "limit": limit,
        "should_limit": count > limit,
        "time_left": window - int(time.time()),
    }


def _remember(request: HttpRequest, usage: Usage) -> None:
    """Keeps the tightest limit seen on the request, for the RateLimit-* response headers."""
    current: Usage | None = getattr(request, USAGE_ATTRIBUTE, None)
    if current is None or _tightness(usage) < _tightness(current):
        setattr(request, USAGE_ATTRIBUTE, usage)


def _tightness(usage: Usage) -> tuple[int, ...]:
    """Smallest for the limit the headers describe. An exceeded one first: a 429 is about it,
    and of two exceeded the one with the longer wait, the one DRF's Retry-After is for (the
    longest). Under every limit, the one with the fewest requests left, then the soonest reset.
    """
    if usage.exceeded:
        return (0, -usage.reset)
    return (1, usage.remaining, usage.reset)


def count_refused_request(request: HttpRequest) -> Usage | None:
    """Counts a request refused for its token (or for having none) per client IP, at the
    anonymous rate (RATE_LIMIT_ANON): DRF authenticates before any throttle runs, so a flood of
    forged or revoked tokens was counted against nobody. Never against the token's user, whom
    a stranger could otherwise lock out; nor in the anonymous endpoints' bucket, whose token
    refresh a client with an expired token needs next. Not when a limit was counted for the
    request already (an anonymous endpoint's own 401: a wrong password at sign-in)."""
    if getattr(request, USAGE_ATTRIBUTE, None) is not None:
        return None
    return count_request(request, "api-refused", ip_bucket(request), settings.RATE_LIMIT_ANON)


class BucketThrottle(BaseThrottle):
    """A DRF throttle on one django-ratelimit bucket; subclasses say which."""

    def bucket(self, request: Request) -> tuple[str, str, str]:
        """(group, key, rate) of the bucket this request is counted in."""
        raise NotImplementedError

    def allow_request(self, request: Request, view) -> bool:
        group, key, rate = self.bucket(request)
        self.usage = count_request(request._request, group=group, key=key, rate=rate)
        return self.usage is None or not self.usage.exceeded

    def wait(self) -> float:
        # Only asked after allow_request() said no, which needs a counted usage.
        return self.usage.reset


class RateLimitThrottle(BucketThrottle):
    """Per user when authenticated (RATE_LIMIT_USER), else per client IP (RATE_LIMIT_ANON)."""

    def bucket(self, request: Request) -> tuple[str, str, str]:
        user = request.user
        if user is not None and user.is_authenticated:
            return self.user_bucket(user.pk)
        return "api-anon", ip_bucket(request._request), settings.RATE_LIMIT_ANON

    @staticmethod
    def user_bucket(user_id) -> tuple[str, str, str]:
        return "api-user", str(user_id), settings.RATE_LIMIT_USER


class LoginRateThrottle(BucketThrottle):
    """Sign-in attempts per (email, client IP) (RATE_LIMIT_LOGIN).

    Per pair, so guessing one account's password is slow while two people behind one NAT
    each keep their own attempts.
    """

    def bucket(self, request: Request) -> tuple[str, str, str]:
        data = request.data if isinstance(request.data, dict) else {}
        # As sign-in reads it: every spelling of one address (case, `xn--` labels) is one bucket.
        email = UserManager.normalize_email(str(data.get("email", "")))
        # JSON may carry a lone surrogate ("\ud800"), which UTF-8 cannot encode and the bucket's
        # key is hashed as UTF-8: written out as its escape, the attempt is counted all the same.
        email = email.encode("utf-8", "backslashreplace").decode()
        return "auth-login", f"{email}|{ip_bucket(request._request)}", settings.RATE_LIMIT_LOGIN


class RegisterRateThrottle(BucketThrottle):
    """Registrations per client IP (RATE_LIMIT_REGISTER): an answer tells whether an email
    has an account, so probing for accounts must stay slow."""

    def bucket(self, request: Request) -> tuple[str, str, str]:
        return "auth-register", ip_bucket(request._request), settings.RATE_LIMIT_REGISTER


def _within_silent_limit(request: HttpRequest, group: str, key: str, rate: str) -> bool:
    """Counts this request in the bucket (group, key) without a word in the RateLimit-*
    headers; False once it is over the rate (True when the cache cannot count: fail open)."""
    usage = count_request(request, group, key, rate, in_headers=False)
    return usage is None or not usage.exceeded


def reset_mail_allowed(request: HttpRequest, email: str) -> bool:
    """Whether a reset mail to `email` may go: per (address, client IP) (RATE_LIMIT_RESET_MAIL)
    and per address from all IPs (RATE_LIMIT_RESET_MAIL_ADDRESS). The address's count takes
    only requests within their IP's limit: when it took the refused ones too, one IP asking
    10 times an hour held the owner's own mails back (review 31b). Neither shows in the
    headers: the answer is the same 202 either way."""
    per_ip = _within_silent_limit(
        request, "auth-reset-mail", f"{email}|{ip_bucket(request)}", settings.RATE_LIMIT_RESET_MAIL
    )
    return per_ip and _within_silent_limit(
        request, "auth-reset-mail-address", email, settings.RATE_LIMIT_RESET_MAIL_ADDRESS
    )


class PasswordCheckRateThrottle(BucketThrottle):
    """Requests that check the caller's password (a password change, an account deletion)
    count as sign-in attempts of their email, in the same bucket: a stolen access token must
    not guess the password faster than the sign-in form (RATE_LIMIT_LOGIN, not RATE_LIMIT_USER).
    """

    def bucket(self, request: Request) -> tuple[str, str, str]:
        key = f"{request.user.email}|{ip_bucket(request._request)}"
        return "auth-login", key, settings.RATE_LIMIT_LOGIN


class RateLimitHeadersMiddleware:
    """Adds RateLimit-Limit/-Remaining/-Reset to every response a limit was counted for."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        for name, value in rate_limit_headers(request):
            response[name] = value
        return response


def rate_limit_headers(request: HttpRequest) -> list[tuple[str, str]]:
    """The RateLimit-* headers of the tightest limit counted for this request (none if none):
    on a 429, of the limit it exceeded (see _tightness)."""
    usage: Usage | None = getattr(request, USAGE_ATTRIBUTE, None)
    if usage is None:
        return []
    return [
        ("RateLimit-Limit", str(usage.limit)),
        ("RateLimit-Remaining", str(usage.remaining)),
        ("RateLimit-Reset", str(usage.reset)),
    ]
