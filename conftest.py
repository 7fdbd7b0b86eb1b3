"""Fixtures shared by every app's tests."""

import socket
import time
import types
import uuid
from datetime import datetime

import django_ratelimit.core
import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.management.color import no_style
from django.db import connection, connections
from django.test import TransactionTestCase
from django.utils import timezone
from rest_framework.test import APIClient
from whitenoise.middleware import WhiteNoiseMiddleware

from accounts.mail import wait_until_idle
from accounts.models import User
from accounts.tokens import RefreshToken
from todo_project import ratelimit
from todo_project.tests.helpers import autovacuum_off

DEFAULT_PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database, no autovacuum on its tables (helpers.autovacuum_off)."""
    with django_db_blocker.unblock():
        autovacuum_off(connection)
        _REGISTRY_SIZE[connection.alias] = _registry_size(connection)


# After each transaction=True test Django's flush truncates every table, then creates the
# content types and permissions again (post_migrate): 36 of its 88 ms, ~500 times a run. Those
# two tables are left as they are instead, unless a test changed how many rows they hold (a
# migration test going back past a model); the rest is truncated as flush does.
_REGISTRY = ("django_content_type", "auth_permission")
_REGISTRY_SIZE: dict[str, tuple] = {}


def _registry_size(connection) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(f'(SELECT count(*) FROM {t})' for t in _REGISTRY)}")
        return cursor.fetchone()


def _flush_keeping_the_registry(self):
    names = self._databases_names(include_mirrors=False)
    if (
        self.available_apps is not None
        or self.serialized_rollback
        or any(_registry_size(connections[name]) != _REGISTRY_SIZE.get(name) for name in names)
    ):
        return _django_flush(self)
    for name in names:
        db = connections[name]
        tables = db.introspection.django_table_names(only_existing=True, include_views=False)
        db.ops.execute_sql_flush(
            db.ops.sql_flush(no_style(), [table for table in tables if table not in _REGISTRY])
        )


_django_flush = TransactionTestCase._fixture_teardown
TransactionTestCase._fixture_teardown = _flush_keeping_the_registry


# What WhiteNoise's list of static files depends on, besides its own WHITENOISE_ settings.
STATIC_SETTINGS = (
    "DEBUG",
    "FORCE_SCRIPT_NAME",
    "INSTALLED_APPS",
    "STATICFILES_DIRS",
    "STATICFILES_FINDERS",
    "STATIC_ROOT",
    "STATIC_URL",
    "STORAGES",  # the storage's URLs tell which files are immutable (their max-age)
)


@pytest.fixture(scope="session", autouse=True)
def _static_files_listed_once_per_worker():
    """Each new test client loads Django's middleware, and WhiteNoise's lists and stats every
    static file the finders know on the way (169 files: 7.7 ms, 25 ms traced by coverage; a
    test client per request made the stateful accounts test 16 -> 32 s). Listed once per
    worker and configuration here, as a server process does once; what a request is answered
    with is WhiteNoise's own."""
    listed = {}
    list_files = WhiteNoiseMiddleware.add_files_from_finders

    def add_files_from_finders(self):
        if self.files:  # STATIC_ROOT or WHITENOISE_ROOT's files first: not what is kept here
            return list_files(self)
        own = [name for name in dir(django_settings) if name.startswith("WHITENOISE_")]
        configuration = repr(
            [(name, getattr(django_settings, name, None)) for name in (*STATIC_SETTINGS, *own)]
        )
        if configuration not in listed:
            list_files(self)
            listed[configuration] = self.files
        self.files = dict(listed[configuration])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WhiteNoiseMiddleware, "add_files_from_finders", add_files_from_finders)
        yield


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters must not leak from one test into the next."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _mail_thread_idle_after_each_test():
    """A mail still queued on the mail thread (accounts/mail.py) must not land in the next
    test's outbox."""
    yield
    wait_until_idle()


@pytest.fixture(autouse=True)
def _rate_limit_clock_stands_still(monkeypatch):
    """Rate-limit windows end at a different second for each key: a test that counts requests
    across the end of one (a slow moment on a busy machine) would see its count start over.
    Within a test, the rate limits' clock stands still."""
    instant = time.time()
    clock = types.SimpleNamespace(time=lambda: instant)
    monkeypatch.setattr(django_ratelimit.core, "time", clock)
    monkeypatch.setattr(ratelimit, "time", clock)


@pytest.fixture(autouse=True)
def _rate_limit_cache_not_in_an_outage(monkeypatch):
    """A test with Redis down must not leave the next ones uncounted (ratelimit.CacheOutage)."""
    monkeypatch.setattr(ratelimit, "outage", ratelimit.CacheOutage())


@pytest.fixture
def frozen_now(monkeypatch):
    """`frozen_now(moment)`: Django's clock (so "today" in every zone: recurrence.today_in, the
    `overdue` filter) stands at `moment`. A test whose dates are fixed must fix today too, or
    it fails once the real date passes them: CI runs on whatever day it is (review 34b)."""

    def freeze(moment: datetime) -> None:
        monkeypatch.setattr(timezone, "now", lambda: moment)

    return freeze


@pytest.fixture
def dead_redis(settings):
    """The shared cache pointed at a port nothing listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "todo_project.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


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


# --- Admin ------------------------------------------------------------------------------------


@pytest.fixture
def support_user(make_user) -> User:
    """Staff in the Support group (accounts' migration 0003), not a superuser."""
    from django.contrib.auth.models import Group

    user = make_user(email="support@example.com", display_name="Sam Support", is_staff=True)
    user.groups.add(Group.objects.get(name="Support"))
    return user


@pytest.fixture
def support_client(client, support_user):
    """A Django test client signed in to the admin as `support_user`."""
    client.force_login(support_user)
    return client


@pytest.fixture
def granted(support_user) -> User:
    """A support agent a superuser also gave add and delete on users, tasks, lists and tags
    (the Support group has neither)."""
    from django.contrib.auth.models import Permission

    models = ("user", "task", "tasklist", "tag")
    codenames = [f"{do}_{model}" for do in ("add", "delete") for model in models]
    support_user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return support_user


@pytest.fixture
def granted_client(client, granted):
    """A Django test client signed in to the admin as `granted`."""
    client.force_login(granted)
    return client


@pytest.fixture
def staff_accounts(make_user) -> dict[str, User]:
    """Accounts whose data support may only view (todo_project.admin_site.may_manage)."""
    return {
        "a superuser": make_user(email="root@example.com", is_staff=True, is_superuser=True),
        "a colleague": make_user(email="colleague@example.com", is_staff=True),
    }
