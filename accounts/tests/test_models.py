import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from accounts.models import User, validate_timezone

pytestmark = pytest.mark.django_db


def test_email_is_stored_lower_cased_and_unique_case_insensitively():
    user = User.objects.create_user(email="  Alice@Example.COM ", password="x" * 12)
    assert user.email == "alice@example.com"
    with pytest.raises(IntegrityError):
        User.objects.create_user(email="ALICE@example.com", password="x" * 12)


def test_the_database_refuses_an_upper_case_email():
    with pytest.raises(IntegrityError):
        User.objects.bulk_create([User(email="Bob@Example.com")])


def test_natural_key_lookup_ignores_case():
    user = User.objects.create_user(email="carol@example.com", password="x" * 12)
    assert User.objects.get_by_natural_key("Carol@Example.com") == user


def test_ids_are_uuids_and_defaults_are_set():
    user = User.objects.create_user(email="dave@example.com")
    assert len(str(user.id)) == 36
    assert (user.timezone, user.display_name, user.is_active) == ("UTC", "", True)
    assert not user.has_usable_password()


def test_an_email_is_required():
    with pytest.raises(ValueError):
        User.objects.create_user(email="")


def test_superuser_is_staff_and_superuser():
    admin = User.objects.create_superuser(email="root@example.com", password="x" * 12)
    assert admin.is_staff and admin.is_superuser
    assert str(admin) == "root@example.com"


def test_clean_normalizes_the_email():
    user = User(email="Eve@Example.com")
    user.clean()
    assert user.email == "eve@example.com"


def test_timezone_must_be_an_iana_name():
    validate_timezone("Europe/Berlin")
    with pytest.raises(ValidationError):
        validate_timezone("Mars/Olympus_Mons")


@pytest.mark.parametrize("name", ["localtime", "posixrules"])
def test_timezone_refuses_the_tz_databases_server_dependent_files(name):
    # Files of the tz directory, not IANA zones: their meaning is the server's configuration.
    with pytest.raises(ValidationError):
        validate_timezone(name)


@pytest.mark.parametrize("name", ["US/Eastern", "GMT", "Etc/UTC", "Factory"])
def test_timezone_takes_every_iana_name_backward_links_included(name):
    validate_timezone(name)
