"""ETag / If-None-Match / If-Match (todo_project.conditional) on a test-only viewset."""

import threading
import time

import pytest
from django.db import connection, connections

from conftest import client_for
from tasks.models import Task, TaskList
from todo_project.tests.hardening_urls import GATES, Gate
from todo_project.tests.helpers import lock_waiters

URLS = "todo_project.tests.hardening_urls"
PROBLEM = "application/problem+json"


@pytest.fixture
def task_list(user) -> TaskList:
    return TaskList.objects.create(owner=user, name="Home")


def url(task_list: TaskList) -> str:
    return f"/api/v1/test/lists/{task_list.pk}/"


pytestmark = pytest.mark.urls(URLS)


@pytest.mark.django_db
def test_get_one_sends_the_version_as_a_strong_etag(api_client, task_list):
    response = api_client.get(url(task_list))
    assert response.status_code == 200
    assert response["ETag"] == '"1"'
    assert response.json() == {"id": str(task_list.pk), "name": "Home", "version": 1}


@pytest.mark.django_db
@pytest.mark.parametrize("header", ['"1"', 'W/"1"', '"7", "1"', "*"])
def test_if_none_match_with_the_current_etag_is_304_without_a_body(api_client, task_list, header):
    response = api_client.get(url(task_list), HTTP_IF_NONE_MATCH=header)
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == '"1"'
    # Only the length the 200 would have had may be sent (RFC 9110, 8.6): none (review 29e).
    assert not response.has_header("Content-Length")


@pytest.mark.django_db
@pytest.mark.parametrize("header", ['"2"', "1", "garbage", ""])
def test_if_none_match_with_another_etag_gets_the_body(api_client, task_list, header):
    response = api_client.get(url(task_list), HTTP_IF_NONE_MATCH=header)
    assert response.status_code == 200
    assert response.json()["name"] == "Home"


@pytest.mark.django_db
def test_a_change_makes_the_old_etag_stale_for_reads(api_client, task_list):
    api_client.patch(url(task_list), {"name": "Work"})
    response = api_client.get(url(task_list), HTTP_IF_NONE_MATCH='"1"')
    assert response.status_code == 200
    assert response["ETag"] == '"2"'


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["patch", "put"])
def test_write_with_a_stale_if_match_is_412_and_changes_nothing(api_client, task_list, method):
    TaskList.objects.filter(pk=task_list.pk).update(version=2)  # someone else wrote meanwhile
    response = getattr(api_client, method)(url(task_list), {"name": "Work"}, HTTP_IF_MATCH='"1"')
    assert response.status_code == 412
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["title"] == "Precondition failed"
    assert '"2"' in body["detail"]
    task_list.refresh_from_db()
    assert (task_list.name, task_list.version) == ("Home", 2)


@pytest.mark.django_db
def test_a_weak_etag_never_matches_if_match(api_client, task_list):
    response = api_client.patch(url(task_list), {"name": "Work"}, HTTP_IF_MATCH='W/"1"')
    assert response.status_code == 412
    task_list.refresh_from_db()
    assert task_list.name == "Home"


@pytest.mark.django_db
@pytest.mark.parametrize("header", ['"1"', '"9", "1"', "*"])
def test_write_with_a_matching_if_match_goes_through_and_answers_the_new_etag(
    api_client, task_list, header
):
    response = api_client.patch(url(task_list), {"name": "Work"}, HTTP_IF_MATCH=header)
    assert response.status_code == 200
    assert response["ETag"] == '"2"'
    assert response.json() == {"id": str(task_list.pk), "name": "Work", "version": 2}


@pytest.mark.django_db
def test_without_if_match_the_last_writer_wins(api_client, task_list):
    TaskList.objects.filter(pk=task_list.pk).update(version=5)
    response = api_client.patch(url(task_list), {"name": "Work"})
    assert response.status_code == 200
    assert response.json()["version"] == 6


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["*", '"1"', 'W/"1"', '"7", "1"'])
@pytest.mark.parametrize("method", ["patch", "put", "delete"])
def test_a_write_with_if_none_match_listing_the_current_etag_is_412(
    api_client, task_list, method, header
):
    response = getattr(api_client, method)(
        url(task_list), {"name": "Work"}, HTTP_IF_NONE_MATCH=header
    )
    assert response.status_code == 412 and response["ETag"] == '"1"'
    assert response["Content-Type"] == PROBLEM and '"1"' in response.json()["detail"]
    task_list.refresh_from_db()
    assert (task_list.name, task_list.version) == ("Home", 1)


@pytest.mark.django_db
def test_a_write_with_if_none_match_of_another_etag_goes_through(api_client, task_list):
    response = api_client.patch(url(task_list), {"name": "Work"}, HTTP_IF_NONE_MATCH='"2"')
    assert response.status_code == 200 and response["ETag"] == '"2"'


@pytest.mark.django_db
def test_if_match_is_evaluated_before_if_none_match(api_client, task_list):
    # Both hold: the write goes through only when If-Match matches and If-None-Match does not.
    both = {"HTTP_IF_MATCH": '"1"', "HTTP_IF_NONE_MATCH": '"1"'}
    assert api_client.patch(url(task_list), {"name": "W"}, **both).status_code == 412
    ok = {"HTTP_IF_MATCH": '"1"', "HTTP_IF_NONE_MATCH": '"5"'}
    assert api_client.patch(url(task_list), {"name": "W"}, **ok).status_code == 200


