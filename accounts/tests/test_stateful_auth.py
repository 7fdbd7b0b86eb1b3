"""A model-based (stateful) test of accounts and tokens: Hypothesis drives two people, each with
up to three devices (sessions), through register, sign-in, refresh (current token, an old one
within the reuse grace and after it), logout (own, another device's, another user's refresh),
GET/PATCH `me/`, password change, account deletion, a support agent's deactivation
(accounts.services.user_deactivate) and the passing of time, against the real API (in-process,
real PostgreSQL, each request committed: `transaction=True`, as tasks/tests/test_stateful_api.py).
A plain Python model says which access and refresh token of which device must still work;
after every step each access token the model knows is tried on GET `me/` (a dead one must be a
401 with `WWW-Authenticate: Bearer realm="api", error="invalid_token"`), and refresh tokens are
only used when a rule does (a refresh changes state), their liveness read from the model.

The clock: one fake clock (CLOCK, whole seconds; accounts/tests/conftest.py) read by everything that
tells time in the token path: simplejwt (`rest_framework_simplejwt.tokens.aware_utcnow`: iat/exp of minted tokens and
their check), our access-token expiry check (`accounts.authentication.aware_utcnow`, imported
by name), Django's `timezone.now` (BlacklistedToken.blacklisted_at, the reuse grace in
accounts.services), `accounts.tokens.now` (imported by name: the family and denylist expiries)
and PyJWT's own iat/exp check (`jwt.api_jwt.datetime`), so the clock can run hours ahead.

In the suite: 12 examples of 30 steps, derandomized. To hunt: STATEFUL_EXAMPLES=100
STATEFUL_STEPS=50 (random examples; --hypothesis-seed=N to repeat one). Review 36i wrote it.
"""

import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from rest_framework.test import APIClient

from accounts import services
from accounts import tokens as our_tokens
from accounts.models import User
from accounts.tests.conftest import CLOCK
from accounts.tests.helpers import assert_problem, bearer, refresh, sign_in
from conftest import DEFAULT_PASSWORD
from todo_project.tests.helpers import state_machine_settings

PROBLEM = "application/problem+json"
CHALLENGE = 'Bearer realm="api", error="invalid_token"'
ME = "/api/v1/auth/me/"
ACCESS_LIFE = 15 * 60
REFRESH_LIFE = 14 * 24 * 3600
LEEWAY = 60
GRACE = 30
PASSWORDS = ["first-Secret-passphrase", "second-Secret-passphrase", "third-Secret-passphrase"]
ZONES = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC"]
# Steps of the clock: none of them a sum that lands within a second of a boundary matters, as
# the model does not judge a token within MARGIN seconds of its boundary (unsure).
WAITS = [7, 7, 7, 41, 41, 95, 95, 301, 1003, 15 * 24 * 3600 + 13]
MARGIN = 2
STATS: dict = {}


def now_s() -> int:
    return int(CLOCK[0].timestamp())


class Token:
    def __init__(self, raw: str, user: "Person", family: str, kind: str) -> None:
        self.raw, self.user, self.family, self.kind = raw, user, family, kind
        self.iat = now_s()
        self.gen = user.gen
        self.uid = user.id  # the account: one deleted and registered again is another
        self.denied = False  # access: logged out with it
        self.rotated_at: int | None = None  # refresh: blacklisted (rotation or logout)

    def life(self) -> int:
        return ACCESS_LIFE if self.kind == "access" else REFRESH_LIFE

    def lapsed(self) -> bool | None:
        """Whether it expired (plus the leeway); None when too close to tell."""
        end = self.iat + self.life() + LEEWAY
        if abs(now_s() - end) <= MARGIN:
            return None
        return now_s() >= end

    def alive(self, families: dict) -> bool | None:
        u = self.user
        if self.uid != u.id or not u.exists or not u.active or self.gen != u.gen:
            return False
        if families[self.family]:
            return False
        if self.denied or self.rotated_at is not None:
            return False
        return None if self.lapsed() is None else not self.lapsed()


class Person:
    def __init__(self, n: int) -> None:
        self.n = n
        self.email = f"p{n}-{uuid.uuid4().hex[:10]}@example.com"
        self.password = PASSWORDS[0]
        self.exists = False
        self.active = True
        self.gen = 0
        self.id: str | None = None
        self.timezone = "UTC"
        self.devices: list[dict] = []  # {access, refresh, old: [refresh tokens rotated]}


