"""OWASP API Security Top 10 (2023), black-box: what an attacker would try, risk by risk.

Each test is named after the risk it covers (api1_ ... api10_). Where a risk does not apply,
a test shows why (API7: nothing fetches a URL; API10: the only third-party input is checked).
"""

import base64
import json
import re
import uuid
from datetime import timedelta

import gunicorn
import jwt
import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tests.helpers import sent_mail
from accounts.tokens import RefreshToken
from conftest import DEFAULT_PASSWORD
from tasks.models import POSITION_GAP, Task, TaskList

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    return response.json()


@pytest.fixture
def victim_data(other_user):
    """Mallory's (the victim's) list, task with a subtask, and tag."""
    task_list = TaskList.objects.create(owner=other_user, name="Secret plans")
    task = Task.objects.create(owner=other_user, title="Secret", list=task_list)
    subtask = Task.objects.create(
        owner=other_user, title="Sub", list=task_list, parent=task, position=POSITION_GAP
    )
    task.tags.create(owner=other_user, name="private")
    return {"list": task_list, "task": task, "subtask": subtask}


def unchanged(victim_data) -> bool:
    task, task_list = victim_data["task"], victim_data["list"]
    fresh_task = Task.objects.get(pk=task.pk)
    fresh_list = TaskList.objects.get(pk=task_list.pk)
    return (
        (fresh_task.title, fresh_task.version, fresh_task.list_id, fresh_task.completed)
        == ("Secret", 1, task_list.pk, False)
        and (fresh_list.name, fresh_list.version) == ("Secret plans", 1)
        and list(fresh_task.tags.values_list("name", flat=True)) == ["private"]
    )


# --- API1: Broken Object Level Authorization --------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/v1/tasks/{task}/", None),
        ("patch", "/api/v1/tasks/{task}/", {"title": "Mine now"}),
        ("put", "/api/v1/tasks/{task}/", {"title": "Mine now"}),
        ("delete", "/api/v1/tasks/{task}/", None),
        ("post", "/api/v1/tasks/{task}/move/", {"after": None}),
        ("get", "/api/v1/lists/{list}/", None),
        ("patch", "/api/v1/lists/{list}/", {"name": "Mine now"}),
        ("delete", "/api/v1/lists/{list}/?tasks=delete", None),
        ("patch", "/api/v1/tags/private/", {"name": "public"}),
        ("delete", "/api/v1/tags/private/", None),
    ],
)
def test_api1_bola_someone_elses_id_in_the_path_is_a_404_like_an_unknown_one(
    api_client, victim_data, method, path, body
):
    url = path.format(task=victim_data["task"].pk, list=victim_data["list"].pk)
    unknown = path.format(task=uuid.uuid4(), list=uuid.uuid4()).replace("private", "nope")
    theirs = getattr(api_client, method)(url, body)
    nobodys = getattr(api_client, method)(unknown, body)
    assert theirs.status_code == nobodys.status_code == 404
    assert problem(theirs, 404)["detail"] == problem(nobodys, 404)["detail"]
    assert unchanged(victim_data)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x", "list": "{list}"}, "list"),
        ({"title": "x", "parent": "{task}"}, "parent"),
    ],
)
def test_api1_bola_someone_elses_id_in_a_body_does_not_exist(api_client, victim_data, body, field):
    body = {
        key: value.format(list=victim_data["list"].pk, task=victim_data["task"].pk)
        for key, value in body.items()
    }
    response = api_client.post("/api/v1/tasks/", body)
    assert list(problem(response, 400)["errors"]) == [field]
    assert not Task.objects.filter(owner__email="alice@example.com").exists()


def test_api1_bola_moving_after_or_into_someone_elses_rows_is_refused(
    api_client, user, victim_data
):
    mine = Task.objects.create(owner=user, title="Mine")
    url = f"/api/v1/tasks/{mine.pk}/move/"
    assert api_client.post(url, {"after": str(victim_data["task"].pk)}).status_code == 400
    response = api_client.post(url, {"after": None, "list": str(victim_data["list"].pk)})
    assert response.status_code == 400
    mine.refresh_from_db()
    assert (mine.list_id, mine.version) == (None, 1)
    assert unchanged(victim_data)


