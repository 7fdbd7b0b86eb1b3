"""The fast read path (tasks/fast_read.py) must answer exactly what the serializer path answers:
same status, same headers that matter, same bytes, for every kind of task."""

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test import override_settings
from rest_framework import mixins
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient
from rest_framework_simplejwt.settings import api_settings

from accounts import authentication
from accounts.authentication import INVALID_TOKEN, verified_access_token
from accounts.services import user_deactivate
from accounts.tests.helpers import assert_problem, bearer
from accounts.tokens import RefreshToken, access_token_deny
from conftest import client_for
from tasks import fast_read
from tasks import urls as tasks_urls
from tasks.models import Tag, Task, task_to_write
from tasks.serializers import TaskSerializer
from tasks.views import TaskViewSet

pytestmark = pytest.mark.django_db

HEADERS = ("Content-Type", "Allow", "Vary", "ETag", "Content-Length")


@pytest.fixture
def serializer_path(monkeypatch):
    """Switches the view back to DRF's own list/retrieve with TaskSerializer."""

    def switch():
        monkeypatch.setattr(TaskViewSet, "list", mixins.ListModelMixin.list)
        monkeypatch.setattr(TaskViewSet, "retrieve", mixins.RetrieveModelMixin.retrieve)
        monkeypatch.setattr(fast_read, "fast_task_get", lambda *args: None)
        monkeypatch.setattr(fast_read, "fast_task_list", lambda *args: None)

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
        # Every filter, each shape its values can give the SQL (tasks.filters.filter_tasks).
        "?list={home}",
        "?list=inbox&ordering=-updated_at",
        "?parent={rent}",
        "?priority=high,medium",
        "?priority=low&completed=true&ordering=-title",
        "?tag=money&tag=URGENT",
        "?tag=b",
        "?tag=money&tag=nope",
        "?search=!!!",
        "?search=",
        "?search=pay%20ren&completed=false",
        "?due_after=2026-06-01&due_before=2026-12-31",
        "?overdue=true",
        "?overdue=false&ordering=-due_date",
        "?updated_since=2000-01-01T00:00:00Z&ordering=created_at",
        "?updated_since=2999-01-01T00:00:00%2B01:00",
        "?has_due=false&limit=1",  # a full page: counted
        "?completed=false&limit=2&offset=1",
        "?completed=false&offset=10",  # empty past the first page: counted
    ],
)
def test_the_list_is_byte_identical_to_the_serializer_path(
    api_client, variety, serializer_path, fast_list_answers, query
):
    query = query.format(home=variety[0].list_id, rent=variety[0].id)
    fast = answers(api_client, f"/api/v1/tasks/{query}")
    serializer_path()
    slow = answers(api_client, f"/api/v1/tasks/{query}")

    assert fast_list_answers[0] is not None  # the fast list answered, without DRF
    assert fast == slow
    assert fast[0] == 200


@pytest.mark.parametrize(
    "query", ["?list=not-a-uuid", "?priority=urgent", "?due_after=2026-13-01", "?ordering=x"]
)
def test_a_filter_error_is_the_serializer_paths(api_client, variety, serializer_path, query):
    fast = api_client.get(f"/api/v1/tasks/{query}")
    serializer_path()
    slow = api_client.get(f"/api/v1/tasks/{query}")

    assert fast.status_code == slow.status_code == 400
    assert {**fast.json(), "request_id": None} == {**slow.json(), "request_id": None}


def test_a_filtered_list_compiles_each_shape_of_filters_once(api_client, variety):
    api_client.get("/api/v1/tasks/?search=pay&due_after=2026-01-01&completed=false")
    compiled = fast_read.MATCHING_TASKS.cache_info()
    for query in [
        "?search=rent&due_after=2027-05-05&completed=false",
        "?completed=false&due_after=1999-01-01&search=x",
    ]:
        assert api_client.get(f"/api/v1/tasks/{query}").status_code == 200
    # Other values, the same shape: nothing compiled again.
    assert fast_read.MATCHING_TASKS.cache_info().misses == compiled.misses
    # Another shape (`completed=true` is other SQL): compiled once. (A search that matches no
    # task reads no page, so this one matches: "Filed taxes".)
    answer = api_client.get("/api/v1/tasks/?search=filed&due_after=1999-01-01&completed=true")
    assert answer.json()["count"] == 1
    assert fast_read.MATCHING_TASKS.cache_info().misses == compiled.misses + 1


