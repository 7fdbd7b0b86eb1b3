"""The Accounts section of the contract, endpoint by endpoint, black-box over HTTP."""

import logging
import smtplib
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher, make_password
from django.contrib.contenttypes.models import ContentType
from django.core.mail import EmailMessage
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.timezone import now
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts import mail
from accounts import services as account_services
from accounts.mail import wait_until_idle
from accounts.models import DeniedAccessToken, RevokedTokenFamily, User
from accounts.tests.helpers import assert_problem, bearer, sent_mail, sign_in
from accounts.tokens import AccessToken, RefreshToken, reset_link_tokens
from conftest import DEFAULT_PASSWORD
from tasks.models import Task, TaskList
from todo_project.fields import CONTROL_CHARACTERS_MESSAGE
from todo_project.request_id import JsonFormatter, RequestIdLogFilter


def decode(token: str) -> dict:
    """A token's claims, unverified (the test reads what the server put in)."""
    return jwt.decode(token, options={"verify_signature": False})


pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-brand-new-passphrase-42"
# Rotated longer ago than the reuse grace and the replicas' clock skew (LEEWAY) allow for.
PAST_THE_REUSE_GRACE = (
    account_services.REFRESH_REUSE_GRACE + api_settings.LEEWAY + timedelta(seconds=1)
)


def user_body(user: User) -> dict:
    user.refresh_from_db()
    return {
        "id": str(user.id),
        "email": user.email,
        "display_name": user.display_name,
        "timezone": user.timezone,
        "date_joined": user.date_joined.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


# --- register ---------------------------------------------------------------------------------


def test_register_creates_the_account_and_signs_it_in(anon_client):
    response = anon_client.post(
        "/api/v1/auth/register/",
        {
            "email": "  New.Person@Example.COM ",
            "password": DEFAULT_PASSWORD,
            "display_name": "New Person",
            "timezone": "Europe/Berlin",
            "is_staff": True,  # read-only fields can never be set by a client
            "id": "00000000-0000-0000-0000-000000000000",
        },
    )
    assert response.status_code == 201
    body = response.json()
    user = User.objects.get()
    assert body["user"] == user_body(user)
    assert (user.email, user.display_name, user.timezone) == (
        "new.person@example.com",
        "New Person",
        "Europe/Berlin",
    )
    assert not user.is_staff and str(user.id) != "00000000-0000-0000-0000-000000000000"
    assert user.password.startswith("argon2$")
    me = bearer(body["access"]).get("/api/v1/auth/me/")
    assert me.json() == body["user"]
    refreshed = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": body["refresh"]})
    assert refreshed.status_code == 200


def test_register_defaults_display_name_and_timezone(anon_client):
    response = anon_client.post(
        "/api/v1/auth/register/", {"email": "x@example.com", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 201
    assert (response.json()["user"]["display_name"], response.json()["user"]["timezone"]) == (
        "",
        "UTC",
    )


def test_register_refuses_an_email_taken_in_another_letter_case(anon_client, user):
    response = anon_client.post(
        "/api/v1/auth/register/", {"email": "ALICE@Example.com", "password": DEFAULT_PASSWORD}
    )
    body = assert_problem(response, 400)
    assert body["errors"] == {"email": ["An account with this email address already exists."]}
    assert User.objects.count() == 1


def test_register_says_an_email_is_taken_only_once_every_other_field_is_valid(anon_client, user):
    # A probe for accounts must bring a password that passes the rules (and one for a free
    # address creates that account): a weak one is refused on its own, whatever the email.
    for taken in (False, True):
        email = user.email if taken else "nobody@example.com"
        weak = anon_client.post("/api/v1/auth/register/", {"email": email, "password": "123"})
        assert list(assert_problem(weak, 400)["errors"]) == ["password"]
        bad_zone = {"email": email, "password": DEFAULT_PASSWORD, "timezone": "Mars/Base"}
        zone = anon_client.post("/api/v1/auth/register/", bad_zone)
        assert list(assert_problem(zone, 400)["errors"]) == ["timezone"]
    assert User.objects.count() == 1


def test_an_internationalised_domain_and_its_ascii_form_are_one_address(anon_client):
    registered = anon_client.post(
        "/api/v1/auth/register/", {"email": "Anna@XN--Exmple-cua.com", "password": DEFAULT_PASSWORD}
    )
    assert registered.status_code == 201
    assert registered.json()["user"]["email"] == "anna@exämple.com"
    # Typed with a decomposed ä (a + combining diaeresis) and in capitals: the same mailbox.
    again = anon_client.post(
        "/api/v1/auth/register/", {"email": "anna@EXA\u0308MPLE.com", "password": DEFAULT_PASSWORD}
    )
    body = assert_problem(again, 400)
    assert body["errors"] == {"email": ["An account with this email address already exists."]}
    for typed in ("anna@exämple.com", "anna@xn--exmple-cua.com"):
        signed_in = anon_client.post(
            "/api/v1/auth/token/", {"email": typed, "password": DEFAULT_PASSWORD}
        )
        assert signed_in.status_code == 200, typed


@pytest.mark.parametrize(
    "spelling",
    [
        "anna@ｅｘａｍｐｌｅ.com",  # full-width letters
        "anna@exa\u00admple.com",  # a soft hyphen: invisible
        "anna@exa\u200dmple.com",  # a zero-width joiner
        "ANNA@EXAMPLE.ＣＯＭ",
    ],
)
def test_a_domain_the_mailer_sends_to_the_same_host_is_the_same_address(anon_client, spelling):
    # Django's mailer maps a domain with IDNA 2003 nameprep: these spellings' mail goes to
    # anna@example.com, so they are that account, not a second one.
    body = {"email": "anna@example.com", "password": DEFAULT_PASSWORD}
    assert anon_client.post("/api/v1/auth/register/", body).status_code == 201

    again = anon_client.post("/api/v1/auth/register/", {**body, "email": spelling})

    assert assert_problem(again, 400)["errors"] == {
        "email": ["An account with this email address already exists."]
    }
    signed_in = anon_client.post("/api/v1/auth/token/", {**body, "email": spelling})
    assert signed_in.status_code == 200


def test_register_race_on_one_email_is_a_400_not_a_500(anon_client, user, monkeypatch):
    # Two parallel requests both pass the "email taken?" check; the unique index decides.
    from accounts.serializers import RegisterSerializer

    monkeypatch.setattr(RegisterSerializer, "validate_email", lambda self, value: value.lower())
    response = anon_client.post(
        "/api/v1/auth/register/", {"email": "alice@example.com", "password": DEFAULT_PASSWORD}
    )
    body = assert_problem(response, 400)
    assert body["errors"] == {"email": ["An account with this email address already exists."]}
    assert User.objects.count() == 1


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short-1", "This password is too short. It must contain at least 10 characters."),
        ("password123", "This password is too common."),
        ("4815162342108", "This password is entirely numeric."),
        ("bob.builder@example.com", "The password is too similar to the email."),
        (" " * 12, "This password is only spaces or other blank characters."),
        ("\t\u3000" * 6, "This password is only spaces or other blank characters."),
    ],
)
def test_register_applies_the_password_validators(anon_client, password, message):
    response = anon_client.post(
        "/api/v1/auth/register/", {"email": "bob.builder@example.com", "password": password}
    )
    body = assert_problem(response, 400)
    assert message in body["errors"]["password"]
    assert not User.objects.exists()


def test_register_validates_every_field(anon_client):
    response = anon_client.post(
        "/api/v1/auth/register/",
        {"email": "not-an-email", "display_name": "x" * 101, "timezone": "Mars/Base"},
    )
    body = assert_problem(response, 400)
    assert set(body["errors"]) == {"email", "password", "display_name", "timezone"}


# The longest address the email column (varchar(254)) holds, its domain labels within DNS's 63.
LONGEST_EMAIL = f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 57}.com"
TOO_LONG = "At most 254 characters."