@pytest.mark.parametrize("action", ["complete", "delete", "add_tags", "move"])
def test_api1_bola_bulk_with_one_foreign_id_changes_nothing_at_all(
    api_client, user, victim_data, action
):
    mine = Task.objects.create(owner=user, title="Mine")
    theirs = victim_data["task"].pk
    body = {"action": action, "ids": [str(mine.pk), str(theirs)], "tags": ["x"], "list": None}
    body = problem(api_client.post("/api/v1/tasks/bulk/", body), 404)
    assert body["missing_ids"] == [str(theirs)]
    mine.refresh_from_db()
    assert (mine.completed, mine.version) == (False, 1)
    assert unchanged(victim_data)


@pytest.mark.parametrize("query", ["list={list}", "parent={task}"])
def test_api1_bola_someone_elses_id_in_a_filter_is_a_400_not_their_tasks(
    api_client, victim_data, query
):
    query = query.format(list=victim_data["list"].pk, task=victim_data["task"].pk)
    response = api_client.get(f"/api/v1/tasks/?{query}")
    assert response.status_code == 400
    assert b"Secret" not in response.content


def test_api1_bola_listings_and_search_show_only_the_callers_rows(api_client, victim_data):
    for url in ("/api/v1/tasks/?search=secret", "/api/v1/lists/", "/api/v1/tags/"):
        response = api_client.get(url)
        assert response.status_code == 200
        assert b"Secret" not in response.content and b"private" not in response.content


def test_api1_bola_an_idempotency_key_never_replays_someone_elses_answer(api_client, other_client):
    theirs = other_client.post("/api/v1/lists/", {"name": "Theirs"}, HTTP_IDEMPOTENCY_KEY="k")
    mine = api_client.post("/api/v1/lists/", {"name": "Theirs"}, HTTP_IDEMPOTENCY_KEY="k")
    assert theirs.status_code == mine.status_code == 201
    assert "Idempotent-Replayed" not in mine
    assert mine.json()["id"] != theirs.json()["id"]


# --- API2: Broken Authentication --------------------------------------------------------------


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _forged(user, other_user) -> dict[str, str]:
    access = str(RefreshToken.for_user(user).access_token)
    header, payload, signature = access.split(".")
    claims = _claims(access)
    stolen = {**claims, "user_id": str(other_user.pk)}
    expired = RefreshToken.for_user(user).access_token
    expired.set_exp(from_time=expired.current_time - timedelta(hours=1))
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(stolen)}.",
        "payload swapped, signature kept": f"{header}.{_b64(stolen)}.{signature}",
        "signed with another key": jwt.encode(
            stolen, "an-attackers-own-key-of-at-least-32-bytes", algorithm="HS256"
        ),
        "signature stripped": f"{header}.{payload}.",
        "refresh token as access": str(RefreshToken.for_user(user)),
        "expired": str(expired),
        "garbage": "not-a-jwt",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "alg none",
        "payload swapped, signature kept",
        "signed with another key",
        "signature stripped",
        "refresh token as access",
        "expired",
        "garbage",
    ],
)
def test_api2_broken_auth_forged_or_misused_tokens_are_401(user, other_user, victim_data, kind):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {_forged(user, other_user)[kind]}")
    for url in ("/api/v1/tasks/", "/api/v1/auth/me/", f"/api/v1/tasks/{victim_data['task'].pk}/"):
        response = client.get(url)
        problem(response, 401)
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"Secret" not in response.content


