"""Fixtures shared by every app's tests."""

import uuid

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tokens import RefreshToken

DEFAULT_PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters and denylists must not leak from one test into the next."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_user(db):
    def make(email: str | None = None, password: str = DEFAULT_PASSWORD, **fields) -> User:
        email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
        return User.objects.create_user(email=email, password=password, **fields)

    return make


@pytest.fixture
def user(make_user) -> User:
    return make_user(email="alice@example.com", display_name="Alice")


@pytest.fixture
def other_user(make_user) -> User:
    return make_user(email="mallory@example.com", display_name="Mallory")


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def api_client(user) -> APIClient:
    """Signed in as `user` with a real access token."""
    return client_for(user)


@pytest.fixture
def other_client(other_user) -> APIClient:
    return client_for(other_user)
