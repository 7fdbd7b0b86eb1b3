import io
import re
from datetime import datetime
from pathlib import Path

import jsonschema_rs
import pytest
from django.core.management import call_command
from django.test import RequestFactory
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.views import SpectacularAPIView

from tasks.models import Task
from todo_project.fields import HOUR_MINUTE
from todo_project.problems import MAX_URL_BYTES
from todo_project.schema import ERROR_DESCRIPTIONS
from todo_project.schema_view import _cached_schema


def test_the_openapi_schema_builds_without_warnings(capsys):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    captured = capsys.readouterr()
    assert "Warning" not in captured.err and "Error" not in captured.err


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/", "/api/redoc/"])
def test_schema_and_docs_are_served_without_auth(anon_client, path):
    response = anon_client.get(path)
    assert response.status_code == 200


@pytest.mark.django_db
def test_docs_use_no_cdn(anon_client):
    for path in ("/api/docs/", "/api/redoc/"):
        html = anon_client.get(path).content.decode()
        assert re.findall(r'(?:src|href)="(?:https?:)?//', html) == [], path  # no other origin
        assert "/static/drf_spectacular_sidecar/" in html
    # Redoc's bundle itself fetches its logo from cdn.redoc.ly: the pages' policy refuses it.
    redoc = anon_client.get("/api/redoc/")
    assert "img-src 'self' data:;" in redoc["Content-Security-Policy"] + ";"


def test_every_api_operation_documents_the_503_and_every_shared_error_says_what_it_means():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations_seen = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if path.startswith("/api/v1/"):  # a read too, when the database is unavailable
                operations_seen += 1
                assert responses["503"]["description"] == ERROR_DESCRIPTIONS[503], (method, path)
            for code in set(responses) & {str(code) for code in ERROR_DESCRIPTIONS}:
                assert responses[code]["description"], (method, path, code)
    assert operations_seen > 20


def test_a_resource_answer_requires_every_field_it_always_carries():
    # Generated clients typed fields like `due_date` or `tags` as optional before.
    components = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    for name in ("Task", "TaskList", "Tag", "User"):
        component = components[name]
        assert component["required"] == sorted(component["properties"]), name
    assert "due_date" not in components["TaskRequest"].get("required", [])


def test_due_time_is_described_by_its_hh_mm_pattern_not_format_time():
    # OpenAPI's `format: time` is RFC 3339's HH:MM:SS with an offset, which the API refuses.
    components = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    for name in ("Task", "TaskRequest", "PatchedTaskRequest"):
        due_time = components[name]["properties"]["due_time"]
        assert "format" not in due_time and due_time["pattern"] == HOUR_MINUTE, name


def test_every_answer_documents_its_x_request_id():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    answers = [
        (path, method, code, response)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for code, response in operation["responses"].items()
    ]
    assert len(answers) > 100
    for path, method, code, response in answers:
        assert "X-Request-ID" in response.get("headers", {}), (path, method, code)


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_every_email_input_says_its_254_characters(schema):
    components = schema["components"]["schemas"]
    for name in ("RegisterRequest", "TokenObtainRequest", "PasswordResetRequest"):
        assert components[name]["properties"]["email"]["maxLength"] == 254, name


def test_deleting_the_account_documents_its_password_body(schema):
    delete = schema["paths"]["/api/v1/auth/me/"]["delete"]
    body = delete["requestBody"]
    assert body["required"] is True
    assert body["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/CurrentPasswordRequest"}}
    }
    assert schema["components"]["schemas"]["CurrentPasswordRequest"]["required"] == ["password"]
    # What reading a body can answer, as on any POST.
    assert {"400", "413", "415"} <= set(delete["responses"])


def test_deleting_the_account_documents_the_403_of_a_staff_account(schema):
    # The API refuses a staff account's DELETE me/ (its admin history would go with it); the
    # schema listed 204, 400, 401 and 429 only (review 30j).
    refused = schema["paths"]["/api/v1/auth/me/"]["delete"]["responses"]["403"]
    assert "application/problem+json" in refused["content"]
    assert "staff account" in refused["description"]
    assert "deactivates" in refused["description"]