@pytest.mark.parametrize("header", ["", "Bearer", "Basic YWxpY2U6cGFzcw==", "Token abc"])
def test_api2_broken_auth_no_usable_credentials_is_401(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    problem(client.get("/api/v1/tasks/"), 401)


def test_api2_broken_auth_sign_in_failures_all_look_the_same(anon_client, user):
    answers = [
        anon_client.post("/api/v1/auth/token/", {"email": email, "password": password})
        for email, password in [
            ("alice@example.com", "wrong-password-123"),
            ("nobody@example.com", DEFAULT_PASSWORD),
        ]
    ]
    bodies = [problem(answer, 401) for answer in answers]
    assert bodies[0]["detail"] == bodies[1]["detail"]


# --- API3: Broken Object Property Level Authorization (mass assignment, exposure) -------------


def test_api3_bopla_read_only_task_fields_and_the_owner_cannot_be_set(api_client, user, other_user):
    forced_id = uuid.uuid4()
    response = api_client.post(
        "/api/v1/tasks/",
        {
            "title": "Mine",
            "id": str(forced_id),
            "owner": str(other_user.pk),
            "version": 99,
            "position": -5,
            "completed_at": "2000-01-01T00:00:00Z",
            "created_at": "2000-01-01T00:00:00Z",
            "next_occurrence": str(uuid.uuid4()),
            "search_vector": "x",
        },
    )
    assert response.status_code == 201
    body = response.json()
    task = Task.objects.get(pk=body["id"])
    assert task.pk != forced_id
    assert task.owner == user
    assert (task.version, task.completed_at, task.next_occurrence) == (1, None, None)
    assert task.position >= 0 and not body["created_at"].startswith("2000")
    assert "owner" not in body and "search_vector" not in body

    patched = api_client.patch(
        f"/api/v1/tasks/{task.pk}/", {"owner": str(other_user.pk), "version": 1000}
    )
    assert patched.status_code == 200
    task.refresh_from_db()
    assert task.owner == user and task.version == 1


def test_api3_bopla_a_user_cannot_make_themselves_staff_or_change_their_email(api_client, user):
    response = api_client.patch(
        "/api/v1/auth/me/",
        {
            "is_staff": True,
            "is_superuser": True,
            "email": "admin@example.com",
            "id": str(uuid.uuid4()),
            "date_joined": "2000-01-01T00:00:00Z",
            "token_generation": 0,
        },
    )
    assert response.status_code == 200
    user.refresh_from_db()
    assert not user.is_staff and not user.is_superuser
    assert user.email == "alice@example.com"
    assert set(response.json()) == {"id", "email", "display_name", "timezone", "date_joined"}


def test_api3_bopla_register_ignores_privilege_fields(anon_client):
    response = anon_client.post(
        "/api/v1/auth/register/",
        {
            "email": "eve@example.com",
            "password": "a-long-enough-passphrase",
            "is_staff": True,
            "is_superuser": True,
            "is_active": False,
        },
    )
    assert response.status_code == 201
    eve = User.objects.get(email="eve@example.com")
    assert (eve.is_staff, eve.is_superuser, eve.is_active) == (False, False, True)
    assert "password" not in json.dumps(response.json()["user"])


# --- API4: Unrestricted Resource Consumption --------------------------------------------------


def test_api4_resource_consumption_a_body_over_1_mib_is_413_before_parsing(api_client):
    body = json.dumps({"title": "x", "description": "d" * (1024 * 1024)})
    response = api_client.post("/api/v1/tasks/", body, content_type="application/json")
    problem(response, 413)
    assert not Task.objects.exists()


def test_api4_resource_consumption_a_page_is_at_most_200_tasks(api_client, user):
    Task.objects.bulk_create(
        Task(owner=user, title=f"T{i}", position=i * POSITION_GAP) for i in range(205)
    )
    body = api_client.get("/api/v1/tasks/?limit=100000").json()
    assert body["count"] == 205
    assert len(body["results"]) == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "t" * 201}, "title"),
        ({"title": "x", "description": "d" * 10_001}, "description"),
        ({"title": "x", "tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"title": "x", "tags": ["t" * 51]}, "tags"),
    ],
)
def test_api4_resource_consumption_string_lengths_and_tags_per_task_are_capped(
    api_client, body, field
):
    assert field in problem(api_client.post("/api/v1/tasks/", body), 400)["errors"]


def test_api4_resource_consumption_bulk_takes_at_most_500_ids(api_client):
    ids = [str(uuid.uuid4()) for _ in range(501)]
    body = problem(api_client.post("/api/v1/tasks/bulk/", {"action": "complete", "ids": ids}), 400)
    assert "ids" in body["errors"]


