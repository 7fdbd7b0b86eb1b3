import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import User
from tasks.management.commands.seed_demo import on_the_project_local_database
from tasks.models import Task
from todo_project import devservices

pytestmark = pytest.mark.django_db


@pytest.fixture
def debug(settings):
    """A local development setup, as `make run` has it (the tests run with DEBUG off)."""
    settings.DEBUG = True


def test_seed_demo_creates_the_demo_user_once(debug, capsys):
    call_command("seed_demo")
    user = User.objects.get(email="demo@example.com")
    assert user.check_password("demo-password-2026")
    assert Task.objects.owned_by(user).count() == 5
    assert Task.objects.owned_by(user).filter(recurrence__isnull=False).count() == 1

    call_command("seed_demo")  # idempotent: make run calls it on every start
    assert Task.objects.owned_by(user).count() == 5
    assert "already exists" in capsys.readouterr().out


def test_seed_demo_ranks_tasks_through_the_services(debug):
    call_command("seed_demo")
    user = User.objects.get(email="demo@example.com")
    home = list(Task.objects.owned_by(user).filter(list__name="Home").order_by("position"))
    assert [task.title for task in home] == ["Pay rent", "Buy groceries"]
    assert [task.position for task in home] == [1024, 2048]
    rent = home[0]
    assert rent.recurrence_start == rent.due_date
    assert [tag.name for tag in rent.tags.all()] == ["money"]


def test_seed_demo_with_admin_creates_a_local_superuser_once(debug):
    call_command("seed_demo", "--with-admin")
    admin = User.objects.get(email="admin@example.com")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password("admin-password-2026")
    call_command("seed_demo", "--with-admin")
    assert User.objects.filter(is_superuser=True).count() == 1


def test_seed_demo_without_the_flag_creates_no_superuser(debug):
    call_command("seed_demo")
    assert not User.objects.filter(is_superuser=True).exists()


@pytest.mark.parametrize("flags", [[], ["--with-admin"]])
def test_seed_demo_refuses_with_debug_off_and_creates_nobody(flags):
    # DEBUG off is a deployment: no account with the README's passwords may appear there.
    with pytest.raises(CommandError, match="only with DEBUG on"):
        call_command("seed_demo", *flags)

    assert not User.objects.exists()


def test_seed_demo_makes_no_superuser_on_a_database_other_than_the_local_one(
    debug, monkeypatch, tmp_path, capsys
):
    # make run with DATABASE_URL exported (a shared or production database, perhaps) created
    # admin@example.com with the README's password there.
    monkeypatch.setattr(devservices, "DATA_DIR", tmp_path)  # the database is elsewhere

    call_command("seed_demo", "--with-admin")

    assert not User.objects.filter(is_superuser=True).exists()
    assert User.objects.filter(email="demo@example.com").exists()
    assert "Not creating the demo superuser" in capsys.readouterr().err


@pytest.mark.parametrize(
    "options",
    [
        {"host": "{local},prod.example.com"},  # libpq falls back to the next host
        {"host": "{local}", "hostaddr": "10.1.2.3"},  # libpq connects to hostaddr over TCP
    ],
)
def test_a_host_list_or_hostaddr_is_not_the_local_database(settings, options):
    local = str(devservices.DATA_DIR / "postgres")
    settings_dict = connection.settings_dict
    saved = (settings_dict["HOST"], dict(settings_dict["OPTIONS"]))
    settings_dict["HOST"] = ""
    settings_dict["OPTIONS"] = {name: value.format(local=local) for name, value in options.items()}
    try:
        assert not on_the_project_local_database()
        settings_dict["OPTIONS"] = {"host": local}
        assert on_the_project_local_database()
    finally:
        settings_dict["HOST"], settings_dict["OPTIONS"] = saved


def test_seed_demo_writes_nothing_on_stdout_with_verbosity_0(debug, capsys):
    # -v 0 is Django's "minimal output" (review 47d: both runs printed their line).
    call_command("seed_demo", verbosity=0)
    call_command("seed_demo", verbosity=0)

    assert User.objects.filter(email="demo@example.com").exists()
    assert capsys.readouterr().out == ""
