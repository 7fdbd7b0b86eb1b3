"""The user admin for support staff: find a user, see their data, lock the account.

Only superusers see or set what grants access (is_staff, is_superuser, groups,
user_permissions) and passwords, or change an email (where reset links go); support staff help
through the actions instead (deactivate, send a reset email, export). Staff accounts are
view-only to support staff and out of reach of their actions, so nobody in support can take
over an account with more rights than their own.
"""

import hashlib
import json
import logging
import smtplib
from collections.abc import Iterator

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import actions as django_actions
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.expressions import ArraySubquery
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Sum
from django.forms.models import model_to_dict
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import content_disposition_header, urlencode
from django.utils.text import capfirst

from accounts.forms import NormalizedEmailField, RevokingPasswordSave
from accounts.mail import mail_error, send_in_background
from accounts.models import User
from accounts.services import (
    REDACTED_REPR,
    email_changed_notice,
    keeps_admin_history,
    user_deactivate,
    user_delete,
    user_send_password_reset,
    user_sign_out_everywhere,
)
from tasks.admin import StoredLineBreaksKept, VersionCheckedForm, count_of, one_line
from tasks.models import OwnerTaskCount, Priority, Tag, Task, TaskList
from todo_project.admin_site import (
    ChangelistInputChecked,
    FilterLookupsOnly,
    HistoryWithOldValues,
    LengthsCheckedByTheServer,
    SavesRunAgain,
    done_level,
    managed,
    may_manage,
)
from todo_project.retry import run_again_on_concurrent_change

logger = logging.getLogger("todo.admin")

ACCESS_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")
# How many users one action (deactivate, sign out, reset email) may take at once.
MAX_USERS_PER_ACTION = 100
KEPT_NAMED = 10  # staff accounts named in delete_selected's refusal, at most
USER_COLUMNS = frozenset(field.name for field in User._meta.concrete_fields)
EMAIL_UNIQUE_INDEX = "accounts_user_email_key"  # Django's name for the unique email column's


class UserVersionCheckedForm(StoredLineBreaksKept, VersionCheckedForm):
    """A user change form refused if the user has changed since it was opened, as a task's is.

    Users have no `version` column (every writer of users would have to bump it): the version
    is a digest of the values this form can write, as the row holds them. A change to anything
    else (password, last sign-in) is no conflict: the save writes only the changed columns.
    """

    one_line_fields = ("display_name",)

    def version_of(self, row: User) -> str:
        names = [name for name, field in self.fields.items() if not field.disabled]
        values = {
            # The pks of m2m values (groups, permissions), in an order of their own.
            name: sorted(str(item.pk) for item in value) if isinstance(value, list) else value
            for name, value in model_to_dict(row, fields=names).items()
        }
        return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()

    def clean_display_name(self) -> str:
        return one_line(self.cleaned_data["display_name"], self.initial.get("display_name"))


class SuperuserChangeForm(UserVersionCheckedForm, auth_forms.UserChangeForm):
    """Django's, with the email compared as it is stored (see NormalizedEmailField)."""

    class Meta(auth_forms.UserChangeForm.Meta):
        model = User
        field_classes = {"email": NormalizedEmailField}


class UserAddForm(auth_forms.AdminUserCreationForm):
    """Django's, with the email counted as it is stored (see NormalizedEmailField): one that
    lower case and the IDNA mapping lengthen past the column ("ß" is "ss") is the form's error,
    as it is the API's 400; the INSERT failed (a 500)."""

    class Meta(auth_forms.AdminUserCreationForm.Meta):
        model = User
        fields = ["email"]
        field_classes = {"email": NormalizedEmailField}


class SupportUserChangeForm(UserVersionCheckedForm):
    """What support staff may change: no access rights, no password (not even read-only), and
    not the email, which password resets are sent to: changing it would hand the account over.
    """

    class Meta:
        model = User
        fields = ["display_name", "timezone", "is_active"]


class AdminPasswordChangeForm(RevokingPasswordSave, auth_forms.AdminPasswordChangeForm):
    pass


