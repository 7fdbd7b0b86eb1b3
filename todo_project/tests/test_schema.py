import pytest
from django.core.management import call_command


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
        assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
        assert "/static/drf_spectacular_sidecar/" in html
