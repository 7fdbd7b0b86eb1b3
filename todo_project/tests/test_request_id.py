import json
import logging
import re

import pytest

from todo_project.request_id import JsonFormatter, RequestIdLogFilter

pytestmark = pytest.mark.django_db


def test_a_new_request_id_is_generated(anon_client):
    response = anon_client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_a_sane_incoming_request_id_is_echoed(anon_client):
    response = anon_client.get("/healthz", HTTP_X_REQUEST_ID="abc-123.def")
    assert response["X-Request-ID"] == "abc-123.def"


# "id\n" passed a "$"-anchored check, and the response header with it raised.
@pytest.mark.parametrize("bad", ["has space", "x" * 200, "semi;colon", "<script>", "id\n"])
def test_an_insane_incoming_request_id_is_replaced(anon_client, bad):
    response = anon_client.get("/healthz", HTTP_X_REQUEST_ID=bad)
    assert response["X-Request-ID"] != bad
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_one_access_log_line_per_request_with_the_request_id(anon_client, caplog):
    caplog.set_level(logging.INFO, logger="todo.access")
    response = anon_client.get("/api/v1/nothing-here/", HTTP_X_REQUEST_ID="req-42")
    lines = [r for r in caplog.records if r.name == "todo.access"]
    assert len(lines) == 1
    record = lines[0]
    assert (record.method, record.path, record.status) == ("GET", "/api/v1/nothing-here/", 404)
    assert record.duration_ms >= 0
    assert record.user_id is None
    assert record.client_ip == "127.0.0.1"
    assert response["X-Request-ID"] == "req-42"
    # The formatter writes it as one JSON object carrying the same id.
    record.request_id = "req-42"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["request_id"] == "req-42"
    assert entry["status"] == 404 and entry["path"] == "/api/v1/nothing-here/"
    assert entry["time"].endswith("Z")


@pytest.mark.urls("todo_project.tests.urls")
def test_the_access_log_names_the_authenticated_user(api_client, user, caplog):
    caplog.set_level(logging.INFO, logger="todo.access")
    api_client.get("/api/v1/test/private/")
    (record,) = [r for r in caplog.records if r.name == "todo.access"]
    assert record.user_id == str(user.pk)


def test_the_access_log_names_the_client_our_proxy_forwarded_the_request_for(
    anon_client, caplog, settings
):
    settings.TRUSTED_PROXY_COUNT = 1
    caplog.set_level(logging.INFO, logger="todo.access")
    anon_client.get("/healthz", HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.5")
    (record,) = [r for r in caplog.records if r.name == "todo.access"]
    assert record.client_ip == "203.0.113.5"


def test_djangos_own_line_for_an_error_answer_carries_the_request_id(anon_client, caplog):
    # Django logs 4xx and 5xx answers on django.request once the middleware has returned.
    caplog.set_level(logging.WARNING, logger="django.request")
    response = anon_client.get("/api/v1/nothing-here/", HTTP_X_REQUEST_ID="req-43")
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert RequestIdLogFilter().filter(record) is True
    assert record.request_id == response["X-Request-ID"] == "req-43"


@pytest.mark.parametrize("path", ["/api/v1/nothing-here/", "/healthz"])
def test_a_refused_host_is_logged_as_a_warning_not_an_error(anon_client, caplog, path):
    caplog.set_level(logging.WARNING, logger="django.security")
    response = anon_client.get(path, HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"  # the probes' too, not HTML
    (record,) = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    (console,) = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    assert console.filter(record)  # the configured handler's filters, as it writes the line
    line = json.loads(console.format(record))
    assert line["level"] == "WARNING" and "evil.example" in line["message"]
    assert "exception" not in line  # Django's frames of the refusal: noise a scanner makes


@pytest.mark.django_db
@pytest.mark.parametrize("where", ["view", "middleware"])
def test_an_api_500_is_logged_once_with_its_traceback(
    anon_client, user, caplog, monkeypatch, where
):
    # The view's: by the API's handler (Django's own line skipped). A middleware's: Django's
    # line is its only record, and keeps the traceback.
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    if where == "view":
        monkeypatch.setattr("tasks.views.TaskListViewSet.list", broken)
    else:
        monkeypatch.setattr(
            "todo_project.problems.ApiAwareCommonMiddleware.process_request", broken
        )
    anon_client.raise_request_exception = False
    anon_client.force_authenticate(user)
    caplog.set_level(logging.INFO)

    assert anon_client.get("/api/v1/lists/").status_code == 500

    (console,) = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and console.filter(r)]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "RuntimeError: a bug" in json.loads(console.format(errors[0]))["exception"]


def test_an_error_of_our_own_stays_an_error():
    (console,) = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    record = logging.makeLogRecord({"name": "todo.tasks", "levelno": logging.ERROR, "msg": "x"})
    assert console.filter(record) and record.levelno == logging.ERROR


def test_log_filter_attaches_the_current_request_id():
    record = logging.makeLogRecord({"msg": "x"})
    assert RequestIdLogFilter().filter(record) is True
    assert record.request_id is None  # outside a request


def test_formatter_includes_the_exception():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]