def owner_changelist_url(model: type, owner: User) -> str:
    """The changelist of `model` filtered to one owner's rows (Django's own FK filter lookup)."""
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    return f"{url}?{urlencode({'owner__id__exact': owner.pk})}"


def users_with_data(users: QuerySet) -> QuerySet:
    """Prefetches what `user_data` reads: three queries in all, for any number of users."""
    return users.prefetch_related(
        Prefetch("task_lists", queryset=TaskList.objects.order_by("position", "id")),
        Prefetch("tags", queryset=Tag.objects.order_by("name")),
    )


def user_data(user: User) -> dict:
    """A user's profile, lists and tags, in the API's words; the tasks come from tasks_data."""
    return {
        "id": user.pk,
        "email": user.email,
        "display_name": user.display_name,
        "timezone": user.timezone,
        "is_active": user.is_active,
        "date_joined": user.date_joined,
        "last_login": user.last_login,
        "lists": [
            {
                "id": task_list.pk,
                "name": task_list.name,
                "color": task_list.color,
                "position": task_list.position,
                "created_at": task_list.created_at,
                "updated_at": task_list.updated_at,
            }
            for task_list in user.task_lists.all()
        ],
        "tags": [tag.name for tag in user.tags.all()],
    }


# A task as the export writes it (priority by name, tags by name): its keys and the columns
# they come from, read as plain rows (no model instances: 100,000 of them took ~800 MB).
TASK_EXPORT = {
    "id": "id",
    "title": "title",
    "description": "description",
    "completed": "completed",
    "completed_at": "completed_at",
    "priority": "priority",
    "due_date": "due_date",
    "due_time": "due_time",
    "list": "list_id",
    "parent": "parent_id",
    "tags": "tag_names",
    "position": "position",
    "recurrence": "recurrence",
    "version": "version",
    "created_at": "created_at",
    "updated_at": "updated_at",
}


def tasks_data(user: User) -> Iterator[dict]:
    """The user's tasks, oldest first, read in chunks through a server-side cursor. A task's
    tag names come with it (an ARRAY subquery): a prefetch would name every task in a
    parameter, which fails past PostgreSQL's 65,535 (an account may hold 100,000 tasks)."""
    tag_names = Tag.objects.filter(tasks=OuterRef("pk")).order_by("name").values("name")
    rows = (
        Task.objects.filter(owner=user)
        .annotate(tag_names=ArraySubquery(tag_names))
        .order_by("created_at", "id")
        .values_list(*TASK_EXPORT.values())
    )
    for row in rows.iterator(chunk_size=2_000):
        task = dict(zip(TASK_EXPORT, row, strict=True))
        task["priority"] = Priority(task["priority"]).label
        yield task


def export_chunks(users: list[User]) -> Iterator[str]:
    """The export document, written as it is read: one line per task, so a worker holds a
    chunk of tasks at a time, not the whole account: 100,000 tasks stream in 2.2 s as 47.5 MB
    of JSON with the worker at 74 MB, where building it whole took 5.4 s and 855 MB."""
    encode = DjangoJSONEncoder().encode
    yield f'{{"exported_at": {encode(timezone.now())}, "users": ['
    for index, user in enumerate(users):
        profile = encode(user_data(user))
        yield ("," if index else "") + f'\n{profile[:-1]}, "tasks": ['
        for number, task in enumerate(tasks_data(user)):
            yield ("," if number else "") + "\n" + encode(task)
        yield "\n]}"
    yield "\n]}\n"


class OwnerChoicesManaged(ChangeList):
    """The users' list, which in a popup is where an add form's owner is chosen (the raw-id
    lookup of tasks.admin.OwnedAdmin): there, only the accounts the agent may add rows to
    (admin_site.managed). Listed in full elsewhere: staff accounts are view-only, not hidden."""

    def get_queryset(self, request: HttpRequest, exclude_parameters=None) -> QuerySet:
        users = super().get_queryset(request, exclude_parameters)
        return managed(request.user, users) if self.is_popup else users


