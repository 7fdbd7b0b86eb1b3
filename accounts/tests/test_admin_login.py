"""The admin sign-in: rate-limited per client IP and per username; served at ADMIN_URL."""

import importlib
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import clear_url_caches, resolve
from django.utils import timezone

LOGIN_URL = "/admin/login/"


def sign_in(client: Client, username: str, password: str = "wrong-password", ip="10.0.0.1"):
    form = {"username": username, "password": password, "next": "/admin/"}
    return client.post(LOGIN_URL, form, REMOTE_ADDR=ip)


@pytest.mark.django_db
def test_the_eleventh_attempt_from_one_address_in_a_minute_is_a_429_page(client, support_user):
    answers = [sign_in(client, f"guess{i}@example.com").status_code for i in range(10)]

    limited = sign_in(client, "support@example.com", "correct-horse-battery-staple")

    assert answers == [200] * 10  # the login form again, with its error
    assert limited.status_code == 429
    assert limited["Content-Type"] == "text/html; charset=utf-8"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert "Too many sign-in attempts" in limited.content.decode()
    assert "_auth_user_id" not in client.session  # not even the right password gets through


@pytest.mark.django_db
def test_the_rate_limited_sign_in_page_shows_no_signed_in_sidebar(client, settings):
    """It showed a signed-in page's nav sidebar: a filter box and "You don't have permission
    to view or edit anything.", read by an agent who mistyped a password as their account
    having lost its rights (review 31l). Django's login page has none either."""
    settings.RATE_LIMIT_LOGIN = "1/m"
    sign_in(client, "support@example.com", ip="10.0.9.1")

    limited = sign_in(client, "support@example.com", ip="10.0.9.1")

    html = limited.content.decode()
    assert limited.status_code == 429
    assert "Too many sign-in attempts" in html
    assert 'id="nav-sidebar"' not in html
    assert "have permission to view or edit anything" not in html


@pytest.mark.django_db
def test_while_redis_is_down_support_signs_in(dead_redis, client, support_user):
    # The admin's limit asked django-ratelimit unguarded: a ConnectionError, a 500 on every
    # sign-in, while the API's limits fail open.
    response = sign_in(client, "support@example.com", "correct-horse-battery-staple")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(support_user.pk)


@pytest.mark.django_db
def test_one_username_is_limited_whatever_the_address(client, support_user):
    for i in range(10):
        sign_in(client, "Support@Example.com ", ip=f"10.0.1.{i}")

    assert sign_in(client, "support@example.com", ip="10.0.2.1").status_code == 429
    assert sign_in(client, "someone-else@example.com", ip="10.0.2.2").status_code == 200


@pytest.mark.django_db
def test_every_spelling_of_one_address_counts_against_its_one_limit(client, support_user):
    # Sign-in maps these to support@example.com: each must not buy ten more guesses.
    spellings = [
        "support@ｅｘａｍｐｌｅ.com",
        "support@exa\u00admple.com",
        "support@xn--example-.com",
        "SUPPORT@EXAMPLE.ＣＯＭ",
    ]
    for i in range(10):
        sign_in(client, spellings[i % len(spellings)], ip=f"10.0.3.{i}")

    assert sign_in(client, "support@example.com", ip="10.0.4.1").status_code == 429


@pytest.mark.django_db
def test_under_the_limit_a_support_user_signs_in(client, support_user):
    sign_in(client, "support@example.com")

    response = sign_in(client, "support@example.com", "correct-horse-battery-staple")

    assert response.status_code == 302
    assert response["Location"] == "/admin/"


@pytest.mark.django_db
def test_showing_the_form_does_not_count(client):
    for _ in range(20):
        assert client.get(LOGIN_URL).status_code == 200

    assert sign_in(client, "support@example.com").status_code == 200


@pytest.mark.django_db
def test_the_limit_comes_from_rate_limit_login(client, settings):
    settings.RATE_LIMIT_LOGIN = "2/m"

    answers = [sign_in(client, "support@example.com").status_code for _ in range(3)]

    assert answers == [200, 200, 429]


