"""What an `Accept` header gets: JSON, or a 406, and no 406 where there is no body to refuse."""

import re
import uuid

import pytest
from drf_spectacular.generators import SchemaGenerator

from accounts.tests.helpers import assert_problem, bearer, sign_in
from conftest import DEFAULT_PASSWORD
from tasks.models import Tag, Task, TaskList

PROBLEM_ONLY = "application/problem+json"


def api_operations() -> list[tuple[str, str, bool]]:
    """(method, path with ids filled in, whether a success has a body) of every operation."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = []
    for path, methods in schema["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in methods.items():
            successes = [answer for code, answer in operation["responses"].items() if code < "300"]
            has_body = any(answer.get("content") for answer in successes)
            operations.append((method, re.sub(r"\{\w+\}", str(uuid.uuid4()), path), has_body))
    return operations


@pytest.mark.django_db
def test_problem_json_alone_is_a_406_exactly_where_a_success_has_a_body(anon_client):
    # A client generated from the schema sends the media types an operation declares: for a
    # bare-status success that is `application/problem+json` alone, which got a 406.
    operations = api_operations()
    assert sum(not has_body for _, _, has_body in operations) >= 8  # DELETEs, logout, passwords
    for method, path, has_body in operations:
        response = getattr(anon_client, method)(path, HTTP_ACCEPT=PROBLEM_ONLY)
        assert (response.status_code == 406) == has_body, (method, path, response.status_code)
        assert response["Content-Type"] == PROBLEM_ONLY, (method, path)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "accept",
    [
        PROBLEM_ONLY,
        "application/problem+json; charset=utf-8",
        "application/problem+json;q=0.5, text/html",
    ],
)
def test_a_delete_accepting_problems_only_deletes(api_client, user, accept):
    task = Task.objects.create(owner=user, title="Pay rent", position=1024)
    tasklist = TaskList.objects.create(owner=user, name="Home", position=1024)
    tag = Tag.objects.create(owner=user, name="home")
    for path in (f"tasks/{task.pk}/", f"lists/{tasklist.pk}/", f"tags/{tag.name}/"):
        response = api_client.delete(f"/api/v1/{path}", HTTP_ACCEPT=accept)
        assert response.status_code == 204, path
        assert response.content == b"" and "Content-Type" not in response, path
    assert not Task.objects.exists() and not TaskList.objects.exists() and not Tag.objects.exists()


@pytest.mark.django_db
def test_a_delete_accepting_problems_only_gets_its_404_as_a_problem(api_client, other_user):
    theirs = Task.objects.create(owner=other_user, title="Theirs", position=1024)
    response = api_client.delete(f"/api/v1/tasks/{theirs.pk}/", HTTP_ACCEPT=PROBLEM_ONLY)
    assert_problem(response, 404)
    assert Task.objects.filter(pk=theirs.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("accept", ["text/html", "application/problem+json;q=0", "image/*"])
def test_a_delete_refusing_problems_too_is_still_a_406_and_deletes_nothing(
    api_client, user, accept
):
    task = Task.objects.create(owner=user, title="Pay rent", position=1024)
    response = api_client.delete(f"/api/v1/tasks/{task.pk}/", HTTP_ACCEPT=accept)
    assert_problem(response, 406)
    assert Task.objects.filter(pk=task.pk).exists()


@pytest.mark.django_db
def test_a_read_or_a_create_accepting_problems_only_is_still_a_406(api_client, user):
    task = Task.objects.create(owner=user, title="Pay rent", position=1024)
    refused = assert_problem(
        api_client.get(f"/api/v1/tasks/{task.pk}/", HTTP_ACCEPT=PROBLEM_ONLY), 406
    )
    # What to send, not DRF's "Could not satisfy the request Accept header."
    assert refused["detail"] == (
        "This API answers in JSON: send an Accept header that takes application/json."
    )
    created = api_client.post("/api/v1/tasks/", {"title": "New"}, HTTP_ACCEPT=PROBLEM_ONLY)
    assert_problem(created, 406)
    assert Task.objects.count() == 1


def test_a_body_that_is_not_json_is_a_415_saying_what_to_send(api_client):
    response = api_client.post("/api/v1/tasks/", data="title=a", content_type="text/plain")
    body = assert_problem(response, 415)
    assert body["detail"] == "Send the body as JSON, with Content-Type: application/json."


@pytest.mark.django_db
def test_a_sign_out_accepting_problems_only_signs_out(anon_client, user):
    pair = sign_in(user.email, DEFAULT_PASSWORD)
    client = bearer(pair["access"])
    response = client.post(
        "/api/v1/auth/logout/", {"refresh": pair["refresh"]}, HTTP_ACCEPT=PROBLEM_ONLY
    )
    assert response.status_code == 204
    assert_problem(client.get("/api/v1/auth/me/"), 401)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "accept",
    [
        "application/json;q=0",
        "*/*;q=0",
        "application/json; q=0.0, text/html",
        "*/*, application/json;q=0",  # the most specific range decides (RFC 9110 12.5.1)
    ],
)
def test_a_type_refused_with_q_0_is_not_acceptable(api_client, user, accept):
    task = Task.objects.create(owner=user, title="Pay rent", position=1024)
    assert_problem(api_client.get(f"/api/v1/tasks/{task.pk}/", HTTP_ACCEPT=accept), 406)
    assert_problem(api_client.patch(f"/api/v1/tasks/{task.pk}/", {}, HTTP_ACCEPT=accept), 406)
    for taken in ("*/*;q=0.1", "application/json;q=x", "application/*;q=0, application/json"):
        assert api_client.get(f"/api/v1/tasks/{task.pk}/", HTTP_ACCEPT=taken).status_code == 200


@pytest.mark.django_db
def test_an_empty_accept_is_read_as_none_through_drf_as_in_the_fast_lane(api_client, user):
    # The fast lane answered an empty Accept's GET (as no Accept); DRF, which serves it with an
    # If-None-Match or a write, answered a 406.
    task = Task.objects.create(owner=user, title="Pay rent", position=1024)
    url = f"/api/v1/tasks/{task.pk}/"
    assert api_client.get(url, HTTP_ACCEPT="").status_code == 200
    assert api_client.get(url, HTTP_ACCEPT="", HTTP_IF_NONE_MATCH='"9"').status_code == 200
    assert api_client.patch(url, {"title": "x"}, HTTP_ACCEPT="").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/auth/logout/", "/api/v1/tasks/"])
def test_an_options_answer_has_a_body_so_problem_json_alone_is_a_406_there(api_client, path):
    assert_problem(api_client.options(path, HTTP_ACCEPT=PROBLEM_ONLY), 406)