class AuthAPI(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        CLOCK[0] = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 1000)
        self.people = [Person(0), Person(1)]
        self.families: dict[str, bool] = {}  # family -> ended
        self.tokens: list[Token] = []

    # --- plumbing -----------------------------------------------------------------------------

    def call(self, method: str, url: str, data=None, access: str | None = None):
        client = APIClient()
        if access:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
        response = getattr(client, method)(url, data, format="json")
        assert response.status_code < 500, (method, url, response.status_code, response.content)
        if 400 <= response.status_code < 500:
            assert response["Content-Type"] == PROBLEM, (url, response["Content-Type"])
            body = response.json()
            assert body["status"] == response.status_code
        return response

    def expect(self, response, code: int, what: str) -> None:
        key = (what.split(":")[0], code, response.json().get("code") if code == 401 else None)
        STATS[key] = STATS.get(key, 0) + 1
        assert response.status_code == code, (what, code, response.status_code, response.content)

    def new_device(self, p: Person, pair: dict) -> None:
        family = our_tokens.RefreshToken(pair["refresh"], verify=False)["fam"]
        self.families.setdefault(family, False)
        access = Token(pair["access"], p, family, "access")
        refresh = Token(pair["refresh"], p, family, "refresh")
        self.tokens += [access, refresh]
        p.devices.append({"access": access, "refresh": refresh, "old": []})

    def tick(self, seconds: int = 1) -> None:
        CLOCK[0] += timedelta(seconds=seconds)

    def signed_in(self, p: Person) -> list[int]:
        return [i for i, d in enumerate(p.devices) if d["access"].alive(self.families)]

    # --- rules --------------------------------------------------------------------------------

    @rule(data=st.data(), taken=st.integers(0, 3), case=st.sampled_from(["lower", "upper"]))
    def register(self, data, taken, case):
        """Mostly a new account; one time in four (or when both exist) an email taken."""
        self.tick()
        free = [p for p in self.people if not p.exists]
        p = data.draw(st.sampled_from(free if free and taken else self.people))
        email = p.email if case == "lower" else p.email.upper()
        r = self.call(
            "post",
            "/api/v1/auth/register/",
            {"email": email, "password": p.password, "timezone": p.timezone},
        )
        if p.exists:
            self.expect(r, 400, "register: email taken")
            assert "email" in r.json()["errors"]
            return
        self.expect(r, 201, "register")
        body = r.json()
        assert body["user"]["email"] == p.email
        p.exists, p.active, p.gen, p.id = True, True, 0, body["user"]["id"]
        p.devices = []
        self.new_device(p, body)

    @precondition(lambda self: any(p.exists for p in self.people))
    @rule(who=st.integers(0, 1), right=st.booleans(), upper=st.booleans())
    def sign_in(self, who, right, upper):
        self.tick()
        p = self.people[who]
        password = p.password if right else p.password + "x"
        email = p.email.upper() if upper else p.email
        r = self.call("post", "/api/v1/auth/token/", {"email": email, "password": password})
        if not (p.exists and p.active and right):
            self.expect(r, 401, "sign-in refused")
            return
        self.expect(r, 200, "sign-in")
        if len(p.devices) >= 3:  # the device signs in again: the oldest session is dropped
            p.devices.pop(0)
        self.new_device(p, r.json())

    @precondition(lambda self: any(p.devices for p in self.people))
    @rule(data=st.data(), live=st.integers(0, 3))
    def refresh(self, data, live):
        """With the device's current refresh token: mostly one the model holds alive."""
        self.tick()
        devices = [(p, d) for p in self.people for d in p.devices]
        alive = [(p, d) for p, d in devices if d["refresh"].alive(self.families)]
        p, device = data.draw(st.sampled_from(alive if alive and live else devices))
        token = device["refresh"]
        expected = token.alive(self.families)
        r = self.call("post", "/api/v1/auth/token/refresh/", {"refresh": token.raw})
        if expected is None:
            if r.status_code != 200:
                return
            expected = True
        if not expected:
            self.expect(r, 401, "refresh: dead")
            assert r.json().get("code") is None, r.json()
            assert r["Cache-Control"] == "no-store"
            return
        self.expect(r, 200, "refresh")
        assert r["Cache-Control"] == "no-store"
        pair = r.json()
        token.rotated_at = now_s()
        device["old"].append(token)
        family = token.family
        assert our_tokens.RefreshToken(pair["refresh"], verify=False)["fam"] == family
        device["access"] = Token(pair["access"], p, family, "access")
        device["refresh"] = Token(pair["refresh"], p, family, "refresh")
        self.tokens += [device["access"], device["refresh"]]

    @precondition(lambda self: any(d["old"] for p in self.people for d in p.devices))
    @rule(data=st.data())
    def reuse_old_refresh(self, data):
        """A refresh token rotated already, used again: within the grace (30 s + the 60 s
        leeway) a 401 with code refresh_token_just_rotated and nothing ends; after it, a 401
        and the whole session ends."""
        self.tick()
        p = data.draw(st.sampled_from([p for p in self.people if any(d["old"] for d in p.devices)]))
        device = data.draw(st.sampled_from([d for d in p.devices if d["old"]]))
        old = data.draw(st.sampled_from(device["old"]))
        r = self.call("post", "/api/v1/auth/token/refresh/", {"refresh": old.raw})
        self.expect(r, 401, "reuse of a rotated refresh token")
        code = r.json().get("code")
        since = now_s() - old.rotated_at
        lapsed = old.lapsed()
        u = p
        session_on = (
            old.uid == u.id
            and u.exists
            and u.active
            and old.gen == u.gen
            and not self.families[old.family]
        )
        if not session_on or lapsed:
            assert code is None, ("dead session or expired token: no code", r.json())
            return
        if lapsed is None or abs(since - (GRACE + LEEWAY)) <= MARGIN:
            self.families[old.family] = code is None or self.families[old.family]
            return
        if since < GRACE + LEEWAY:
            assert code == "refresh_token_just_rotated", (since, r.json())
        else:
            assert code is None, (since, r.json())
            self.families[old.family] = True

    @precondition(lambda self: any(self.signed_in(p) for p in self.people))
    @rule(data=st.data(), whose=st.sampled_from(["own", "own-old", "other-device", "other-user"]))
    def logout(self, data, whose):
        self.tick()
        p = data.draw(st.sampled_from([p for p in self.people if self.signed_in(p)]))
        i = data.draw(st.sampled_from(self.signed_in(p)))
        device = p.devices[i]
        other = self.people[1 - p.n]
        if whose == "own":
            given = device["refresh"]
        elif whose == "own-old" and device["old"]:
            given = data.draw(st.sampled_from(device["old"]))
        elif whose == "other-device" and len(p.devices) > 1:
            given = data.draw(st.sampled_from([d for d in p.devices if d is not device]))["refresh"]
        elif whose == "other-user" and other.devices:
            given = data.draw(st.sampled_from(other.devices))["refresh"]
        else:
            given = device["refresh"]
        r = self.call("post", "/api/v1/auth/logout/", {"refresh": given.raw}, device["access"].raw)
        if given.user is not p:
            self.expect(r, 400, "logout with another user's refresh")
            assert "refresh" in r.json()["errors"]
            return
        self.expect(r, 204, "logout")
        self.families[given.family] = True
        if given.rotated_at is None:
            given.rotated_at = now_s()
        device["access"].denied = True

    @precondition(lambda self: any(self.signed_in(p) for p in self.people))
    @rule(data=st.data(), zone=st.sampled_from([*ZONES, "Mars/Olympus", "localtime"]))
    def patch_me(self, data, zone):
        self.tick()
        p = data.draw(st.sampled_from([p for p in self.people if self.signed_in(p)]))
        device = p.devices[data.draw(st.sampled_from(self.signed_in(p)))]
        r = self.call("patch", ME, {"timezone": zone}, device["access"].raw)
        if zone not in ZONES:
            self.expect(r, 400, "patch: unknown zone")
            assert "timezone" in r.json()["errors"]
            return
        self.expect(r, 200, "patch")
        p.timezone = zone
        assert r.json()["timezone"] == zone

    @precondition(lambda self: any(self.signed_in(p) for p in self.people))
    @rule(data=st.data(), right=st.booleans())
    def change_password(self, data, right):
        self.tick()
        p = data.draw(st.sampled_from([p for p in self.people if self.signed_in(p)]))
        device = p.devices[data.draw(st.sampled_from(self.signed_in(p)))]
        new = PASSWORDS[(PASSWORDS.index(p.password) + 1) % len(PASSWORDS)]
        current = p.password if right else p.password + "x"
        r = self.call(
            "post",
            "/api/v1/auth/password/",
            {"current_password": current, "new_password": new},
            device["access"].raw,
        )
        if not right:
            self.expect(r, 400, "password change: wrong current")
            return
        self.expect(r, 204, "password change")
        p.password = new
        p.gen += 1

    @precondition(lambda self: any(self.signed_in(p) for p in self.people))
    @rule(data=st.data(), right=st.booleans())
    def delete_me(self, data, right):
        self.tick()
        p = data.draw(st.sampled_from([p for p in self.people if self.signed_in(p)]))
        device = p.devices[data.draw(st.sampled_from(self.signed_in(p)))]
        password = p.password if right else p.password + "x"
        r = self.call("delete", ME, {"password": password}, device["access"].raw)
        if not right:
            self.expect(r, 400, "delete: wrong password")
            return
        self.expect(r, 204, "delete")
        assert not User.objects.filter(pk=p.id).exists()
        p.exists = False
        p.password = PASSWORDS[0]
        p.timezone = "UTC"

    @precondition(lambda self: any(p.exists and p.active for p in self.people))
    @rule(who=st.integers(0, 1))
    def support_deactivates(self, who):
        self.tick()
        p = self.people[who]
        if not p.exists:
            return
        services.user_deactivate(user=User.objects.get(pk=p.id))
        p.active = False
        p.gen += 1

    @precondition(lambda self: any(p.exists and not p.active for p in self.people))
    @rule(who=st.integers(0, 1))
    def support_reactivates(self, who):
        """The admin's form sets is_active again: the old tokens stay dead (their generation)."""
        self.tick()
        p = self.people[who]
        if p.exists and not p.active:
            User.objects.filter(pk=p.id).update(is_active=True)
            p.active = True

    @rule(seconds=st.sampled_from(WAITS))
    def wait(self, seconds):
        self.tick(seconds)

    # --- the check ----------------------------------------------------------------------------

    @invariant()
    def every_access_token_is_as_the_model_says(self):
        for p in self.people:
            for d in p.devices:
                token = d["access"]
                expected = token.alive(self.families)
                r = self.call("get", ME, access=token.raw)
                if expected is None:
                    continue
                if expected:
                    self.expect(r, 200, f"access of person {p.n}")
                    assert r.json()["id"] == p.id and r.json()["timezone"] == p.timezone
                    assert r.json()["email"] == p.email
                else:
                    self.expect(r, 401, f"dead access of person {p.n}")
                    assert r["WWW-Authenticate"] == CHALLENGE, r["WWW-Authenticate"]
        # Every access token ever issued (old ones of rotated devices included) as the model says.
        for token in self.tokens:
            if token.kind != "access":
                continue
            expected = token.alive(self.families)
            if expected is False:
                r = self.call("get", ME, access=token.raw)
                self.expect(r, 401, "an old access token")


