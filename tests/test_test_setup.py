"""The suite's own teardown of a transaction=True test (conftest._flush_keeping_the_registry):
every table emptied as Django's flush empties it, content types and permissions kept, or made
again when a test changed them."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import TransactionTestCase

from accounts.models import User
from tasks.models import Task


def teardown_now() -> None:
    """What runs after a transaction=True test, as pytest-django's test case runs it."""
    TransactionTestCase("__init__")._fixture_teardown()


def rows(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_the_teardown_empties_every_table_and_keeps_the_content_types_and_permissions(make_user):
    user = make_user()
    Task.objects.create(owner=user, title="left behind", position=1)
    Group.objects.create(name="made by a test")
    registry = {
        "types": list(ContentType.objects.order_by("pk").values_list("pk", "app_label", "model")),
        "permissions": list(Permission.objects.order_by("pk").values_list("pk", "codename")),
    }
    assert registry["types"] and registry["permissions"]

    teardown_now()

    assert not User.objects.exists() and not Task.objects.exists()
    assert not Group.objects.exists()
    for table in connection.introspection.django_table_names(only_existing=True):
        if table not in ("django_content_type", "auth_permission"):
            assert rows(table) == 0, table
    # The same rows, same keys: not truncated and made again.
    assert registry == {
        "types": list(ContentType.objects.order_by("pk").values_list("pk", "app_label", "model")),
        "permissions": list(Permission.objects.order_by("pk").values_list("pk", "codename")),
    }


@pytest.mark.django_db(transaction=True)
def test_the_teardown_makes_the_permissions_again_when_a_test_deleted_some():
    before = set(Permission.objects.values_list("content_type__model", "codename"))
    Permission.objects.filter(content_type__model="task").delete()

    teardown_now()

    assert set(Permission.objects.values_list("content_type__model", "codename")) == before
