"""The API's authentication: simplejwt's access tokens, plus instant revocation.

On top of simplejwt's checks (signature, expiry, `token_type` must be "access", so a refresh
token is never accepted here; the user exists and is active) a token must carry the user's
current token generation and must not be on the logout denylist. The generation check rides on
the user lookup simplejwt already does: one query per request, no more.
"""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework import exceptions
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError
from rest_framework_simplejwt.tokens import Token

from accounts.models import User
from accounts.tokens import AccessToken, access_token_is_denied, token_generation_of

INVALID_TOKEN = "The access token is invalid, expired or revoked."


class JWTAuthentication(authentication.JWTAuthentication):
    def get_validated_token(self, raw_token: bytes) -> Token:
        try:
            return AccessToken(raw_token)
        except TokenError:
            # One plain message: the details (expired? wrong type?) help attackers more than
            # clients, which react to any 401 the same way (refresh, else sign in again).
            raise exceptions.AuthenticationFailed(INVALID_TOKEN) from None

    def get_user(self, validated_token: Token) -> User:
        try:
            user = super().get_user(validated_token)
        except (AuthenticationFailed, InvalidToken):
            raise exceptions.AuthenticationFailed(INVALID_TOKEN) from None
        if token_generation_of(validated_token) != user.token_generation:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        if access_token_is_denied(validated_token):
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        return user


class JWTAuthenticationScheme(SimpleJWTScheme):
    """Documents our subclass in the OpenAPI schema exactly like simplejwt's own class."""

    target_class = JWTAuthentication
