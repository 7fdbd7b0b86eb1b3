"""Replicas whose clocks differ (review 35e): PyJWT refuses a token whose `iat` is ahead of
the server's clock, so with no leeway a token minted by a replica running fast was a 401 on
the others, access and refresh alike (a sign-out right after signing in), and the refresh
reuse grace, comparing one replica's `blacklisted_at` with another's clock, ended a session
for an ordinary two-tab race. SIMPLE_JWT's LEEWAY (`JWT_CLOCK_SKEW_SECONDS`, 60 s) covers both.
And a refresh token used again within that grace says so in its 401, for a client to tell it
from a dead session.

The clocks are moved by patching simplejwt's (what mints iat/exp) and Django's (what writes
`blacklisted_at` and what the grace is compared with).
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt import tokens as simplejwt_tokens
from rest_framework_simplejwt.utils import aware_utcnow

from accounts.tests.helpers import assert_problem, bearer, sign_in
from conftest import DEFAULT_PASSWORD

REFRESH = "/api/v1/auth/token/refresh/"
ME = "/api/v1/auth/me/"


@pytest.fixture
def fast_replica(monkeypatch):
    """Runs what follows on a replica whose clock is `seconds` ahead; undo() is the slow one."""

    def ahead(seconds: float) -> None:
        real_simplejwt, real_django = aware_utcnow, timezone.now
        monkeypatch.setattr(
            simplejwt_tokens, "aware_utcnow", lambda: real_simplejwt() + timedelta(seconds=seconds)
        )
        monkeypatch.setattr(timezone, "now", lambda: real_django() + timedelta(seconds=seconds))

    return ahead


@pytest.mark.parametrize("skew", [1, 5, 30])
def test_a_token_minted_by_a_replica_whose_clock_is_ahead_works_on_the_others(
    user, fast_replica, monkeypatch, skew
):
    fast_replica(skew)
    pair = sign_in(user.email, DEFAULT_PASSWORD)  # on the fast replica
    monkeypatch.undo()  # the next requests land on a replica with the right time

    assert bearer(pair["access"]).get(ME).status_code == 200
    assert APIClient().post(REFRESH, {"refresh": pair["refresh"]}, format="json").status_code == 200


def test_signing_in_on_a_fast_replica_then_calling_a_slow_one_keeps_the_user_in(
    user, fast_replica, monkeypatch
):
    # What an SPA does: sign in, load the list; on a 401 refresh once, on a 401 there sign out.
    fast_replica(30)
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    monkeypatch.undo()

    tasks = bearer(pair["access"]).get("/api/v1/tasks/")
    if tasks.status_code == 401:
        refreshed = APIClient().post(REFRESH, {"refresh": pair["refresh"]}, format="json")
        assert refreshed.status_code == 200, "signed out right after signing in"
        tasks = bearer(refreshed.json()["access"]).get("/api/v1/tasks/")
    assert tasks.status_code == 200


def test_two_tabs_refreshing_at_once_with_a_30s_clock_skew_keep_the_session(
    user, fast_replica, monkeypatch
):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    winner = APIClient().post(REFRESH, {"refresh": pair["refresh"]}, format="json")
    assert winner.status_code == 200  # tab A, on the slow (right) replica

    fast_replica(30)  # tab B, the same moment, on the replica 30 s ahead
    loser = APIClient().post(REFRESH, {"refresh": pair["refresh"]}, format="json")
    monkeypatch.undo()
    assert_problem(loser, 401)  # the loser is refused: fine

    # ...but tab A's brand-new pair must go on working: a reuse within the grace ends nothing.
    assert bearer(winner.json()["access"]).get(ME).status_code == 200
    follow_up = APIClient().post(REFRESH, {"refresh": winner.json()["refresh"]}, format="json")
    assert follow_up.status_code == 200


def test_a_refresh_token_used_again_within_the_grace_says_so_in_its_401(anon_client, user):
    """A second tab or a retry of a refresh whose answer was lost: a 401 still, but with a
    `code` a client can tell from a dead session's, so it reads the pair the other request
    stored instead of signing the user out (review 35e)."""
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    assert anon_client.post(REFRESH, {"refresh": pair["refresh"]}, format="json").status_code == 200
    retried = assert_problem(
        APIClient().post(REFRESH, {"refresh": pair["refresh"]}, format="json"), 401
    )
    assert retried["code"] == "refresh_token_just_rotated"
    for refused in ("garbage", sign_in(user.email, DEFAULT_PASSWORD)["access"]):
        body = assert_problem(APIClient().post(REFRESH, {"refresh": refused}, format="json"), 401)
        assert "code" not in body
    # Signed out meanwhile: its session ended, not rotated by another request.
    other = sign_in(user.email, DEFAULT_PASSWORD)
    logout = bearer(other["access"]).post(
        "/api/v1/auth/logout/", {"refresh": other["refresh"]}, format="json"
    )
    assert logout.status_code == 204
    body = assert_problem(
        APIClient().post(REFRESH, {"refresh": other["refresh"]}, format="json"), 401
    )
    assert "code" not in body