def test_an_indented_list_is_the_serializers(api_client, variety, serializer_path):
    indented = {"HTTP_ACCEPT": "application/json; indent=2"}
    fast = whole(api_client.get("/api/v1/tasks/?limit=3", **indented))
    cache.clear()
    serializer_path()

    assert fast == whole(api_client.get("/api/v1/tasks/?limit=3", **indented))
    assert fast[2].startswith(b'{\n  "count": ')


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
    assert rent.json()["tags"] == ["äpfel", "b", "money", "Urgent", "urgent-ish", "Zebra"]
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

    # The fast list: the token's user with the owner's task count in one statement, the page
    # with its tags in another. Nothing per task, whatever the page.
    for query, results in [("?limit=200", 65), ("?limit=20", 20), ("", 50), ("?offset=60", 5)]:
        with django_assert_num_queries(2):
            response = api_client.get(f"/api/v1/tasks/{query}")
        assert (response.json()["count"], len(response.json()["results"])) == (65, results)
    # Through the viewset (?format=json): the user, the page with its tags, and for a full
    # page the owner's maintained count.
    with django_assert_num_queries(2):
        response = api_client.get("/api/v1/tasks/?limit=200&format=json")
    with django_assert_num_queries(3):
        response = api_client.get("/api/v1/tasks/?limit=20&format=json")
    assert response.json()["count"] == 65
    # The filters add theirs: the tag filter looks the tag up, the search builds its tsquery;
    # a full filtered page is counted, and a searched one always, before its page (the count
    # picks the page's SQL: fast_read.SearchedRows).
    with django_assert_num_queries(5):
        response = api_client.get("/api/v1/tasks/?tag=money&search=rent&ordering=-due_date")
    assert response.json()["count"] == 1
    with django_assert_num_queries(3):
        response = api_client.get("/api/v1/tasks/?completed=false&limit=10")
    assert response.json()["count"] == 64


def test_one_task_is_one_query(api_client, variety, django_assert_num_queries):
    with django_assert_num_queries(1):  # the token's user and the task with its tags
        response = api_client.get(f"/api/v1/tasks/{variety[0].id}/")
    assert response.status_code == 200
    # Beside the fast GET, the viewset's own retrieve: the user, then the task.
    with django_assert_num_queries(2):
        response = api_client.get(f"/api/v1/tasks/{variety[0].id}/?format=json")
    assert response.status_code == 200


def test_a_page_builds_the_tag_arrays_of_its_own_rows_only(user, make_task):
    """with_tags_sql() keeps the tag subquery outside the page query: inside it, PostgreSQL
    would run it for every row an OFFSET skips too."""
    tags = list(Tag.objects.bulk_create(Tag(owner=user, name=f"tag {n}") for n in range(3)))
    tag_names = {}
    for number in range(8):
        task = make_task(f"Task {number}")
        task.tags.set(tags[: number % 4])
        tag_names[task.pk] = sorted(tag.name for tag in tags[: number % 4])
    plain_page = fast_read.OWNER_TASKS_IN_ORDER.rows(owner=user.pk, limit=3, offset=4)
    alias, sql, params = fast_read.OWNER_TASKS_IN_ORDER.statement(owner=user.pk, limit=3, offset=4)
    with connection.cursor() as cursor:
        cursor.execute(fast_read.with_tags_sql(alias, sql), params)
        rows = cursor.fetchall()
        cursor.execute(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {fast_read.with_tags_sql(alias, sql)}", params
        )
        plan = cursor.fetchone()[0][0]["Plan"]

    tags_at = fast_read.COLUMNS.index("tags")
    assert [row[:tags_at] + row[tags_at + 1 :] for row in rows] == plain_page
    assert [sorted(row[tags_at]) for row in rows] == [tag_names[row[0]] for row in plain_page]
    assert len({len(names) for names in tag_names.values()}) == 4  # none, one, two, three tags
    subplan_loops = [node["Actual Loops"] for node in _plan_nodes(plan) if node.get("Subplan Name")]
    assert subplan_loops and max(subplan_loops) == 3  # the page's rows, not the 4 skipped


def _plan_nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


# --- The fast reads: one task (with_fast_get), the first page of the list (with_fast_list) ---


