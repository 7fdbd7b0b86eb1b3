"""The fake clock of the token tests: one clock read by everything that tells time in the token
path (see the docstring of test_stateful_auth.py), so that it can run hours or days ahead."""

from datetime import UTC, datetime, timedelta

import jwt.api_jwt
import pytest
from django.utils import timezone
from rest_framework_simplejwt import tokens as simplejwt_tokens

from accounts import authentication
from accounts import tokens as our_tokens

CLOCK = [datetime(2030, 1, 1, tzinfo=UTC)]


class FakeDatetime(datetime):
    @classmethod
    def now(cls, tz=None):
        return CLOCK[0] if tz is not None else CLOCK[0].replace(tzinfo=None)


@pytest.fixture
def fake_clock(monkeypatch):
    """Every clock of the token path reads CLOCK (set it, or take `clock`)."""
    monkeypatch.setattr(timezone, "now", lambda: CLOCK[0])
    monkeypatch.setattr(our_tokens, "now", lambda: CLOCK[0])
    monkeypatch.setattr(simplejwt_tokens, "aware_utcnow", lambda: CLOCK[0])
    monkeypatch.setattr(authentication, "aware_utcnow", lambda: CLOCK[0])
    monkeypatch.setattr(jwt.api_jwt, "datetime", FakeDatetime)
    authentication.verified_access_token.cache_clear()


@pytest.fixture
def clock(fake_clock):
    """The fake clock from 2030-01-01; advance(seconds) moves it."""
    CLOCK[0] = datetime(2030, 1, 1, tzinfo=UTC)

    def advance(seconds: float) -> None:
        CLOCK[0] += timedelta(seconds=seconds)

    return advance
