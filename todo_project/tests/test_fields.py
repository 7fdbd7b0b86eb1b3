import pytest

from todo_project.fields import StrictCharField


@pytest.mark.parametrize("value", [0, 1.5, True, None, ["a"], {"a": 1}])
def test_strict_char_field_takes_only_strings(value):
    field = StrictCharField(allow_null=False)
    with pytest.raises(Exception) as raised:
        field.run_validation(value)
    assert "Not a valid string." in str(raised.value) or "may not be null" in str(raised.value)


def test_strict_char_field_keeps_charfield_behaviour_for_strings():
    assert StrictCharField(max_length=5).run_validation("  abc ") == "abc"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("patch", "/api/v1/auth/me/", {"display_name": 0}),
        (
            "post",
            "/api/v1/auth/register/",
            {"email": "n@example.com", "password": "a-long-pass-phrase", "display_name": 7},
        ),
    ],
)
def test_accounts_refuse_a_number_as_a_display_name(api_client, method, url, body):
    response = getattr(api_client, method)(url, body)
    assert response.status_code == 400
    assert response.json()["errors"] == {"display_name": ["Not a valid string."]}
