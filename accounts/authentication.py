"""The API's authentication: simplejwt's access tokens, plus instant revocation.

On top of simplejwt's checks (signature, expiry, `token_type` must be "access", so a refresh
token is never accepted here) and ours of the claims' types and ranges (accounts.tokens), the
token's user must exist and be active, the token must carry the user's current token generation
and must not be on the logout denylist. All of that is one query per request: the user row and
the denylist in one statement, compiled once per process.
"""

import functools
import uuid

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Exists, QuerySet
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework import exceptions
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import aware_utcnow

from accounts.models import DeniedAccessToken, RevokedTokenFamily, User
from accounts.tokens import AccessToken, family_of, token_generation_of
from todo_project.compiled import CompiledQuery

INVALID_TOKEN = "The access token is invalid, expired or revoked."
# simplejwt's own words were "Authorization header must contain two space-delimited values".
MALFORMED_HEADER = (
    'Send the access token as "Authorization: Bearer <token>": one token, no space in it.'
)
# The schemes whose credentials are ours, lower-cased: RFC 9110 section 11.1 makes a scheme
# case-insensitive ("bearer", "BEARER"), where simplejwt compares it exactly.
AUTH_SCHEMES = frozenset(scheme.lower().encode() for scheme in api_settings.AUTH_HEADER_TYPES)


def is_our_scheme(scheme: bytes) -> bool:
    """Whether an Authorization header's scheme is ours: for authentication and the fast reads
    (tasks.fast_read), which must take the same credentials."""
    return scheme.lower() in AUTH_SCHEMES


USER_FIELDS = [field.attname for field in User._meta.concrete_fields]


def token_holders(user: uuid.UUID, generation: int, jti: str, family: str) -> QuerySet:
    """The user a valid access token speaks for, or no row: the user must be active and of the
    token's generation, the token must not be on the logout denylist, and its session (the
    `fam` it took from its refresh token) must not have ended: a logout, or a refresh token
    reused long after its rotation (a stolen copy), ends every token of the session at once.

    The one statement of those rules: authentication reads the user with it, and the fast GET
    of a task (tasks.fast_read) joins it to the task, so both refuse exactly the same tokens.
    """
    return (
        User.objects.filter(pk=user, is_active=True, token_generation=generation)
        .exclude(Exists(DeniedAccessToken.objects.filter(jti=jti)))
        .exclude(Exists(RevokedTokenFamily.objects.filter(family=family)))
        .order_by()
    )


# Placeholders of compiled queries over token_holders(): each unlike any other parameter there.
HOLDER_PLACEHOLDERS = {
    "user": uuid.UUID(int=1),
    "generation": 1_234_567,
    "jti": "jti-placeholder",
    "family": "family-placeholder",
}
USER_OF_TOKEN = CompiledQuery(
    lambda **holder: token_holders(**holder).values_list(*USER_FIELDS)[:1], **HOLDER_PLACEHOLDERS
)


@functools.lru_cache(maxsize=4096)
def verified_access_token(raw_token: bytes) -> AccessToken:
    """The token, its signature, type and claims checked: once per process for each token.

    A client sends the same access token for its whole life (minutes), and checking it cost
    ~8 % of a GET's CPU. The same bytes carry the same signature, so what was verified once
    stays verified; only the expiry changes with time, and it is checked on every request.
    """
    return AccessToken(raw_token)


def valid_access_token(raw_token: bytes) -> Token:
    """The token if it is a valid, unexpired access token; else TokenError."""
    token = verified_access_token(raw_token)
    token.check_exp(current_time=aware_utcnow())
    return token


def holder_claims(token: Token) -> dict:
    """The keyword arguments of token_holders() for a valid access token (its claims are
    checked when it is read: accounts.tokens.well_formed_claims)."""
    return {
        "user": uuid.UUID(token[api_settings.USER_ID_CLAIM]),
        "generation": token_generation_of(token),
        "jti": token[api_settings.JTI_CLAIM],
        "family": family_of(token),
    }


class JWTAuthentication(authentication.JWTAuthentication):
    def get_raw_token(self, header: bytes) -> bytes | None:
        """simplejwt's, with the scheme compared case-insensitively."""
        parts = header.split()
        if not parts or not is_our_scheme(parts[0]):
            return None  # no credentials, or another scheme's: not authenticated by us
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(MALFORMED_HEADER)
        return parts[1]

    def get_validated_token(self, raw_token: bytes) -> Token:
        try:
            return valid_access_token(raw_token)
        except TokenError:
            # One plain message: the details (expired? wrong type?) help attackers more than
            # clients, which react to any 401 the same way (refresh, else sign in again).
            raise exceptions.AuthenticationFailed(INVALID_TOKEN, "invalid_token") from None

    def get_user(self, validated_token: Token) -> User:
        rows = USER_OF_TOKEN.rows(**holder_claims(validated_token))
        if not rows:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN, "invalid_token")
        return User.from_db(DEFAULT_DB_ALIAS, USER_FIELDS, rows[0])


class JWTAuthenticationScheme(SimpleJWTScheme):
    """Documents our subclass in the OpenAPI schema exactly like simplejwt's own class."""

    target_class = JWTAuthentication