def test_register_takes_an_email_of_254_characters(anon_client):
    assert len(LONGEST_EMAIL) == 254
    response = anon_client.post(
        "/api/v1/auth/register/", {"email": LONGEST_EMAIL, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 201
    assert response.json()["user"]["email"] == LONGEST_EMAIL


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/register/", "/api/v1/auth/token/", "/api/v1/auth/password/reset/"]
)
@pytest.mark.parametrize("email", ["a" + LONGEST_EMAIL, "x" * 5000 + "@example.com"])
def test_an_email_longer_than_254_characters_is_a_400_on_every_endpoint(anon_client, path, email):
    """No account can have it: a 400 naming the field, never the database's 500."""
    response = anon_client.post(path, {"email": email, "password": DEFAULT_PASSWORD})
    body = assert_problem(response, 400)
    assert TOO_LONG in body["errors"]["email"]
    assert not User.objects.exists() and sent_mail() == []


# 188 characters as sent, 368 lower-cased (`İ` is two code points then); and 198 ASCII
# characters whose punycode labels decode (with NFC) to 513.
GROWING_EMAILS = [
    "a@" + ".".join(["İ" * 60] * 3) + ".com",
    "a@" + ".".join(["xn--" + ("\ufb2c" * 56).encode("punycode").decode()] * 3) + ".com",
]


@pytest.mark.parametrize("email", GROWING_EMAILS)
def test_an_email_longer_than_254_characters_once_stored_is_a_400(anon_client, email):
    assert len(email) <= 254
    response = anon_client.post(
        "/api/v1/auth/register/", {"email": email, "password": DEFAULT_PASSWORD}
    )
    body = assert_problem(response, 400)
    assert body["errors"]["email"] == [
        ("At most 254 characters (as stored: lower-cased, its domain in Unicode).")
    ]
    assert not User.objects.exists()


@pytest.mark.parametrize("timezone", ["localtime", "posixrules"])
def test_register_refuses_a_server_dependent_timezone_name(anon_client, timezone):
    response = anon_client.post(
        "/api/v1/auth/register/",
        {"email": "n@example.com", "password": DEFAULT_PASSWORD, "timezone": timezone},
    )
    assert list(assert_problem(response, 400)["errors"]) == ["timezone"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/auth/register/", {"email": "n@example.com", "password": 12345678901}, "password"),
        ("/api/v1/auth/register/", {"email": "n@example.com", "timezone": 0}, "timezone"),
        ("/api/v1/auth/token/", {"email": 42, "password": "whatever-it-is"}, "email"),
        ("/api/v1/auth/token/refresh/", {"refresh": 1}, "refresh"),
        (
            "/api/v1/auth/password/reset/confirm/",
            {"uid": 1, "token": "t", "new_password": "x"},
            "uid",
        ),
    ],
)
def test_a_number_where_the_schema_says_string_is_a_400(anon_client, path, body, field):
    """DRF's CharField would take 12345678901 as the text "12345678901"; the schema says
    string, and a value of the wrong type is a 400 naming the field."""
    body = assert_problem(anon_client.post(path, body, format="json"), 400)
    assert body["errors"][field] == ["Not a valid string."]


def test_register_query_count(anon_client, django_assert_max_num_queries):
    # email taken?, insert user (in a savepoint), the outstanding refresh token
    with django_assert_max_num_queries(5):
        response = anon_client.post(
            "/api/v1/auth/register/", {"email": "q@example.com", "password": DEFAULT_PASSWORD}
        )
    assert response.status_code == 201


# --- token ------------------------------------------------------------------------------------


def test_sign_in_answers_a_working_token_pair(anon_client, user):
    response = anon_client.post(
        "/api/v1/auth/token/", {"email": "Alice@Example.com", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    assert bearer(response.json()["access"]).get("/api/v1/auth/me/").json() == user_body(user)


def test_a_sign_in_is_the_admins_last_sign_in_and_a_refused_one_is_not(anon_client, user):
    """The admin's "last sign-in" column stayed empty: the API issues tokens, and only Django's
    session login() recorded it."""
    body = {"email": "alice@example.com", "password": "wrong-password-123"}
    assert anon_client.post("/api/v1/auth/token/", body).status_code == 401
    user.refresh_from_db()
    assert user.last_login is None
    before = timezone.now()
    body["password"] = DEFAULT_PASSWORD
    assert anon_client.post("/api/v1/auth/token/", body).status_code == 200
    user.refresh_from_db()
    assert user.last_login >= before


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("alice@example.com", "wrong-password-123"),
        ("nobody@example.com", DEFAULT_PASSWORD),
        ("not an email", DEFAULT_PASSWORD),
    ],
)
def test_bad_credentials_get_one_generic_401(anon_client, user, email, password):
    response = anon_client.post("/api/v1/auth/token/", {"email": email, "password": password})
    body = assert_problem(response, 401)
    assert body["detail"] == "Email or password is incorrect."
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_deactivated_account_cannot_sign_in(anon_client, user):
    user.is_active = False
    user.save()
    response = anon_client.post(
        "/api/v1/auth/token/", {"email": user.email, "password": DEFAULT_PASSWORD}
    )
    assert assert_problem(response, 401)["detail"] == "Email or password is incorrect."


