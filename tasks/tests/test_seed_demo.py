import pytest
from django.core.management import call_command

from accounts.models import User
from tasks.models import Task

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_the_demo_user_once(capsys):
    call_command("seed_demo")
    user = User.objects.get(email="demo@example.com")
    assert user.check_password("demo-password-2026")
    assert Task.objects.owned_by(user).count() == 5
    assert Task.objects.owned_by(user).filter(recurrence__isnull=False).count() == 1

    call_command("seed_demo")  # idempotent: make run calls it on every start
    assert Task.objects.owned_by(user).count() == 5
    assert "already exists" in capsys.readouterr().out


def test_seed_demo_ranks_tasks_through_the_services():
    call_command("seed_demo")
    user = User.objects.get(email="demo@example.com")
    home = list(Task.objects.owned_by(user).filter(list__name="Home").order_by("position"))
    assert [task.title for task in home] == ["Pay rent", "Buy groceries"]
    assert [task.position for task in home] == [1024, 2048]
    rent = home[0]
    assert rent.recurrence_start == rent.due_date
    assert [tag.name for tag in rent.tags.all()] == ["money"]