def test_no_other_delete_documents_a_body(schema):
    deletes = [
        path
        for path, operations in schema["paths"].items()
        if "requestBody" in operations.get("delete", {})
    ]
    assert deletes == ["/api/v1/auth/me/"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/auth/register/", "201"),
        ("/api/v1/auth/token/", "200"),
        ("/api/v1/auth/token/refresh/", "200"),
    ],
)
def test_answers_with_tokens_document_cache_control_no_store(schema, path, status):
    responses = schema["paths"][path]["post"]["responses"]
    assert status in responses
    for code, response in responses.items():  # errors too: that is what the server sends
        cache_control = response["headers"]["Cache-Control"]["schema"]
        assert cache_control == {"type": "string", "enum": ["no-store"]}, code


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/v1/auth/register/", "/api/v1/auth/token/", "/api/v1/auth/token/refresh/"]
)
def test_every_answer_of_a_token_endpoint_is_no_store_even_one_made_before_the_view(
    anon_client, path, settings
):
    settings.MAX_REQUEST_BODY_BYTES = 100
    invalid = anon_client.post(path, {}, format="json")
    too_large = anon_client.post(path, {"email": "x" * 200}, format="json")
    assert (invalid.status_code, too_large.status_code) == (400, 413)
    for response in (invalid, too_large):
        assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_the_probes_are_in_the_schema_as_they_answer(schema, anon_client):
    healthz = schema["paths"]["/healthz"]["get"]
    readyz = schema["paths"]["/readyz"]["get"]
    refused = {"400", "411", "413", "414"}  # ApiProblemMiddleware's, before any view
    assert set(healthz["responses"]) == {"200", *refused}
    assert anon_client.get("/healthz", {"x": "x" * MAX_URL_BYTES}).status_code == 414
    assert set(readyz["responses"]) == {"200", "503", *refused}
    body = readyz["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(anon_client.get("/readyz").json()) == set(body["required"])
    problem = readyz["responses"]["503"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    assert healthz["security"] == readyz["security"] == [{}]
    for path, operation in (("/healthz", healthz), ("/readyz", readyz)):
        answers = {
            "400": anon_client.get(path, QUERY_STRING="x=%FF"),
            "411": anon_client.get(path, HTTP_TRANSFER_ENCODING="chunked"),
            "413": anon_client.get(path, CONTENT_LENGTH=str(10**9)),
        }
        for code, answer in answers.items():
            assert str(answer.status_code) == code
            assert answer["Content-Type"] == "application/problem+json"
            documented = operation["responses"][code]["content"]["application/problem+json"]
            component = documented["schema"]["$ref"].rsplit("/", 1)[1]
            required = set(schema["components"]["schemas"][component]["required"])
            assert required <= set(answer.json())


def test_the_password_reset_says_when_it_answers_400(schema):
    reset = schema["paths"]["/api/v1/auth/password/reset/"]["post"]
    assert "Always 202" not in reset["description"]
    assert "400" in reset["description"] and "400" in reset["responses"]


def test_every_operation_documents_the_406_of_an_accept_without_json(schema):
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            assert "406" in operation["responses"], (method, path)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/tasks/", "/api/v1/lists/", "/api/v1/tags/"])
@pytest.mark.parametrize("value", ["xml", "csv", "api", "json"])
def test_a_format_parameter_is_ignored_like_any_unknown_one(api_client, path, value):
    # DRF's URL_FORMAT_OVERRIDE answered 404 "Not found" to ?format=xml of a collection.
    response = api_client.get(path, {"format": value})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_the_schema_still_takes_its_format_parameter(anon_client):
    response = anon_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


def test_a_patch_body_has_no_defaults_a_client_would_send(schema):
    """A generated client fills a field's default in: with PatchedTaskRequest's `completed:
    false` and `description: ""`, renaming a completed task reopened it and cleared its text."""
    patched = {
        name: component
        for name, component in schema["components"]["schemas"].items()
        if name.startswith("Patched")
    }
    assert {"PatchedTaskRequest", "PatchedTagRequest", "PatchedUserRequest"} <= set(patched)
    for name, component in patched.items():
        defaults = [f for f, field in component["properties"].items() if "default" in field]
        assert defaults == [], name
    assert schema["components"]["schemas"]["TaskRequest"]["properties"]["completed"] == {
        "type": "boolean",
        "description": "Default `false`.",
    }  # a PUT replaces: its defaults are real, and said (the test below says why not `default`)


def test_every_api_answer_documents_the_rate_limit_headers_and_when_to_retry(schema):
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/"):
            continue  # the probes are not rate limited
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                headers = response.get("headers", {})
                # Those answered before the request is counted carry none (the test below).
                counted = code not in {"406", "411", "413", "414"}
                assert (
                    {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(headers)
                ) is counted, (path, method, code)
                if code in {"429", "503"}:
                    assert "Retry-After" in headers, (path, method, code)
                if code == "412":
                    assert "ETag" in headers, (path, method, code)


def test_errors_documented_are_the_ones_an_operation_can_give(schema):
    paths = schema["paths"]
    # A GET reads no body: nothing to refuse with a 415.
    assert "415" not in paths["/api/v1/lists/"]["get"]["responses"]
    assert "415" not in paths["/api/v1/tags/"]["get"]["responses"]
    assert "400" in paths["/api/v1/tasks/"]["get"]["responses"]
    # A chunked body is refused before the view.
    assert "411" in paths["/api/v1/tasks/"]["post"]["responses"]
    assert "WWW-Authenticate" in paths["/api/v1/tasks/"]["get"]["responses"]["401"]["headers"]
    # A refused token past its IP's limit is a 429 that still says so.
    assert "WWW-Authenticate" in paths["/api/v1/tasks/"]["get"]["responses"]["429"]["headers"]


def test_the_task_page_says_next_and_previous_are_always_there_with_this_apis_links(schema):
    page = schema["components"]["schemas"]["PaginatedTaskList"]
    assert page["required"] == ["count", "next", "previous", "results"]
    assert page["properties"]["next"]["example"].startswith(
        "https://todo.example.com/api/v1/tasks/"
    )


def test_one_problem_component_per_shape(schema):
    """A generated client got three types for one problem (Problem, ProblemDetails with an
    optional `errors`, ValidationProblem) depending on the module that documented it."""
    used: dict[str, set[str]] = {}
    for operations in schema["paths"].values():
        for operation in operations.values():
            for code, response in operation["responses"].items():
                body = response.get("content", {}).get("application/problem+json")
                if body:
                    used.setdefault(code, set()).add(body["schema"]["$ref"].split("/")[-1])
    assert used.pop("400") == {"ValidationProblem"}
    assert used.pop("404") == {"Problem", "MissingTasksProblem"}  # the bulk's names its ids
    assert set().union(*used.values()) == {"Problem"}
    components = schema["components"]["schemas"]
    assert "type" in components["Problem"]["required"]
    assert "errors" in components["ValidationProblem"]["required"]


def _as_json_schema(node):
    """OpenAPI 3.0's `nullable: true` as JSON Schema says it (jsonschema ignores `nullable`),
    and objects closed: an example must not show a field the API does not have."""
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _as_json_schema(value) for key, value in node.items() if key != "nullable"}
    if "properties" in converted:
        converted.setdefault("additionalProperties", False)
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def _examples(schema):
    """(where, example value, the schema it shows) for every example of a body, request or
    answer, in the schema."""
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            bodies = [("request", operation.get("requestBody", {}))]
            bodies += [(code, answer) for code, answer in operation["responses"].items()]
            for code, body in bodies:
                for media_type, content in body.get("content", {}).items():
                    for name, example in content.get("examples", {}).items():
                        where = f"{method.upper()} {path} {code} {media_type}: {name}"
                        yield where, example["value"], content["schema"]


def test_every_example_is_valid_by_the_schema_it_illustrates(schema):
    # A frontend developer copies an example before reading the types: one that drifted from
    # the serializers (a renamed field, a wrong format) misleads. Swagger UI shows them all.
    from jsonschema import Draft202012Validator, FormatChecker

    formats = FormatChecker()  # uuid, date and idn-email built in; date-time needs a package

    @formats.checks("date-time", raises=ValueError)
    def _timestamp(value) -> bool:
        return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None

    components = _as_json_schema(schema["components"])
    checked = 0
    for where, value, body_schema in _examples(schema):
        # Beside the components, so that its `#/components/...` references resolve.
        validator = Draft202012Validator(
            {**_as_json_schema(body_schema), "components": components},
            format_checker=formats,
        )
        errors = [error.message for error in validator.iter_errors(value)]
        assert errors == [], where
        checked += 1
    assert checked >= 30


@pytest.mark.django_db
def test_the_rate_limit_headers_are_sent_where_the_schema_says_and_only_there(api_client, schema):
    # The schema listed them on every answer; a 406 (content negotiation) and a 413 (the body
    # cap) are answered before the request is counted, and never carried them.
    responses = schema["paths"]["/api/v1/tasks/"]["post"]["responses"]
    sent = {
        "406": api_client.post("/api/v1/tasks/", {"title": "a"}, HTTP_ACCEPT="text/html"),
        "413": api_client.post(
            "/api/v1/tasks/", b"[" + b" " * (1024 * 1024) + b"]", content_type="application/json"
        ),
        "415": api_client.post("/api/v1/tasks/", b"title=a", content_type="text/plain"),
        "414": api_client.post("/api/v1/tasks/?x=" + "x" * MAX_URL_BYTES, {"title": "a"}),
    }
    for code, response in sent.items():
        assert str(response.status_code) == code
        documented = "RateLimit-Limit" in responses[code]["headers"]
        assert response.has_header("RateLimit-Limit") is documented, code
    assert responses["415"]["headers"]["RateLimit-Limit"]  # one that carries them, checked too


def test_the_examples_of_a_create_show_a_new_object(schema):
    # They showed version 4 and a new list holding 7 tasks: what mock servers then served.
    paths = schema["paths"]
    (task,) = paths["/api/v1/tasks/"]["post"]["responses"]["201"]["content"]["application/json"][
        "examples"
    ].values()
    (task_list,) = paths["/api/v1/lists/"]["post"]["responses"]["201"]["content"][
        "application/json"
    ]["examples"].values()
    assert task["value"]["version"] == 1
    assert task["value"]["created_at"] == task["value"]["updated_at"]
    assert task_list["value"]["task_count"] == task_list["value"]["open_task_count"] == 0
    assert task_list["value"]["created_at"] == task_list["value"]["updated_at"]


def test_only_a_collections_list_repeats_its_viewsets_description(schema):
    # drf-spectacular gave the viewset's docstring to every action without one of its own.
    from drf_spectacular.plumbing import get_doc

    from tasks.views import TagViewSet, TaskListViewSet, TaskViewSet

    for viewset, path, list_path in [
        (TaskListViewSet, "/api/v1/lists/{id}/", "/api/v1/lists/"),
        (TagViewSet, "/api/v1/tags/{name}/", "/api/v1/tags/"),
        (TaskViewSet, "/api/v1/tasks/{id}/", "/api/v1/tasks/"),
    ]:
        collection = get_doc(viewset)
        assert collection.startswith("Your ")
        operations = [*schema["paths"][path].values(), schema["paths"][list_path].get("post", {})]
        for operation in operations:
            assert collection not in operation.get("description", ""), operation["operationId"]


@pytest.mark.django_db
def test_a_refused_sign_in_or_refresh_sends_the_challenge_the_schema_lists(anon_client, schema):
    refused = {
        "/api/v1/auth/token/": anon_client.post(
            "/api/v1/auth/token/", {"email": "nobody@example.com", "password": "wrong-password"}
        ),
        "/api/v1/auth/token/refresh/": anon_client.post(
            "/api/v1/auth/token/refresh/", {"refresh": "not-a-token"}
        ),
    }
    for path, response in refused.items():
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'
        assert "WWW-Authenticate" in schema["paths"][path]["post"]["responses"]["401"]["headers"]


def _component_errors(schema, name: str, value) -> list[str]:
    """What a client checking formats (ajv-formats, Zod; jsonschema-rs here, schemathesis'
    validator) says of `value` against the component `name`, references resolved."""
    components = schema["components"]["schemas"]

    def resolved(node):
        if isinstance(node, list):
            return [resolved(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return resolved(components[node["$ref"].rsplit("/", 1)[1]])
        return {k: resolved(v) for k, v in node.items() if k not in ("readOnly", "writeOnly")}

    validator = jsonschema_rs.validator_for(resolved(components[name]), validate_formats=True)
    return [error.message for error in validator.iter_errors(value)]


@pytest.mark.django_db
def test_an_email_with_a_unicode_domain_is_valid_by_the_schema_in_and_out(anon_client, schema):
    # `format: email` is RFC 5322's ASCII: clients refused `GET me/` of such a user, and their
    # forms the addresses that register and the reset take.
    body = {"email": "anna@xn--exmple-cua.com", "password": "correct-horse-battery-staple"}
    response = anon_client.post("/api/v1/auth/register/", body, format="json")
    assert response.status_code == 201
    user = response.json()["user"]
    assert user["email"] == "anna@exämple.com"  # stored and answered with its domain in Unicode
    assert _component_errors(schema, "User", user) == []
    register = {**body, "email": "bea@exämple.com"}
    assert anon_client.post("/api/v1/auth/register/", register, format="json").status_code == 201
    assert _component_errors(schema, "RegisterRequest", register) == []
    reset = {"email": "anna@exämple.com"}
    assert anon_client.post("/api/v1/auth/password/reset/", reset, format="json").status_code == 202
    assert _component_errors(schema, "PasswordResetRequest", reset) == []


@pytest.mark.django_db
def test_a_task_position_is_an_int64_as_it_grows_past_32_bits(api_client, schema):
    # It was a plain `integer`, which Java and Kotlin clients decode as 32 bits.
    last = api_client.post("/api/v1/tasks/", {"title": "Last"}, format="json").json()
    Task.objects.filter(pk=last["id"]).update(position=2**31 - 1)
    response = api_client.post("/api/v1/tasks/", {"title": "Next"}, format="json")
    assert response.status_code == 201
    assert response.json()["position"] > 2**31 - 1
    assert schema["components"]["schemas"]["Task"]["properties"]["position"]["format"] == "int64"


@pytest.mark.django_db
def test_the_bulk_body_is_required(api_client, schema):
    # drf-spectacular leaves a oneOf body optional: clients typed it `body?`, for a 400.
    response = api_client.generic(
        "POST", "/api/v1/tasks/bulk/", b"", content_type="application/json"
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"action", "ids"}
    assert schema["paths"]["/api/v1/tasks/bulk/"]["post"]["requestBody"]["required"] is True


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "url"),
    [
        ("get", "/api/v1/auth/me/", "/api/v1/auth/me/"),
        ("get", "/api/v1/lists/", "/api/v1/lists/"),
        ("get", "/api/v1/lists/{id}/", "/api/v1/lists/{list}/"),
        ("get", "/api/v1/tags/", "/api/v1/tags/"),
        ("delete", "/api/v1/tags/{name}/", "/api/v1/tags/home/"),
        ("get", "/api/v1/tasks/{id}/", "/api/v1/tasks/{task}/"),
        ("delete", "/api/v1/tasks/{id}/", "/api/v1/tasks/{task}/"),
    ],
)
def test_an_operation_without_parameters_documents_the_400_of_a_query_not_utf8(
    api_client, schema, method, path, url
):
    # Only operations with a body, a key or a list's parameters listed the 400.
    task_list = api_client.post("/api/v1/lists/", {"name": "Home"}, format="json").json()
    task = api_client.post("/api/v1/tasks/", {"title": "T", "tags": ["home"]}, format="json")
    response = getattr(api_client, method)(
        url.format(list=task_list["id"], task=task.json()["id"]) + "?x=%FF"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"x": ["This value is not valid UTF-8."]}
    assert "400" in schema["paths"][path][method]["responses"]


@pytest.mark.django_db
def test_every_operation_documents_the_411_413_and_414_whatever_its_method(api_client, schema):
    # Only operations that read a body listed them; the middleware answers them before any view.
    task = api_client.post("/api/v1/tasks/", {"title": "T"}, format="json").json()
    too_large = api_client.delete(
        f"/api/v1/tasks/{task['id']}/",
        b"[" + b" " * (1024 * 1024) + b"]",
        content_type="application/json",
    )
    chunked = api_client.get("/api/v1/auth/me/", HTTP_TRANSFER_ENCODING="chunked")
    too_long = api_client.delete(f"/api/v1/tasks/{task['id']}/?x=" + "x" * MAX_URL_BYTES)
    assert (too_large.status_code, chunked.status_code, too_long.status_code) == (413, 411, 414)
    for path, operations in schema["paths"].items():
        if path.startswith("/api/v1/"):
            for method, operation in operations.items():
                assert {"400", "411", "413", "414"} <= set(operation["responses"]), (method, path)


def _task_list_parameter(schema, name: str) -> dict:
    (parameter,) = [
        p for p in schema["paths"]["/api/v1/tasks/"]["get"]["parameters"] if p["name"] == name
    ]
    return parameter


@pytest.mark.django_db
def test_a_tag_filter_name_is_counted_trimmed_and_composed_as_the_schema_says(api_client, schema):
    # Its items claimed a raw maxLength of 50, refusing names padded or decomposed that it finds.
    name = "x" * 50
    api_client.post("/api/v1/tasks/", {"title": "T", "tags": [name]}, format="json")
    validator = jsonschema_rs.validator_for(_task_list_parameter(schema, "tag")["schema"])
    for value in (f" {name} ", "e\u0301" * 50):
        assert api_client.get("/api/v1/tasks/", {"tag": value}).status_code == 200, value
        assert validator.is_valid([value]), value
    assert api_client.get("/api/v1/tasks/", {"tag": f" {name} "}).json()["count"] == 1


@pytest.mark.django_db
def test_the_caps_on_tag_filters_and_the_search_text_are_in_the_schema(api_client, schema):
    # Neither was documented: a 21st tag or a 201st character was a 400 no client was told of.
    tags = [f"t{i}" for i in range(21)]
    assert api_client.get("/api/v1/tasks/", {"tag": tags[:20]}).status_code == 200
    response = api_client.get("/api/v1/tasks/", {"tag": tags})
    assert response.json()["errors"] == {"tag": ["At most 20 tags."]}
    tag = _task_list_parameter(schema, "tag")
    assert tag["schema"]["maxItems"] == 20 and "at most 20" in tag["description"]
    assert not jsonschema_rs.validator_for(tag["schema"]).is_valid(tags)

    padded = " " + "x" * 200 + " "  # counted trimmed: no raw maxLength could say it
    assert api_client.get("/api/v1/tasks/", {"search": padded}).status_code == 200
    response = api_client.get("/api/v1/tasks/", {"search": "x" * 201})
    assert response.json()["errors"]["search"] == ["At most 200 characters."]
    search = _task_list_parameter(schema, "search")
    assert "maxLength" not in search["schema"]
    assert "At most 200 characters, surrounding whitespace not counted" in search["description"]


def _request_components(schema: dict) -> set[str]:
    """The components some operation's request body names (directly or in a oneOf)."""
    names = set()
    for operations in schema["paths"].values():
        for operation in operations.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                body = media["schema"]
                for ref in [
                    body.get("$ref"),
                    *(part.get("$ref") for part in body.get("oneOf", [])),
                ]:
                    if ref:
                        names.add(ref.rsplit("/", 1)[1])
    return names


@pytest.mark.django_db
def test_a_field_a_request_may_leave_out_has_its_default_in_words_not_as_default(
    schema, api_client, anon_client
):
    """openapi-typescript (default `defaultNonNullable`) types a property with a `default` as
    required in a component: a task create with only a title, or a registration without a
    time zone, did not compile, though the server takes both (review 31e)."""
    assert api_client.post("/api/v1/tasks/", {"title": "Only"}, format="json").status_code == 201
    registered = anon_client.post(
        "/api/v1/auth/register/",
        {"email": "ts@example.com", "password": "correct-horse-battery-staple-9"},
        format="json",
    )
    assert registered.status_code == 201 and registered.json()["user"]["timezone"] == "UTC"
    components = schema["components"]["schemas"]
    bodies = _request_components(schema)
    assert {"TaskRequest", "RegisterRequest", "PatchedTaskRequest"} <= bodies
    with_default = [
        f"{name}.{field}"
        for name in bodies
        for field, spec in components[name].get("properties", {}).items()
        if "default" in spec
    ]
    assert with_default == []
    register = components["RegisterRequest"]["properties"]
    assert register["timezone"]["description"] == 'Default `"UTC"`.'
    assert register["display_name"]["description"].endswith(' Default `""`.')


def test_an_enum_whose_values_are_not_identifiers_names_its_members(schema):
    """openapi-python-client named `-created_at` … `-updated_at` VALUE_0 … VALUE_5 by their
    place: one more ordering field sorted before them would silently turn a client's
    `-priority` into another sort (review 31e)."""
    ordering = next(
        parameter["schema"]["items"]
        for parameter in schema["paths"]["/api/v1/tasks/"]["get"]["parameters"]
        if parameter["name"] == "ordering"
    )
    names = dict(zip(ordering["enum"], ordering["x-enum-varnames"], strict=True))
    assert names["-priority"] == "DESC_PRIORITY" and names["due_date"] == "DUE_DATE"
    assert len(set(names.values())) == len(names)


def test_an_operation_id_says_what_the_operation_does(schema):
    """Generated clients name their functions after these: `update` is a PUT that resets
    what it is not sent, never a PATCH; a POST action is not a `create` (review 31e)."""
    ids = {
        (method.upper(), path): operation["operationId"]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }
    for (method, path), operation_id in ids.items():
        if method == "PATCH":
            assert operation_id.endswith("_partial_update"), (path, operation_id)
        if method == "PUT":
            assert operation_id.endswith("_update") and "partial" not in operation_id, path
    assert ids["POST", "/api/v1/tasks/bulk/"] == "tasks_bulk"
    assert ids["POST", "/api/v1/tasks/{id}/move/"] == "tasks_move"
    assert ids["GET", "/api/v1/tasks/changes/"] == "tasks_changes"
    assert len(set(ids.values())) == len(ids)


def test_the_schema_and_the_readme_state_the_recurrence_rules_caps(schema):
    # A rule with COUNT=1095 ("daily, for 3 years") was a 400 that no document announced:
    # RFC 5545 has no such bound (review 31c).
    from django.conf import settings

    from tasks.recurrence import MAX_COUNT, MAX_INTERVAL

    properties = schema["components"]["schemas"]["TaskRequest"]["properties"]
    description = properties["recurrence"]["description"]
    caps = (Path(settings.BASE_DIR) / "README.md").read_text().split("**Caps**", 1)[1]
    caps_table = caps.split("\n\n", 2)[1]
    for key, cap in (("INTERVAL", MAX_INTERVAL), ("COUNT", MAX_COUNT)):
        assert re.search(rf"{key}[^.]*? at most {cap:,}", description), (key, description)
        assert re.search(rf"{key}[^|]*? at most {cap:,}", caps_table), key


@pytest.mark.django_db
def test_a_query_parameter_of_a_serializer_keeps_its_default_and_its_description(anon_client):
    """5c255b2 moved every request `default` into the description, for bodies. A serializer
    given as `parameters=` (ListDeleteQuerySerializer) goes through the same
    _map_basic_serializer: DELETE lists/{id}/'s `tasks` lost `default: "inbox"` (limit, offset
    and tasks/changes/'s limit keep theirs, 54e1504 added one), and the sentence was glued to
    the enum's last bullet: "* `delete` - delete Default `\"inbox\"`."."""
    schema = anon_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    parameters = schema["paths"]["/api/v1/lists/{id}/"]["delete"]["parameters"]
    tasks = next(parameter for parameter in parameters if parameter["name"] == "tasks")
    assert tasks["schema"].get("default") == "inbox", tasks
    assert "delete Default" not in tasks["description"], tasks["description"]


SCHEMA_FORMS = [
    "application/vnd.oai.openapi",
    "application/vnd.oai.openapi+json",
    "application/vnd.oai.openapi+json; indent=2",
]


@pytest.fixture
def built_schemas(monkeypatch):
    """Each schema the generator builds, from an empty cache."""
    _cached_schema.cache_clear()
    built = []
    get_schema = SchemaGenerator.get_schema

    def counted(self, *args, **kwargs):
        built.append(self)
        return get_schema(self, *args, **kwargs)

    monkeypatch.setattr(SchemaGenerator, "get_schema", counted)
    yield built
    _cached_schema.cache_clear()


@pytest.mark.django_db
@pytest.mark.parametrize("accept", SCHEMA_FORMS)
def test_the_cached_schema_is_drf_spectaculars_own_byte_for_byte(
    anon_client, accept, built_schemas
):
    stock = SpectacularAPIView.as_view()(RequestFactory().get("/api/schema/", HTTP_ACCEPT=accept))
    stock.render()
    for _ in range(2):
        served = anon_client.get("/api/schema/", HTTP_ACCEPT=accept)
        assert served.status_code == 200
        assert served.content == stock.content
        for header in ("Content-Type", "Content-Disposition"):
            assert served[header] == stock[header]
    # The stock view's build, then one for both of ours (per request for an odd form).
    assert len(built_schemas) == (2 if ";" not in accept else 3)


@pytest.mark.django_db
def test_the_schema_is_built_once_per_form_and_revalidated_by_its_etag(anon_client, built_schemas):
    etags = set()
    for accept in SCHEMA_FORMS:
        first = anon_client.get("/api/schema/", HTTP_ACCEPT=accept)
        again = anon_client.get(
            "/api/schema/", HTTP_ACCEPT=accept, HTTP_IF_NONE_MATCH=first["ETag"]
        )
        assert again.status_code == 304 and again.content == b""
        assert again["ETag"] == first["ETag"]
        etags.add(first["ETag"])
    # The two common forms once each; the odd one (indent=2) at each of its two requests.
    assert len(etags) == len(SCHEMA_FORMS) and len(built_schemas) == 4
    # Odd forms, however many, push no common one out of the cache.
    for indent in range(10):
        odd = f"application/vnd.oai.openapi+json; indent={indent}"
        assert anon_client.get("/api/schema/", HTTP_ACCEPT=odd).status_code == 200
    assert anon_client.get("/api/schema/", {"lang": "xx"}).status_code == 200
    assert len(built_schemas) == 4 + 11
    stale = anon_client.get("/api/schema/", HTTP_IF_NONE_MATCH='"stale"')
    assert stale.status_code == 200 and stale.content.startswith(b"openapi:")
    json_form = anon_client.get("/api/schema/", {"format": "json"})
    assert json_form.status_code == 200 and json_form["ETag"] in etags
    anything = anon_client.get("/api/schema/", HTTP_ACCEPT="*/*")  # curl's, a browser's
    assert anything.status_code == 200 and anything["ETag"] in etags
    assert len(built_schemas) == 4 + 11


@pytest.mark.django_db
@pytest.mark.parametrize(
    "types",
    [
        ("application/json", "application/vnd.oai.openapi+json"),
        ("application/yaml", "application/vnd.oai.openapi"),
    ],
)
def test_one_body_under_two_content_types_has_two_etags(anon_client, types):
    # A strong ETag names one representation (RFC 9110 8.8.3): a cache revalidating one type
    # with the other's ETag gets the body, not a 304 (review 43c's N1).
    first, second = (anon_client.get("/api/schema/", HTTP_ACCEPT=accept) for accept in types)
    assert first.content == second.content
    assert first["Content-Type"] != second["Content-Type"]
    assert first["ETag"] != second["ETag"]
    crossed = anon_client.get(
        "/api/schema/", HTTP_ACCEPT=types[1], HTTP_IF_NONE_MATCH=first["ETag"]
    )
    assert crossed.status_code == 200 and crossed.content == second.content


@pytest.mark.django_db
def test_the_sign_in_examples_sign_in_on_a_local_server(anon_client, schema, settings):
    # "Try it out" with either example works: the first after the register example, the
    # second on `make run`'s database (seed_demo), which README names too.
    settings.DEBUG = True  # seed_demo runs only there
    register = schema["paths"]["/api/v1/auth/register/"]["post"]["requestBody"]["content"]
    sign_in = schema["paths"]["/api/v1/auth/token/"]["post"]["requestBody"]["content"]
    (new_account,) = register["application/json"]["examples"].values()
    examples = sign_in["application/json"]["examples"]
    assert set(examples) == {"SignIn", "DemoAccount"}
    assert (
        anon_client.post("/api/v1/auth/token/", examples["DemoAccount"]["value"]).status_code == 401
    )

    assert anon_client.post("/api/v1/auth/register/", new_account["value"]).status_code == 201
    call_command("seed_demo", stdout=io.StringIO())
    for example in examples.values():
        response = anon_client.post("/api/v1/auth/token/", example["value"])
        assert response.status_code == 200, example
        assert set(response.json()) == {"access", "refresh"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "accept",
    [
        # A browser's, for the schema's URL typed in or opened from the docs' link.
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
        "application/vnd.oai.openapi+json;q=1",
        "application/json;q=0.9, */*;q=0.8",
    ],
)
def test_an_accept_with_weights_is_served_from_the_cache(anon_client, built_schemas, accept):
    """`q` weighs a type, it is no parameter of it (RFC 9110 section 12.4.2): such an Accept
    asks for a common form, which is built once. It was built and rendered per request,
    110-200 ms of a worker for each anonymous GET (review 43c)."""
    first = anon_client.get("/api/schema/", HTTP_ACCEPT=accept)
    again = anon_client.get("/api/schema/", HTTP_ACCEPT=accept)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert len(built_schemas) == 1


@pytest.mark.django_db
def test_a_tasks_put_says_what_each_field_left_out_becomes(schema, api_client):
    """The PUT body's components give no `default` (openapi-typescript would require them): its
    description names them, or a client PUTting a partial task moved it to the Inbox and
    dropped its tags unwarned (review 43c)."""
    put = schema["paths"]["/api/v1/tasks/{id}/"]["put"]["description"]
    fields = ["description", "completed", "priority", "tags", "due_date", "due_time"]
    for field in [*fields, "recurrence", "parent", "list"]:
        assert f"`{field}`" in put, field
    task = api_client.post("/api/v1/tasks/", {"title": "t", "tags": ["x"]}, format="json").json()
    replaced = api_client.put(f"/api/v1/tasks/{task['id']}/", {"title": "t"}, format="json")
    assert replaced.json()["tags"] == [] and "`tags` `[]`" in put
