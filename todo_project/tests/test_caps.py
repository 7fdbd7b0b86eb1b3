"""Resource caps that the shared machinery enforces before any view runs."""

import json
from io import BytesIO

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("todo_project.tests.urls")]

MIB = 1024 * 1024


def json_of_size(size: int) -> bytes:
    body = json.dumps({"title": "x", "padding": ""}).encode()
    return json.dumps({"title": "x", "padding": "p" * (size - len(body))}).encode()


def test_a_body_over_one_mebibyte_is_413_by_default(anon_client, settings):
    assert settings.MAX_REQUEST_BODY_BYTES == MIB
    body = json_of_size(MIB + 1)
    response = anon_client.post("/api/v1/test/echo/", body, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["detail"] == f"The request body is larger than {MIB} bytes."


def test_a_body_of_exactly_one_mebibyte_is_read(anon_client):
    body = json_of_size(MIB)
    response = anon_client.post("/api/v1/test/echo/", body, content_type="application/json")
    assert response.status_code == 201  # the echo view ignores the padding


def _raw_wsgi_post(body: bytes, **meta) -> tuple[str, bytes]:
    """The environ gunicorn hands over for a chunked request: a body, no CONTENT_LENGTH (unless
    `meta` gives one, as runserver's empty one)."""
    environ = RequestFactory()._base_environ(
        PATH_INFO="/api/v1/test/echo/",
        REQUEST_METHOD="POST",
        CONTENT_TYPE="application/json",
        **{"wsgi.input": BytesIO(body)},
        **meta,
    )
    if "CONTENT_LENGTH" not in meta:
        environ.pop("CONTENT_LENGTH", None)
    status = []
    chunks = WSGIHandler()(environ, lambda s, headers, exc_info=None: status.append(s))
    return status[0], b"".join(chunks)


@pytest.mark.parametrize("content_length", [None, ""], ids=["gunicorn", "runserver"])
def test_a_chunked_body_without_content_length_is_refused_with_411_not_read(content_length):
    meta = {} if content_length is None else {"CONTENT_LENGTH": content_length}
    status, content = _raw_wsgi_post(
        json_of_size(2 * MIB), HTTP_TRANSFER_ENCODING="chunked", **meta
    )
    assert status.startswith("411")
    body = json.loads(content)
    assert body["status"] == 411
    assert "Content-Length" in body["detail"]


def test_a_post_without_any_body_is_an_ordinary_validation_error():
    status, content = _raw_wsgi_post(b"")
    assert status.startswith("400")
    assert json.loads(content)["errors"] == {"title": ["This field is required."]}
