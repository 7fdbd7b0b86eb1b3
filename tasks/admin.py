"""Lists, tasks and tags in the admin: fast on millions of rows, edits that keep the API's rules.

Every changelist reads a page in a fixed number of queries (owner and list joined, counts as
correlated subqueries). Searching by owner email resolves the owners first through the unique
email index, then reads their rows through the owner-leading indexes: no scan of the big table.
Completing and reopening go through tasks.services, exactly as the API does. The rows of staff
accounts are view-only to support, as the accounts are (todo_project.admin_site.may_manage).
"""

import functools
from copy import copy as shallow_copy
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import actions as django_actions
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.admin.utils import model_ngettext
from django.contrib.admin.views.main import SEARCH_VAR, ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Count, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst, smart_split, unescape_string_literal
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as Invalid

from accounts.models import User, UserManager
from tasks import services
from tasks.filters import due_before_now
from tasks.models import (
    ADMIN_ONLY,
    COLOR_PATTERN,
    DESCRIPTION_MAX_LENGTH,
    MAX_TAGS_PER_TASK,
    Tag,
    Task,
    TaskList,
    count_of,
    name_sort_key,
    named,
    task_to_write,
    too_many_tags,
)
from tasks.quotas import ensure_tag_room
from tasks.recurrence import past_times_of_day
from todo_project.admin_site import (
    ChangelistInputChecked,
    FilterLookupsOnly,
    HistoryWithOldValues,
    LengthsCheckedByTheServer,
    SaveRefusalsShown,
    SavesRunAgain,
    done_level,
    managed,
    may_manage,
)
from todo_project.fields import (
    CONTROL_CHARACTERS_MESSAGE,
    breaks_one_line,
    composed,
    shows_nothing,
    trimmed,
)
from todo_project.problems import (
    ConcurrentChange,
    Conflict,
    is_concurrent_change,
    log_concurrent_change,
)
from todo_project.retry import run_again_on_concurrent_change

# A search term matching more owners than this is too vague to be about one user's data.
OWNER_MATCHES_MAX = 100
# How many tasks one complete/reopen action may change, the open subtasks completed with them
# included (~5 ms each, within gunicorn's 30 s).
MAX_TASKS_PER_ACTION = 1_000


def owner_ids_matching(term: str) -> list:
    """Ids of the users whose email is `term`, else starts with it (emails are lower-case):
    the first OWNER_MATCHES_MAX by email, and one more when there are more (the caller says so).

    The exact match is an index lookup on the unique email index whatever the collation; the
    prefix match can use it only under the C collation, but scans the users table, which is
    small next to the tasks.
    """
    term = UserManager.normalize_email(term)
    users = User.objects.order_by("email").values_list("pk", flat=True)
    exact = list(users.filter(email=term)) if "@" in term else []
    return exact or list(users.filter(email__startswith=term)[: OWNER_MATCHES_MAX + 1])