AuthAPI.TestCase.settings = state_machine_settings(steps=30)


@pytest.mark.django_db(transaction=True)
def test_accounts_and_tokens_match_a_model_of_two_people(settings, fake_clock):
    for name in ("USER", "ANON", "LOGIN", "REGISTER"):
        setattr(settings, f"RATE_LIMIT_{name}", "100000/m")
    run_state_machine_as_test(AuthAPI, settings=AuthAPI.TestCase.settings)


LOGOUT = "/api/v1/auth/logout/"


# Found by the machine (review 36i): "use the pair that request got" sent a client to a pair
# that a password change or a deactivation had killed.


def test_a_reuse_within_the_grace_after_a_password_change_is_not_just_rotated(user):
    first = sign_in(user.email, DEFAULT_PASSWORD)
    second = refresh(first["refresh"]).json()  # tab A rotates
    changed = bearer(second["access"]).post(
        "/api/v1/auth/password/",
        {"current_password": DEFAULT_PASSWORD, "new_password": "another-Secret-passphrase"},
        format="json",
    )
    assert changed.status_code == 204

    reused = refresh(first["refresh"])  # tab B, a second later

    body = assert_problem(reused, 401)
    assert refresh(second["refresh"]).status_code == 401  # "the pair that request got" is dead
    assert body.get("code") is None, body  # so the answer must not send the client to it


