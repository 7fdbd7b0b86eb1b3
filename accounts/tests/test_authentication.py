"""What an attacker tries with tokens, and instant revocation; each answer is a plain 401."""

import base64
import json
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.test import RequestFactory
from django.urls import resolve
from django.utils.timezone import now
from rest_framework.test import APIClient
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts import authentication
from accounts.authentication import INVALID_TOKEN, MALFORMED_HEADER
from accounts.services import user_deactivate
from accounts.tests.helpers import assert_problem, bearer, sign_in
from accounts.tokens import AccessToken, RefreshToken
from conftest import DEFAULT_PASSWORD
from tasks.models import Task

pytestmark = pytest.mark.django_db

INVALID = "The access token is invalid, expired or revoked."


def assert_refused(access: str) -> None:
    body = assert_problem(bearer(access).get("/api/v1/auth/me/"), 401)
    assert body["detail"] == INVALID


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_valid_access_token_is_accepted(user):
    access = sign_in(user.email, DEFAULT_PASSWORD)["access"]
    assert bearer(access).get("/api/v1/auth/me/").status_code == 200


def test_a_tampered_signature_is_refused(user):
    header, payload, signature = sign_in(user.email, DEFAULT_PASSWORD)["access"].split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert_refused(f"{header}.{payload}.{flipped}")


def test_a_tampered_payload_is_refused(user, other_user):
    header, payload, signature = sign_in(user.email, DEFAULT_PASSWORD)["access"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["user_id"] = str(other_user.pk)
    assert_refused(f"{header}.{b64(claims)}.{signature}")


def test_alg_none_is_refused(user):
    claims = dict(AccessToken.for_user(user).payload)
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    assert_refused(unsigned)


def test_a_token_signed_with_another_key_is_refused(user):
    claims = dict(AccessToken.for_user(user).payload)
    assert_refused(jwt.encode(claims, "some-other-key-of-sufficient-length-0123", "HS256"))


def test_an_expired_access_token_is_refused(user):
    token = RefreshToken.for_user(user).access_token
    token.set_exp(from_time=now() - timedelta(hours=1))
    assert_refused(str(token))


def test_a_token_verified_earlier_is_refused_once_it_expires(user, monkeypatch):
    access = sign_in(user.email, DEFAULT_PASSWORD)["access"]
    assert bearer(access).get("/api/v1/auth/me/").status_code == 200  # verified, remembered
    assert authentication.verified_access_token.cache_info().currsize >= 1
    # Past its lifetime and the leeway for replicas' clock skew.
    jwt_settings = settings.SIMPLE_JWT
    later = (
        now()
        + jwt_settings["ACCESS_TOKEN_LIFETIME"]
        + jwt_settings["LEEWAY"]
        + timedelta(seconds=1)
    )
    monkeypatch.setattr(authentication, "aware_utcnow", lambda: later)
    assert_refused(access)


def test_a_refresh_token_is_never_accepted_as_an_access_token(user):
    assert_refused(sign_in(user.email, DEFAULT_PASSWORD)["refresh"])


@pytest.mark.parametrize(
    "header, detail",
    [
        ("Bearer", MALFORMED_HEADER),
        ("Bearer a b", MALFORMED_HEADER),
        ("Bearer garbage", INVALID_TOKEN),
    ],
)
def test_malformed_authorization_headers_are_401(anon_client, header, detail):
    response = anon_client.get("/api/v1/auth/me/", HTTP_AUTHORIZATION=header)
    body = assert_problem(response, 401)
    # Saying what to send (review 43c: simplejwt's "Authorization header must contain two
    # space-delimited values" was the one 401 in other words than the project's).
    assert body["detail"] == detail


def test_a_deactivated_users_tokens_stop_working_at_once(anon_client, user):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    user_deactivate(user=user)
    assert_refused(pair["access"])
    assert_problem(
        anon_client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]}), 401
    )