def test_an_unknown_email_costs_a_password_hash_like_a_known_one(anon_client, user, monkeypatch):
    # No timing assertion: we check that the expensive step (hashing) runs in both cases.
    calls = []
    original_encode = Argon2PasswordHasher.encode
    original_verify = Argon2PasswordHasher.verify

    def encode(self, *args, **kwargs):
        calls.append("encode")
        return original_encode(self, *args, **kwargs)

    def verify(self, *args, **kwargs):
        calls.append("verify")
        return original_verify(self, *args, **kwargs)

    monkeypatch.setattr(Argon2PasswordHasher, "encode", encode)
    monkeypatch.setattr(Argon2PasswordHasher, "verify", verify)
    anon_client.post("/api/v1/auth/token/", {"email": "ghost@example.com", "password": "x" * 12})
    assert calls == ["encode"]
    calls.clear()
    anon_client.post("/api/v1/auth/token/", {"email": user.email, "password": "x" * 12})
    assert calls == ["verify"]


def test_sign_in_upgrades_an_older_password_hash_to_argon2(anon_client, make_user):
    user = make_user(email="legacy@example.com")
    User.objects.filter(pk=user.pk).update(
        password=make_password(DEFAULT_PASSWORD, hasher="pbkdf2_sha256")
    )
    user.refresh_from_db()
    assert user.password.startswith("pbkdf2_sha256$")
    response = anon_client.post(
        "/api/v1/auth/token/", {"email": user.email, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.password.startswith("argon2$")
    assert user.check_password(DEFAULT_PASSWORD)


def test_sign_in_requires_both_fields(anon_client):
    body = assert_problem(anon_client.post("/api/v1/auth/token/", {}), 400)
    assert body["errors"] == {
        "email": ["This field is required."],
        "password": ["This field is required."],
    }


def test_sign_in_ignores_a_stale_access_token_in_the_header(user):
    client = bearer("not-a-valid-token")
    response = client.post(
        "/api/v1/auth/token/", {"email": user.email, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200


def test_sign_in_query_count(anon_client, user, django_assert_max_num_queries):
    # The user, its last sign-in, the outstanding refresh token.
    with django_assert_max_num_queries(3):
        response = anon_client.post(
            "/api/v1/auth/token/", {"email": user.email, "password": DEFAULT_PASSWORD}
        )
    assert response.status_code == 200


# --- token/refresh ----------------------------------------------------------------------------


def test_refresh_rotates_and_the_old_refresh_token_is_dead(anon_client, user):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    response = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]})
    assert response.status_code == 200
    new_pair = response.json()
    assert set(new_pair) == {"access", "refresh"}
    assert new_pair["refresh"] != pair["refresh"]
    assert bearer(new_pair["access"]).get("/api/v1/auth/me/").status_code == 200

    again = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": new_pair["refresh"]})
    assert again.status_code == 200  # the new one rotates in turn, in the same session
    assert decode(again.json()["refresh"])["fam"] == decode(pair["refresh"])["fam"]


def test_reusing_a_rotated_refresh_token_ends_its_session(anon_client, user):
    """Two holders of one refresh token (a stolen copy): whichever rotated first, neither goes
    on. The user's other sessions are not touched."""
    stolen = sign_in(user.email, DEFAULT_PASSWORD)
    other_device = sign_in(user.email, DEFAULT_PASSWORD)
    thief = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": stolen["refresh"]}).json()
    # Within the grace a reuse is the same client twice (two tabs): a 401, nothing else.
    assert_problem(
        anon_client.post("/api/v1/auth/token/refresh/", {"refresh": stolen["refresh"]}), 401
    )
    assert not RevokedTokenFamily.objects.exists()
    BlacklistedToken.objects.update(blacklisted_at=now() - PAST_THE_REUSE_GRACE)

    reuse = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": stolen["refresh"]})
    body = assert_problem(reuse, 401)
    assert body["detail"] == "The refresh token is invalid, expired or revoked."
    assert_problem(
        anon_client.post("/api/v1/auth/token/refresh/", {"refresh": thief["refresh"]}), 401
    )
    assert (
        anon_client.post("/api/v1/auth/token/refresh/", {"refresh": other_device["refresh"]})
    ).status_code == 200


def test_a_refused_refresh_token_that_was_never_used_ends_no_session(anon_client, user):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    forged = jwt.encode(
        decode(pair["refresh"]), "some-other-key-of-sufficient-length-0123", "HS256"
    )
    expired = RefreshToken.for_user(user)
    expired["fam"] = decode(pair["refresh"])["fam"]
    expired.set_exp(lifetime=-(api_settings.LEEWAY + timedelta(seconds=1)))
    for refused in (forged, str(expired), pair["access"]):
        assert_problem(anon_client.post("/api/v1/auth/token/refresh/", {"refresh": refused}), 401)
    assert not RevokedTokenFamily.objects.exists()
    assert (
        anon_client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]})
    ).status_code == 200


def test_a_refresh_token_from_before_families_refreshes_into_a_family_of_its_own(anon_client, user):
    legacy = RefreshToken.for_user(user)
    del legacy["fam"]
    fresh = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": str(legacy)}).json()
    assert decode(fresh["refresh"])["fam"] == legacy["jti"]
    client = bearer(fresh["access"])
    assert client.post("/api/v1/auth/logout/", {"refresh": str(legacy)}).status_code == 204
    assert_problem(
        anon_client.post("/api/v1/auth/token/refresh/", {"refresh": fresh["refresh"]}), 401
    )


def test_refresh_rejects_an_access_token_and_garbage(anon_client, user):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    for value in (pair["access"], "garbage", pair["refresh"][:-4] + "AAAA"):
        response = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": value})
        assert_problem(response, 401)
    assert_problem(anon_client.post("/api/v1/auth/token/refresh/", {}), 400)


def test_refreshing_the_token_of_a_deleted_user_is_a_401_not_a_500(anon_client, user):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    User.objects.filter(pk=user.pk).delete()  # e.g. from the admin, bypassing our service
    response = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]})
    assert_problem(response, 401)


def test_refreshing_the_token_of_a_deactivated_user_is_a_401(anon_client, user):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    User.objects.filter(pk=user.pk).update(is_active=False)
    response = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]})
    assert_problem(response, 401)


