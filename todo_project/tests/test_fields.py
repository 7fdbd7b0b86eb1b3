import pytest
from rest_framework.exceptions import ValidationError

from todo_project.fields import StrictBooleanField, StrictCharField, StrictIntegerField


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


@pytest.mark.parametrize("value", ["true", "false", 1, 0, "yes", None])
def test_strict_boolean_field_takes_only_json_booleans(value):
    with pytest.raises(ValidationError):
        StrictBooleanField().run_validation(value)
    assert StrictBooleanField().run_validation(True) is True
    assert StrictBooleanField().run_validation(False) is False


@pytest.mark.parametrize("value", ["5", 5.0, 5.5, True, None, [5]])
def test_strict_integer_field_takes_only_json_integers(value):
    with pytest.raises(ValidationError):
        StrictIntegerField().run_validation(value)
    assert StrictIntegerField(min_value=0).run_validation(5) == 5
    with pytest.raises(ValidationError):
        StrictIntegerField(min_value=0).run_validation(-1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("post", "/api/v1/tasks/", {"title": "Pay rent", "completed": "true"}, "completed"),
        ("post", "/api/v1/tasks/", {"title": "Pay rent", "completed": 1}, "completed"),
        ("post", "/api/v1/lists/", {"name": "Home", "position": "5"}, "position"),
        ("post", "/api/v1/lists/", {"name": "Home", "position": 5.0}, "position"),
    ],
)
def test_a_value_of_another_json_type_is_a_400_naming_the_field(
    api_client, method, url, body, field
):
    response = getattr(api_client, method)(url, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