def test_deactivation_by_flag_alone_also_stops_tokens(user):
    # The admin's change form flips is_active without going through our service.
    access = sign_in(user.email, DEFAULT_PASSWORD)["access"]
    user.is_active = False
    user.save()
    assert_refused(access)


def test_reactivating_does_not_revive_tokens_revoked_by_deactivation(user):
    access = sign_in(user.email, DEFAULT_PASSWORD)["access"]
    user_deactivate(user=user)
    user.is_active = True
    user.save()
    assert_refused(access)
    assert bearer(sign_in(user.email, DEFAULT_PASSWORD)["access"]).get(
        "/api/v1/auth/me/"
    ).status_code == (200)


def test_revoking_tokens_bumps_the_generation_carried_in_new_tokens(user):
    old = sign_in(user.email, DEFAULT_PASSWORD)["access"]
    user.revoke_tokens()
    user.save()
    assert_refused(old)
    new = sign_in(user.email, DEFAULT_PASSWORD)["access"]
    assert jwt.decode(new, options={"verify_signature": False})["gen"] == 1
    assert bearer(new).get("/api/v1/auth/me/").status_code == 200


def test_tokens_without_the_generation_claim_die_with_the_first_revocation(user):
    # Minted by plain simplejwt (as before this claim existed): generation 0.
    from rest_framework_simplejwt.tokens import RefreshToken as PlainRefreshToken

    access = str(PlainRefreshToken.for_user(user).access_token)
    assert bearer(access).get("/api/v1/auth/me/").status_code == 200
    user.revoke_tokens()
    user.save()
    assert_refused(access)


def test_access_tokens_live_15_minutes_and_refresh_tokens_14_days(user):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    access = jwt.decode(pair["access"], settings.SECRET_KEY, algorithms=["HS256"])
    refresh = jwt.decode(pair["refresh"], settings.SECRET_KEY, algorithms=["HS256"])
    # Both counted from the refresh token's issue (simplejwt); the access token's own `iat` is
    # its making, a moment later: across a second's boundary, exp - iat was 899 (a flaky test).
    assert access["exp"] - refresh["iat"] == 15 * 60
    assert 0 <= access["iat"] - refresh["iat"] <= 1
    assert refresh["exp"] - refresh["iat"] == 14 * 24 * 3600
    assert (access["token_type"], refresh["token_type"]) == ("access", "refresh")


# --- The Authorization scheme: case-insensitive (RFC 9110 section 11.1) ------------------------


def fast_answer(path: str, authorization: str):
    """What the view's fast read answers itself (None: it leaves the request to the viewset)."""
    match = resolve(path)
    request = RequestFactory().get(path, HTTP_AUTHORIZATION=authorization)
    return match.func.fast_answer(request, **match.kwargs)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(user, scheme):
    task = Task.objects.create(owner=user, title="Pay rent", position=1024)
    header = f"{scheme} {RefreshToken.for_user(user).access_token}"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    # DRF's authentication, and the fast reads in front of the task viewset.
    for path in ("/api/v1/auth/me/", "/api/v1/tasks/", f"/api/v1/tasks/{task.pk}/"):
        assert client.get(path).status_code == 200, path
    for path in ("/api/v1/tasks/", f"/api/v1/tasks/{task.pk}/"):
        assert fast_answer(path, header).status_code == 200, path


@pytest.mark.parametrize("scheme", ["Token", "JWT", "Bearerx", "Basic"])
def test_a_valid_token_under_another_scheme_is_a_401(user, scheme):
    task = Task.objects.create(owner=user, title="Pay rent", position=1024)
    header = f"{scheme} {RefreshToken.for_user(user).access_token}"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    for path in ("/api/v1/auth/me/", "/api/v1/tasks/", f"/api/v1/tasks/{task.pk}/"):
        # Credentials were sent, not "not provided": what to send instead.
        body = assert_problem(client.get(path), 401)
        assert body["detail"] == 'Send the access token as "Authorization: Bearer <token>".'
    for path in ("/api/v1/tasks/", f"/api/v1/tasks/{task.pk}/"):
        assert fast_answer(path, header) is None, path


