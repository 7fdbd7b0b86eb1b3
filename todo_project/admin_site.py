"""The admin site: Django's own, with a sign-in form that cannot be brute-forced and without
simplejwt's token pages.

Installed in place of `django.contrib.admin` (see INSTALLED_APPS), so `admin.site` and
`@admin.register` everywhere use this site.
"""

import datetime
import functools

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.options import (
    IS_FACETS_VAR,
    IS_POPUP_VAR,
    TO_FIELD_VAR,
    IncorrectLookupParameters,
)
from django.contrib.admin.views.main import ORDER_VAR, PAGE_VAR, SEARCH_VAR
from django.contrib.messages.storage import default_storage
from django.core.exceptions import ValidationError
from django.core.paginator import InvalidPage
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode

LOGIN_RATE_LIMIT_GROUP = "admin-login"


def _login_username(request: HttpRequest) -> str:
    # Normalised as sign-in reads it, so every spelling of one account ("Bob@X.org ", a
    # full-width or punycode domain) shares its counter. Imported here: this module loads
    # before the models.
    from accounts.models import UserManager

    return UserManager.normalize_email(request.POST.get("username") or "")


def may_manage(staff, user) -> bool:
    """Whether `staff` may change `user`'s account or data in the admin: a superuser anyone's,
    support only those of accounts without staff rights. A colleague's or a superuser's are
    view-only to support, so nobody in support acts on an account with more rights than theirs.
    """
    return staff.is_superuser or not (user.is_staff or user.is_superuser)


def managed(staff, users):
    """`users` (a QuerySet) narrowed to the accounts `staff` may manage: may_manage as a query,
    for the owner choices of an add form."""
    return users if staff.is_superuser else users.filter(is_staff=False, is_superuser=False)


@functools.cache
def _login_form() -> type:
    """Django's admin sign-in form, whose error said both fields "may be case-sensitive": the
    email is not (sign-in normalizes it as the API's does). Built on first use: the form's
    module needs the models, which load after this one."""
    from django.contrib.admin.forms import AdminAuthenticationForm
    from django.contrib.auth.forms import UsernameField

    class EmailAsTyped(UsernameField):
        # Not NFKC'd, as the API reads an email (UserManager.normalize_email, at the lookup):
        # "ſupport@…" is an address of its own, and NFKC'd, its lookup sought "support@…".
        def to_python(self, value):
            return forms.CharField.to_python(self, value)

    class EmailAdminAuthenticationForm(AdminAuthenticationForm):
        username = EmailAsTyped(widget=forms.TextInput(attrs={"autofocus": True}))
        error_messages = {
            **AdminAuthenticationForm.error_messages,
            "invalid_login": "Please enter the correct email and password for a staff "
            "account. Note that the password is case-sensitive.",
        }

    return EmailAdminAuthenticationForm