def test_refresh_query_count(anon_client, user, django_assert_max_num_queries):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    # blacklist check, user, outstanding lookup, blacklist insert, new outstanding, savepoint
    with django_assert_max_num_queries(7):
        response = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]})
    assert response.status_code == 200


def no_store(response) -> bool:
    directives = response.get("Cache-Control", "").split(",")
    return "no-store" in {directive.strip().lower() for directive in directives}


def test_no_answer_carrying_tokens_may_be_stored(anon_client, user):
    """RFC 6749 section 5.1: `Cache-Control: no-store` on every answer with a token."""
    registered = anon_client.post(
        "/api/v1/auth/register/", {"email": "n@example.com", "password": DEFAULT_PASSWORD}
    )
    signed_in = anon_client.post(
        "/api/v1/auth/token/", {"email": user.email, "password": DEFAULT_PASSWORD}
    )
    refreshed = anon_client.post(
        "/api/v1/auth/token/refresh/", {"refresh": signed_in.json()["refresh"]}
    )
    for response, status in ((registered, 201), (signed_in, 200), (refreshed, 200)):
        assert response.status_code == status
        assert "access" in response.json() and no_store(response), response.headers
    # Its errors too: the header belongs to the endpoint, not to one answer.
    refused = anon_client.post("/api/v1/auth/token/", {"email": user.email, "password": "nope"})
    assert refused.status_code == 401 and no_store(refused)


# --- logout -----------------------------------------------------------------------------------


def test_logout_kills_the_refresh_token_and_the_calling_access_token(anon_client, user):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    other_session = sign_in(user.email, DEFAULT_PASSWORD)
    client = bearer(pair["access"])
    response = client.post("/api/v1/auth/logout/", {"refresh": pair["refresh"]})
    assert response.status_code == 204
    assert response.content == b""

    assert_problem(client.get("/api/v1/auth/me/"), 401)
    reuse = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]})
    assert_problem(reuse, 401)
    # Only that session ended: the user's other device stays signed in.
    assert bearer(other_session["access"]).get("/api/v1/auth/me/").status_code == 200


def test_logout_ends_every_access_token_of_the_session_not_only_the_calling_one(anon_client, user):
    # Another tab of the same session refreshed, so it holds an access token of its own.
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    other_tab = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]})
    other_tab = other_tab.json()
    other_session = sign_in(user.email, DEFAULT_PASSWORD)
    task = Task.objects.create(owner=user, title="Pay rent", position=1024)

    bearer(pair["access"]).post("/api/v1/auth/logout/", {"refresh": other_tab["refresh"]})

    # Every path that reads a token refuses it: DRF's, and the fast lane's GET and list.
    for path in ("/api/v1/auth/me/", f"/api/v1/tasks/{task.pk}/", "/api/v1/tasks/"):
        assert_problem(bearer(other_tab["access"]).get(path), 401)
        assert bearer(other_session["access"]).get(path).status_code == 200


def test_a_stolen_refresh_tokens_session_ends_for_the_thiefs_access_token_too(anon_client, user):
    stolen = sign_in(user.email, DEFAULT_PASSWORD)
    thief = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": stolen["refresh"]}).json()
    assert bearer(thief["access"]).get("/api/v1/auth/me/").status_code == 200
    BlacklistedToken.objects.update(blacklisted_at=now() - PAST_THE_REUSE_GRACE)

    # The user's client tries the refresh token the thief already rotated: a stolen copy.
    assert_problem(
        anon_client.post("/api/v1/auth/token/refresh/", {"refresh": stolen["refresh"]}), 401
    )

    assert_problem(bearer(thief["access"]).get("/api/v1/auth/me/"), 401)


def test_an_access_token_from_before_families_is_a_session_of_its_own(anon_client, user):
    legacy = RefreshToken.for_user(user)
    del legacy["fam"]
    access = legacy.access_token
    assert "fam" not in access.payload
    other = sign_in(user.email, DEFAULT_PASSWORD)
    bearer(other["access"]).post("/api/v1/auth/logout/", {"refresh": other["refresh"]})
    assert bearer(str(access)).get("/api/v1/auth/me/").status_code == 200


def test_logout_needs_an_access_token(anon_client, user):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    assert_problem(anon_client.post("/api/v1/auth/logout/", {"refresh": pair["refresh"]}), 401)


def test_logout_with_a_refresh_token_rotated_since_still_ends_the_session(anon_client, user):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    rotated = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]})
    assert rotated.status_code == 200  # the refresh token in `pair` is blacklisted now
    client = bearer(pair["access"])
    response = client.post("/api/v1/auth/logout/", {"refresh": pair["refresh"]})
    assert response.status_code == 204
    assert_problem(client.get("/api/v1/auth/me/"), 401)
    # The refresh token rotation made from it is dead too: the whole session ended.
    successor = rotated.json()["refresh"]
    assert_problem(anon_client.post("/api/v1/auth/token/refresh/", {"refresh": successor}), 401)


def test_logout_with_the_newest_refresh_token_ends_the_older_ones_too(anon_client, user):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    newest = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]}).json()
    client = bearer(newest["access"])
    assert client.post("/api/v1/auth/logout/", {"refresh": newest["refresh"]}).status_code == 204
    for refresh in (newest["refresh"], pair["refresh"]):
        assert_problem(anon_client.post("/api/v1/auth/token/refresh/", {"refresh": refresh}), 401)
    assert RevokedTokenFamily.objects.get().family == decode(pair["refresh"])["fam"]


def test_logout_with_an_expired_refresh_token_still_ends_the_session(user):
    refresh = RefreshToken.for_user(user)
    client = bearer(str(refresh.access_token))
    refresh.set_exp(lifetime=-timedelta(seconds=1))
    # Its signature is still checked: a forged one changes nothing.
    forged = jwt.encode(refresh.payload, "some-other-key-of-sufficient-length-0123", "HS256")
    assert_problem(client.post("/api/v1/auth/logout/", {"refresh": forged}), 400)
    assert client.get("/api/v1/auth/me/").status_code == 200

    response = client.post("/api/v1/auth/logout/", {"refresh": str(refresh)})
    assert response.status_code == 204
    assert_problem(client.get("/api/v1/auth/me/"), 401)
    assert BlacklistedToken.objects.filter(token__jti=refresh["jti"]).exists()