# --- WWW-Authenticate (RFC 6750 section 3) ------------------------------------------------------

INVALID_TOKEN_CHALLENGE = 'Bearer realm="api", error="invalid_token"'


@pytest.mark.parametrize("path", ["/api/v1/auth/me/", "/api/v1/tasks/", "task"])
def test_the_401_for_a_refused_token_says_invalid_token_and_for_none_no_error(user, path):
    """A token sent and refused (invalid, expired, revoked) is error="invalid_token"; a request
    without one (or with another scheme's) gets no error code. The fast reads too."""
    if path == "task":
        path = f"/api/v1/tasks/{Task.objects.create(owner=user, title='Pay', position=1).pk}/"
    expired = RefreshToken.for_user(user).access_token
    expired.set_exp(lifetime=-(api_settings.LEEWAY + timedelta(seconds=1)))  # past the leeway
    revoked = str(RefreshToken.for_user(user).access_token)
    user_deactivate(user=user)
    for access in ("garbage", str(expired), revoked):
        response = bearer(access).get(path)
        assert_problem(response, 401)
        assert response["WWW-Authenticate"] == INVALID_TOKEN_CHALLENGE, access

    basic = APIClient()
    basic.credentials(HTTP_AUTHORIZATION="Basic YTpi")
    for client in (APIClient(), basic):
        response = client.get(path)
        assert_problem(response, 401)
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'


# --- Tokens signed with our key whose claims are malformed ---------------------------------------
# Our tokens never carry such claims; one signed by other means (a leaked key, another tool)
# gets the answer of any invalid token, instead of failing in datetime, uuid or PostgreSQL.


def signed_like(token, **claims) -> str:
    """`token` with these claims changed (None: removed), signed with the server's key."""
    payload = {**token.payload, **claims}
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, settings.SIMPLE_JWT["SIGNING_KEY"], "HS256")


def in_ten_minutes() -> int:
    return int((now() + timedelta(minutes=10)).timestamp())


MALFORMED_CLAIMS = {
    "exp a string": lambda: {"exp": str(in_ten_minutes())},
    "exp past datetime's range": lambda: {"exp": 10**20},
    "exp one second past datetime's range": lambda: {"exp": 253_402_300_800},  # year 10000
    "gen past the column's range": lambda: {"gen": 10**30},
    "jti with a NUL": lambda: {"jti": "a\x00"},
    "jti longer than the column": lambda: {"jti": "a" * 400},
    "jti with a lone surrogate": lambda: {"jti": "a\ud800"},
    "iat missing": lambda: {"iat": None},
    "iat a string": lambda: {"iat": str(int(now().timestamp()))},
    "user_id not a UUID": lambda: {"user_id": "abc"},
    "fam a number": lambda: {"fam": 7},
    "fam longer than the column": lambda: {"fam": "f" * 65},
    "fam with a NUL": lambda: {"fam": "a\x00"},
}
# Cases an endpoint answered as it should before these claims were checked, left out: a lone
# surrogate's UnicodeEncodeError is a ValueError, which authentication happened to catch; a
# refresh token's gen is compared in Python; a user_id that is no UUID is not the caller's.
REFUSED_BEFORE = {
    "access": {"jti with a lone surrogate", "user_id not a UUID"},
    "refresh": {"gen past the column's range"},
    "logout": {"user_id not a UUID"},  # a 400 already: it cannot be the caller's
}
NOT_READ_BY_THE_API = {"iat missing", "iat a string"}  # of an access token: were 200s


def malformed(*, but: set[str] = frozenset()) -> list:
    return [
        pytest.param(claims, id=name)
        for name, claims in MALFORMED_CLAIMS.items()
        if name not in but
    ]


