"""manage.py create_support_user EMAIL."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

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