def test_logout_with_another_users_refresh_token_changes_nothing(user, other_user):
    mine = sign_in(user.email, DEFAULT_PASSWORD)
    theirs = sign_in(other_user.email, DEFAULT_PASSWORD)
    client = bearer(mine["access"])
    body = assert_problem(client.post("/api/v1/auth/logout/", {"refresh": theirs["refresh"]}), 400)
    assert body["errors"] == {"refresh": ["The refresh token is invalid, expired or revoked."]}
    assert not BlacklistedToken.objects.exists()
    assert client.get("/api/v1/auth/me/").status_code == 200  # my access token still works
    assert bearer(theirs["access"]).get("/api/v1/auth/me/").status_code == 200  # and theirs too


def test_logout_with_an_invalid_refresh_token_is_a_400(user):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    client = bearer(pair["access"])
    assert_problem(client.post("/api/v1/auth/logout/", {"refresh": "nope"}), 400)
    assert client.get("/api/v1/auth/me/").status_code == 200


def test_logout_query_count(user, django_assert_max_num_queries):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    client = bearer(pair["access"])
    # user, blacklist check, outstanding token, blacklist get-or-create (in a savepoint),
    # the session's family revoked and expired revocations cleared, the access token denied,
    # expired denials cleared
    with django_assert_max_num_queries(11):
        response = client.post("/api/v1/auth/logout/", {"refresh": pair["refresh"]})
    assert response.status_code == 204


# --- me ---------------------------------------------------------------------------------------


def test_me_shows_the_callers_profile_only(api_client, user, other_user):
    response = api_client.get("/api/v1/auth/me/")
    assert response.status_code == 200
    assert response.json() == user_body(user)


def test_me_needs_a_token(anon_client):
    assert_problem(anon_client.get("/api/v1/auth/me/"), 401)


def test_patch_me_changes_display_name_and_timezone_only(api_client, user, other_user):
    response = api_client.patch(
        "/api/v1/auth/me/",
        {
            "display_name": "Alice A.",
            "timezone": "America/New_York",
            "email": "hijack@example.com",
            "id": str(other_user.id),
            "date_joined": "2000-01-01T00:00:00Z",
            "is_staff": True,
        },
    )
    assert response.status_code == 200
    assert response.json() == user_body(user)
    assert (user.display_name, user.timezone, user.email, user.is_staff) == (
        "Alice A.",
        "America/New_York",
        "alice@example.com",
        False,
    )
    other_user.refresh_from_db()
    assert other_user.display_name == "Mallory"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),  # the server's zone, whatever it is
        ({"timezone": "posixrules"}, "timezone"),
        ({"display_name": "x" * 101}, "display_name"),
        ({"display_name": "nul\x00byte"}, "display_name"),
        ({"display_name": "Al\nice"}, "display_name"),
        ({"display_name": "Al\tice"}, "display_name"),
    ],
)
def test_patch_me_rejects_invalid_values(api_client, user, patch, field):
    body = assert_problem(api_client.patch("/api/v1/auth/me/", patch), 400)
    assert list(body["errors"]) == [field]
    user.refresh_from_db()
    assert (user.display_name, user.timezone) == ("Alice", "UTC")


def test_a_display_name_is_one_line_but_one_stored_before_may_stay(api_client, anon_client, user):
    registered = anon_client.post(
        "/api/v1/auth/register/",
        {"email": "bob@example.com", "password": DEFAULT_PASSWORD, "display_name": "Bo\nb"},
    )
    assert assert_problem(registered, 400)["errors"] == {
        "display_name": [CONTROL_CHARACTERS_MESSAGE]
    }
    trimmed = anon_client.post(
        "/api/v1/auth/register/",
        {"email": "bob@example.com", "password": DEFAULT_PASSWORD, "display_name": "Bob\n"},
    )
    assert trimmed.json()["user"]["display_name"] == "Bob"

    User.objects.filter(pk=user.pk).update(display_name="Al\tice")
    unchanged = api_client.patch("/api/v1/auth/me/", {"display_name": "Al\tice", "timezone": "GMT"})
    assert (unchanged.status_code, unchanged.json()["timezone"]) == (200, "GMT")


@pytest.mark.parametrize("timezone", ["US/Eastern", "GMT", "Etc/GMT+5", "Asia/Calcutta", "UTC"])
def test_patch_me_takes_iana_backward_links_too(api_client, user, timezone):
    response = api_client.patch("/api/v1/auth/me/", {"timezone": timezone})
    assert response.status_code == 200
    assert response.json()["timezone"] == timezone


def test_put_on_me_is_not_allowed(api_client):
    response = api_client.put("/api/v1/auth/me/", {"display_name": "x", "timezone": "UTC"})
    assert_problem(response, 405)


def test_me_query_count(api_client, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):  # the user lookup of authentication, nothing else
        assert api_client.get("/api/v1/auth/me/").status_code == 200
    # The user lookup, then in a savepoint (a transaction outside tests): the row read again
    # under its lock, the UPDATE of the changed column (not the row authentication read, written
    # back whole over what committed meanwhile).
    with django_assert_max_num_queries(5):
        assert api_client.patch("/api/v1/auth/me/", {"display_name": "B"}).status_code == 200


# --- DELETE me --------------------------------------------------------------------------------


def test_deleting_the_account_removes_it_and_its_data(api_client, user, other_user, anon_client):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    TaskList.objects.create(owner=user, name="Home")
    TaskList.objects.create(owner=other_user, name="Work")

    response = bearer(pair["access"]).delete("/api/v1/auth/me/", {"password": DEFAULT_PASSWORD})
    assert response.status_code == 204
    assert not User.objects.filter(pk=user.pk).exists()
    assert list(TaskList.objects.values_list("name", flat=True)) == ["Work"]
    assert not OutstandingToken.objects.filter(token=pair["refresh"]).exists()
    assert_problem(api_client.get("/api/v1/auth/me/"), 401)
    reuse = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]})
    assert_problem(reuse, 401)

    again = anon_client.post(
        "/api/v1/auth/register/", {"email": "alice@example.com", "password": NEW_PASSWORD}
    )
    assert again.status_code == 201


@pytest.mark.parametrize("body", [{"password": "wrong-password-1"}, {}])
def test_deleting_the_account_needs_the_right_password(api_client, user, body):
    problem = assert_problem(api_client.delete("/api/v1/auth/me/", body), 400)
    assert list(problem["errors"]) == ["password"]
    assert User.objects.filter(pk=user.pk).exists()


def test_deleting_the_account_with_a_body_that_is_not_json_is_a_415(api_client, user):
    # As the schema documents for this DELETE's body (todo_project.schema.delete_with_body).
    response = api_client.delete("/api/v1/auth/me/", "password", content_type="text/plain")
    assert_problem(response, 415)
    assert User.objects.filter(pk=user.pk).exists()