def spy_on(monkeypatch, name: str) -> list:
    """What each call of fast_read.<name> answered: a response, or None (the viewset's turn)."""
    answered = []
    original = getattr(fast_read, name)

    def spy(*args):
        answered.append(original(*args))
        return answered[-1]

    monkeypatch.setattr(fast_read, name, spy)
    return answered


@pytest.fixture
def fast_answers(monkeypatch) -> list:
    return spy_on(monkeypatch, "fast_task_get")


@pytest.fixture
def fast_list_answers(monkeypatch) -> list:
    return spy_on(monkeypatch, "fast_task_list")


# The two fast reads: the function that answers, and the URL it answers for.
FAST_READS = {
    "get": ("fast_task_get", lambda tasks: f"/api/v1/tasks/{tasks[0].id}/"),
    "list": ("fast_task_list", lambda tasks: "/api/v1/tasks/"),
}


@pytest.fixture(params=sorted(FAST_READS))
def fast_read_case(request, monkeypatch, variety) -> tuple[str, list]:
    """For each fast read: its URL, and what its calls answered."""
    name, url = FAST_READS[request.param]
    return url(variety), spy_on(monkeypatch, name)


def whole(response) -> tuple[int, dict, bytes]:
    """Status, headers and body, without the request id (new on each request)."""
    request_id = response["X-Request-ID"]
    headers = {name: value for name, value in response.items() if name != "X-Request-ID"}
    return response.status_code, headers, response.content.replace(request_id.encode(), b"")


def test_the_fast_get_answers_what_drf_and_the_serializer_answer(
    api_client, variety, serializer_path, fast_answers
):
    # Each request counts against the rate limit: clearing the counter between the two paths
    # makes RateLimit-Remaining comparable too (the clock stands still in tests).
    fast = [whole(api_client.get(f"/api/v1/tasks/{task.id}/")) for task in variety]
    cache.clear()
    serializer_path()
    slow = [whole(api_client.get(f"/api/v1/tasks/{task.id}/")) for task in variety]

    assert all(fast_answers) and len(fast_answers) == len(variety)
    assert fast == slow
    assert {status for status, _, _ in fast} == {200}
    assert set(fast[0][1]) >= {"ETag", "Allow", "RateLimit-Remaining", "X-Frame-Options", "Vary"}


def refused_tokens(user) -> dict[str, str]:
    """Access tokens of `user` that authentication must refuse, each for another reason."""
    access = RefreshToken.for_user(user).access_token
    expired = RefreshToken.for_user(user).access_token
    expired.set_exp(lifetime=-(api_settings.LEEWAY + timedelta(seconds=1)))  # past the leeway
    claims = RefreshToken.for_user(user).access_token.payload
    nobodys = {name: value for name, value in claims.items() if name != "user_id"}
    return {
        "tampered": str(access)[:-4] + ("AAAA" if not str(access).endswith("AAAA") else "BBBB"),
        "expired": str(expired),
        "a refresh token": str(RefreshToken.for_user(user)),
        "a generation that is not a number": signed({**claims, "gen": "0"}),
        "naming no user": signed(nobodys),
    }


def signed(claims: dict) -> str:
    return jwt.encode(claims, api_settings.SIGNING_KEY, api_settings.ALGORITHM)


@pytest.mark.parametrize(
    "reason",
    [
        "tampered",
        "expired",
        "a refresh token",
        "a generation that is not a number",
        "naming no user",
    ],
)
def test_a_refused_token_is_the_viewsets_401(user, fast_read_case, reason):
    url, answered = fast_read_case
    response = bearer(refused_tokens(user)[reason]).get(url)

    assert answered == [None]
    assert_problem(response, 401)
    assert response.json()["detail"] == INVALID_TOKEN


