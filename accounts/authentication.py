"""The API's authentication: simplejwt's access tokens, plus instant revocation.

On top of simplejwt's checks (signature, expiry, `token_type` must be "access", so a refresh
token is never accepted here) the token's user must exist and be active, the token must carry
the user's current token generation and must not be on the logout denylist. All of that is one
query per request: the user row and the denylist in one statement, compiled once per process.
"""

import functools
import uuid

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Exists
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework import exceptions
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import aware_utcnow

from accounts.models import DeniedAccessToken, User
from accounts.tokens import AccessToken, token_generation_of
from todo_project.compiled import CompiledQuery

INVALID_TOKEN = "The access token is invalid, expired or revoked."

USER_FIELDS = [field.attname for field in User._meta.concrete_fields]
# The token's user, and whether the token itself is denied.
USER_OF_TOKEN = CompiledQuery(
    lambda user, jti: (
        User.objects.filter(pk=user)
        .order_by()
        .annotate(token_denied=Exists(DeniedAccessToken.objects.filter(jti=jti)))
        .values_list(*USER_FIELDS, "token_denied")[:1]
    ),
    user=uuid.UUID(int=1),
    jti="jti-placeholder",
)


@functools.lru_cache(maxsize=4096)
def verified_access_token(raw_token: bytes) -> AccessToken:
    """The token, its signature, type and claims checked: once per process for each token.

    A client sends the same access token for its whole life (minutes), and checking it cost
    ~8 % of a GET's CPU. The same bytes carry the same signature, so what was verified once
    stays verified; only the expiry changes with time, and it is checked on every request.
    """
    return AccessToken(raw_token)


class JWTAuthentication(authentication.JWTAuthentication):
    def get_validated_token(self, raw_token: bytes) -> Token:
        try:
            token = verified_access_token(raw_token)
            token.check_exp(current_time=aware_utcnow())
            return token
        except TokenError:
            # One plain message: the details (expired? wrong type?) help attackers more than
            # clients, which react to any 401 the same way (refresh, else sign in again).
            raise exceptions.AuthenticationFailed(INVALID_TOKEN) from None

    def get_user(self, validated_token: Token) -> User:
        try:
            user_id = uuid.UUID(validated_token[api_settings.USER_ID_CLAIM])
            jti = validated_token[api_settings.JTI_CLAIM]
        except (KeyError, TypeError, ValueError):
            raise exceptions.AuthenticationFailed(INVALID_TOKEN) from None
        rows = USER_OF_TOKEN.rows(user=user_id, jti=jti)
        if not rows:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        *values, token_denied = rows[0]
        user = User.from_db(DEFAULT_DB_ALIAS, USER_FIELDS, values)
        if (
            token_denied
            or not user.is_active
            or token_generation_of(validated_token) != user.token_generation
        ):
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        return user


class JWTAuthenticationScheme(SimpleJWTScheme):
    """Documents our subclass in the OpenAPI schema exactly like simplejwt's own class."""

    target_class = JWTAuthentication
