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


@pytest.mark.django_db(transaction=True)
def test_a_reset_link_used_by_four_requests_at_once_sets_one_password(make_user, settings):
    # Each checked the link, then hashed its password (Argon2, ~0.1 s) and saved: two or more
    # got a 204, and all but the last writer's password were lost.
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    from accounts.tokens import reset_link_tokens

    racers = 4
    settings.RATE_LIMIT_ANON = "1000/m"
    user = make_user(email="reset-racer@example.com")
    link = {
        "uid": urlsafe_base64_encode(force_bytes(user.pk)),
        "token": reset_link_tokens.make_token(user),
    }
    start = threading.Barrier(racers)

    def confirm(n: int) -> int:
        try:
            start.wait()
            response = APIClient().post(
                "/api/v1/auth/password/reset/confirm/",
                {**link, "new_password": f"racing-passphrase-{n}"},
                format="json",
            )
            return response.status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(racers) as pool:
        statuses = list(pool.map(confirm, range(racers)))

    assert sorted(statuses) == [204] + [400] * (racers - 1)
    user.refresh_from_db()
    (winner,) = [n for n, status in enumerate(statuses) if status == 204]
    assert user.check_password(f"racing-passphrase-{winner}")