@pytest.mark.parametrize("revoke", ["log out", "revoke all tokens", "deactivate"])
def test_a_token_revoked_after_a_fast_read_is_refused_at_once(
    user, api_client, fast_read_case, revoke
):
    url, answered = fast_read_case
    assert api_client.get(url).status_code == 200
    token = verified_access_token(api_client._credentials["HTTP_AUTHORIZATION"][7:].encode())
    if revoke == "log out":
        access_token_deny(token)
    elif revoke == "revoke all tokens":
        user.revoke_tokens()
        user.save()
    else:
        user_deactivate(user=user)

    response = api_client.get(url)

    assert answered[0] is not None and answered[1] is None
    assert_problem(response, 401)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"QUERY_STRING": "format=json"}, 200),
        ({"HTTP_ACCEPT": "application/json; indent=4"}, 200),
        ({"HTTP_ACCEPT": "text/html"}, 406),
        ({"HTTP_IF_NONE_MATCH": "the current ETag"}, 304),
        ({"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"}, 401),
        ({"HTTP_AUTHORIZATION": ""}, 401),
    ],
)
def test_what_the_fast_get_leaves_to_the_viewset(
    api_client, variety, serializer_path, fast_answers, headers, status
):
    url = f"/api/v1/tasks/{variety[2].id}/"
    if headers.get("HTTP_IF_NONE_MATCH"):
        headers = {"HTTP_IF_NONE_MATCH": f'"{variety[2].version}"'}
    # api_client's own credentials would replace an Authorization given here.
    client = APIClient() if "HTTP_AUTHORIZATION" in headers else api_client
    answered = whole(client.get(url, **headers))
    cache.clear()
    serializer_path()

    assert fast_answers == [None]
    assert answered == whole(client.get(url, **headers))
    assert answered[0] == status


@pytest.mark.parametrize("schemes", [{b"bearer"}, {b"jwt"}])
def test_the_fast_reads_take_the_schemes_authentication_takes(
    user, fast_read_case, monkeypatch, schemes
):
    """One rule for both (accounts.authentication.is_our_scheme): a change of
    AUTH_HEADER_TYPES cannot turn the fast reads off, nor let them take what DRF refuses."""
    monkeypatch.setattr(authentication, "AUTH_SCHEMES", frozenset(schemes))
    url, answered = fast_read_case
    access = str(RefreshToken.for_user(user).access_token)
    for scheme in ("Bearer", "bearer", "JWT", "Token"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"{scheme} {access}")
        taken = scheme.lower().encode() in schemes
        assert client.get(url).status_code == (200 if taken else 401), scheme
        assert (answered.pop() is not None) == taken, scheme


def test_someone_elses_or_an_unknown_task_is_the_viewsets_404(
    other_client, api_client, variety, fast_answers
):
    someone_elses = other_client.get(f"/api/v1/tasks/{variety[0].id}/")
    unknown = api_client.get("/api/v1/tasks/00000000-0000-4000-8000-000000000000/")

    assert fast_answers == [None, None]
    # The same problem, but for the URL and the request id.
    unlike = {"instance": None, "request_id": None}
    assert {**assert_problem(someone_elses, 404), **unlike} == {
        **assert_problem(unknown, 404),
        **unlike,
    }


@override_settings(RATE_LIMIT_USER="2/m")
def test_a_fast_read_counts_against_the_rate_limit_and_leaves_the_429_to_the_viewset(
    api_client, fast_read_case
):
    url, answered = fast_read_case
    first, second, third = (api_client.get(url) for _ in range(3))

    assert [first.status_code, second.status_code] == [200, 200]
    assert [first["RateLimit-Remaining"], second["RateLimit-Remaining"]] == ["1", "0"]
    assert answered[:2] != [None, None] and answered[2] is None
    assert_problem(third, 429)
    assert third["RateLimit-Remaining"] == "0" and int(third["Retry-After"]) >= 1


def test_a_fast_read_is_logged_with_its_user(api_client, user, fast_read_case, caplog):
    url, answered = fast_read_case
    caplog.set_level(logging.INFO, logger="todo.access")
    response = api_client.get(url)

    (record,) = [r for r in caplog.records if r.name == "todo.access"]
    assert answered[0] is not None
    assert (record.user_id, record.status) == (str(user.pk), 200)
    assert response["X-Request-ID"] == record.request_id


def test_the_schema_still_sees_the_viewset_at_the_detail_url():
    (detail,) = [url for url in tasks_urls.urlpatterns if url.name == "task-detail"]
    assert detail.callback.cls is TaskViewSet
    assert detail.callback.csrf_exempt is True
    assert detail.callback.actions["get"] == "retrieve"


