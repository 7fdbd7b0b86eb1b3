"""Factories for the tasks app's tests: rows are made through the services, like the API does."""

from typing import Any

import pytest

from tasks import services
from tasks.models import Task, TaskList


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
