"""JWTs that carry the user's token generation, and the short-lived denylist of access tokens.

simplejwt gives signing, expiry, token types and the refresh blacklist. What it lacks, and this
module adds: a `gen` claim (see `User.token_generation`) so that revoking every token of a user
is one integer bump, and a denylist of access-token ids in the shared cache for logout.
"""

import logging

from django.core.cache import cache
from django.utils.timezone import now
from rest_framework_simplejwt import tokens
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.models import User

GENERATION_CLAIM = "gen"
DENIED_ACCESS_KEY = "auth:denied-access:{jti}"

logger = logging.getLogger("todo.accounts")


class AccessToken(tokens.AccessToken):
    pass


class RefreshToken(tokens.RefreshToken):
    access_token_class = AccessToken

    @classmethod
    def for_user(cls, user: User) -> "RefreshToken":
        """A new refresh token of `user`, recorded as outstanding (so it can be blacklisted)."""
        token = cls()
        token[api_settings.USER_ID_CLAIM] = str(user.pk)
        token[GENERATION_CLAIM] = user.token_generation
        OutstandingToken.objects.create(
            user=user,
            jti=token[api_settings.JTI_CLAIM],
            token=str(token),
            created_at=token.current_time,
            expires_at=datetime_from_epoch(token["exp"]),
        )
        return token


def token_pair_for(user: User) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def token_generation_of(token: tokens.Token) -> int:
    # Tokens minted before the claim existed count as generation 0: the first revocation of
    # their user (generation 1) ends them like any other.
    return token.get(GENERATION_CLAIM, 0)


def access_token_deny(token: tokens.Token) -> None:
    """Refuses this access token from now until it would have expired anyway."""
    seconds_left = (datetime_from_epoch(token["exp"]) - now()).total_seconds()
    if seconds_left <= 0:
        return
    key = DENIED_ACCESS_KEY.format(jti=token[api_settings.JTI_CLAIM])
    try:
        cache.set(key, 1, int(seconds_left) + 1)
    except Exception:
        # The refresh token is blacklisted in the database all the same; the access token
        # then lives on for at most its remaining minutes.
        logger.warning(
            "access-token denylist unavailable; logout only ends the refresh token", exc_info=True
        )


def access_token_is_denied(token: tokens.Token) -> bool:
    try:
        return cache.get(DENIED_ACCESS_KEY.format(jti=token[api_settings.JTI_CLAIM])) is not None
    except Exception:
        # Redis down: serve rather than refuse everyone. A logged-out access token may then
        # work until it expires (minutes); password change and deactivation still hold.
        logger.warning("access-token denylist unavailable; failing open", exc_info=True)
        return False