def test_a_writes_answer_is_what_the_serializer_would_answer(user, variety):
    """written_task_data() answers every write: the same JSON values as TaskSerializer's data
    (so the same bytes through JSONRenderer, and the same idempotency record)."""
    renderer = JSONRenderer()
    locked = []
    for task in variety:
        expected = TaskSerializer(Task.objects.prefetch_related("tags").get(pk=task.pk)).data
        with transaction.atomic():
            locked.append(task_to_write(user.pk, task.pk))
        answer = fast_read.written_task_data(locked[-1])
        assert renderer.render(answer) == renderer.render(expected)
        assert answer == json.loads(renderer.render(expected))  # plain JSON values only
    # The rent has an open subtask; its subtask has none.
    assert [task.has_open_subtasks for task in locked[:2]] == [True, False]


def test_a_task_without_its_tag_names_is_no_answer(user, variety):
    with pytest.raises(ValueError, match="tag names"):
        fast_read.written_task_data(Task.objects.get(pk=variety[0].pk))


WRITES = [
    (
        "post",
        "/api/v1/tasks/",
        {
            "title": " Pay rent ✓ ",
            "description": "é ✓ 🎉",
            "priority": "high",
            "list": "{home}",
            "tags": ["Zebra", "urgent", "b", "new one"],
            "due_date": "2026-12-01",
            "due_time": "09:05",
            "recurrence": "FREQ=MONTHLY;BYMONTHDAY=1",
        },
    ),
    (
        "post",
        "/api/v1/tasks/",
        {
            "title": "done",
            "completed": True,
            "due_date": "2026-12-01",
            "recurrence": "FREQ=DAILY",
            "parent": "{rent}",
        },
    ),
    ("patch", "/api/v1/tasks/{rent}/", {"title": "new", "tags": ["MONEY", "b"]}),
    ("patch", "/api/v1/tasks/{rent}/", {"completed": True}),
    ("patch", "/api/v1/tasks/{rent}/", {"completed": True, "list": None}),
    ("patch", "/api/v1/tasks/{done}/", {"completed": False}),
    ("patch", "/api/v1/tasks/{plain}/", {}),
    ("put", "/api/v1/tasks/{plain}/", {"title": "put", "tags": [], "list": "{home}"}),
    ("post", "/api/v1/tasks/{plain}/move/", {"after": None, "list": "{home}"}),
    ("post", "/api/v1/tasks/{done}/move/", {"after": "{plain}"}),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_a_writes_answer_is_a_get_of_what_it_wrote_byte_for_byte(
    api_client, variety, method, path, body
):
    """Answers are built from what the write saved, never read back: these are the bytes and
    the ETag a GET right after it gets."""
    ids = {"rent": variety[0].pk, "done": variety[2].pk, "plain": variety[4].pk}
    ids["home"] = variety[0].list_id
    filled = {
        key: value.format(**ids) if isinstance(value, str) else value for key, value in body.items()
    }
    response = getattr(api_client, method)(path.format(**ids), filled, format="json")
    assert response.status_code in (200, 201), response.json()["errors"]
    again = api_client.get(f"/api/v1/tasks/{response.json()['id']}/")
    assert response.content == again.content
    if method in ("put", "patch"):  # the methods that answer with an ETag
        assert response["ETag"] == again["ETag"]


# --- The fast list's first page (fast_read.with_fast_list) ------------------------------------


def test_the_fast_list_answers_what_drf_and_the_serializer_answer(
    api_client, other_client, variety, serializer_path, fast_list_answers, monkeypatch
):
    monkeypatch.setattr(TaskViewSet.pagination_class, "default_limit", 2)  # so a next link
    fast = [whole(client.get("/api/v1/tasks/")) for client in (api_client, other_client)]
    cache.clear()
    serializer_path()
    slow = [whole(client.get("/api/v1/tasks/")) for client in (api_client, other_client)]

    assert all(fast_list_answers) and len(fast_list_answers) == 2
    assert fast == slow
    page, nothing = (json.loads(body) for _, _, body in fast)
    assert (page["count"], len(page["results"])) == (len(variety), 2)
    assert page["next"] == "http://testserver/api/v1/tasks/?limit=2&offset=2"
    assert nothing == {"count": 0, "next": None, "previous": None, "results": []}
    assert set(fast[0][1]) >= {"Allow", "RateLimit-Remaining", "X-Frame-Options", "Vary"}


@pytest.mark.parametrize(
    ("query", "count", "results"),
    [
        ("?limit=2&offset=2", 5, 2),
        ("?limit=999", 5, 5),  # served as 200
        ("?offset=1&unknown=x", 5, 4),  # unknown parameters are ignored
        ("?completed=false&ordering=-title&limit=1", 4, 1),
        ("?tag=money&search=rent", 1, 1),
        ("?tag=nope", 0, 0),
        ("?overdue=true&has_due=true", 1, 1),
    ],
)
def test_the_fast_list_answers_any_page_and_filters_as_the_viewset(
    api_client, variety, serializer_path, fast_list_answers, query, count, results, frozen_now
):
    # `variety`'s "Next rent" is due 2027-01-01 00:00: overdue too from then on.
    frozen_now(datetime(2026, 12, 5, 12, 0, tzinfo=UTC))
    fast = whole(api_client.get(f"/api/v1/tasks/{query}"))
    cache.clear()
    serializer_path()

    assert fast_list_answers[0] is not None
    assert fast == whole(api_client.get(f"/api/v1/tasks/{query}"))
    page = json.loads(fast[2])
    assert (page["count"], len(page["results"])) == (count, results)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"QUERY_STRING": "format=json"}, 200),
        ({"QUERY_STRING": "completed=true&format=json"}, 200),
        ({"QUERY_STRING": "limit=0"}, 400),
        ({"QUERY_STRING": "offset=-1"}, 400),
        ({"QUERY_STRING": "completed=maybe"}, 400),
        ({"QUERY_STRING": f"list={uuid.UUID(int=7)}"}, 400),
        ({"HTTP_ACCEPT": "application/json; indent=4"}, 200),
        ({"HTTP_ACCEPT": "text/html"}, 406),
        ({"HTTP_IF_NONE_MATCH": '"1"'}, 200),
        ({"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"}, 401),
        ({"HTTP_AUTHORIZATION": ""}, 401),
    ],
)
def test_what_the_fast_list_leaves_to_the_viewset(
    api_client, variety, serializer_path, fast_list_answers, headers, status
):
    client = APIClient() if "HTTP_AUTHORIZATION" in headers else api_client
    answered = whole(client.get("/api/v1/tasks/", **headers))
    cache.clear()
    serializer_path()

    assert fast_list_answers == [None]
    assert answered == whole(client.get("/api/v1/tasks/", **headers))
    assert answered[0] == status