class OwnedAdmin(
    SavesRunAgain,
    SaveRefusalsShown,
    HistoryWithOldValues,
    ChangelistInputChecked,
    FilterLookupsOnly,
    LengthsCheckedByTheServer,
    admin.ModelAdmin,
):
    """Shared by the owned models: owner email column and search, owner fixed once created."""

    extra_lookups = frozenset({"owner__id__exact"})  # accounts.admin.owner_changelist_url

    text_search_field: str  # searched by substring, next to the owner's email
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    show_full_result_count = False  # one COUNT(*) over millions of rows per page is enough

    actions = ["delete_selected"]  # Django's delete, capped (see there)

    @admin.action(description="Delete selected %(verbose_name_plural)s", permissions=["delete"])
    def delete_selected(self, request: HttpRequest, queryset: QuerySet):
        """Django's, at most MAX_TASKS_PER_ACTION rows at once (a task's subtasks go with it in
        its one statement): "select all" of 1.1M tasks or tags is a slip, the page listing them
        names each in a parameter of one query (past 65,535 it fails), and the loop of deletes
        must end within gunicorn's timeout. Confirmed, the rows go as delete_queryset says, and
        the message counts those deleted: Django's counted the selection, gone or not."""
        count = queryset.count()
        if count > MAX_TASKS_PER_ACTION:
            self.message_user(
                request,
                f"Nothing done: {count:,} {self.model._meta.verbose_name_plural} selected, an "
                f"action takes at most {MAX_TASKS_PER_ACTION:,} at once.",
                messages.ERROR,
            )
            return None
        staff_rows = self._staff_rows(request, queryset)
        if staff_rows:
            # Refused whole, before asking: Django's confirmation would only say that the
            # account "doesn't have permission to delete" tasks, of which it deletes others.
            whose = "belongs to a staff account" if staff_rows == 1 else "belong to staff accounts"
            self.message_user(
                request,
                f"Nothing deleted: {staff_rows} of the selected "
                f"{self.model._meta.verbose_name_plural} {whose}, whose data only superusers "
                "may delete.",
                messages.ERROR,
            )
            return None
        if request.POST.get("post") and count:
            # As Django's: what it would refuse or show again (protected rows) goes to it.
            _, _, perms_needed, protected = self.get_deleted_objects(queryset, request)
            if not protected:
                if perms_needed:
                    raise PermissionDenied
                deleted, with_them = self.delete_queryset(request, queryset)
                if deleted:
                    # The rows that went with the selected ones (a task's subtasks) counted too,
                    # as the confirmation's summary did: "2 tasks" after "Tasks: 5" read as if
                    # three had stayed.
                    went_with = self.goes_with_a_row[with_them != 1]
                    also = f" (and {with_them} {went_with} with them)" if with_them else ""
                    self.message_user(
                        request,
                        f"Successfully deleted {deleted} {model_ngettext(self.opts, deleted)}"
                        f"{also}.",
                        messages.SUCCESS,
                    )
                return None
        return django_actions.delete_selected(self, request, queryset)

    @staticmethod
    def _staff_rows(request: HttpRequest, queryset: QuerySet) -> int:
        """How many of the selected rows are of accounts `request` may not manage (may_manage):
        none to a superuser."""
        if request.user.is_superuser:
            return 0
        return queryset.exclude(owner__in=managed(request.user, User.objects.all())).count()

    # What a row's deletion takes along (delete_row counts them), singular and plural.
    goes_with_a_row = ("row", "rows")

    def deletion_with_counts(self, request: HttpRequest, rows: list, keys, what: str) -> tuple:
        """get_deleted_objects' answer for rows whose deletion leaves their tasks in place: each
        row, and under it `what` becomes of its tasks with their number, from one query (`keys`:
        a values_list of the row's id, one entry a task)."""
        opts = self.model._meta
        perms_needed = set()
        if not all(self.has_delete_permission(request, row) for row in rows):
            perms_needed.add(opts.verbose_name)
        counts = dict(keys.order_by().annotate(n=Count("*")))
        to_delete = []
        for row in rows:
            to_delete.append(f"{capfirst(opts.verbose_name)}: {row}")
            if counts.get(row.pk):
                to_delete.append([f"{what}: {counts[row.pk]:,}"])
        return to_delete, {opts.verbose_name_plural: len(rows)}, perms_needed, []

    def delete_row(self, row) -> bool | int:
        """Deletes `row` through the services, as the API does; whether it was there to delete
        (False or 0: deleted meanwhile, by its user or another agent), or how many rows went
        with it included (a task's subtasks)."""
        raise NotImplementedError

    def deletion_order(self, rows: list) -> list:
        return rows

    def delete_model(self, request: HttpRequest, obj) -> None:
        self.delete_row(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> tuple[int, int]:
        """Deletes the selected rows, each in a transaction of its own with its history entry,
        which commits only with the deletion: Django wrote the whole selection's entries first,
        on their own, so a deletion that then failed left entries for rows still there (what
        UserAdmin fixed for accounts), and one deleted meanwhile by its user was said deleted
        here. The one PostgreSQL ended to settle a clash with a concurrent write (a subtask
        added to a selected task meanwhile: a reference its DELETE never saw, 23503) runs again
        alone, as the API's DELETE does (a 500 page before); one that never gets through is
        left as it was and named in a message. How many selected rows it deleted, and how many
        others went with them (a task's subtasks, from the service's own row count)."""
        deleted, with_them, gone, left = 0, 0, 0, []
        for row in self.deletion_order(list(queryset)):

            def delete_one(row=row) -> int:
                with transaction.atomic():
                    # Named before the delete, which takes a row's pk (Django's order), and
                    # committed with it: an attempt that fails or finds nothing rolls it back.
                    self.log_deletions(request, [row])
                    # The row's own pk kept for a retry.
                    if went := int(self.delete_row(shallow_copy(row))):
                        return went
                    transaction.set_rollback(True)
                    return 0

            try:
                if went := run_again_on_concurrent_change(delete_one)():
                    deleted += 1
                    with_them += went - 1
                else:
                    gone += 1
            except ConcurrentChange as error:  # a service that gave up on its own (tags)
                log_concurrent_change(error)
                left.append(f"{row}: other changes kept getting in the way.")
            except DatabaseError as error:
                if not is_concurrent_change(error):
                    raise
                log_concurrent_change(error)
                left.append(f"{row}: other changes got in the way, three times.")
        name = self.model._meta.verbose_name
        if left:
            self.message_user(
                request, f"Left {len(left)} {name}(s) as they were: {left[0]}", messages.ERROR
            )
        if gone:
            self.message_user(
                request,
                f"{gone} {name}(s) had been deleted meanwhile, by their owner or another agent: "
                "nothing to do.",
                messages.WARNING,
            )
        return deleted, with_them

    def log_deletions(self, request: HttpRequest, queryset) -> None:
        # Django's delete_selected passes the QuerySet, before and apart from delete_queryset
        # (which is not called that way any more: see delete_selected); delete_queryset logs
        # each row in the transaction that deletes it. The delete page passes [obj], inside
        # the transaction it deletes the row in.
        if not isinstance(queryset, QuerySet):
            super().log_deletions(request, queryset)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        """Each word narrows the result: "x@y" → the owner's rows, other text → text or owner.

        Owners are looked up first, so the database gets literal owner ids and reads the rows
        through an owner-leading index instead of joining the users table.
        """
        for bit in smart_split(search_term):
            if bit[:1] in {'"', "'"} and bit[-1:] == bit[:1]:
                bit = unescape_string_literal(bit)
            if not bit.strip():
                continue
            owner_ids = owner_ids_matching(bit)
            if len(owner_ids) > OWNER_MATCHES_MAX:
                # The rows of the first ones only: said, or a partial result reads as whole.
                owner_ids = owner_ids[:OWNER_MATCHES_MAX]
                self.message_user(
                    request,
                    f"More than {OWNER_MATCHES_MAX} accounts have an email starting with "
                    f"“{bit}”: only the first {OWNER_MATCHES_MAX} by email are searched. Type "
                    "more of the email.",
                    messages.WARNING,
                )
            owners = Q(owner_id__in=owner_ids)
            if "@" in bit:
                queryset = queryset.filter(owners)
            else:
                queryset = queryset.filter(
                    Q(**{f"{self.text_search_field}__icontains": bit}) | owners
                )
        return queryset, False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # The data of staff accounts is view-only to support, as the accounts themselves are.
        if obj is not None and not may_manage(request.user, obj.owner):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # So is deleting it, to an agent a superuser gave the delete permission (the Support
        # group has none): the delete page is a 403, and Django's confirmation (delete_selected,
        # get_deleted_objects) counts the row among those it may not delete.
        if obj is not None and not may_manage(request.user, obj.owner):
            return False
        return super().has_delete_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "owner":
            # Nor may support add a row to such an account: the add form's owner is one they
            # may manage (another, posted, is the field's "Select a valid choice"), and the
            # raw-id popup lists only those (accounts.admin.UserAdmin.get_changelist).
            kwargs["queryset"] = managed(request.user, User.objects.all())
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        # Moving a row to another user would break every rule of ownership: never after creation.
        return [*readonly, "owner"] if obj is not None else readonly

    @admin.display(description="owner")
    def owner_email(self, obj) -> str:
        # Not sortable: sorting millions of rows by a joined column is not a page read.
        return obj.owner.email


def _log(request: HttpRequest, objects: list, action_flag: int, message: str) -> None:
    """One LogEntry per row, with the actor, in one query."""
    if objects:
        LogEntry.objects.log_actions(
            user_id=request.user.pk,
            queryset=objects,
            action_flag=action_flag,
            change_message=message,
        )


def _log_completion_writes(request: HttpRequest, task: Task) -> int:
    """History for what completing `task` also wrote (services._after_completion): its open
    subtasks, completed with it, and the next occurrence of each recurring one. Both are told
    by the completion's instant, `task.completed_at`: the service stamps the subtasks with it
    and creates the copies after it (a copy left from an earlier completion is older). How
    many subtasks were completed with it."""
    now = task.completed_at
    subtasks = list(Task.objects.filter(parent=task, completed_at=now))
    # The other task by title and id: a bare id said little, and "…, completed" read as if the
    # copy had been completed.
    for subtask in subtasks:
        message = f"Completed with its parent “{task.title}” ({task.pk}) (admin action)."
        _log(request, [subtask], CHANGE, message)
    originals = {t.next_occurrence_id: t for t in [task, *subtasks] if t.next_occurrence_id}
    for copy in Task.objects.filter(pk__in=originals, created_at__gte=now):
        original = originals[copy.pk]
        message = (
            f"Created as the next occurrence of “{original.title}” ({original.pk}) when that "
            "was completed (admin action)."
        )
        _log(request, [copy], ADDITION, message)
    return len(subtasks)


class DueFilter(admin.SimpleListFilter):
    """Due dates and times are the owner's wall clock, so "today" is each owner's today, in
    their time zone, and a task due today at a time already past is overdue: the API's
    `overdue=true`. The server's UTC date had a user of Kiritimati (UTC+14) see as overdue what
    the admin put under "Today", and one of Honolulu a task due at 06:00 as not yet overdue.

    Each owner's date and time come from Python's zone database, as the API's do, one
    condition per zone the users have: PostgreSQL's own database lacks zones Python accepts
    (America/Coyhaique), and a SQL timezone() on one failed the whole page."""

    title = "due (in the owner's time zone)"
    parameter_name = "due"

    def lookups(self, request, model_admin):
        return [
            ("overdue", "Overdue"),
            ("today", "Today"),
            ("week", "This week"),
            ("none", "No due date"),
        ]

    def queryset(self, request, queryset):
        match self.value():
            case "none":
                return queryset.filter(due_date__isnull=True)
            case "overdue":
                return queryset.filter(Q(completed=False) & self._in_each_zone(_overdue))
            case "today":
                return queryset.filter(self._in_each_zone(lambda now: Q(due_date=now.date())))
            case "week":
                return queryset.filter(self._in_each_zone(_this_week))
        return queryset

    @staticmethod
    def _in_each_zone(condition) -> Q:
        now = timezone.now()
        zones = User.objects.order_by().values_list("timezone", flat=True).distinct()
        either = Q(pk__in=[])
        for name in zones:
            either |= Q(owner__timezone=name) & condition(now.astimezone(ZoneInfo(name)))
        return either


def _overdue(now: datetime) -> Q:
    return due_before_now(now.date(), past_times_of_day(now))


def _this_week(now: datetime) -> Q:
    monday = now.date() - timedelta(days=now.weekday())
    return Q(due_date__range=(monday, monday + timedelta(days=6)))


class RecurrenceFilter(admin.SimpleListFilter):
    title = "recurrence"
    parameter_name = "recurring"

    def lookups(self, request, model_admin):
        return [("yes", "Recurring"), ("no", "One-off")]

    def queryset(self, request, queryset):
        match self.value():
            case "yes":
                return queryset.filter(recurrence__isnull=False)
            case "no":
                return queryset.filter(recurrence__isnull=True)
        return queryset


def one_line(text: str, initial: str | None) -> str:
    """The API's one-line rule (todo_project.fields.OneLineCharField), its message; as there,
    a value stored before the rule may stay as it is."""
    if breaks_one_line(text, initial):
        raise forms.ValidationError(CONTROL_CHARACTERS_MESSAGE)
    return text


def visible(text: str, initial: str | None) -> str:
    """The API's rules for names and titles (todo_project.fields.VisibleCharField), its
    messages: a row the API could not write back unchanged is no row support should make."""
    if shows_nothing(text):
        raise forms.ValidationError("This field may not be blank.")
    return one_line(text, initial)


class TextareaField(forms.CharField):
    """A description as the API keeps it: browsers send a textarea's line breaks as CRLF, and
    Django's CharField strips the ends, so a description nobody touched came back changed
    (and one near the length limit could no longer be saved)."""

    widget = forms.Textarea

    def __init__(self, **kwargs) -> None:
        super().__init__(strip=False, **kwargs)

    def to_python(self, value) -> str:
        return super().to_python(value).replace("\r\n", "\n")

    def has_changed(self, initial, data) -> bool:
        return super().has_changed(self.to_python(initial), data)

    def widget_attrs(self, widget) -> dict:
        # No maxlength, as no box has (admin_site.LengthsCheckedByTheServer): a browser counts
        # UTF-16 units, and a line break as one where it sends two.
        return {
            key: value for key, value in super().widget_attrs(widget).items() if key != "maxlength"
        }


def _lines(text: str) -> str:
    """`text` with its line breaks as LF: a textarea posts them as CRLF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


class StoredLineBreaksKept:
    """A one-line box cannot carry a line break: browsers drop CR and LF from an input's value
    (HTML's value sanitization). A title or name stored with one (before the one-line rule)
    came back without it, and a save of anything else silently rewrote it ("Pay\nrent" as
    "Payrent"). Such a value is shown in a textarea instead, where support sees the break and
    may take it out; sent back with its breaks (as CRLF), it is kept as stored.
    `one_line_fields`: the form's fields in a one-line box."""

    one_line_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in self.one_line_fields:
            stored, key = self.initial.get(name), self.add_prefix(name)
            if not isinstance(stored, str) or ("\n" not in stored and "\r" not in stored):
                continue
            self.fields[name].widget = forms.Textarea(attrs={"rows": 2, "cols": 60})
            posted = self.data.get(key) if self.is_bound else None
            if isinstance(posted, str) and posted != stored and _lines(posted) == _lines(stored):
                self.data = self.data.copy()
                self.data[key] = stored


class NameFormField(forms.CharField):
    """A list's or a tag's name, composed (fields.composed) as it is read, so its length is
    counted composed, as the API's NameField counts it: 100 "é" typed decomposed, 200 code
    points, are a valid list name. `stored`: the row's name, which may come back unchanged."""

    stored: str | None = None

    def to_python(self, value) -> str:
        value = super().to_python(value)
        # One that shows nothing at all is left whole, for the "may not be blank" the API says.
        return value if value == self.stored or not trimmed(value) else composed(trimmed(value))


NAME_TAKEN = "This user already has one with this name."


class OwnedNameForm(StoredLineBreaksKept, forms.ModelForm):
    """Names are unique per owner, case-insensitively: a clear error, not a silent merge."""

    one_line_fields = ("name",)

    class Meta:
        field_classes = {"name": NameFormField}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "name" in self.fields:  # not when the name is read only to this user
            self.fields["name"].stored = self.initial.get("name")

    def clean_name(self) -> str:
        stored = self.initial.get("name")
        name = visible(self.cleaned_data["name"], stored)
        if name == stored:
            return name  # one composed since may look the same (fields.composed): it stays
        owner_id = self.instance.owner_id or getattr(self.cleaned_data.get("owner"), "pk", None)
        taken = (
            type(self.instance)
            .objects.filter(named(name), owner_id=owner_id)
            .exclude(pk=self.instance.pk)
        )
        if owner_id is not None and taken.exists():
            raise forms.ValidationError(NAME_TAKEN)
        return name


class VersionCheckedForm(forms.ModelForm):
    """Optimistic locking: the version of the row the change form was opened at comes back
    with it, hidden, and a save is refused if the row has changed since. Otherwise the form's
    old values would silently undo the other change (a user's PATCH meanwhile): Django writes
    every field whose posted value differs from the row as the POST reads it, not as the form
    was opened."""

    opened_version = forms.CharField(widget=forms.HiddenInput, required=False)
    locked_row = None  # the row as clean() read it, under its lock: what save_model() writes

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["opened_version"].initial = self.version_of(self.instance)

    def version_of(self, row) -> str:
        """What differs once `row` has changed: its `version` column, for the rows that have
        one (accounts.admin has a version for users, which have none)."""
        return str(row.version)

    def lock_row(self):
        """The row as it is now, locked until the commit; None if it is gone."""
        return type(self.instance).objects.select_for_update().filter(pk=self.instance.pk).first()

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.instance._state.adding:
            return cleaned
        # The admin's change view is one transaction (ModelAdmin.changeform_view): this lock
        # holds until the save commits, so no other write comes between the check and the save.
        self.locked_row = self.lock_row()
        opened = cleaned.get("opened_version")
        if self.locked_row is None or self.version_of(self.locked_row) != opened:
            self.add_error(
                None,
                f"This {self.instance._meta.verbose_name} has changed since you opened it: "
                "reload the page to see the change, then make yours again.",
            )
        return cleaned


SUBTASKS_SHOWN = 50


def _owned_parameters(widget: forms.Widget, owner_id: Any) -> dict[str, str]:
    return {**type(widget).url_parameters(widget), "owner__id__exact": str(owner_id)}


class TaskAdminForm(StoredLineBreaksKept, VersionCheckedForm):
    one_line_fields = ("title",)
    description = TextareaField(required=False, max_length=DESCRIPTION_MAX_LENGTH)
    # The contract's HH:MM: Django's time field took and showed seconds, which the API drops
    # (10:15:30 read back as 10:15 there, and as 10:15:30 in the admin's export).
    due_time = forms.TimeField(
        label="Due time",  # the history named it "due_time" without one
        required=False,
        input_formats=["%H:%M"],
        widget=forms.TimeInput(format="%H:%M"),
        help_text="HH:MM (24 h), the owner's wall-clock time.",
    )

    class Meta:
        model = Task
        fields = ["title", "description", "owner", "list", "parent", "tags"]
        fields += ["priority", "due_date", "due_time"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        owner_id = self.instance.owner_id
        if owner_id is None:
            return
        # The lookup popups list the owner's lists, tasks and tags, not every user's.
        for name in ("list", "parent", "tags"):
            if name not in self.fields:
                continue  # a view-only page (a staff account's task) has no inputs
            widget = self.fields[name].widget
            widget.url_parameters = functools.partial(_owned_parameters, widget, owner_id)

    def clean_title(self) -> str:
        return visible(self.cleaned_data["title"], self.initial.get("title"))

    def lock_row(self) -> Task | None:
        # With what task_update(locked=True) reads besides the row (tag names, open subtasks).
        return task_to_write(self.instance.owner_id, self.instance.pk)

    def clean(self) -> dict:
        cleaned = super().clean()
        tags = cleaned.get("tags") or []
        if len(tags) > MAX_TAGS_PER_TASK:  # the API's limit (services.tags_get_or_create)
            self.add_error("tags", too_many_tags(len(tags)))
        adding = self.instance._state.adding  # a new Task already has its UUID pk
        # The API's rules on dates (TaskSerializer.validate) with its messages: the form checks
        # no constraint on `recurrence`, read-only here, so clearing a recurring task's due
        # date was an IntegrityError (task_recurrence_needs_due_date), a 500.
        if "due_date" in self.errors:
            pass  # a date that does not parse (2026-02-30): its own error says so
        elif cleaned.get("due_date") is None:
            if cleaned.get("due_time") is not None:
                self.add_error("due_time", "A due time needs a due date.")
            if not adding and self.instance.recurrence is not None:
                self.add_error("due_date", "A recurring task needs a due date.")
        elif not adding and "due_date" in self.changed_data:
            # The rule is read-only here, the due date is not: as the API, no date it never
            # repeats after (a copy that keeps its series' start is checked against that).
            never = services.never_repeats(self.instance, {"due_date": cleaned["due_date"]})
            if never:
                self.add_error("due_date", never)
        owner = cleaned.get("owner") if adding else self.instance.owner
        if owner is None:
            return cleaned
        # The raw-id widgets accept any id: keep list, parent and tags within the owner's own.
        for field in ("list", "parent"):
            value = cleaned.get(field)
            if value is not None and value.owner_id != owner.pk:
                self.add_error(field, f"This {field} belongs to another user.")
        foreign = [tag.name for tag in tags if tag.owner_id != owner.pk]
        if foreign:
            self.add_error("tags", f"These tags belong to another user: {', '.join(foreign)}.")
        parent = cleaned.get("parent")
        if parent is not None and parent.owner_id == owner.pk:
            # The API's rules: subtasks are one level deep and live in their parent's list.
            if parent.parent_id is not None or parent.pk == self.instance.pk:
                self.add_error("parent", "The parent must be a top-level task other than this.")
            elif not adding and self.instance.subtasks.exists():
                self.add_error("parent", "This task has subtasks: it cannot become one.")
            elif parent.list_id != getattr(cleaned.get("list"), "pk", None):
                self.add_error("list", "A subtask lives in its parent's list.")
        return cleaned


class PagedOffTheAdminIndex(Paginator):
    """The task changelist's paginator: a page states ADMIN_ONLY, true of every task, so that
    PostgreSQL reads it off task_admin_updated, the all-owners index no API statement may use
    (Task.Meta); the count does not. Stated there, the condition's column is in no other index:
    the count of every task read the table instead of a narrow index (184 ms against 52 for
    1.1M tasks; of the completed ones 129 against 24: review 41e). A changelist of at most one
    page (Django's `not multi_page`, or "Show all") reads the rows it counted without this
    paginator: few rows, no LIMIT to walk an index for."""

    def __init__(self, object_list: QuerySet, *args: Any, **kwargs: Any) -> None:
        self.counted = object_list
        super().__init__(object_list.filter(ADMIN_ONLY), *args, **kwargs)

    @functools.cached_property
    def count(self) -> int:
        return self.counted.count()


class SortedBySortableOnly(ChangeList):
    """Django hides the headers a ModelAdmin's sortable_by leaves out, but still orders by a
    typed `?o=` of them: here such a column of `o` is skipped (the list's default order)."""

    def get_ordering_field(self, field_name: str):
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


@admin.register(Task)
class TaskAdmin(OwnedAdmin):
    form = TaskAdminForm
    history_values = ("title", "priority", "due_date", "due_time")  # not the description
    text_search_field = "title"
    list_display = [
        "title",
        "owner_email",
        "list",
        "priority",
        "due_date",
        "completed",
        "updated_at",
    ]
    list_select_related = ["owner", "list"]
    list_filter = ["completed", "priority", DueFilter, RecurrenceFilter]
    search_fields = ["title"]
    search_help_text = (
        'An email ("ann@example.com") finds that user\'s tasks; other words match titles or '
        "the start of an owner's email."
    )
    # Owner-leading index (owner, updated_at, id) serves a search by owner in this order.
    ordering = ["-updated_at"]
    raw_id_fields = ["owner", "list", "parent", "tags"]
    readonly_fields = [
        "id",
        "tag_names",
        "subtask_links",
        "completed",
        "completed_at",
        "position",
        "recurrence",
        "recurrence_start",
        "next_occurrence_link",
        "version",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "title",
                    "description",
                    "owner",
                    "list",
                    "parent",
                    "subtask_links",
                    "tags",
                    "tag_names",
                ]
            },
        ),
        (
            "Schedule",
            {
                "fields": [
                    "priority",
                    "due_date",
                    "due_time",
                    "recurrence",
                    "recurrence_start",
                    "next_occurrence_link",
                ]
            },
        ),
        (
            "State",
            {
                "description": "Use the Complete / Reopen actions of the task list to change.",
                "fields": ["completed", "completed_at", "position", "version", "opened_version"],
            },
        ),
        ("Dates", {"fields": ["created_at", "updated_at"]}),
    ]
    actions = ["delete_selected", "complete", "reopen"]  # Django's delete, capped (see there)

    # A page reads off task_admin_updated; the count does not state its condition (see there).
    paginator = PagedOffTheAdminIndex

    def get_sortable_by(self, request: HttpRequest):
        # Any other column's order, over every task, is a read and sort of the whole table:
        # 250-300 ms at 300,000 tasks, ~1 s at 1.1M, past the workers' 5 s statement timeout (a
        # 500 page) at a few million (review 44b). One owner's tasks sort, or a search's by an
        # owner's email (a word with @: those owners' tasks alone, get_search_results); other
        # words match titles across every task ("task" or "e" most of them: 318-364 ms a sort
        # at 300,000, against 245 unfiltered; review 44e).
        searched = request.GET.get(SEARCH_VAR, "")
        if request.GET.get("owner__id__exact") or "@" in searched:
            return super().get_sortable_by(request)
        return ["updated_at"]

    def get_changelist(self, request: HttpRequest, **kwargs) -> type:
        return SortedBySortableOnly

    def get_paginator(self, request: HttpRequest, queryset: QuerySet, *args: Any, **kwargs: Any):
        # Django's history page pages a task's LogEntry rows through this too: they have no
        # `version` for ADMIN_ONLY to state (every task's history page was a 500: review 44b).
        if queryset.model is not Task:
            return Paginator(queryset, *args, **kwargs)
        return super().get_paginator(request, queryset, *args, **kwargs)

    # The tags field is a raw-id input (a popup to choose from, not a select of every tag):
    # its ids say nothing to a person, these say what they are.
    @admin.display(description="tag names")
    def tag_names(self, task: Task) -> str:
        return ", ".join(sorted((tag.name for tag in task.tags.all()), key=name_sort_key)) or "-"

    @admin.display(description="next occurrence")
    def next_occurrence_link(self, task: Task) -> str:
        copy = task.next_occurrence
        if copy is None:
            return "-"
        url = reverse("admin:tasks_task_change", args=[copy.pk])
        return format_html('<a href="{}">{}</a>', url, copy)

    @admin.display(description="subtasks")
    def subtask_links(self, task: Task) -> str:
        shown = list(task.subtasks.order_by("position", "id")[:SUBTASKS_SHOWN])
        if not shown:
            return "-"
        links = format_html_join(
            ", ",
            '<a href="{}">{}</a>{}',
            (
                (
                    reverse("admin:tasks_task_change", args=[sub.pk]),
                    sub.title,
                    " (done)" if sub.completed else "",
                )
                for sub in shown
            ),
        )
        more = task.subtasks.count() - len(shown) if len(shown) == SUBTASKS_SHOWN else 0
        return format_html("{}{}", links, f" and {more} more" if more else "")

    def save_model(self, request: HttpRequest, obj: Task, form, change: bool) -> None:
        """Through the API's services: ranks, subtasks' list, recurrence start and `version`."""
        data = {
            field: form.cleaned_data[field]
            for field in services.WRITABLE_FIELDS
            if field in form.changed_data or (not change and field in form.cleaned_data)
        }
        if "tags" in form.changed_data:
            data["tags"] = [tag.name for tag in form.cleaned_data["tags"]]
        if change:
            saved = services.task_update(
                task=form.locked_row, user=obj.owner, data=data, locked=True
            )
        else:
            saved = services.task_create(user=form.cleaned_data["owner"], data=data)
        obj.pk, obj.version = saved.pk, saved.version

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        """Tags were saved by the service, by name (form.save_m2m would bypass `version`)."""

    goes_with_a_row = ("subtask", "subtasks")

    def delete_row(self, row: Task) -> int:
        # As the API's DELETE: with its subtasks, and the previous occurrence loses its link
        # with a new version (Django's SET_NULL kept it: a sync never saw the link go). How
        # many rows went, its subtasks included: the statement's own count, no query more.
        return services.task_delete(owner_id=row.owner_id, task_id=row.pk)

    def deletion_order(self, rows: list) -> list:
        # Selected subtasks before their parents, which would take them along unlogged.
        return sorted(rows, key=lambda task: task.parent_id is None)

    def get_deleted_objects(self, objs, request: HttpRequest):
        """What the delete confirmation lists: each selected task with how many subtasks go with
        it, counted in one query. Django's own list collected every subtask, then looked up
        their subtasks, tags and next occurrences naming each in a parameter: past PostgreSQL's
        65,535 (the API bounds no parent's subtasks) the page, and so the delete, failed. At
        most MAX_TASKS_PER_ACTION are selected (delete_selected), so their ids fit."""
        tasks = list(objs)
        perms_needed = set()
        if not all(self.has_delete_permission(request, task) for task in tasks):
            perms_needed.add(Task._meta.verbose_name)
        ids = [task.pk for task in tasks]
        # A selected subtask is listed as selected, not under its parent as well.
        subtasks = Task.objects.filter(parent__in=ids).exclude(pk__in=ids)
        counts = dict(subtasks.order_by().values_list("parent").annotate(n=Count("*")))
        model_count = {Task._meta.verbose_name_plural: len(tasks) + sum(counts.values())}
        to_delete = []
        for task in tasks:
            to_delete.append(f"{capfirst(Task._meta.verbose_name)}: {task}")
            if counts.get(task.pk):
                to_delete.append([f"Subtasks: {counts[task.pk]:,}"])
        return to_delete, model_count, perms_needed, []

    @admin.action(description="Complete selected tasks", permissions=["change"])
    def complete(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = self._set_completed(request, queryset, True, "Completed (admin action).")
        if done is not None:
            # Its open subtasks counted too, as the cap's refusal counts them: "Completed 1
            # task(s)." above a list showing four ticked read as if three had been left.
            completed, with_them = done
            also = f" and {with_them} open subtask(s) with them" if with_them else ""
            self.message_user(
                request, f"Completed {completed} task(s){also}.", done_level(completed)
            )

    @admin.action(description="Reopen selected tasks", permissions=["change"])
    def reopen(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = self._set_completed(request, queryset, False, "Reopened (admin action).")
        if done is not None:
            reopened, _ = done  # a reopened task's subtasks stay as they are
            self.message_user(request, f"Reopened {reopened} task(s).", done_level(reopened))

    def _set_completed(
        self, request: HttpRequest, queryset: QuerySet, completed: bool, message: str
    ) -> tuple[int, int] | None:
        """Completes or reopens the selected tasks not in that state yet, logging each; how many
        it changed, and how many open subtasks were completed with them (those selected too
        among them, the loop finding them done). None, with nothing done, past MAX_TASKS_PER_ACTION: "select all" of 1.1M
        tasks is a slip, and the loop (a transaction each) must end within gunicorn's timeout."""
        to_change = queryset.filter(completed=not completed)
        count = to_change.count()
        with_them = ""
        # Their open subtasks are completed with them, and cost the same; counted only when the
        # selection alone is within the cap: that count names the selection twice, once in a
        # NOT IN, and over "select all" of 300,000 tasks it ran for more than 10 minutes (past
        # the workers' statement timeout: an error page instead of this message; review 44b).
        if completed and count <= MAX_TASKS_PER_ACTION:
            subtasks = Task.objects.filter(parent__in=to_change, completed=False)
            count += subtasks.exclude(pk__in=to_change).count()
            with_them = " (open subtasks included)"
        if count > MAX_TASKS_PER_ACTION:
            self.message_user(
                request,
                f"Nothing done: {count:,} tasks to change{with_them}, an action takes at most "
                f"{MAX_TASKS_PER_ACTION:,} at once.",
                messages.ERROR,
            )
            return None
        changed, with_them, refused, conflicts = 0, 0, 0, []
        for task in to_change.select_related("owner"):
            if not may_manage(request.user, task.owner):
                refused += 1
                continue

            def set_one(task: Task = task) -> tuple[bool, int]:
                with transaction.atomic():
                    # Read under its lock, as the API's PATCH does: one completed with its
                    # parent earlier in this loop, or changed by its user meanwhile, is not this
                    # action's doing.
                    current = task_to_write(task.owner_id, task.pk, completing=completed)
                    if current is None or current.completed == completed:
                        return False, 0
                    services.task_update(
                        task=current, user=task.owner, data={"completed": completed}, locked=True
                    )
                    _log(request, [current], CHANGE, message)
                    subtasks = _log_completion_writes(request, current) if completed else 0
                return True, subtasks

            try:
                # A transaction per task, so the one PostgreSQL ended can run again alone.
                one, subtasks = run_again_on_concurrent_change(set_one)()
                changed += one
                with_them += subtasks
            # Its next occurrence would pass the task cap, or it has more open subtasks than
            # one completion takes (tasks.quotas.MAX_COMPLETED_PER_REQUEST).
            except Conflict as error:
                conflicts.append(f"{task}: {error.detail}")
            except DatabaseError as error:
                if not is_concurrent_change(error):
                    raise
                log_concurrent_change(error)
                conflicts.append(f"{task}: other changes got in the way, three times.")
        if refused:
            self.message_user(
                request,
                f"Left {refused} task(s) of staff accounts as they were (superusers only).",
                messages.WARNING,
            )
        if conflicts:
            self.message_user(
                request,
                f"Left {len(conflicts)} task(s) as they were: {conflicts[0]}",
                messages.ERROR,
            )
        return changed, with_them


class TaskListAdminForm(VersionCheckedForm, OwnedNameForm):
    """A list's name, unique per owner, and its version, checked on save."""

    # The API's rule and message: the database's check constraint showed its own name.
    color = forms.RegexField(
        regex=COLOR_PATTERN,
        strip=True,  # as the API's field trims
        required=False,
        error_messages={"invalid": "Use #RRGGBB or leave it empty."},
        help_text="#RRGGBB, or empty for none.",
    )

    def clean_color(self) -> str | None:
        return self.cleaned_data["color"] or None


@admin.register(TaskList)
class TaskListAdmin(OwnedAdmin):
    form = TaskListAdminForm
    history_values = ("name", "color")
    text_search_field = "name"
    list_display = ["name", "owner_email", "color", "task_count", "updated_at"]
    search_fields = ["name"]
    search_help_text = (
        'An email ("ann@example.com") finds that user\'s lists; other words match names or '
        "the start of an owner's email."
    )
    ordering = ["-updated_at"]
    readonly_fields = ["id", "position", "version", "created_at", "updated_at"]
    fields = ["id", "owner", "name", "color", "position", "version", "opened_version"]
    fields += ["created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        tasks = Task.objects.filter(list=OuterRef("pk"))
        return super().get_queryset(request).annotate(task_count=count_of(tasks))

    def save_model(self, request: HttpRequest, obj: TaskList, form, change: bool) -> None:
        data = {field: form.cleaned_data[field] for field in ("name", "color")}
        if change:
            obj.version = services.list_update(task_list=form.locked_row, data=data).version
            return
        # Last, as the API's create puts a list (a plain save took the model's default, 0).
        saved = services.list_create(user=form.cleaned_data["owner"], position=None, **data)
        obj.pk, obj.position = saved.pk, saved.position

    def delete_row(self, row: TaskList) -> bool:
        # As the API's DELETE: the tasks go to the end of the Inbox. Django's SET_NULL would keep
        # their ranks, which the Inbox's tasks already hold (task_position_unique_in_group).
        # One transaction per list, as the API's: the service orders its locks for one list.
        return services.list_delete(user=row.owner, task_list=row, delete_tasks=False)

    def get_deleted_objects(self, objs, request: HttpRequest):
        """What the delete confirmation lists: each list with the number of its tasks, which
        stay and move to the end of the Inbox (delete_row), counted in one query. Django's
        listed the list alone under "and their related items will be deleted": a list of
        1,667 tasks read as empty, or as if its tasks went with it."""
        task_lists = list(objs)
        tasks = Task.objects.filter(list__in=[task_list.pk for task_list in task_lists])
        moved = "Tasks moved to the end of the Inbox (they stay)"
        return self.deletion_with_counts(request, task_lists, tasks.values_list("list"), moved)

    @admin.display(description="tasks", ordering="task_count")
    def task_count(self, task_list: TaskList) -> int:
        return task_list.task_count


class TagAdminForm(VersionCheckedForm, OwnedNameForm):
    """A tag has no version: its name is what changes (a user's rename, another agent's), so
    the name the form was opened with is compared under the row's lock instead."""

    def version_of(self, row) -> str:
        return row.name

    def lock_row(self) -> Tag | None:
        if "name" not in self.changed_data:
            return super().lock_row()  # nothing is written
        # As the rename locks it, tasks first (services.TAG_LOCKS): the tag alone, FOR UPDATE,
        # made writes linking it wait for this form while holding the tasks its rename then
        # locks, which gave way until it failed; FOR SHARE let a second form's rename of the
        # tag in, and each waited for the other's until both failed.
        return services.tag_locked_to_rename(self.instance)

    def clean_name(self) -> str:
        name = super().clean_name()
        # As the API's: no new name `.` or `..`; one made before the rule keeps working.
        if name != self.initial.get("name") and (error := services.new_tag_name_error(name)):
            raise forms.ValidationError(error)
        return name


@admin.register(Tag)
class TagAdmin(OwnedAdmin):
    form = TagAdminForm
    history_values = ("name",)
    text_search_field = "name"
    list_display = ["name", "owner_email", "task_count"]
    search_fields = ["name"]
    search_help_text = (
        'An email ("ann@example.com") finds that user\'s tags; other words match names or '
        "the start of an owner's email."
    )
    ordering = ["name"]
    fields = ["owner", "name", "opened_version"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        tasks = Task.tags.through.objects.filter(tag=OuterRef("pk"))
        return super().get_queryset(request).annotate(task_count=count_of(tasks))

    def save_model(self, request: HttpRequest, obj: Tag, form, change: bool) -> None:
        if not change:
            # Counted as every tag the API makes is (services.tags_get_or_create); at the cap,
            # the Conflict is the form's error (SaveRefusalsShown).
            ensure_tag_room(owned=Tag.objects.filter(owner_id=obj.owner_id).count(), adding=1)
            try:
                with transaction.atomic():
                    super().save_model(request, obj, form, change)
            except IntegrityError as error:
                if getattr(error.__cause__, "sqlstate", None) != "23505":
                    raise
                # Its owner made the name since the form found it free: the form's own error.
                raise Invalid({"name": [NAME_TAKEN]}) from error
        elif "name" in form.changed_data:
            # The service bumps `version` of every task carrying the tag: their body changes.
            services.tag_rename(user=obj.owner, tag=form.locked_row, name=obj.name)

    def delete_row(self, row: Tag) -> bool:
        # The service bumps `version` of every task carrying the tag, so a sync finds them.
        try:
            services.tag_delete(user=row.owner, tag=row, by_name=False)
        except NotFound:  # deleted meanwhile (by its user): nothing to do
            return False
        return True

    def get_deleted_objects(self, objs, request: HttpRequest):
        """What the delete confirmation lists: each tag with the number of tasks it leaves,
        counted in one query (the tasks stay). Django's own loaded and named every task's link
        ("Task_tags object (123)"), on the page and again on confirming: 2.9 MB and 1.75 s, then
        4.4 s, for a tag on 50,000 tasks."""
        tags = list(objs)
        links = Task.tags.through.objects.filter(tag__in=[tag.pk for tag in tags])
        taken_off = "Taken off tasks (they stay)"
        return self.deletion_with_counts(request, tags, links.values_list("tag"), taken_off)

    @admin.display(description="tasks", ordering="task_count")
    def task_count(self, tag: Tag) -> int:
        return tag.task_count