@pytest.mark.django_db
def test_delete_with_a_stale_if_match_is_412_and_keeps_the_row(api_client, task_list):
    response = api_client.delete(url(task_list), HTTP_IF_MATCH='"3"')
    assert response.status_code == 412
    assert TaskList.objects.filter(pk=task_list.pk).exists()


@pytest.mark.django_db
def test_delete_with_the_current_if_match_deletes(api_client, task_list):
    response = api_client.delete(url(task_list), HTTP_IF_MATCH='"1"')
    assert response.status_code == 204
    assert not TaskList.objects.filter(pk=task_list.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_someone_elses_row_is_404_with_or_without_etags_and_unchanged(
    other_client, task_list, method
):
    headers = {"HTTP_IF_MATCH": "*", "HTTP_IF_NONE_MATCH": '"1"'}
    response = getattr(other_client, method)(url(task_list), {"name": "Mine"}, **headers)
    assert response.status_code == 404
    assert "ETag" not in response
    task_list.refresh_from_db()
    assert (task_list.name, task_list.version) == ("Home", 1)


@pytest.mark.django_db
def test_conditional_requests_cost_at_most_one_more_query(
    api_client, task_list, django_assert_max_num_queries
):
    with django_assert_max_num_queries(2):  # user (token generation) + row
        assert api_client.get(url(task_list), HTTP_IF_NONE_MATCH='"1"').status_code == 304
    # user, row, lock, row again, uniqueness check of the name, update (+ savepoints)
    with django_assert_max_num_queries(8):
        response = api_client.patch(url(task_list), {"name": "Work"}, HTTP_IF_MATCH='"1"')
        assert response.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_two_writers_holding_the_same_etag_cannot_both_win(user):
    """The first writer holds the row lock (paused inside its transaction); the second, with
    the same ETag, must wait for it and then see the new version: exactly one 412."""
    task_list = TaskList.objects.create(owner=user, name="Home")
    GATES["first"] = gate = Gate()
    results: dict[str, int] = {}

    def write(name: str) -> None:
        try:
            response = client_for(user).patch(url(task_list), {"name": name}, HTTP_IF_MATCH='"1"')
            results[name] = response.status_code
        finally:
            connections.close_all()

    first = threading.Thread(target=write, args=("first",))
    second = threading.Thread(target=write, args=("second",))
    try:
        first.start()
        assert gate.entered.wait(timeout=20)
        second.start()
        for _ in range(200):  # until the second writer blocks on the row lock (at most ~10 s)
            if lock_waiters(connection) or not second.is_alive():
                break
            time.sleep(0.05)
        gate.release.set()
        first.join(timeout=20)
        second.join(timeout=20)
    finally:
        gate.release.set()
        GATES.pop("first")
    assert results == {"first": 200, "second": 412}
    task_list.refresh_from_db()
    assert (task_list.name, task_list.version) == ("first", 2)


def test_etag_helpers_parse_lists_and_wildcards():
    from todo_project.conditional import etag_for, if_match, none_match

    assert etag_for(3) == '"3"'
    assert none_match('W/"3", "4"', '"3"') and not none_match(None, '"3"')
    assert if_match("*", 3) and not if_match('W/"3"', 3) and not if_match('"4"', 3)
    assert etag_for(3, 5, 2) == '"3-5-2"' and if_match('"3-5-2"', 3, 2)
    assert if_match('"3-9-9"', 3, 2) and not if_match('W/"3-5-2"', 3, 2)
    assert if_match('"1", "3"', 3) and not if_match('"33"', 3)
    # Another shape than the resource's is a tag it never sent: a task's is "<version>" alone.
    assert not if_match('"3-5-2"', 3) and not if_match('"3-0"', 3) and not if_match('"3-5"', 3, 2)
    assert if_match('"3"', 3, 2)  # a list's version alone


@pytest.mark.django_db
@pytest.mark.parametrize("tag", ['"1-5-7"', '"1-0"'])
def test_a_tasks_if_match_in_a_lists_shape_matches_nothing(api_client, user, tag):
    # A task's ETag is "<version>" alone; the lists' "<version>-<counts>" was taken for it.
    task = Task.objects.create(owner=user, title="Pay rent", position=1024)
    response = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"title": "x"}, HTTP_IF_MATCH=tag)
    assert response.status_code == 412
    assert Task.objects.get(pk=task.pk).title == "Pay rent"
    ok = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"title": "x"}, HTTP_IF_MATCH='"1"')
    assert ok.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("sent", ["1", 'W/"1"'])
def test_an_if_match_that_lists_no_etag_is_not_told_the_task_has_changed(api_client, user, sent):
    # Swagger UI's If-Match box, or a client sending the body's `version` as it is (`1`), or a
    # weak tag from a compressing proxy: the 412 said "The resource has changed since you read
    # it: its ETag is now "1"." to a client holding that very version (review 33c).
    task = Task.objects.create(owner=user, title="Pay rent", position=1024)
    response = api_client.patch(
        f"/api/v1/tasks/{task.pk}/", {"title": "Pay rent now"}, HTTP_IF_MATCH=sent
    )
    assert response.status_code == 412 and response["ETag"] == '"1"'
    detail = response.json()["detail"]
    assert detail.startswith("If-Match lists no ETag of this resource") and '"1"' in detail
    task.refresh_from_db()
    assert (task.title, task.version) == ("Pay rent", 1)
    # A tag of the resource's shape, of another version, is a stale one: "has changed".
    stale = api_client.patch(f"/api/v1/tasks/{task.pk}/", {"title": "x"}, HTTP_IF_MATCH='"7"')
    assert "has changed since you read it" in stale.json()["detail"]