@admin.register(User)
class UserAdmin(
    SavesRunAgain,
    HistoryWithOldValues,
    ChangelistInputChecked,
    FilterLookupsOnly,
    LengthsCheckedByTheServer,
    DjangoUserAdmin,
):
    ordering = ["email"]
    # The history is the only record of the address the account had before.
    history_values = ("email", "display_name", "timezone")
    show_full_result_count = False  # one COUNT(*) per page is enough on a big table
    list_display = [
        "email",
        "display_name",
        "is_active",
        "is_staff",
        "date_joined",
        "last_login",
        "task_counts",
    ]
    search_fields = ["email", "display_name"]
    search_help_text = "Email or display name (any part of either)."
    list_filter = ["is_active", "is_staff", "date_joined"]
    readonly_fields = ["id", "date_joined", "last_login", "task_lists_link", "tasks_link"]
    actions = [
        "delete_selected",  # Django's, refusing staff accounts by name (see there)
        "deactivate",
        "sign_out_everywhere",
        "send_password_reset",
        "export_data",
    ]
    fieldsets = [
        (None, {"fields": ["id", "email", "password", "opened_version"]}),
        ("Profile", {"fields": ["display_name", "timezone"]}),
        ("Data", {"fields": ["task_lists_link", "tasks_link"]}),
        ("Access", {"fields": ["is_active", *ACCESS_FIELDS]}),
        ("Dates", {"fields": ["date_joined", "last_login"]}),
    ]
    support_fieldsets = [
        (None, {"fields": ["id", "email", "opened_version"]}),
        ("Profile", {"fields": ["display_name", "timezone"]}),
        ("Data", {"fields": ["task_lists_link", "tasks_link"]}),
        ("Access", {"fields": ["is_active"]}),
        ("Dates", {"fields": ["date_joined", "last_login"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]
    form = SuperuserChangeForm
    add_form = UserAddForm
    change_password_form = AdminPasswordChangeForm

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                total_tasks=count_of(Task.objects.filter(owner=OuterRef("pk"))),
                open_tasks=count_of(Task.objects.filter(owner=OuterRef("pk"), completed=False)),
                total_lists=count_of(TaskList.objects.filter(owner=OuterRef("pk"))),
            )
        )

    def get_changelist(self, request: HttpRequest, **kwargs) -> type:
        return OwnerChoicesManaged

    def get_fieldsets(self, request: HttpRequest, obj: User | None = None):
        # The form is built from these fields only, so a forged POST of is_staff, is_superuser,
        # groups or a password by a non-superuser is ignored, not just hidden.
        if obj is not None and not request.user.is_superuser:
            return self.support_fieldsets
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None):
        # Shown to support, and left out of their form (see SupportUserChangeForm).
        if obj is not None and not request.user.is_superuser:
            return [*self.readonly_fields, "email"]
        return super().get_readonly_fields(request, obj)

    def get_form(self, request: HttpRequest, obj: User | None = None, **kwargs):
        if obj is not None and not request.user.is_superuser:
            kwargs["form"] = SupportUserChangeForm
        return super().get_form(request, obj, **kwargs)

    def changeform_view(
        self, request: HttpRequest, object_id=None, form_url="", extra_context=None
    ):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except IntegrityError as error:
            # The email's uniqueness was checked before the save, but another save (an admin's,
            # a registration) took the address in between: the unique index refused it, and the
            # change view's transaction rolled back whole.
            if getattr(error.__cause__.diag, "constraint_name", None) != EMAIL_UNIQUE_INDEX:
                raise
            self.message_user(
                request,
                "Nothing saved: the email address was taken by another account at the same "
                "moment. Reload the page and choose another address.",
                messages.ERROR,
            )
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request: HttpRequest, obj: User, form, change: bool) -> None:
        if not change:
            return super().save_model(request, obj, form, change)
        # Only the columns the form changed: a full save would write back every column as this
        # POST read it, undoing a password change (and reviving the tokens it revoked) or a
        # sign-in that the user committed meanwhile.
        fields = [name for name in form.changed_data if name in USER_COLUMNS]
        # A new sign-in address ends the sessions opened before, as a new password does; and a
        # deactivation must revoke the tokens as the action does, or reactivating revives them.
        if {"email", "is_active"} & set(fields):
            obj.revoke_tokens()
            fields.append("token_generation")
        obj.save(update_fields=fields)
        if obj.pk == request.user.pk and "token_generation" in fields:
            # One's own new address: the other sessions end, this one stays (the session hash
            # carries the generation), as Django's own password change keeps its page's.
            update_session_auth_hash(request, obj)
        if "email" in fields:
            notice = email_changed_notice(user=obj, old_email=form.initial["email"])
            # Once committed (a rolled-back change is no news); in the background, so that a
            # slow or failing mail server neither holds up nor fails a change already made.
            transaction.on_commit(lambda: send_in_background(notice))

    def has_change_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        if obj is not None and not may_manage(request.user, obj):
            return False
        return super().has_change_permission(request, obj)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = ""):
        # Setting someone's password lets you sign in as them: support sends a reset email.
        if not request.user.is_superuser:
            raise PermissionDenied
        return super().user_change_password(request, id, form_url)

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        # The admin's history is support's audit trail, and Django deletes a staff member's
        # entries with them: staff accounts are deactivated, never deleted. Support deletes (if
        # a superuser gave them the right) only an account they may change, whatever that rule.
        if obj is not None and (keeps_admin_history(obj) or not may_manage(request.user, obj)):
            return False
        return super().has_delete_permission(request, obj)

    @admin.action(description="Delete selected %(verbose_name_plural)s", permissions=["delete"])
    def delete_selected(self, request: HttpRequest, queryset: QuerySet):
        """Django's, refused whole, before asking, when the selection holds accounts never deleted
        here (keeps_admin_history: staff, superusers, former agents with history; support may
        not manage them either), named in the error. Django's confirmation told even a superuser
        only that their account "doesn't have permission to delete" users, naming none: with
        30 selected, nothing said which to untick, nor why (review 31l)."""
        kept = list(
            queryset.filter(
                Q(is_staff=True)
                | Q(is_superuser=True)
                | Exists(LogEntry.objects.filter(user_id=OuterRef("pk")))
            )
            .order_by("email")
            .values_list("email", flat=True)[: KEPT_NAMED + 1]
        )
        if kept:
            named = ", ".join(kept[:KEPT_NAMED]) + (" and others" if len(kept) > KEPT_NAMED else "")
            which = (
                "is a staff account (or has acted in the admin): deactivate it"
                if len(kept) == 1
                else "are staff accounts (or have acted in the admin): deactivate them"
            )
            self.message_user(
                request,
                f"Nothing deleted: {named} {which} instead. Their admin history is kept, so "
                "they are never deleted.",
                messages.ERROR,
            )
            return None
        return django_actions.delete_selected(self, request, queryset)

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        # As the API deletes an account: Django's plain cascade is a 500 for a user with lists.
        user_delete(user=obj)

    def get_deleted_objects(self, objs, request: HttpRequest):
        """What the delete confirmation lists: each user with how many tasks, lists and tags go
        with them. Django's own list collects every row the cascade would delete, naming each
        in a parameter: past PostgreSQL's 65,535 (an account may hold 100,000 tasks) the page,
        and so the delete, failed."""
        users = list(objs)
        # Each may be deleted: the delete page asked has_delete_permission(obj) first, and the
        # action refused a selection with an account it says no to (delete_selected).
        perms_needed = set()
        to_delete, model_count = [], {User._meta.verbose_name_plural: len(users)}
        counts = {}
        for model in (Task, TaskList, Tag):
            rows = model.objects.filter(owner__in=users).values_list("owner").annotate(n=Count("*"))
            counts[model] = dict(rows.order_by())
            total = sum(counts[model].values())
            if total:
                model_count[model._meta.verbose_name_plural] = total
                if not self.admin_site._registry[model].has_delete_permission(request):
                    perms_needed.add(model._meta.verbose_name)
        for user in users:
            to_delete.append(f"{capfirst(User._meta.verbose_name)}: {user.email}")
            to_delete.append(
                [
                    f"{capfirst(model._meta.verbose_name_plural)}: {counts[model][user.pk]:,}"
                    for model in (Task, TaskList, Tag)
                    if counts[model].get(user.pk)
                ]
            )
        return to_delete, model_count, perms_needed, []

    # One transaction for the selected accounts and their history entries, run again whole after
    # a concurrent change (a deletion against a create naming one of the account's tags can
    # deadlock).
    @run_again_on_concurrent_change
    @transaction.atomic
    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._log_deletions(request, queryset)
        for user in queryset:  # staff among them: "delete selected" refused (has_delete_permission)
            user_delete(user=user)

    def log_deletions(self, request: HttpRequest, queryset) -> None:
        # Django's delete_selected calls this with the QuerySet before delete_queryset, on its
        # own: a deletion that then failed left a history of accounts deleted that still exist.
        # delete_queryset writes them in its transaction instead. The delete page passes [obj],
        # inside its own transaction.
        if not isinstance(queryset, QuerySet):
            self._log_deletions(request, queryset)

    @staticmethod
    def _log_deletions(request: HttpRequest, users) -> None:
        """Django's deletion entries, which name each account by `str(user)`, its email: the one
        thing of a deleted account the history kept for good. The id (`object_id`) says which
        account it was; user_delete redacts the entries about it the same way."""
        content_type = ContentType.objects.get_for_model(User, for_concrete_model=False)
        LogEntry.objects.bulk_create(
            LogEntry(
                user_id=request.user.pk,
                content_type_id=content_type.pk,
                object_id=str(user.pk),
                object_repr=REDACTED_REPR,
                action_flag=DELETION,
            )
            for user in users
        )

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        # Django's opens its transaction here, around changeform_view: run again outside it.
        return self._run_again(super().add_view, request, form_url, extra_context)

    def _refused(self, request: HttpRequest, users) -> list[str]:
        """The emails of the users `request` may not act on (see may_manage)."""
        return [user.email for user in users if not may_manage(request.user, user)]

    def _managed_only(self, request: HttpRequest, users: list, not_done: str) -> list:
        """The users `request` may act on (see may_manage); a warning names the others."""
        refused = self._refused(request, users)
        if refused:
            self.message_user(
                request,
                f"{not_done} (staff accounts, superusers only): {', '.join(refused)}.",
                messages.WARNING,
            )
        return [user for user in users if may_manage(request.user, user)]

    def _refused_over_the_cap(self, request: HttpRequest, selected: QuerySet) -> bool:
        """Whether the selection is past MAX_USERS_PER_ACTION, which an error then says."""
        count = selected.count()
        if count <= MAX_USERS_PER_ACTION:
            return False
        self.message_user(
            request,
            f"Nothing done: {count:,} users selected, an action takes at most "
            f"{MAX_USERS_PER_ACTION:,} at once.",
            messages.ERROR,
        )
        return True

    def _ask_first(
        self, request: HttpRequest, selected: QuerySet, action: str
    ) -> HttpResponse | None:
        """The page that asks before an action that reaches the users themselves (signed out,
        locked out, mailed) runs, as Django's "delete selected" asks: a page's checkbox selects
        100 of them. None once confirmed (`post=yes`), the action then runs on what it posts
        back: the whole selection, which the action itself narrows (and says whom it skips).
        A selection past the cap is refused here already, as _apply would refuse it."""
        if request.POST.get("post") == "yes":
            return None
        if self._refused_over_the_cap(request, selected):
            return HttpResponseRedirect(request.get_full_path())
        return TemplateResponse(
            request,
            "admin/accounts/user/action_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "title": self.get_actions(request)[action][2],
                "opts": self.model._meta,
                "users": list(selected.order_by("email")),
                "action": action,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    def _apply(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        service,
        *,
        not_done: str,
        done: str,
        summary: str,
        failures: tuple[type[Exception], ...] = (),
        stops: tuple[type[Exception], ...] = (),
    ) -> HttpResponse | None:
        """An action's service run for each user of `queryset` the caller may act on (a warning
        names the others), each logged as `done` by the caller; `summary` says how many.

        At most MAX_USERS_PER_ACTION users at once (else nothing is done): "select all" of a
        big table is a slip, and a mail each must finish within gunicorn's timeout. A user whose
        service raises one of `failures` is named in an error and the others go on; one of
        `stops` (a mail server down or hung: each next try would wait as long) ends the loop,
        naming the users not tried. Whoever was done is in the history even if an unexpected
        error ends the loop.
        """
        if self._refused_over_the_cap(request, queryset):
            return None
        users = self._managed_only(request, list(queryset), not_done)
        applied, failed, not_tried = [], [], []
        try:
            for index, user in enumerate(users):
                try:
                    service(user=user)
                # No traceback: a refused mail's exception text is the address (mail_error).
                except failures as error:
                    logger.error("admin action failed for user %s: %s", user.pk, mail_error(error))
                    failed.append(user.email)
                except stops as error:
                    logger.error(
                        "admin action failed for user %s; stopped: %s", user.pk, mail_error(error)
                    )
                    failed.append(user.email)
                    not_tried = [other.email for other in users[index + 1 :]]
                    break
                else:
                    applied.append(user)
        finally:
            self._log(request, applied, f"{done} (admin action).")
        if failed:
            self.message_user(
                request, f"{not_done} (failed, see the log): {', '.join(failed)}.", messages.ERROR
            )
        if not_tried:
            self.message_user(
                request,
                f"{not_done} (not tried after that failure): {', '.join(not_tried)}.",
                messages.ERROR,
            )
        self.message_user(request, summary.format(len(applied)), done_level(len(applied)))
        return None

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # The export link only where the export is allowed (change_form.html).
        context["may_export"] = obj is not None and may_manage(request.user, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="tasks (open / total)", ordering="total_tasks")
    def task_counts(self, user: User) -> str:
        return format_html(
            '<a href="{}">{} / {}</a>',
            owner_changelist_url(Task, user),
            user.open_tasks,
            user.total_tasks,
        )

    @admin.display(description="lists")
    def task_lists_link(self, user: User) -> str:
        return format_html(
            '<a href="{}">{} list{}</a>',
            owner_changelist_url(TaskList, user),
            user.total_lists,
            pluralize(user.total_lists),
        )

    @admin.display(description="tasks")
    def tasks_link(self, user: User) -> str:
        return format_html(
            '<a href="{}">{} task{}, {} open</a>',
            owner_changelist_url(Task, user),
            user.total_tasks,
            pluralize(user.total_tasks),
            user.open_tasks,
        )

    @admin.action(
        description="Deactivate selected users (their tokens stop working)", permissions=["change"]
    )
    def deactivate(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if asking := self._ask_first(request, queryset, "deactivate"):
            return asking
        if queryset.filter(pk=request.user.pk).exists():
            # Skipped: the admin would lock its own user out mid-action. Said, not silent.
            self.message_user(
                request,
                f"Not deactivated (your own account): {request.user.email}.",
                messages.WARNING,
            )
        return self._apply(
            request,
            queryset.filter(is_active=True).exclude(pk=request.user.pk),
            user_deactivate,
            not_done="Not deactivated",
            done="Deactivated the account",
            summary="Deactivated {} user(s).",
            failures=(User.DoesNotExist,),  # deleted since the list was read
        )

    @admin.action(
        description="Sign selected users out everywhere (every token stops working)",
        permissions=["change"],
    )
    def sign_out_everywhere(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        # A lost phone: the account stays open, the user signs in again with their password.
        if asking := self._ask_first(request, queryset, "sign_out_everywhere"):
            return asking
        return self._apply(
            request,
            queryset,
            user_sign_out_everywhere,
            not_done="Not signed out",
            done="Signed out everywhere: every token revoked",
            summary="Signed {} user(s) out everywhere.",
            failures=(User.DoesNotExist,),  # deleted since the list was read
        )

    @admin.action(
        description="Send a password-reset email to selected users", permissions=["change"]
    )
    def send_password_reset(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        # A reset link lets its reader choose the password: as much power as setting it.
        if asking := self._ask_first(request, queryset, "send_password_reset"):
            return asking
        # The whole selection, before the accounts skipped below: past the cap, nothing is done.
        if self._refused_over_the_cap(request, queryset):
            return None
        inactive = list(queryset.filter(is_active=False).values_list("email", flat=True))
        if inactive:
            # Its link would be refused (reset/confirm/ takes active accounts only).
            self.message_user(
                request,
                f"Not sent (deactivated: reactivate first): {', '.join(inactive)}.",
                messages.WARNING,
            )
        # A superuser turned password sign-in off (the password page): the link would turn it
        # back on, and the API's reset mails no such account either.
        disabled = queryset.filter(is_active=True, password__startswith=UNUSABLE_PASSWORD_PREFIX)
        if emails := list(disabled.values_list("email", flat=True)):
            self.message_user(
                request,
                "Not sent (password sign-in disabled: a superuser turns it on, on the user's "
                f"password page): {', '.join(emails)}.",
                messages.WARNING,
            )
        return self._apply(
            request,
            queryset.filter(is_active=True).exclude(password__startswith=UNUSABLE_PASSWORD_PREFIX),
            user_send_password_reset,
            not_done="Not sent",
            done="Sent a password-reset email",
            summary="Sent a password-reset email to {} user(s).",
            # One address refused: the others may go. The server down or hung: stop.
            failures=(smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused),
            stops=(smtplib.SMTPException, OSError),
        )

    @admin.action(description="Export selected users' data (JSON)", permissions=["view"])
    def export_data(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        # Many small accounts pass the task bound below: 10,000 took 55 s (a query each).
        if self._refused_over_the_cap(request, queryset):
            return None
        refused = self._refused(request, queryset)
        if refused:
            # All or nothing: next to a download, a warning would only show on a later page.
            self.message_user(
                request,
                f"Nothing exported (staff accounts, superusers only): {', '.join(refused)}.",
                messages.ERROR,
            )
            return None
        # One download holds at most the largest account (100,000 tasks stream in ~2 s): many
        # accounts at once would hold a worker past gunicorn's timeout.
        tasks = OwnerTaskCount.objects.filter(owner__in=queryset.values("pk"))
        total = tasks.aggregate(total=Sum("tasks"))["total"] or 0
        if total > settings.MAX_TASKS_PER_USER:
            self.message_user(
                request,
                f"Nothing exported: the selected users have {total:,} tasks, more than one "
                f"download holds ({settings.MAX_TASKS_PER_USER:,}). Select fewer users.",
                messages.ERROR,
            )
            return None
        return self._export_response(request, queryset, "todo-export")

    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """One user's data as a JSON download, from the link on their page."""
        # The admin's own lookup: an id that is no UUID is "not found" too, not a 500.
        user = self.get_object(request, unquote(object_id))
        if user is None:
            raise Http404
        if not (self.has_view_permission(request, user) and may_manage(request.user, user)):
            raise PermissionDenied
        queryset = self.get_queryset(request).filter(pk=user.pk)
        return self._export_response(request, queryset, f"todo-export-{user.email}")

    def get_urls(self):
        return [
            path(
                "<path:object_id>/export/",
                self.admin_site.admin_view(self.export_view),
                name="accounts_user_export",
            ),
            *super().get_urls(),
        ]

    def _export_response(self, request: HttpRequest, queryset: QuerySet, name: str):
        users = list(users_with_data(queryset.order_by("email")))
        self._log(request, users, "Exported the user's data as JSON (admin).")
        return StreamingHttpResponse(
            export_chunks(users),
            content_type="application/json",
            headers={"Content-Disposition": content_disposition_header(True, f"{name}.json")},
        )

    @staticmethod
    def _log(request: HttpRequest, users: list, message: str) -> None:
        """One LogEntry per user, with the actor, in one query (as Django logs a form save)."""
        if users:
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=users,
                action_flag=CHANGE,
                change_message=message,
            )
