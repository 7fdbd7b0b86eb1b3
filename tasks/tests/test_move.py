import functools

import pytest

from tasks import services
from tasks.models import POSITION_GAP, Task
from todo_project.tests.helpers import run_in_threads

pytestmark = pytest.mark.django_db


def order(**group) -> list[str]:
    return list(Task.objects.filter(**group).order_by("position").values_list("title", flat=True))


def test_move_after_another_task(api_client, make_task):
    a, b, c = make_task("a"), make_task("b"), make_task("c")
    response = api_client.post(f"/api/v1/tasks/{c.pk}/move/", {"after": str(a.pk)})
    assert response.status_code == 200
    assert response.json()["id"] == str(c.pk) and response.json()["version"] == 2
    assert order() == ["a", "c", "b"]
    assert a.position < response.json()["position"] < b.position


def test_move_first_with_after_null(api_client, make_task):
    make_task("a")
    make_task("b")
    c = make_task("c")
    api_client.post(f"/api/v1/tasks/{c.pk}/move/", {"after": None})
    assert order() == ["c", "a", "b"]


def test_move_into_another_list_keeps_the_id_and_takes_subtasks(api_client, make_task, make_list):
    home, work = make_list("Home"), make_list("Work")
    task = make_task("task", list=home)
    sub = make_task("sub", parent=task)
    w1 = make_task("w1", list=work)
    response = api_client.post(
        f"/api/v1/tasks/{task.pk}/move/", {"after": str(w1.pk), "list": str(work.pk)}
    )
    assert response.json()["id"] == str(task.pk) and response.json()["list"] == str(work.pk)
    assert order(list=work, parent=None) == ["w1", "task"]
    sub.refresh_from_db()
    assert sub.list_id == work.pk

    api_client.post(f"/api/v1/tasks/{task.pk}/move/", {"after": None, "list": None})
    assert order(list=None, parent=None) == ["task"]


def test_after_must_be_a_sibling_in_the_target_group(api_client, make_task, make_list):
    home = make_list("Home")
    a = make_task("a")
    other = make_task("other", list=home)
    for after in (other.pk, a.pk):
        response = api_client.post(f"/api/v1/tasks/{a.pk}/move/", {"after": str(after)})
        assert response.status_code == 400 and list(response.json()["errors"]) == ["after"]
    missing = api_client.post(f"/api/v1/tasks/{a.pk}/move/", {})
    assert missing.status_code == 400 and list(missing.json()["errors"]) == ["after"]


def test_a_subtask_moves_among_its_siblings_only(api_client, make_task, make_list):
    parent = make_task("parent")
    s1, s2 = make_task("s1", parent=parent), make_task("s2", parent=parent)
    api_client.post(f"/api/v1/tasks/{s1.pk}/move/", {"after": str(s2.pk)})
    assert order(parent=parent) == ["s2", "s1"]
    home = make_list("Home")
    response = api_client.post(
        f"/api/v1/tasks/{s1.pk}/move/", {"after": None, "list": str(home.pk)}
    )
    assert response.status_code == 400 and list(response.json()["errors"]) == ["list"]


def test_a_used_up_gap_renumbers_only_that_sibling_group(make_task, make_list):
    home = make_list("Home")
    a, b = make_task("a"), make_task("b")
    elsewhere = make_task("elsewhere", list=home)
    # Repeatedly moving into the gap after `a` halves it until it is used up (10 moves for a
    # gap of 1024), then the group is renumbered once and the moves go on.
    moved = [make_task(f"m{i}") for i in range(12)]
    for task in moved:
        services.task_move(task=task, after=a)
    assert order(list=None) == ["a", *[t.title for t in reversed(moved)], "b"]
    positions = list(
        Task.objects.filter(list=None).order_by("position").values_list("position", flat=True)
    )
    assert len(set(positions)) == len(positions)
    assert Task.objects.get(pk=elsewhere.pk).position == POSITION_GAP  # other group untouched
    assert Task.objects.get(pk=b.pk).position != 2 * POSITION_GAP  # this group was renumbered


def test_a_move_writes_a_constant_number_of_rows(make_task, django_assert_max_num_queries):
    tasks = [make_task(f"t{i}") for i in range(30)]
    with django_assert_max_num_queries(8):
        services.task_move(task=tasks[-1], after=tasks[0])


@pytest.mark.django_db(transaction=True)
def test_concurrent_moves_keep_a_total_order(make_user):
    # Two connections move different tasks into the same gap at once: the group lock makes
    # them take turns, so both land between `a` and `b` with distinct positions.
    owner = make_user()
    a = services.task_create(user=owner, data={"title": "a"})
    services.task_create(user=owner, data={"title": "b"})
    movers = [services.task_create(user=owner, data={"title": f"m{i}"}) for i in range(6)]
    errors = run_in_threads(
        *[functools.partial(services.task_move, task=task, after=a) for task in movers]
    )
    assert errors == []
    titles = order(owner=owner)
    assert titles[0] == "a" and titles[-1] == "b" and len(titles) == 8
    positions = list(Task.objects.filter(owner=owner).values_list("position", flat=True))
    assert len(set(positions)) == 8
