"""The fast read path (tasks/fast_read.py) must answer exactly what the serializer path answers:
same status, same headers that matter, same bytes, for every kind of task."""

from datetime import UTC, date, datetime, time

import pytest
from rest_framework import mixins

from conftest import client_for
from tasks.models import POSITION_GAP, Priority, Tag, Task, TaskList
from tasks.views import TaskViewSet

pytestmark = pytest.mark.django_db

HEADERS = ("Content-Type", "Allow", "Vary", "ETag", "Content-Length")


@pytest.fixture
def serializer_path(monkeypatch):
    """Switches the view back to DRF's own list/retrieve with TaskSerializer."""

    def switch():
        monkeypatch.setattr(TaskViewSet, "list", mixins.ListModelMixin.list)
        monkeypatch.setattr(TaskViewSet, "retrieve", mixins.RetrieveModelMixin.retrieve)

    return switch


@pytest.fixture
def variety(user):
    """Tasks with every shape a field can take."""
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


def answers(client, url: str) -> tuple[int, dict, bytes]:
    response = client.get(url)
    return (
        response.status_code,
        {name: response.get(name) for name in HEADERS},
        response.content,
    )


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?limit=2",
        "?limit=2&offset=2",
        "?limit=1&offset=4",
        "?offset=99",
        "?ordering=-priority,title",
        "?tag=urgent",
        "?completed=false&has_due=true&ordering=due_date",
        "?search=rent",
        "?parent=none&limit=3",
    ],
)
def test_the_list_is_byte_identical_to_the_serializer_path(
    api_client, variety, serializer_path, query
):
    fast = answers(api_client, f"/api/v1/tasks/{query}")
    serializer_path()
    slow = answers(api_client, f"/api/v1/tasks/{query}")

    assert fast == slow
    assert fast[0] == 200


def test_each_task_is_byte_identical_to_the_serializer_path(api_client, variety, serializer_path):
    fast = [answers(api_client, f"/api/v1/tasks/{task.id}/") for task in variety]
    serializer_path()
    slow = [answers(api_client, f"/api/v1/tasks/{task.id}/") for task in variety]

    assert fast == slow
    assert {status for status, _, _ in fast} == {200}


def test_the_rendering_details_hold(api_client, variety):
    body = api_client.get(f"/api/v1/tasks/{variety[2].id}/").json()
    assert body["completed_at"] == "2026-03-04T05:06:07Z"  # UTC, Z, whole seconds
    assert body["next_occurrence"] == str(variety[3].id)
    assert body["tags"] == []

    rent = api_client.get(f"/api/v1/tasks/{variety[0].id}/")
    assert rent.json()["tags"] == ["b", "money", "Urgent", "urgent-ish", "Zebra", "äpfel"]
    assert rent.json()["due_time"] == "09:05"
    assert b"\\u2028" in rent.content and b"\\u2029" in rent.content


def test_another_users_task_is_a_404_on_the_fast_path(api_client, other_user, variety):
    other = client_for(other_user)
    response = other.get(f"/api/v1/tasks/{variety[0].id}/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert other.get("/api/v1/tasks/").json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }
    missing = api_client.get("/api/v1/tasks/00000000-0000-4000-8000-000000000000/")
    assert missing.status_code == 404


def test_the_list_runs_a_fixed_number_of_queries(
    api_client, user, variety, django_assert_num_queries
):
    tags = list(Tag.objects.owned_by(user))
    for number in range(60):
        task = Task.objects.create(owner=user, title=f"Task {number}", position=10_000 + number)
        task.tags.set(tags[: number % 4])

    # The user (authentication), the count, the page, its tags: nothing per task.
    with django_assert_num_queries(4):
        response = api_client.get("/api/v1/tasks/?limit=200")
    assert response.json()["count"] == 65
    # The filters add theirs: the tag filter looks the tag up, the search builds its tsquery.
    with django_assert_num_queries(6):
        api_client.get("/api/v1/tasks/?tag=money&search=rent&ordering=-due_date")


def test_one_task_is_two_queries(api_client, variety, django_assert_num_queries):
    with django_assert_num_queries(2):  # the user, then the task with its tags
        response = api_client.get(f"/api/v1/tasks/{variety[0].id}/")
    assert response.status_code == 200
