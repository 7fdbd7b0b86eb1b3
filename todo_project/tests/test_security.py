import pytest

pytestmark = pytest.mark.django_db


def test_https_on_redirects_plain_http_and_sets_hsts(anon_client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    response = anon_client.get("/api/v1/whatever/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/api/v1/whatever/"
    response = anon_client.get("/api/v1/whatever/", secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


def test_probes_are_not_redirected(anon_client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert anon_client.get("/healthz").status_code == 200


def test_forwarded_proto_is_honoured_only_from_a_trusted_proxy(anon_client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = anon_client.get("/api/v1/whatever/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 404  # treated as HTTPS: no redirect


def test_responses_forbid_sniffing_and_framing(anon_client):
    response = anon_client.get("/healthz")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