def test_delete_me_query_count(api_client, user, django_assert_max_num_queries):
    TaskList.objects.create(owner=user, name="Home")
    # The admin history's content type is read once per process: counted here, whichever test
    # ran before in the worker (the bound of 25 held only after another had read it).
    ContentType.objects.clear_cache()
    # auth, then the cascade: Django collects related rows table by table
    with django_assert_max_num_queries(26):
        response = api_client.delete("/api/v1/auth/me/", {"password": DEFAULT_PASSWORD})
    assert response.status_code == 204


# --- password change --------------------------------------------------------------------------


def test_password_change_kills_every_earlier_token(anon_client, user):
    first = sign_in(user.email, DEFAULT_PASSWORD)
    second = sign_in(user.email, DEFAULT_PASSWORD)
    response = bearer(first["access"]).post(
        "/api/v1/auth/password/",
        {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 204
    for pair in (first, second):
        assert_problem(bearer(pair["access"]).get("/api/v1/auth/me/"), 401)
        refresh = anon_client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]})
        assert_problem(refresh, 401)
    fresh = sign_in(user.email, NEW_PASSWORD)
    assert bearer(fresh["access"]).get("/api/v1/auth/me/").status_code == 200
    old = anon_client.post(
        "/api/v1/auth/token/", {"email": user.email, "password": DEFAULT_PASSWORD}
    )
    assert_problem(old, 401)


def test_password_change_checks_the_current_password_and_the_rules(api_client, user):
    wrong = api_client.post(
        "/api/v1/auth/password/",
        {"current_password": "not-my-password", "new_password": NEW_PASSWORD},
    )
    assert assert_problem(wrong, 400)["errors"] == {
        "current_password": ["The password is not correct."]
    }
    weak = api_client.post(
        "/api/v1/auth/password/", {"current_password": DEFAULT_PASSWORD, "new_password": "123"}
    )
    assert list(assert_problem(weak, 400)["errors"]) == ["new_password"]
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)
    assert api_client.get("/api/v1/auth/me/").status_code == 200


