"""What the admin site serves beyond the models' own pages, and what it leaves out."""

import re

import pytest
from django.contrib.contenttypes.models import ContentType
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import User
from accounts.tokens import RefreshToken
from tasks.models import Task


@pytest.mark.django_db
def test_refresh_tokens_are_not_in_the_admin_even_for_a_superuser(admin_client, user):
    # simplejwt's admin showed a live refresh token whole: whoever read it could sign in as
    # its user through /api/v1/auth/token/refresh/.
    refresh = RefreshToken.for_user(user)
    outstanding = OutstandingToken.objects.get(jti=refresh["jti"])
    blacklisted = BlacklistedToken.objects.create(token=outstanding)

    for url in [
        "/admin/token_blacklist/",
        "/admin/token_blacklist/outstandingtoken/",
        f"/admin/token_blacklist/outstandingtoken/{outstanding.pk}/change/",
        "/admin/token_blacklist/blacklistedtoken/",
        f"/admin/token_blacklist/blacklistedtoken/{blacklisted.pk}/change/",
    ]:
        assert admin_client.get(url).status_code == 404, url

    index = admin_client.get("/admin/")
    assert index.status_code == 200
    assert "token_blacklist" not in {app["app_label"] for app in index.context["app_list"]}
    assert "token_blacklist" not in index.content.decode()


@pytest.mark.django_db
def test_the_view_on_site_shortcut_is_not_served(admin_client, user):
    # Django's /r/<content type>/<id>/ redirects to an object's get_absolute_url(), which no
    # model here has; an id that is no UUID (1 is accounts.user in tests) was a ValidationError.
    user_type = ContentType.objects.get_for_model(User).pk
    task_type = ContentType.objects.get_for_model(Task).pk

    for url in [
        "/admin/r/1/zzz/",
        "/admin/r/1/1/",
        f"/admin/r/{user_type}/{user.pk}/",
        f"/admin/r/{task_type}/not-a-uuid/",
    ]:
        assert admin_client.get(url).status_code == 404, url


@pytest.mark.django_db
def test_no_text_box_has_a_maxlength_a_browser_would_count_in_utf16_units(admin_client, user):
    # A browser cut a pasted title of 150 emoji (300 UTF-16 units, a valid title) in silence,
    # and 100 "e" + U+0301 (a valid list name, counted composed) to 50.
    from tasks import services

    task = services.task_create(user=user, data={"title": "Pay rent"})
    pages = {
        "/admin/tasks/task/add/": {"title"},
        f"/admin/tasks/task/{task.pk}/change/": {"title"},
        "/admin/tasks/tasklist/add/": {"name"},
        "/admin/tasks/tag/add/": {"name"},
        "/admin/accounts/user/add/": {"email"},
        f"/admin/accounts/user/{user.pk}/change/": {"email", "display_name", "timezone"},
    }
    for url, names in pages.items():
        page = admin_client.get(url).content.decode()
        boxes = {
            name: box
            for box, name in re.findall(r'(<input type="(?:text|email)" name="(\w+)"[^>]*>)', page)
        }
        assert names <= boxes.keys(), url
        assert [box for box in boxes.values() if "maxlength" in box] == [], url


@pytest.mark.django_db
def test_an_email_too_long_once_stored_is_the_add_forms_error(admin_client):
    # 254 characters as typed; the IDNA mapping ("ß" is "ss") makes it 412 as stored: the
    # INSERT failed, a 500 (review 27b).
    email = "a" * 30 + "@" + ".".join(["\u00df" * 31] * 6) + ".com"
    password = "a-Long-passw0rd!"

    response = admin_client.post(
        "/admin/accounts/user/add/",
        {"email": email, "password1": password, "password2": password, "usable_password": "true"},
    )

    errors = response.context["adminform"].form.errors
    assert list(errors) == ["email"]
    assert "Ensure this value has at most 254 characters (it has 412)." in errors["email"]
    assert not User.objects.filter(email__startswith="a" * 30).exists()


@pytest.mark.django_db
def test_the_add_form_stores_an_email_as_the_api_does_not_nfkc(admin_client, anon_client):
    # 226 characters; NFKC ("ﬀ" is "ff") would make 415: the INSERT failed, a 500 (review 27c).
    email = "a" * 30 + "@" + ".".join(["\ufb00" * 63] * 3) + ".com"
    password = "a-Long-passw0rd!"

    response = admin_client.post(
        "/admin/accounts/user/add/",
        {"email": email, "password1": password, "password2": password, "usable_password": "true"},
    )

    assert response.status_code == 302
    assert User.objects.filter(email=email).exists()
    # The API finds the account by the same address (it would store this one as sent).
    token = anon_client.post(
        "/api/v1/auth/token/", {"email": email, "password": password}, format="json"
    )
    assert token.status_code == 200, token.content
