"""JWTs that carry the user's token generation, and the short-lived denylist of access tokens.

simplejwt gives signing, expiry, token types and the refresh blacklist. What it lacks, and this
module adds: a `gen` claim (see `User.token_generation`) so that revoking every token of a user
is one integer bump, a `fam` claim on refresh tokens, the session they belong to (issued at
sign-in, kept by rotation), so that logout or a reused refresh token ends the whole session
(`RevokedTokenFamily`), an `auth_time` claim (OpenID Connect's name: when the session signed
in, kept by rotation) for the cap JWT_SESSION_MAX_LIFETIME sets on a session, a denylist of
access-token ids (`DeniedAccessToken`) for logout, and a check of the claims our code reads
(well_formed_claims).
"""

import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.db import connection
from django.db.models import Exists
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt import tokens
from rest_framework_simplejwt.exceptions import (
    TokenBackendError,
    TokenBackendExpiredToken,
    TokenError,
)
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.models import DeniedAccessToken, RevokedTokenFamily, User
from todo_project import purge

GENERATION_CLAIM = "gen"
FAMILY_CLAIM = "fam"
SIGNED_IN_CLAIM = "auth_time"

# The ranges the claims' values are used in: datetime's (exp, iat), the token_generation
# column's (gen), the jti columns' (of the blacklist and the denylist).
# Counted in whole seconds: timestamp()'s float rounded up to one past the range (year 10000).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_EPOCH = (datetime.max.replace(tzinfo=UTC) - EPOCH) // timedelta(seconds=1)
GENERATION_RANGE = connection.ops.integer_field_range(
    User._meta.get_field("token_generation").get_internal_type()
)
JTI_MAX_LENGTH = min(
    model._meta.get_field("jti").max_length for model in (OutstandingToken, DeniedAccessToken)
)
FAMILY_MAX_LENGTH = RevokedTokenFamily._meta.get_field("family").max_length


