import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _origins(settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]


def test_configured_origin_is_allowed(anon_client):
    response = anon_client.options(
        "/api/v1/anything/",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "authorization" in response["Access-Control-Allow-Headers"]


def test_other_origins_get_no_cors_headers(anon_client):
    response = anon_client.get("/healthz", HTTP_ORIGIN="https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in response
    response = anon_client.get("/api/v1/x/", HTTP_ORIGIN="https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in response


def test_problem_answers_carry_cors_headers_for_allowed_origins(anon_client):
    response = anon_client.get("/api/v1/x/", HTTP_ORIGIN="https://app.example.com")
    assert response.status_code == 404
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "X-Request-ID" in response["Access-Control-Expose-Headers"]