class TodoAdminSite(admin.AdminSite):
    site_header = "Todo support"
    site_title = "Todo support"
    index_title = "Users, lists and tasks"

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        """Django's sign-in, limited per client IP and per username (RATE_LIMIT_LOGIN)."""
        self.login_form = _login_form()
        if request.method == "POST":
            seconds_left = self._login_limited_for(request)
            if seconds_left:
                return TemplateResponse(
                    request,
                    "admin/login_rate_limited.html",
                    {**self.each_context(request), "title": "Too many sign-in attempts"},
                    status=429,
                    headers={"Retry-After": str(seconds_left)},
                )
        return super().login(request, extra_context)

    def get_urls(self):
        # Without Django's "view on site" redirect (r/<content type>/<id>/): no model here has
        # get_absolute_url(), and an id that is no UUID of a UUID-keyed model was a 500 there.
        return [url for url in super().get_urls() if getattr(url, "name", None) != "view_on_site"]

    def password_change(self, request: HttpRequest, extra_context: dict | None = None):
        """Django's, with a form that also revokes the staff member's API tokens, as every other
        password change does (Django builds this form inside the method: no setting for it)."""
        from django.contrib.admin.forms import AdminPasswordChangeForm
        from django.contrib.auth.views import PasswordChangeView

        from accounts.forms import RevokingPasswordSave

        class RevokingPasswordChangeForm(RevokingPasswordSave, AdminPasswordChangeForm):
            pass

        request.current_app = self.name
        return PasswordChangeView.as_view(
            form_class=RevokingPasswordChangeForm,
            success_url=reverse("admin:password_change_done", current_app=self.name),
            extra_context={**self.each_context(request), **(extra_context or {})},
        )(request)

    @staticmethod
    def _login_limited_for(request: HttpRequest) -> int:
        """Counts this attempt per client IP and per username; the seconds until the caller may
        try again, 0 if not limited (nor when Redis cannot count: support signs in during an
        outage, as the API's limits fail open)."""
        from todo_project.ratelimit import count_request, ip_bucket

        waits = []
        for key in (f"ip:{ip_bucket(request)}", f"user:{_login_username(request)}"):
            usage = count_request(
                request, LOGIN_RATE_LIMIT_GROUP, key, settings.RATE_LIMIT_LOGIN, in_headers=False
            )
            if usage and usage.exceeded:
                waits.append(usage.reset)
        return max(waits, default=0)


class TodoAdminConfig(AdminConfig):
    default_site = "todo_project.admin_site.TodoAdminSite"

    def ready(self) -> None:
        super().ready()  # autodiscover: every app's admin.py has registered its models now
        from rest_framework_simplejwt.token_blacklist.models import (
            BlacklistedToken,
            OutstandingToken,
        )

        # simplejwt's token_blacklist admin shows each refresh token whole, and a live one
        # signs in as its user at /auth/token/refresh/. Support needs none of it.
        admin.site.unregister([OutstandingToken, BlacklistedToken])


# The URL lookups each kind of list_filter entry makes (Django's field filters: boolean, choices,
# dates); anything else in a changelist's URL is refused.
FILTER_LOOKUP_SUFFIXES = ("exact", "isnull", "gte", "lt")


def done_level(count: int) -> int:
    """An action's summary: a success when it did something, a warning when it did nothing (a
    green "Deactivated 0 user(s)" read as done)."""
    return messages.SUCCESS if count else messages.WARNING


class FilterLookupsOnly:
    """ModelAdmin mixin: a changelist's URL may filter only by what its list_filter offers, and
    by `extra_lookups` (the owner links). Django takes any lookup on a model's own fields:
    `?title__regex=(` was a 500, `?title__regex=x` a scan of every task, `?title__icontains=%00`
    a 500, and `?token_generation__gte=` a probe of a field the admin hides. A refused lookup
    is Django's DisallowedModelAdminLookup, a 400."""

    extra_lookups: frozenset[str] = frozenset()
    # Django 5's "Show counts" (`?_facets=1`) counts every filter choice over the whole table:
    # on the tasks' 1.1M rows the worker was killed at the 30 s timeout (a 500).
    show_facets = admin.ShowFacets.NEVER

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        field_name = lookup.split("__", 1)[0]
        if field_name not in {field.name for field in self.model._meta.get_fields()}:
            return super().lookup_allowed(lookup, value, request)  # a SimpleListFilter's own
        filtered = {entry for entry in self.list_filter if isinstance(entry, str)}
        return lookup in self.extra_lookups or any(
            lookup == f"{name}__{suffix}" for name in filtered for suffix in FILTER_LOOKUP_SUFFIXES
        )