def test_api4_resource_consumption_tasks_per_user_are_capped(api_client, user, settings):
    settings.MAX_TASKS_PER_USER = 3
    Task.objects.bulk_create(
        Task(owner=user, title=f"T{i}", position=i * POSITION_GAP) for i in range(3)
    )
    problem(api_client.post("/api/v1/tasks/", {"title": "One too many"}), 409)
    assert Task.objects.filter(owner=user).count() == 3


def test_api4_resource_consumption_requests_per_user_are_rate_limited(api_client, settings):
    settings.RATE_LIMIT_USER = "3/m"
    for _ in range(3):
        assert api_client.get("/api/v1/tasks/").status_code == 200
    response = api_client.get("/api/v1/tasks/")
    problem(response, 429)
    assert int(response["Retry-After"]) >= 1


# --- API5: Broken Function Level Authorization ------------------------------------------------


def test_api5_bfla_an_api_user_cannot_reach_the_admin(user):
    admin_url = "/" + django_settings.ADMIN_URL
    with_token = Client(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    response = with_token.get(admin_url)
    assert response.status_code == 302 and "/login/" in response["Location"]

    browser = Client()
    response = browser.post(
        admin_url + "login/", {"username": user.email, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200  # the form again, with an error: not staff
    assert browser.get(admin_url + "accounts/user/").status_code == 302


def test_api5_bfla_no_admin_functions_under_the_api(api_client):
    for url in ("/api/v1/users/", "/api/v1/admin/", "/api/v1/auth/users/"):
        problem(api_client.get(url), 404)


# --- API6: Unrestricted Access to Sensitive Business Flows -----------------------------------


def test_api6_sensitive_flows_sign_in_brute_force_is_rate_limited(anon_client, user, settings):
    settings.RATE_LIMIT_LOGIN = "5/m"
    for attempt in range(5):
        body = {"email": "alice@example.com", "password": f"guess-{attempt}-xxxxxxxx"}
        assert anon_client.post("/api/v1/auth/token/", body).status_code == 401
    # Even the right password is refused now: the attacker learns nothing more this minute.
    right = {"email": "alice@example.com", "password": DEFAULT_PASSWORD}
    problem(anon_client.post("/api/v1/auth/token/", right), 429)


def test_api6_sensitive_flows_password_reset_does_not_reveal_accounts(anon_client, user):
    known = anon_client.post("/api/v1/auth/password/reset/", {"email": "alice@example.com"})
    unknown = anon_client.post("/api/v1/auth/password/reset/", {"email": "bob@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.content == unknown.content
    assert [message.to for message in sent_mail()] == [["alice@example.com"]]


# --- API7: Server Side Request Forgery ---------------------------------------------------------


def _walk(node, path="#"):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


def test_api7_ssrf_does_not_apply_no_input_is_a_url_the_service_would_fetch():
    """The service fetches no URLs (its only outbound traffic is SMTP to a configured host):
    no request body, parameter or header of the schema takes a URL. (Answers do carry URLs
    of our own: the `next` / `previous` page links.)"""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    suspicious = re.compile(r"url|uri|href|callback|webhook|link|fetch|avatar|image", re.IGNORECASE)
    inputs = [
        (f"#/components/schemas/{name}", component)
        for name, component in schema["components"]["schemas"].items()
        if name.endswith("Request")
    ] + [
        (f"{method} {path}", parameter)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
    ]
    assert len(inputs) > 10
    for where, node in inputs:
        for path, part in _walk(node, where):
            assert part.get("format") not in {"uri", "url", "uri-reference", "iri"}, path
            if path.endswith("/properties"):
                assert not [name for name in part if suspicious.search(name)], path
            if part.get("in") in {"query", "header", "path"}:
                assert not suspicious.search(part["name"]), path


# --- API8: Security Misconfiguration -----------------------------------------------------------


def test_api8_misconfiguration_debug_is_off_and_errors_show_no_internals(anon_client):
    assert django_settings.DEBUG is False
    response = anon_client.get("/api/v1/does-not-exist/")
    problem(response, 404)
    assert b"Traceback" not in response.content and b"urlpatterns" not in response.content


@pytest.mark.urls("todo_project.tests.urls")
def test_api8_misconfiguration_a_crash_is_a_bare_500_problem(anon_client):
    anon_client.raise_request_exception = False
    response = anon_client.get("/api/v1/test/boom/")
    body = problem(response, 500)
    assert "secret internals" not in json.dumps(body) and "Traceback" not in json.dumps(body)


def test_api8_misconfiguration_cors_answers_only_configured_origins(anon_client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    preflight = {"HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST"}
    evil = anon_client.options(
        "/api/v1/auth/token/", HTTP_ORIGIN="https://evil.example", **preflight
    )
    assert "Access-Control-Allow-Origin" not in evil
    good = anon_client.options(
        "/api/v1/auth/token/", HTTP_ORIGIN="https://app.example.com", **preflight
    )
    assert good["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Access-Control-Allow-Credentials" not in good


def test_api8_misconfiguration_security_headers_and_no_version_leak(api_client):
    response = api_client.get("/api/v1/tasks/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert "X-Powered-By" not in response and "Server" not in response
    # gunicorn names itself in `Server`, without a version.
    assert not re.search(r"\d", gunicorn.SERVER)


def test_api8_misconfiguration_unexpected_methods_are_405_problems(api_client):
    for method in ("TRACE", "PUT"):
        response = api_client.generic(method, "/api/v1/tasks/")
        problem(response, 405)
        assert "GET" in response["Allow"]


# --- API9: Improper Inventory Management -------------------------------------------------------


def _routes(patterns, prefix="/"):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def _as_openapi_path(route: str) -> str:
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route)
    route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
    return route.replace("^", "").replace("$", "").replace("{pk}", "{id}")


def test_api9_inventory_the_schema_lists_every_api_route_and_nothing_else():
    routes = {_as_openapi_path(route) for route in _routes(get_resolver().url_patterns)}
    api_routes = {route for route in routes if route.startswith("/api/v1/")}
    schema = SchemaGenerator().get_schema(request=None, public=True)
    probes = {"/healthz", "/readyz"}  # outside the API, listed with it by the contract
    assert probes <= routes
    assert api_routes | probes == set(schema["paths"])
    # One version only, and nothing under /api/ but it and its documentation.
    assert {route for route in routes if route.startswith("/api/")} - api_routes == {
        "/api/schema/",
        "/api/docs/",
        "/api/redoc/",
    }


def test_api9_inventory_only_the_contracts_public_operations_work_without_a_token():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    public = {
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if not any(operation.get("security", [{}]))
    }
    assert public == {
        "GET /healthz",
        "GET /readyz",
        "POST /api/v1/auth/register/",
        "POST /api/v1/auth/token/",
        "POST /api/v1/auth/token/refresh/",
        "POST /api/v1/auth/password/reset/",
        "POST /api/v1/auth/password/reset/confirm/",
    }


# --- API10: Unsafe Consumption of APIs ---------------------------------------------------------


def test_api10_unsafe_consumption_a_forged_x_forwarded_for_buys_no_fresh_bucket(
    anon_client, settings
):
    """The service consumes no third-party API. The only third-party input it could trust is
    a proxy's X-Forwarded-For: with TRUSTED_PROXY_COUNT=0 (no proxy) it is ignored."""
    settings.RATE_LIMIT_ANON = "2/m"
    settings.TRUSTED_PROXY_COUNT = 0
    statuses = [
        anon_client.post(
            "/api/v1/auth/password/reset/",
            {"email": "x@example.com"},
            HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
        ).status_code
        for n in range(3)
    ]
    assert statuses == [202, 202, 429]


def test_api10_unsafe_consumption_a_client_supplied_request_id_is_sanitised(api_client):
    response = api_client.get("/api/v1/tasks/", HTTP_X_REQUEST_ID="<script>\r\nSet-Cookie: x")
    assert "<" not in response["X-Request-ID"] and "\n" not in response["X-Request-ID"]