def _int_in(value: object, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high  # type(): JSON's true is no number


def _canonical_uuid(value: object) -> bool:
    # Canonical, as for_user() writes it: the user is compared as text (logout) too.
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def well_formed_claims(payload: dict) -> bool:
    """Whether the claims our code reads have the types and ranges it relies on.

    Every token we issue has them. One signed with our key by other means (a leaked key, another
    tool, a bug) must be refused like any invalid token, not fail later in datetime, uuid or
    PostgreSQL (a NUL, a lone surrogate, a number beyond a column) with a 500.
    """
    jti = payload.get(api_settings.JTI_CLAIM)
    # Tokens minted before the claim existed have none: each is a family of its own (family_of).
    family = payload.get(FAMILY_CLAIM, jti)
    return (
        _int_in(payload.get("exp"), 0, MAX_EPOCH)
        and _int_in(payload.get("iat"), 0, MAX_EPOCH)
        # Tokens minted before the claim existed have none: generation 0.
        and _int_in(payload.get(GENERATION_CLAIM, 0), *GENERATION_RANGE)
        and _int_in(payload.get(SIGNED_IN_CLAIM, 0), 0, MAX_EPOCH)
        and isinstance(jti, str)
        and 0 < len(jti) <= JTI_MAX_LENGTH
        and jti.isascii()  # ours are hex digits
        and jti.isprintable()
        and isinstance(family, str)
        and 0 < len(family) <= FAMILY_MAX_LENGTH
        and family.isascii()
        and family.isprintable()
        and _canonical_uuid(payload.get(api_settings.USER_ID_CLAIM))
    )


class WellFormedClaims:
    """A token whose claims are not well formed is invalid (TokenError) like a forged one."""

    payload: dict

    def verify(self) -> None:
        # Before simplejwt's checks: its expiry check and blacklist query fail on such claims
        # with other errors than TokenError.
        if not well_formed_claims(self.payload):
            raise TokenError(_("Token is invalid"))
        super().verify()


class AccessToken(WellFormedClaims, tokens.AccessToken):
    pass


class RefreshToken(WellFormedClaims, tokens.RefreshToken):
    access_token_class = AccessToken

    @classmethod
    def for_user(cls, user: User, rotated: tokens.Token | None = None) -> "RefreshToken":
        """A new refresh token of `user`, recorded as outstanding (so it can be blacklisted):
        of the session of the `rotated` token (a rotation), or of a new one (a sign-in)."""
        token = cls()
        token[api_settings.USER_ID_CLAIM] = str(user.pk)
        token[GENERATION_CLAIM] = user.token_generation
        if rotated is None:
            token[FAMILY_CLAIM] = uuid.uuid4().hex
            token[SIGNED_IN_CLAIM] = token["iat"]
        else:
            token[FAMILY_CLAIM] = family_of(rotated)
            # A token from before the claim: its session counts from its own issue.
            token[SIGNED_IN_CLAIM] = rotated.get(SIGNED_IN_CLAIM, rotated["iat"])
        end = session_end(token)
        if end is not None:
            token["exp"] = min(token["exp"], end)
        OutstandingToken.objects.create(
            user=user,
            jti=token[api_settings.JTI_CLAIM],
            token=str(token),
            created_at=token.current_time,
            expires_at=datetime_from_epoch(token["exp"]),
        )
        return token

    @classmethod
    def signed(cls, raw: str) -> "RefreshToken":
        """The refresh token if we signed it (its type and claims checked too), whether or not
        it is still usable: it may have expired, or been blacklisted since. Else TokenError.

        For logout, which denies the calling access token all the same."""
        try:
            token_backend.decode(raw)
        except TokenBackendExpiredToken:
            pass  # PyJWT checks the expiry only after the signature checked out
        except TokenBackendError as error:
            raise TokenError(_("Token is invalid")) from error
        # Signature checked above; verify() would refuse an expired or blacklisted one too.
        token = cls(raw, verify=False)
        if not well_formed_claims(token.payload):
            raise TokenError(_("Token is invalid"))
        token.verify_token_type()
        return token


def session_end(token: tokens.Token) -> int | None:
    """When the session of this refresh token ends (epoch seconds) under JWT_SESSION_MAX_LIFETIME,
    counted from its sign-in (a token from before the claim: from its own issue); None: no cap."""
    if not settings.JWT_SESSION_MAX_LIFETIME:
        return None
    signed_in = token.get(SIGNED_IN_CLAIM, token["iat"])
    return signed_in + int(settings.JWT_SESSION_MAX_LIFETIME.total_seconds())


def past_session_cap(token: tokens.Token) -> bool:
    """Whether the session of this refresh token has reached its end: a token accepted within
    the clock skew past its `exp` (the cap) must not be traded for a pair that has expired
    already (review 37f)."""
    end = session_end(token)
    return end is not None and end <= now().timestamp()


def token_pair_for(user: User, rotated: tokens.Token | None = None) -> dict[str, str]:
    refresh = RefreshToken.for_user(user, rotated)
    access = refresh.access_token
    # Never past its session's end (a capped session's last minutes).
    access["exp"] = min(access["exp"], refresh["exp"])
    return {"access": str(access), "refresh": str(refresh)}


def family_of(token: tokens.Token) -> str:
    """The session a token belongs to (an access token copies its refresh token's claim); one
    minted before families is its own."""
    return token.get(FAMILY_CLAIM) or token[api_settings.JTI_CLAIM]


def family_revoked_sql(token: tokens.Token) -> Exists:
    """SQL: whether the token's session was ended, to read in the same query as its user."""
    return Exists(RevokedTokenFamily.objects.filter(family=family_of(token)))


def family_revoke(token: tokens.Token) -> None:
    """Refuses every refresh token of this one's family, until the last could have expired."""
    # LEEWAY: simplejwt accepts a refresh token that long past its `exp`, and the family's newest
    # may have been issued a moment ago: forgotten at the lifetime alone, an ended session's
    # newest token refreshed again in that minute (review 36i).
    expires_at = now() + api_settings.REFRESH_TOKEN_LIFETIME + api_settings.LEEWAY
    RevokedTokenFamily.objects.bulk_create(
        [RevokedTokenFamily(family=family_of(token), expires_at=expires_at)],
        update_conflicts=True,
        unique_fields=["family"],
        update_fields=["expires_at"],
    )
    # Expired entries refuse nothing: each revocation clears them (an index range).
    RevokedTokenFamily.objects.filter(expires_at__lte=now()).delete()


def token_generation_of(token: tokens.Token) -> int:
    # Tokens minted before the claim existed count as generation 0: the first revocation of
    # their user (generation 1) ends them like any other.
    return token.get(GENERATION_CLAIM, 0)


def access_token_deny(token: tokens.Token) -> None:
    """Refuses this access token from now until it would have expired anyway: `exp` and the
    clock skew simplejwt allows past it (LEEWAY)."""
    expires_at = datetime_from_epoch(token["exp"]) + api_settings.LEEWAY
    if expires_at <= now():
        return
    DeniedAccessToken.objects.bulk_create(
        [DeniedAccessToken(jti=token[api_settings.JTI_CLAIM], expires_at=expires_at)],
        ignore_conflicts=True,
    )
    # Expired entries deny nothing: each logout clears them (an index range, usually empty).
    DeniedAccessToken.objects.filter(expires_at__lte=now()).delete()


class ResetLinkTokens(PasswordResetTokenGenerator):
    """Django's password-reset token, bound to the account's token generation too: whatever
    ends every token (sign out everywhere, a deactivation, a new email) ends the reset links
    mailed before it. Django's binds the password, the last sign-in and the email only, so a
    link mailed before a deactivation worked again once support reactivated the account."""

    def _make_hash_value(self, user: User, timestamp: int) -> str:
        return f"{super()._make_hash_value(user, timestamp)}:{user.token_generation}"


reset_link_tokens = ResetLinkTokens()


def purge_expired_tokens(by: datetime | None = None) -> int:
    """Deletes the refresh tokens expired by `by` (now, less LEEWAY: simplejwt accepts a token
    that long past its `exp`, so a rotated one's blacklist entry must outlive it by as much)
    and their blacklist entries, in batches
    that leave the rows an account deletion holds to it (todo_project.purge): a token
    goes with its entry, or not at all (manage.py flushexpiredtokens); returns how many tokens.
    No index on `expires_at` (simplejwt's table): the batches walk the primary key's index."""
    outstanding, blacklisted = OutstandingToken._meta.db_table, BlacklistedToken._meta.db_table
    # Batches by id (the primary key's index), each after the last one's highest id: a batch
    # whose tokens' entries someone holds deleted nothing, but is no end; the end is a batch
    # that found fewer than it asked for. Nor is a batch read from the table's start again.
    # Rows by `= ANY(ARRAY(…))`, an index lookup per id whatever the planner believes: with
    # `IN (SELECT … FROM expired)` and statistics of a nearly empty table (the first purge after
    # a burst of sign-ins) it joined the whole table against each batch, 5,000 × 65,536 rows:
    # over 20 s a batch (review 36c saw a batch of 3 minutes in the suite).
    batch = f"""
        WITH expired AS (
            SELECT id FROM {outstanding} WHERE expires_at <= %(by)s AND id > %(after)s
            ORDER BY id LIMIT %(n)s FOR UPDATE SKIP LOCKED
        ),
        listed AS (
            SELECT id, token_id FROM {blacklisted}
            WHERE token_id = ANY(ARRAY(SELECT id FROM expired))
            FOR UPDATE SKIP LOCKED
        ),
        unlisted AS (DELETE FROM {blacklisted} WHERE id = ANY(ARRAY(SELECT id FROM listed))),
        held AS (
            SELECT token_id FROM {blacklisted} WHERE token_id = ANY(ARRAY(SELECT id FROM expired))
            EXCEPT SELECT token_id FROM listed
        ),
        gone AS (
            DELETE FROM {outstanding}
            WHERE id = ANY(ARRAY(SELECT id FROM expired EXCEPT SELECT token_id FROM held))
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM expired), (SELECT max(id) FROM expired),
            (SELECT count(*) FROM gone)
    """
    by, after, deleted = by or now() - api_settings.LEEWAY, 0, 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(batch, {"by": by, "after": after, "n": purge.PURGE_BATCH})
            found, last, gone = cursor.fetchone()
            deleted += gone
            if found < purge.PURGE_BATCH:
                return deleted
            after = last