def test_password_change_query_count(api_client, django_assert_max_num_queries):
    # The user lookup, then in a savepoint: the row locked (and the token checked again), UPDATE.
    with django_assert_max_num_queries(5):
        response = api_client.post(
            "/api/v1/auth/password/",
            {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        )
    assert response.status_code == 204


# --- password reset ---------------------------------------------------------------------------


def reset_link_params(message) -> dict:
    link = next(word for word in message.body.split() if "/reset-password?" in word)
    parsed = urlparse(link)
    return {key: values[0] for key, values in parse_qs(parsed.query).items()}


def test_password_reset_mails_a_link_to_the_frontend(anon_client, user, settings):
    settings.FRONTEND_URL = "https://app.example.com"
    response = anon_client.post("/api/v1/auth/password/reset/", {"email": "ALICE@example.com"})
    assert response.status_code == 202
    (message,) = sent_mail()
    assert message.to == ["alice@example.com"]
    assert "https://app.example.com/reset-password?uid=" in message.body
    assert set(reset_link_params(message)) == {"uid", "token"}


@pytest.mark.parametrize("email", ["nobody@example.com", "inactive@example.com"])
def test_password_reset_answers_202_without_mail_for_unknown_or_inactive(
    anon_client, make_user, email
):
    make_user(email="inactive@example.com", is_active=False)
    response = anon_client.post("/api/v1/auth/password/reset/", {"email": email})
    assert response.status_code == 202
    assert response.content == b""
    assert sent_mail() == []


def test_password_reset_rejects_a_malformed_email(anon_client):
    assert_problem(anon_client.post("/api/v1/auth/password/reset/", {"email": "x"}), 400)


@pytest.fixture
def smtp_server_at(settings):
    """Points the real SMTP backend at a port on this machine."""

    def point_at(port: int) -> None:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = port
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_TIMEOUT = 3

    return point_at


@pytest.fixture
def mail_log(caplog):
    """The records of accounts/mail.py, with the request id as the project's handler sees it."""
    caplog.handler.addFilter(RequestIdLogFilter())
    caplog.set_level(logging.ERROR, logger="todo.mail")
    return lambda: [record for record in caplog.records if record.name == "todo.mail"]


def test_password_reset_answers_202_when_the_mail_backend_cannot_be_loaded(
    anon_client, user, settings, mail_log
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtpp.EmailBackend"  # a typo
    response = anon_client.post("/api/v1/auth/password/reset/", {"email": user.email})
    assert (response.status_code, response.content) == (202, b"")
    (record,) = mail_log()
    assert record.levelno == logging.ERROR
    assert isinstance(record.exc_info[1], ImportError)


def test_password_reset_answers_202_when_the_mail_server_is_down(
    anon_client, user, smtp_server_at, mail_log
):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp_server_at(port)  # nothing listens there once the probe is closed: connection refused

    response = anon_client.post(
        "/api/v1/auth/password/reset/", {"email": user.email}, HTTP_X_REQUEST_ID="reset-42"
    )
    assert (response.status_code, response.content) == (202, b"")

    wait_until_idle()
    (record,) = mail_log()
    assert record.levelno == logging.ERROR
    assert record.request_id == "reset-42"
    assert record.getMessage().startswith(
        "mail not sent: Reset your Todo password: ConnectionRefusedError: "
    )
    # Nothing of the link (a password in the wrong hands) is in the log.
    logged = JsonFormatter().format(record)
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    assert "reset-password" not in logged and uid not in logged


class RefusingSmtpServer:
    """Greets, takes EHLO and MAIL FROM, refuses every RCPT TO with 550 quoting the address, as
    Postfix does for a mailbox that no longer exists."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as lines:
                conn.sendall(b"220 test ESMTP\r\n")
                for line in lines:
                    verb = line[:4].upper()
                    if verb in (b"EHLO", b"HELO"):
                        conn.sendall(b"250 test\r\n")
                    elif verb == b"RCPT":
                        address = line.split(b":", 1)[1].strip()
                        conn.sendall(b"550 5.1.1 " + address + b": Recipient address rejected\r\n")
                    elif verb == b"QUIT":
                        conn.sendall(b"221 bye\r\n")
                        break
                    else:
                        conn.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self.sock.close()


def test_a_reset_mail_the_server_refuses_is_logged_without_the_address(
    anon_client, user, smtp_server_at, mail_log
):
    # SMTPRecipientsRefused's text is the refused address: the ERROR line's traceback ended
    # with {'alice@example.com': (550, ...)}, kept in log storage out of reach of deletion.
    server = RefusingSmtpServer()
    try:
        smtp_server_at(server.port)
        response = anon_client.post("/api/v1/auth/password/reset/", {"email": user.email})
        assert response.status_code == 202
        wait_until_idle()
    finally:
        server.close()

    (record,) = mail_log()
    line = JsonFormatter().format(record)
    assert user.email not in line
    assert record.exc_info is None  # one line: no traceback
    assert record.getMessage() == (
        "mail not sent: Reset your Todo password: SMTPRecipientsRefused: "
        "550 5.1.1 <<address>>: Recipient address rejected"
    )


def test_password_reset_answers_before_a_stalled_mail_server_times_out(
    anon_client, user, smtp_server_at, mail_log, settings
):
    # The kernel accepts the connection; nobody ever sends the SMTP greeting.
    with socket.create_server(("127.0.0.1", 0)) as server:
        smtp_server_at(server.getsockname()[1])

        started = time.monotonic()
        response = anon_client.post("/api/v1/auth/password/reset/", {"email": user.email})
        answered_in = time.monotonic() - started
        assert response.status_code == 202
        assert answered_in < settings.EMAIL_TIMEOUT / 2

        wait_until_idle()  # the mail thread gives up after EMAIL_TIMEOUT
    (record,) = mail_log()
    assert record.getMessage().startswith(
        "mail not sent: Reset your Todo password: SMTPServerDisconnected: "
    )
    assert "timed out" in record.getMessage()


def test_password_reset_drops_the_mail_when_the_queue_is_full(
    anon_client, user, smtp_server_at, mail_log, settings
):
    # A hung SMTP server: the kernel accepts, nobody ever sends the SMTP greeting.
    with socket.create_server(("127.0.0.1", 0)) as server:
        smtp_server_at(server.getsockname()[1])
        mail.send_in_background(EmailMessage("held", "body", to=["a@example.com"]))
        held, _ = server.accept()  # the mail thread has taken that one and hangs on it
        for number in range(mail.QUEUE_SIZE):
            mail.send_in_background(EmailMessage(f"queued {number}", "b", to=["a@example.com"]))

        started = time.monotonic()
        response = anon_client.post(
            "/api/v1/auth/password/reset/", {"email": user.email}, HTTP_X_REQUEST_ID="full-7"
        )
        answered_in = time.monotonic() - started
        assert response.status_code == 202
        assert answered_in < settings.EMAIL_TIMEOUT / 2

        dropped = [record for record in mail_log() if "already queued" in record.getMessage()]
        held.close()  # the rest now fail at once (connection refused), not after EMAIL_TIMEOUT
    (record,) = dropped
    assert record.request_id == "full-7"
    assert record.getMessage().endswith(": Reset your Todo password")
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    assert uid not in record.getMessage()
    wait_until_idle()


def test_an_exiting_process_logs_its_unsent_mails_without_waiting_for_them():
    script = """
import logging, sys
from django.conf import settings
settings.configure(
    EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
    EMAIL_HOST="127.0.0.1", EMAIL_PORT=int(sys.argv[1]), EMAIL_TIMEOUT=30,
)
logging.basicConfig(format="%(levelname)s %(name)s %(message)s")
from django.core.mail import EmailMessage
from accounts.mail import send_in_background
for number in range(6):
    send_in_background(EmailMessage(f"mail {number}", "body", to=["a@example.com"]))
"""
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts, never answers
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", script, str(server.getsockname()[1])],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=15,  # gunicorn's graceful_timeout is 20 s: well under it
        )
        exited_in = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert exited_in < 8
    assert "ERROR todo.mail 6 queued mails not sent" in done.stderr


def test_password_reset_query_count(anon_client, user, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        response = anon_client.post("/api/v1/auth/password/reset/", {"email": user.email})
    assert response.status_code == 202


def test_password_reset_confirm_sets_the_password_and_kills_old_tokens(anon_client, user):
    old = sign_in(user.email, DEFAULT_PASSWORD)
    anon_client.post("/api/v1/auth/password/reset/", {"email": user.email})
    params = reset_link_params(sent_mail()[0])

    response = anon_client.post(
        "/api/v1/auth/password/reset/confirm/", {**params, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 204
    assert_problem(bearer(old["access"]).get("/api/v1/auth/me/"), 401)
    assert_problem(
        anon_client.post("/api/v1/auth/token/refresh/", {"refresh": old["refresh"]}), 401
    )
    sign_in(user.email, NEW_PASSWORD)

    # The link works once: the token depends on the password it has just changed.
    again = anon_client.post(
        "/api/v1/auth/password/reset/confirm/", {**params, "new_password": "yet-another-pass-77"}
    )
    assert assert_problem(again, 400)["errors"] == {
        "token": ["The reset link is invalid or has expired."]
    }


def test_password_reset_confirm_rejects_a_link_for_another_user(anon_client, user, other_user):
    anon_client.post("/api/v1/auth/password/reset/", {"email": user.email})
    params = reset_link_params(sent_mail()[0])

    params["uid"] = urlsafe_base64_encode(force_bytes(other_user.pk))
    response = anon_client.post(
        "/api/v1/auth/password/reset/confirm/", {**params, "new_password": NEW_PASSWORD}
    )
    assert_problem(response, 400)
    other_user.refresh_from_db()
    assert other_user.check_password(DEFAULT_PASSWORD)


def test_a_reset_link_works_for_password_reset_hours_and_the_mail_says_so(
    anon_client, user, settings, monkeypatch
):
    settings.PASSWORD_RESET_TIMEOUT = 3600  # PASSWORD_RESET_HOURS=1
    mailed_at = reset_link_tokens._now().replace(microsecond=0)
    monkeypatch.setattr(reset_link_tokens, "_now", lambda: mailed_at)
    anon_client.post("/api/v1/auth/password/reset/", {"email": user.email})
    message = sent_mail()[0]
    assert "The link works once, within 1 hour." in message.body
    params = {**reset_link_params(message), "new_password": NEW_PASSWORD}
    later = mailed_at + timedelta(hours=1, seconds=1)
    monkeypatch.setattr(reset_link_tokens, "_now", lambda: later)
    response = anon_client.post("/api/v1/auth/password/reset/confirm/", params)
    assert assert_problem(response, 400)["errors"] == {
        "token": ["The reset link is invalid or has expired."]
    }
    monkeypatch.setattr(reset_link_tokens, "_now", lambda: later - timedelta(seconds=2))
    assert anon_client.post("/api/v1/auth/password/reset/confirm/", params).status_code == 204


@pytest.mark.parametrize("reactivated", [False, True])
def test_a_reset_link_mailed_before_a_deactivation_is_refused(anon_client, user, reactivated):
    """Refused while the account is inactive, and after support reactivates it: the link's
    token is bound to the token generation a deactivation moves (accounts.tokens.
    ResetLinkTokens; Django's alone bound the password, last sign-in and email, so the link
    worked again once the account was active; review 29c)."""
    anon_client.post("/api/v1/auth/password/reset/", {"email": user.email})
    params = reset_link_params(sent_mail()[0])
    account_services.user_deactivate(user=user)
    if reactivated:  # as the admin's user form saves it
        User.objects.filter(pk=user.pk).update(is_active=True)
    response = anon_client.post(
        "/api/v1/auth/password/reset/confirm/", {**params, "new_password": NEW_PASSWORD}
    )
    assert assert_problem(response, 400)["errors"] == {
        "token": ["The reset link is invalid or has expired."]
    }
    user.refresh_from_db()
    assert not user.check_password(NEW_PASSWORD)


def test_sign_out_everywhere_ends_the_reset_links_mailed_before(anon_client, user):
    """A leaked link is one more way in: ending every token ends it too."""
    anon_client.post("/api/v1/auth/password/reset/", {"email": user.email})
    params = reset_link_params(sent_mail()[0])
    user.revoke_tokens()
    user.save(update_fields=["token_generation"])
    response = anon_client.post(
        "/api/v1/auth/password/reset/confirm/", {**params, "new_password": NEW_PASSWORD}
    )
    assert_problem(response, 400)


@pytest.mark.parametrize(
    "override",
    [{"uid": "!!!"}, {"uid": "bm90LWEtdXVpZA"}, {"token": "abc-def"}, {"new_password": "123"}],
)
def test_password_reset_confirm_rejects_bad_input(anon_client, user, override):
    anon_client.post("/api/v1/auth/password/reset/", {"email": user.email})
    params = {**reset_link_params(sent_mail()[0]), "new_password": NEW_PASSWORD, **override}
    assert_problem(anon_client.post("/api/v1/auth/password/reset/confirm/", params), 400)
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_password_reset_confirm_query_count(anon_client, user, django_assert_max_num_queries):
    anon_client.post("/api/v1/auth/password/reset/", {"email": user.email})
    params = {**reset_link_params(sent_mail()[0]), "new_password": NEW_PASSWORD}
    with django_assert_max_num_queries(4):  # user locked, UPDATE (in a savepoint)
        response = anon_client.post("/api/v1/auth/password/reset/confirm/", params)
    assert response.status_code == 204


def test_logout_denies_until_expiry_and_clears_expired_denials(anon_client, user):
    stale = DeniedAccessToken.objects.create(
        jti="long-gone", expires_at=now() - timedelta(seconds=1)
    )
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    access = AccessToken(pair["access"])
    client = bearer(pair["access"])
    assert client.post("/api/v1/auth/logout/", {"refresh": pair["refresh"]}).status_code == 204

    denied = DeniedAccessToken.objects.get(jti=access["jti"])
    # And the leeway simplejwt accepts the token for past its exp (replicas' clock skew).
    assert denied.expires_at == datetime_from_epoch(access["exp"]) + api_settings.LEEWAY
    assert not DeniedAccessToken.objects.filter(jti=stale.jti).exists()


def test_a_denied_token_is_refused_with_one_query(user, django_assert_num_queries):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    access = AccessToken(pair["access"])
    client = bearer(pair["access"])
    with django_assert_num_queries(1):  # the user and the denylist in one statement
        assert client.get("/api/v1/auth/me/").status_code == 200
    DeniedAccessToken.objects.create(jti=access["jti"], expires_at=now() + timedelta(minutes=5))
    with django_assert_num_queries(1):
        assert_problem(client.get("/api/v1/auth/me/"), 401)
    # Another token of the same user is not affected.
    assert (
        bearer(sign_in(user.email, DEFAULT_PASSWORD)["access"]).get("/api/v1/auth/me/").status_code
        == 200
    )


def test_a_display_names_length_is_counted_trimmed_and_the_schema_says_so(api_client, user):
    # The schema's maxLength was of the value sent, which the server trimmed first: " " + 100
    # characters was taken where a client generated from the schema refused it.
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    for component in ("PatchedUserRequest", "RegisterRequest"):
        display_name = schema[component]["properties"]["display_name"]
        assert "maxLength" not in display_name
        assert (
            "At most 100 characters, surrounding whitespace not counted"
            in (display_name["description"])
        )
        assert schema[component]["properties"]["timezone"]["maxLength"] == 64
    taken = api_client.patch("/api/v1/auth/me/", {"display_name": " " + "x" * 100 + " "})
    assert (taken.status_code, taken.json()["display_name"]) == (200, "x" * 100)
    assert_problem(api_client.patch("/api/v1/auth/me/", {"display_name": "x" * 101}), 400)
    # A time zone is sent as its IANA name, which has no space: padding is refused, not trimmed.
    assert_problem(api_client.patch("/api/v1/auth/me/", {"timezone": " " * 70 + "UTC"}), 400)
    assert_problem(api_client.patch("/api/v1/auth/me/", {"timezone": " UTC"}), 400)


@pytest.mark.parametrize(
    "error, logged",
    [
        (
            smtplib.SMTPSenderRefused(
                553, b"5.7.1 <no-reply@todo.example>: Sender rejected", "x@y.z"
            ),
            "SMTPSenderRefused: 553 5.7.1 <<address>>: Sender rejected",
        ),
        (
            smtplib.SMTPDataError(554, "5.7.1 message for alice@example.com refused"),
            "SMTPDataError: 554 5.7.1 message for <address> refused",
        ),
    ],
)
def test_an_smtp_reply_is_logged_with_its_code_and_without_addresses(error, logged):
    assert mail.mail_error(error) == logged


def test_a_registration_that_loses_the_race_for_its_email_is_a_400(anon_client, monkeypatch):
    real = account_services.user_register

    def racing(**data):
        User.objects.create_user(email=data["email"].upper(), password="x-other-password-1")
        return real(**data)

    monkeypatch.setattr(account_services, "user_register", racing)
    response = anon_client.post(
        "/api/v1/auth/register/",
        {"email": "race@example.com", "password": "correct-horse-battery-staple"},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == {
        "email": ["An account with this email address already exists."]
    }
