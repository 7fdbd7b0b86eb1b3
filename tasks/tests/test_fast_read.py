"""The fast read path (tasks/fast_read.py) must answer exactly what the serializer path answers:
same status, same headers that matter, same bytes, for every kind of task."""

import pytest
from rest_framework import mixins

from conftest import client_for
from tasks import fast_read
from tasks.models import Tag, Task
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


def test_tags_of_any_number_of_tasks_are_one_statement(user, make_task, django_assert_num_queries):
    tasks = [make_task(f"Task {n}") for n in range(3)]
    tag = Tag.objects.create(owner=user, name="home")
    tasks[1].tags.add(tag)
    with django_assert_num_queries(2):
        one = dict(fast_read.TAG_NAMES_OF_TASKS.rows(tasks=[tasks[1].pk]))
        three = dict(fast_read.TAG_NAMES_OF_TASKS.rows(tasks=[task.pk for task in tasks]))
    assert one == {tasks[1].pk: ["home"]}
    assert three == {tasks[0].pk: [], tasks[1].pk: ["home"], tasks[2].pk: []}
