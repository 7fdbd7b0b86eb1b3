"""Factories for the tasks app's tests: rows are made through the services, like the API does."""

from datetime import UTC, date, datetime, time
from typing import Any

import pytest

from tasks import services
from tasks.models import POSITION_GAP, Priority, Tag, Task, TaskList


@pytest.fixture
def make_list(user):
    def make(name: str = "Home", owner=None, **fields: Any) -> TaskList:
        return services.list_create(
            user=owner or user,
            name=name,
            color=fields.get("color"),
            position=fields.get("position"),
        )

    return make


@pytest.fixture
def make_task(user):
    def make(title: str = "Task", owner=None, **data: Any) -> Task:
        return services.task_create(user=owner or user, data={"title": title, **data})

    return make


@pytest.fixture
def variety(user):
    """Tasks with every shape a field can take (rows written directly, versions and all)."""
    home = TaskList.objects.create(owner=user, name="Home", position=POSITION_GAP)
    tags = {
        name: Tag.objects.create(owner=user, name=name)
        for name in ("money", "Urgent", "urgent-ish", "äpfel", "Zebra", "b")
    }
    rent = Task.objects.create(
        owner=user,
        title="Pay rent",
        description='Line\u2028separator, paragraph\u2029too; "quotes" \\ tab\t é ✓ 🎉',
        priority=Priority.HIGH,
        due_date=date(2026, 12, 1),
        due_time=time(9, 5),
        list=home,
        recurrence="FREQ=MONTHLY;BYMONTHDAY=1",
        recurrence_start=date(2026, 12, 1),
        position=POSITION_GAP,
    )
    rent.tags.set(tags.values())
    subtask = Task.objects.create(
        owner=user, title="Find the IBAN", list=home, parent=rent, position=POSITION_GAP
    )
    subtask.tags.set([tags["b"]])
    done = Task.objects.create(
        owner=user,
        title="Filed taxes \x01 control",
        completed=True,
        completed_at=datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC),
        priority=Priority.LOW,
        due_date=date(2026, 3, 1),
        position=2 * POSITION_GAP,
        version=7,
    )
    follow_up = Task.objects.create(
        owner=user,
        title="Next rent",
        due_date=date(2027, 1, 1),
        due_time=time(0, 0),
        recurrence="FREQ=MONTHLY;BYMONTHDAY=1",
        recurrence_start=date(2026, 12, 1),
        position=3 * POSITION_GAP,
    )
    done.next_occurrence = follow_up
    done.save()
    plain = Task.objects.create(owner=user, title="x", priority=Priority.MEDIUM, position=0)
    return [rent, subtask, done, follow_up, plain]
