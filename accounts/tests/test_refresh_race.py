"""Rotation under concurrency, on real PostgreSQL transactions (not the test's one big one)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.tests.helpers import sign_in
from conftest import DEFAULT_PASSWORD

RACERS = 20


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_refreshes_of_one_token_let_exactly_one_through(make_user, settings):
    settings.RATE_LIMIT_ANON = "1000/m"
    user = make_user(email="racer@example.com")
    refresh = sign_in(user.email, DEFAULT_PASSWORD)["refresh"]
    start = threading.Barrier(RACERS)

    def refresh_once(_: int) -> tuple[int, dict]:
        try:
            start.wait()
            response = APIClient().post(
                "/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json"
            )
            return response.status_code, response.json()
        finally:
            connection.close()  # each thread has its own connection

    with ThreadPoolExecutor(RACERS) as pool:
        results = list(pool.map(refresh_once, range(RACERS)))

    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [401] * (RACERS - 1)
    assert BlacklistedToken.objects.count() == 1
    # The original refresh token plus the one issued to the winner: no second live token.
    assert OutstandingToken.objects.filter(user=user).count() == 2
    (winner,) = [body for status, body in results if status == 200]
    follow_up = APIClient().post(
        "/api/v1/auth/token/refresh/", {"refresh": winner["refresh"]}, format="json"
    )
    assert follow_up.status_code == 200