def test_a_reuse_within_the_grace_after_a_deactivation_is_not_just_rotated(user):
    first = sign_in(user.email, DEFAULT_PASSWORD)
    assert refresh(first["refresh"]).status_code == 200
    services.user_deactivate(user=user)

    body = assert_problem(refresh(first["refresh"]), 401)
    assert body.get("code") is None, body


# Found reading what the machine modelled (review 36i): an ended session forgotten while its
# newest refresh token was still accepted (the leeway past its exp) came back to life.


def test_a_session_ended_by_logout_with_an_older_token_stays_ended_to_its_last_token(
    user, make_user, clock
):
    first = sign_in(user.email, DEFAULT_PASSWORD)
    clock(1)
    newest = refresh(first["refresh"]).json()  # the app rotated; the newest token is alive
    clock(10)
    # The user signs out with the older token (a second tab's copy): the whole session ends.
    ended = bearer(newest["access"]).post(LOGOUT, {"refresh": first["refresh"]}, format="json")
    assert ended.status_code == 204
    assert refresh(newest["refresh"]).status_code == 401

    # 14 days later, within the 60 s the newest token is still accepted past its exp, someone
    # else signs out (each revocation clears the ended sessions past their expiry).
    clock(14 * 24 * 3600 + 30 - 10)
    other = make_user()
    pair = sign_in(other.email, DEFAULT_PASSWORD)
    assert (
        bearer(pair["access"]).post(LOGOUT, {"refresh": pair["refresh"]}, format="json").status_code
        == 204
    )

    assert_problem(refresh(newest["refresh"]), 401)  # the ended session stays ended


def teardown_module():
    if os.environ.get("STATEFUL_STATS"):
        for key, count in sorted(STATS.items(), key=str):
            print(key, count)
