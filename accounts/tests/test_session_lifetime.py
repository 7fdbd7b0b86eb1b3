"""How long a session (a sign-in and the refreshes after it) lasts: by default each refresh gives
a whole refresh lifetime again; JWT_SESSION_MAX_LIFETIME caps it from the sign-in."""

from datetime import timedelta

import pytest
from rest_framework_simplejwt.settings import api_settings

from accounts.tests.conftest import CLOCK
from accounts.tests.helpers import assert_problem, bearer, refresh, sign_in
from accounts.tokens import SIGNED_IN_CLAIM, AccessToken, RefreshToken, well_formed_claims
from conftest import DEFAULT_PASSWORD

HOUR = 3600
DAY = 24 * HOUR
ME = "/api/v1/auth/me/"


def claims(raw: str, kind=RefreshToken) -> dict:
    return kind(raw, verify=False).payload


def test_by_default_a_session_used_within_each_refresh_lifetime_goes_on(user, clock):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    signed_in = claims(pair["refresh"])["iat"]
    for _ in range(3):  # 39 days
        clock(13 * DAY)
        response = refresh(pair["refresh"])
        assert response.status_code == 200, response.content
        pair = response.json()
    now = int(CLOCK[0].timestamp())
    assert claims(pair["refresh"])["exp"] == now + 14 * DAY
    assert claims(pair["refresh"])[SIGNED_IN_CLAIM] == signed_in  # kept by every rotation
    assert bearer(pair["access"]).get(ME).status_code == 200


def test_a_capped_session_ends_at_its_cap_however_often_it_is_refreshed(user, clock, settings):
    settings.JWT_SESSION_MAX_LIFETIME = timedelta(days=1)
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    session_end = claims(pair["refresh"])["iat"] + DAY
    assert claims(pair["refresh"])["exp"] == session_end  # not 14 days
    for _ in range(3):  # at 6, 12 and 18 hours
        clock(6 * HOUR)
        response = refresh(pair["refresh"])
        assert response.status_code == 200, response.content
        pair = response.json()
        assert claims(pair["refresh"])["exp"] == session_end
    clock(6 * HOUR - 10 * 60)  # ten minutes before the end
    pair = refresh(pair["refresh"]).json()
    # The last access token lasts to the session's end, not its 15 minutes.
    assert claims(pair["access"], AccessToken)["exp"] == session_end
    assert bearer(pair["access"]).get(ME).status_code == 200

    clock(10 * 60 + api_settings.LEEWAY.total_seconds() + 1)  # past the end and the skew
    body = assert_problem(refresh(pair["refresh"]), 401)
    assert body.get("code") is None, body  # a plain refused token: sign in again
    assert bearer(pair["access"]).get(ME).status_code == 401
    # A new sign-in is a new session, with a day of its own.
    again = sign_in(user.email, DEFAULT_PASSWORD)
    assert claims(again["refresh"])["exp"] == int(CLOCK[0].timestamp()) + DAY


@pytest.mark.django_db
def test_a_token_from_before_the_claim_starts_its_session_at_its_issue(user, settings):
    settings.JWT_SESSION_MAX_LIFETIME = timedelta(days=1)
    old = RefreshToken.for_user(user)
    del old.payload[SIGNED_IN_CLAIM]
    old["exp"] = old["iat"] + 14 * DAY  # as issued before the cap: rotation brings it in

    pair = refresh(str(old)).json()

    assert claims(pair["refresh"])[SIGNED_IN_CLAIM] == old["iat"]
    assert claims(pair["refresh"])["exp"] == old["iat"] + DAY


@pytest.mark.parametrize("value", ["1700000000", -1, 1.5, True, 10**12])
def test_a_sign_in_time_not_a_whole_epoch_second_is_refused(value):
    payload = {
        "exp": 2_000_000_000,
        "iat": 1_900_000_000,
        "jti": "a" * 32,
        "user_id": "00000000-0000-4000-8000-000000000000",
    }
    assert well_formed_claims(payload)
    assert not well_formed_claims({**payload, SIGNED_IN_CLAIM: value})


def test_a_refresh_past_the_session_cap_is_refused_within_the_skew(user, clock, settings):
    """README: "the refresh past it is a plain 401: sign in again". Within JWT_CLOCK_SKEW_SECONDS
    past the cap it was a 200 whose refresh and access tokens had expired already (exp = the
    session's end, 30 s ago): a client that refreshes an expired token refreshed again at once,
    6 times in a row at 5 s steps."""
    settings.JWT_SESSION_MAX_LIFETIME = timedelta(days=1)
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    assert api_settings.LEEWAY.total_seconds() > 30
    clock(24 * 3600 + 30)  # 30 s past the session's end, within the skew
    answer = refresh(pair["refresh"])
    body = assert_problem(answer, 401)
    assert body.get("code") is None, body
