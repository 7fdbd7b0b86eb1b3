"""The pages (admin, docs) carry a Content-Security-Policy that runs scripts from this server
only, and none of them needs an inline one; the JSON API carries none. That the pages still
work under it, in a real browser, is tests/test_admin_browser.py's part."""

import re

import pytest

from tasks.models import Task

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


def directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    parts = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in parts}


def test_a_page_runs_scripts_from_this_server_only_and_is_framed_by_nobody(anon_client):
    policy = directives(anon_client.get("/admin/login/"))
    assert policy["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == policy["base-uri"] == policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]


def test_no_page_needs_an_inline_script(anon_client, support_client, user):
    task = Task.objects.create(owner=user, title="Pay rent", position=1024)
    pages = [(anon_client, path) for path in ("/api/docs/", "/api/redoc/", "/admin/login/")]
    pages += [
        (support_client, path)
        for path in ("/admin/", "/admin/tasks/task/", f"/admin/tasks/task/{task.pk}/change/")
    ]
    for client, path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        assert "Content-Security-Policy" in response, path
        assert INLINE_SCRIPT.findall(response.content.decode()) == [], path


def test_the_swagger_page_loads_its_script_from_its_own_url(anon_client):
    page = anon_client.get("/api/docs/").content.decode()
    script_url = re.search(r'<script src="(/api/docs/\?[^"]*script=[^"]*)"', page).group(1)
    script = anon_client.get(script_url.replace("&amp;", "&"))
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()


def test_the_redoc_page_reads_the_schema_without_a_script_of_its_own(anon_client):
    page = anon_client.get("/api/redoc/").content.decode()
    assert '<redoc spec-url="/api/schema/"></redoc>' in page
    assert "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js" in page


def test_the_json_api_carries_no_policy(api_client, anon_client):
    for response in (
        api_client.get("/api/v1/tasks/"),
        api_client.get("/api/v1/auth/me/"),
        anon_client.get("/api/v1/no-such-thing/"),
    ):
        assert "Content-Security-Policy" not in response


def test_a_load_of_the_docs_costs_one_request_of_the_anonymous_budget(anon_client):
    # The split view's script is a request of its own: page, script and schema were three of an
    # IP's 30 a minute (RATE_LIMIT_ANON), shared with register and password reset.
    before = int(anon_client.get("/api/schema/")["RateLimit-Remaining"])
    for path in ("/api/docs/", "/api/docs/?script=", "/api/redoc/"):
        assert anon_client.get(path).status_code == 200
    assert int(anon_client.get("/api/schema/")["RateLimit-Remaining"]) == before - 1