@pytest.fixture
def admin_url(settings):
    """Reloads the URLconf with settings.ADMIN_URL as the test sets it, then restores it."""
    import todo_project.urls

    def use(path: str) -> None:
        settings.ADMIN_URL = path
        importlib.reload(todo_project.urls)
        clear_url_caches()

    yield use
    settings.ADMIN_URL = "admin/"
    importlib.reload(todo_project.urls)
    clear_url_caches()


@pytest.mark.django_db
def test_the_admin_is_served_at_admin_url(admin_url, support_client):
    admin_url("backoffice-7f3a/")

    assert resolve("/backoffice-7f3a/").url_name == "index"
    assert support_client.get("/backoffice-7f3a/accounts/user/").status_code == 200
    assert support_client.get("/admin/accounts/user/").status_code == 404


@pytest.mark.django_db
def test_the_sign_in_error_does_not_call_the_email_case_sensitive(client, support_user):
    refused = sign_in(client, "support@example.com").content.decode()
    assert "correct email and password" in refused
    assert "both fields may be case-sensitive" not in refused
    # It is not: another case of the address signs in.
    signed_in = sign_in(client, "SUPPORT@Example.com", "correct-horse-battery-staple")
    assert signed_in.status_code == 302 and "_auth_user_id" in client.session


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("next_url", "landing"),
    [("https://evil.example/", "/admin/"), ("/admin/tasks/task/", "/admin/tasks/task/")],
)
def test_a_sign_in_lands_on_the_admin_never_off_site_nor_on_a_404(
    client, support_user, next_url, landing
):
    # An off-site `next` is refused by Django; it fell back to /accounts/profile/, a 404.
    form = {"username": support_user.email, "password": "correct-horse-battery-staple"}
    signed_in = client.post(LOGIN_URL, {**form, "next": next_url})
    assert signed_in.status_code == 302 and signed_in["Location"] == landing
    assert client.get(signed_in["Location"]).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "email",
    [
        "\u017fupport@example.com",  # "ſupport": the email validator takes ſ; NFKC makes it "s"
        "a" * 30 + "@" + ".".join(["\ufb00" * 63] * 3) + ".com",  # NFKC: 415 characters
    ],
)
def test_a_staff_account_signs_in_with_its_address_as_stored_not_nfkcd(client, make_user, email):
    # Django's sign-in form applied NFKC, and the lookup then sought another address: the
    # account could not sign in to the admin, though it could to the API (review 28).
    staff = make_user(email=email, password="correct-horse-battery-staple", is_staff=True)

    response = sign_in(client, email, "correct-horse-battery-staple")

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(staff.pk)


@pytest.mark.django_db
def test_a_spelling_nfkc_would_make_one_is_not_the_account_past_its_limit(
    client, support_user, settings
):
    # The limit's counter was keyed without NFKC and the lookup made with it: "ſupport" was
    # another counter for support@example.com, 2**n budgets for n letters "s" (review 28).
    settings.RATE_LIMIT_LOGIN = "3/h"
    for i in range(3):
        sign_in(client, "support@example.com", ip=f"10.0.5.{i}")
    assert sign_in(client, "support@example.com", ip="10.0.5.9").status_code == 429

    response = sign_in(
        client, "\u017fupport@example.com", "correct-horse-battery-staple", ip="10.0.6.1"
    )

    assert response.status_code == 200  # the form again: no such account
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_an_admin_session_ends_two_weeks_after_its_sign_in_however_much_it_is_used(
    support_client,
):
    # The README said "two weeks after its last use": Django moves a session's expiry only when
    # its data changes (SESSION_SAVE_EVERY_REQUEST is off), so browsing does not extend it. The
    # fixed lifetime is kept (a staff session does not live on for ever); the README says so.
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    support_client.get("/admin/")  # the session row exists
    session = Session.objects.get()
    # As if it had been opened 13 days ago and only browsed since.
    session.expire_date = timezone.now() + timedelta(days=1)
    session.save()

    assert support_client.get("/admin/tasks/task/").status_code == 200  # a use, today

    session.refresh_from_db()
    assert session.expire_date < timezone.now() + timedelta(days=2)
    assert "a session expires two weeks after its sign-in (`SESSION_COOKIE_AGE`" in readme