def test_the_list_url_still_creates_and_the_schema_sees_the_viewset(api_client, variety):
    (listing,) = [url for url in tasks_urls.urlpatterns if url.name == "task-list"]
    assert listing.callback.cls is TaskViewSet
    assert listing.callback.csrf_exempt is True
    assert api_client.post("/api/v1/tasks/", {"title": "New"}).status_code == 201


# What browsers send to a URL typed in, Java's HttpURLConnection by default, and a client that
# weighs JSON above the rest: `q` is a weight (RFC 9110 section 12.4.2), never a parameter of
# the representation, so the answer is the plain JSON one, read as it (review 43c: DRF kept the
# weight in accepted_media_type, `application/json;q=0.9`, and such requests left the compiled
# reads for TaskSerializer's, 2-5x the time: 12.7 against 3.3 ms a page of 100,000 tasks).
WEIGHTED_ACCEPTS = [
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "application/json;q=0.9, */*;q=0.8",
    "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2",
]


@pytest.mark.parametrize("accept", WEIGHTED_ACCEPTS)
@pytest.mark.parametrize("read", ["list", "get"])
def test_an_accept_with_weights_is_answered_by_the_compiled_reads(
    api_client, variety, monkeypatch, accept, read
):
    url = "/api/v1/tasks/" if read == "list" else f"/api/v1/tasks/{variety[0].id}/"
    plain = api_client.get(url, HTTP_ACCEPT="application/json")
    compiled = []
    for name in ("listed_tasks", "task_data"):
        original = getattr(fast_read, name)
        monkeypatch.setattr(
            fast_read, name, lambda *args, _o=original, **kw: compiled.append(1) or _o(*args, **kw)
        )

    weighted = api_client.get(url, HTTP_ACCEPT=accept)

    assert weighted.status_code == 200
    assert weighted.content == plain.content
    assert compiled, "answered by DRF's serializer path, not the compiled reads"
