"""JWTs that carry the user's token generation, and the short-lived denylist of access tokens.

simplejwt gives signing, expiry, token types and the refresh blacklist. What it lacks, and this
module adds: a `gen` claim (see `User.token_generation`) so that revoking every token of a user
is one integer bump, and a denylist of access-token ids (`DeniedAccessToken`) for logout.
"""

from django.utils.timezone import now
from rest_framework_simplejwt import tokens
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.models import DeniedAccessToken, User

GENERATION_CLAIM = "gen"


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
    expires_at = datetime_from_epoch(token["exp"])
    if expires_at <= now():
        return
    DeniedAccessToken.objects.bulk_create(
        [DeniedAccessToken(jti=token[api_settings.JTI_CLAIM], expires_at=expires_at)],
        ignore_conflicts=True,
    )
    # Expired entries deny nothing: each logout clears them (an index range, usually empty).
    DeniedAccessToken.objects.filter(expires_at__lte=now()).delete()