class SavesRunAgain:
    """ModelAdmin mixin: a change, add or delete page's POST that PostgreSQL ended to settle a
    clash with a concurrent write (a deadlock, a row it names deleted before the COMMIT) runs
    again, as the API's writes do (todo_project.retry); a 500 page before. Django runs each of
    these views in one transaction, so nothing of an ended attempt stayed; each attempt starts
    with the messages the request came with, so none says it saved. After the third, or when a
    service gave up on its own (ConcurrentChange: a tag rename that kept giving way), a 503 page
    that says nothing was saved. A view that opens its transaction before changeform_view
    (Django's UserAdmin.add_view) is wrapped instead (accounts.admin): inside a transaction,
    the page is left to whoever runs that one again. (Not the changelist: its actions run their
    own transactions again, a row's alone in tasks.admin (complete, reopen, delete selected),
    the users' deletion whole in accounts.admin.)
    """

    def changeform_view(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        return self._run_again(super().changeform_view, request, *args, **kwargs)

    def delete_view(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        return self._run_again(super().delete_view, request, *args, **kwargs)

    def _run_again(self, view, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # Not at the top: this module is loaded with the apps, before DRF (which these import)
        # may be.
        from todo_project.problems import (
            CONCURRENT_CHANGE_RETRY_AFTER,
            ConcurrentChange,
            is_concurrent_change,
            log_concurrent_change,
            logged,
        )
        from todo_project.retry import run_again_on_concurrent_change

        if request.method != "POST" or connection.in_atomic_block:
            return view(request, *args, **kwargs)

        def attempt() -> HttpResponse:
            request._messages = default_storage(request)
            return view(request, *args, **kwargs)

        try:
            return run_again_on_concurrent_change(attempt)()
        except (DatabaseError, ConcurrentChange) as error:
            if isinstance(error, DatabaseError) and not is_concurrent_change(error):
                raise
            log_concurrent_change(error)
            page = TemplateResponse(
                request,
                "admin/concurrent_change.html",
                {**self.admin_site.each_context(request), "title": "Nothing was saved"},
                status=503,
                headers={"Retry-After": CONCURRENT_CHANGE_RETRY_AFTER},
            )
            return logged(page)  # its line is the WARNING above: no ERROR of Django's after it


class SaveRefusalsShown:
    """ModelAdmin mixin: what a service refuses at the save, after the form was found valid, is
    the form's error, the page shown again with what was typed and nothing saved; it was a 500
    page. That is a cap the account has reached (`Conflict`: tasks.quotas), or a rule a change
    committed meanwhile broke since the form checked it (DRF's `ValidationError`: a list name
    taken, a parent that became a subtask). The refusal ends the view's transaction, so nothing
    of the save stays; the form is then built and checked again, the refusal its error (on the
    field it names, if the form has it). Inside SavesRunAgain: its attempts run this whole."""

    def changeform_view(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # Not at the top: DRF may not be loaded yet when this module is (see SavesRunAgain).
        from rest_framework.exceptions import ValidationError as Invalid

        from todo_project.problems import Conflict

        request._refused_at_save = None
        try:
            return super().changeform_view(request, *args, **kwargs)
        except (Conflict, Invalid) as refusal:
            if request.method != "POST":
                raise
            request._refused_at_save = _form_errors(refusal.detail)
        return super().changeform_view(request, *args, **kwargs)

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        refused = getattr(request, "_refused_at_save", None)
        if refused is None:
            return form

        class RefusedAtSave(form):
            def clean(self) -> dict:
                cleaned = super().clean()
                for name, errors in refused.items():
                    self.add_error(name if name in self.fields else None, errors)
                return cleaned

        return RefusedAtSave


def _form_errors(detail) -> dict[str | None, list[str]]:
    """A DRF error's detail (a message, a list of them, or a dict of them by field) by field,
    None for the form's own errors."""
    if isinstance(detail, dict):
        return {
            name: [str(item) for item in (errors if isinstance(errors, list) else [errors])]
            for name, errors in detail.items()
        }
    return {None: [str(item) for item in (detail if isinstance(detail, list) else [detail])]}


class _AddressRefused(Exception):
    def __init__(self, message: str, level: int, location: str) -> None:
        super().__init__(message)
        self.message, self.level, self.location = message, level, location


class LengthsCheckedByTheServer:
    """ModelAdmin mixin: no `maxlength` on a text box. A browser counts UTF-16 units where the
    server counts characters (a list's or tag's name composed): it cut a pasted title of 150
    emoji (300 units, a valid title) to 100 in silence, and 100 "e" + U+0301 (a valid list name,
    100 characters composed) to 50. The form's own check names a value too long."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if formfield is not None:
            formfield.widget.attrs.pop("maxlength", None)
        return formfield


class ChangelistInputChecked:
    """ModelAdmin mixin: a changelist says what it could not use, where Django shows something
    else in silence or answers a 500.

    A filter value that is not valid (`?owner__id__exact=notauuid`, a mangled owner link) made
    Django redirect to `?e=1`, every row of every user without a word, and with `e=1` kept, a
    "Database error" page; it is now the list without those filters, and an error naming them.
    A page past the last one (its rows just deleted by an action) is the first page with the
    same filters. A posted action whose selected ids are not ids of this model (a forged or
    garbled form) was a 500; it does nothing, and says so.
    """

    def changelist_view(self, request: HttpRequest, extra_context=None):
        try:
            return super().changelist_view(request, extra_context)
        except _AddressRefused as refused:
            self.message_user(request, refused.message, refused.level)
            return HttpResponseRedirect(refused.location)

    def get_changelist_instance(self, request: HttpRequest):
        try:
            return super().get_changelist_instance(request)
        except IncorrectLookupParameters as error:
            query = request.GET.copy()
            if isinstance(error.__context__, InvalidPage):
                query.pop(PAGE_VAR, None)
                raise _AddressRefused(
                    "That page no longer exists: here is the first.",
                    messages.WARNING,
                    f"{request.path}?{query.urlencode()}",
                ) from error
            # Search, order, and the popup's and facets' own parameters: not filters.
            keep = (SEARCH_VAR, ORDER_VAR, IS_POPUP_VAR, TO_FIELD_VAR, IS_FACETS_VAR)
            kept = {name: query[name] for name in keep if name in query}
            refused = ", ".join(
                f"{name}={value}" for name, value in query.items() if name not in kept
            )
            raise _AddressRefused(
                f"These filters are not valid, so they are left out: {refused}.",
                messages.ERROR,
                f"{request.path}?{urlencode(kept)}",
            ) from error

    def response_action(self, request: HttpRequest, queryset):
        selected = request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)
        try:
            for value in selected:
                self.model._meta.pk.to_python(value)
        except ValidationError:
            self.message_user(
                request, "The selection holds ids that are not valid: nothing done.", messages.ERROR
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)


class HistoryWithOldValues:
    """ModelAdmin mixin: a form save's history says what each field of `history_values` was
    and became, and which way each yes/no field went. Django's names the fields only: a renamed
    tag's old name, a user's old email, a task's old title or due date were nowhere, and
    "Changed Is active." read the same for a deactivation and a reactivation."""

    history_values: tuple[str, ...] = ()

    def construct_change_message(self, request: HttpRequest, form, formsets, add: bool = False):
        message = super().construct_change_message(request, form, formsets, add)
        if add or not form.changed_data:
            return message
        labels = message[0]["changed"]["fields"]  # Django's, in form.changed_data's order
        for index, name in enumerate(form.changed_data):
            field = form.fields.get(name)  # a password form's "password" is no field of it
            if not (isinstance(field, forms.BooleanField) or name in self.history_values):
                continue
            old, new = form.initial.get(name), form.cleaned_data.get(name)
            if isinstance(field, forms.BooleanField):
                old = not new
            labels[index] += f" (from {_as_shown(field, old)} to {_as_shown(field, new)})"
        return message


def _as_shown(field, value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value in (None, ""):
        return "nothing"
    if isinstance(value, datetime.time):
        return value.isoformat("minutes")  # the API's HH:MM
    choices = dict(getattr(field, "choices", ()))
    return str(choices.get(value, value))
