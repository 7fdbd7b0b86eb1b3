"""manage.py create_support_user EMAIL."""

import os
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import User


def create_support_user(email: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_support_user", email, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_creates_a_staff_user_in_support_and_prints_only_the_generated_password(client):
    out, err = create_support_user(" Sam@Example.COM ")

    password = out.strip()
    user = User.objects.get(email="sam@example.com")
    assert out == f"{password}\n"  # nothing else on stdout: PASSWORD=$(manage.py ...) works
    assert len(password) >= 24
    assert err == "Created support user sam@example.com. Its password, shown only this once:\n"
    assert (user.is_staff, user.is_superuser, user.is_active) == (True, False, True)
    assert [group.name for group in user.groups.all()] == ["Support"]
    assert user.check_password(password)
    assert client.login(email="sam@example.com", password=password)
    assert client.get("/admin/accounts/user/").status_code == 200


@pytest.mark.django_db
def test_two_support_users_get_different_passwords():
    first, _ = create_support_user("one@example.com")
    second, _ = create_support_user("two@example.com")

    assert first != second


@pytest.mark.django_db
def test_an_existing_email_is_refused_and_nothing_changes(user):
    with pytest.raises(CommandError, match="alice@example.com already exists; nothing changed"):
        create_support_user("ALICE@example.com")

    user.refresh_from_db()
    assert (user.is_staff, list(user.groups.all())) == (False, [])


@pytest.mark.django_db
def test_an_invalid_email_is_refused():
    with pytest.raises(CommandError, match="'not-an-email' is not a valid email address."):
        create_support_user("not-an-email")

    assert not User.objects.exists()


@pytest.mark.django_db
def test_an_email_longer_than_the_column_is_refused():
    # Valid for validate_email (up to 320 characters), too long for the users table.
    email = "a" * 64 + "@" + ".".join(["b" * 60] * 4) + ".example"

    with pytest.raises(CommandError, match=f"has {len(email)} characters; at most 254"):
        create_support_user(email)

    assert not User.objects.exists()


@pytest.mark.django_db
def test_without_the_support_group_it_asks_to_migrate():
    from django.contrib.auth.models import Group

    Group.objects.filter(name="Support").delete()

    with pytest.raises(CommandError, match="run `manage.py migrate`"):
        create_support_user("sam@example.com")

    assert not User.objects.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["create_support_user", "agent@example.com"],
        ["purge_deleted_tasks", "-v", "0"],  # the cron jobs: cron mailed the traceback
        ["purge_idempotency_keys", "-v", "0"],
        # Review 44d: README's cron job clearsessions, Django's commands and the seeds were a
        # ProgrammingError traceback ("relation ... does not exist").
        ["clearsessions"],
        ["flushexpiredtokens"],
        ["createsuperuser", "--noinput", "--email", "root@example.com"],
        ["changepassword", "agent@example.com"],
        ["seed_demo", "--with-admin"],
        ["seed_bench", "--not-production", "--users", "1", "--tasks-per-user", "1"],
    ],
)
def test_a_database_never_migrated_is_a_clear_error_not_a_traceback(command):
    # It was `ProgrammingError: relation "accounts_user" does not exist`, 50 lines of traceback.
    name = f"never_migrated_{uuid.uuid4().hex[:8]}"
    server = {**connection.get_connection_params(), "dbname": "postgres", "autocommit": True}
    server.pop("cursor_factory", None)
    server.pop("context", None)
    with psycopg.connect(**server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}").geturl()
        done = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "DATABASE_URL": url, "DEBUG": "1"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        with psycopg.connect(**server) as admin:
            admin.execute(f'DROP DATABASE "{name}"')

    assert done.returncode == 1
    assert done.stderr.strip() == (
        "CommandError: The database has migrations not applied yet: run `make migrate` "
        "(`manage.py migrate`) first."
    )
    # Django's own commands warn of the pending migrations on stdout first (its system check).
    assert done.stdout == "" or "unapplied migration(s)" in done.stdout


@pytest.mark.django_db
def test_createsuperuser_refuses_an_email_too_long_once_its_domain_is_mapped(monkeypatch):
    # 253 characters; IDNA maps each "ﬀ" to "ff": 493. Django's command counts the address as
    # typed, so the INSERT failed, a DataError traceback (review 28).
    email = "a@" + ".".join(["\ufb00" * 30] * 8) + ".com"
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-Long-passw0rd!")

    with pytest.raises(CommandError, match="at most 254 characters once its domain is mapped"):
        call_command("createsuperuser", email=email, interactive=False, stdout=StringIO())

    assert not User.objects.exists()