@pytest.fixture
def task(user) -> Task:
    return Task.objects.create(owner=user, title="Pay rent", position=1024)


@pytest.mark.parametrize("claims", malformed(but=REFUSED_BEFORE["access"] | NOT_READ_BY_THE_API))
@pytest.mark.parametrize("path", ["/api/v1/auth/me/", "/api/v1/lists/"])
def test_an_access_token_with_malformed_claims_is_a_401(user, claims, path):
    access = signed_like(RefreshToken.for_user(user).access_token, **claims())
    assert assert_problem(bearer(access).get(path), 401)["detail"] == INVALID


@pytest.mark.parametrize("claims", malformed(but={"user_id not a UUID"} | NOT_READ_BY_THE_API))
@pytest.mark.parametrize("path", ["/api/v1/tasks/", "task"])
def test_the_fast_reads_leave_an_access_token_with_malformed_claims_to_the_viewsets_401(
    user, task, claims, path
):
    path = f"/api/v1/tasks/{task.pk}/" if path == "task" else path
    access = signed_like(RefreshToken.for_user(user).access_token, **claims())
    assert fast_answer(path, f"Bearer {access}") is None
    assert assert_problem(bearer(access).get(path), 401)["detail"] == INVALID


@pytest.mark.parametrize("claims", malformed(but=REFUSED_BEFORE["access"] | NOT_READ_BY_THE_API))
def test_logging_out_with_an_access_token_with_malformed_claims_is_a_401(user, claims):
    refresh = RefreshToken.for_user(user)
    access = signed_like(refresh.access_token, **claims())
    response = bearer(access).post("/api/v1/auth/logout/", {"refresh": str(refresh)})
    assert assert_problem(response, 401)["detail"] == INVALID
    assert not BlacklistedToken.objects.exists()


@pytest.mark.parametrize("claims", malformed(but=REFUSED_BEFORE["refresh"]))
def test_refreshing_with_malformed_claims_is_a_401(anon_client, user, claims):
    refresh = signed_like(RefreshToken.for_user(user), **claims())
    response = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": refresh})
    body = assert_problem(response, 401)
    assert body["detail"] == "The refresh token is invalid, expired or revoked."
    assert not BlacklistedToken.objects.exists()


@pytest.mark.parametrize("claims", malformed(but=REFUSED_BEFORE["logout"]))
def test_logging_out_with_a_refresh_token_with_malformed_claims_is_a_400(user, claims):
    access = str(RefreshToken.for_user(user).access_token)
    refresh = signed_like(RefreshToken.for_user(user), **claims())
    response = bearer(access).post("/api/v1/auth/logout/", {"refresh": refresh})
    body = assert_problem(response, 400)
    assert body["errors"] == {"refresh": ["The refresh token is invalid, expired or revoked."]}
    assert not BlacklistedToken.objects.exists()
    assert bearer(access).get("/api/v1/auth/me/").status_code == 200  # still signed in


def test_a_jti_at_the_columns_length_is_accepted_and_denied_one_past_it_is_a_401(user):
    from rest_framework.test import APIClient

    from accounts.tokens import JTI_MAX_LENGTH, RefreshToken

    def client_with_jti(length: int) -> tuple[APIClient, RefreshToken]:
        refresh = RefreshToken.for_user(user)
        access = refresh.access_token
        access["jti"] = "a" * length
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
        return client, refresh

    longest, refresh = client_with_jti(JTI_MAX_LENGTH)
    assert longest.get("/api/v1/auth/me/").status_code == 200
    # Logout writes the jti into the denylist (a varchar of that length): a 204, not a 500.
    assert longest.post("/api/v1/auth/logout/", {"refresh": str(refresh)}).status_code == 204
    assert longest.get("/api/v1/auth/me/").status_code == 401
    too_long, _ = client_with_jti(JTI_MAX_LENGTH + 1)
    assert too_long.get("/api/v1/auth/me/").status_code == 401
