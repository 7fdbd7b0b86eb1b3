"""Query parameters of GET /api/v1/tasks/: every invalid value is a 400 naming the parameter.

django-filter validates each parameter with a form field; DjangoFilterBackend raises the form's
errors as a DRF ValidationError keyed by parameter name, which the problem handler renders.
Unknown parameters are ignored.
"""

from collections.abc import Sequence
from datetime import UTC
from zoneinfo import ZoneInfo

import django_filters
from django import forms
from django.contrib.postgres.search import SearchQuery
from django.db import connection
from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field

from tasks.models import (
    TAG_NAME_MAX_LENGTH,
    Priority,
    Task,
    TaskList,
    search_owner_key,
    tags_by_key,
)

# At most the 255 characters a stored lexeme keeps (tasks.models.owner_scoped_search_vector):
# no searched word is longer than the text, so a prefix match on a cut lexeme finds what it
# would on the whole one.
SEARCH_MAX_LENGTH = 200
MAX_TAG_FILTERS = 20

# Parameter of `ordering` → the ORDER BY it stands for. The id always ends the ORDER BY, so
# pages never overlap or skip rows.
ORDERINGS = {
    "position": [F("position")],
    "due_date": [F("due_date"), F("due_time")],
    "priority": [F("priority")],
    "created_at": [F("created_at")],
    "updated_at": [F("updated_at")],
    "title": [Lower("title"), F("title")],
}
DEFAULT_ORDERING = ["position"]


# Each lexeme quoted for the tsquery syntax (backslashes and quotes doubled), as a prefix. Then
# each lexeme of the tsquery (to_tsquery may split one into a phrase) gets the owner's key, as
# search_vector's do (tasks.models).
_PREFIX_TSQUERY_SQL = r"""
    SELECT regexp_replace(to_tsquery('simple', string_agg(
        '''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || ''':*', ' & '
    ))::text, %s, %s, 'g')::tsquery::text
    FROM unnest(to_tsvector('simple', %s))
"""
# One quoted lexeme in a tsquery's text, quotes and backslashes doubled inside it; quotes appear
# nowhere else, so the matches follow the lexemes one by one.
_TSQUERY_LEXEME = r"'((?:[^'\\]|''|\\.)*)'"


def prefix_tsquery(text: str, owner) -> str | None:
    """The tsquery (as text) matching `owner`'s tasks that have every word of `text` as a
    word prefix.

    PostgreSQL itself splits the text into words with the same parser (config 'simple') that
    built `search_vector` and quotes each one: no input can make a tsquery syntax error. None
    when the text has no word at all (there is never an empty word: `'<key>':*` would match
    every task of the owner).
    """
    scoped = f"'{search_owner_key(owner.pk)}\\1'"
    with connection.cursor() as cursor:
        cursor.execute(_PREFIX_TSQUERY_SQL, [_TSQUERY_LEXEME, scoped, text])
        return cursor.fetchone()[0] or None


class TsQueryLiteral(SearchQuery):
    """A tsquery given as text, cast as is: a constant, not a sub-select, so the planner
    estimates its selectivity from the column statistics and picks the GIN index."""

    template = "%(expressions)s::tsquery"

    def __init__(self, query: str) -> None:
        super().__init__(query)

    def as_sql(self, compiler, connection, function=None, template=None):
        return super().as_sql(compiler, connection, function, self.template)


class StrictBooleanField(forms.TypedChoiceField):
    """Only `true` or `false`: anything else is an error, never silently ignored."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.update(
            choices=[("true", "true"), ("false", "false")],
            coerce=lambda value: value == "true",
            empty_value=None,
        )
        super().__init__(*args, **kwargs)


class StrictBooleanFilter(django_filters.Filter):
    field_class = StrictBooleanField


class UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """An RFC 3339 timestamp, handed to the database in UTC: PostgreSQL refuses offsets past
    ±15:59 that Python accepts (up to ±23:59), which would be a 500."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 is before year 1 in UTC
            raise forms.ValidationError("This timestamp is out of range.") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class TagNamesFormField(forms.Field):
    """A repeated parameter (`tag=a&tag=b`), each value a tag name."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> list[str]:
        names = [name.strip() for name in (value or [])]
        if len(names) > MAX_TAG_FILTERS:
            raise forms.ValidationError(f"At most {MAX_TAG_FILTERS} tags.")
        for name in names:
            if "\x00" in name:
                raise forms.ValidationError("Null characters are not allowed.")
            if not 1 <= len(name) <= TAG_NAME_MAX_LENGTH:
                raise forms.ValidationError(
                    f"A tag name has 1 to {TAG_NAME_MAX_LENGTH} characters."
                )
        return names


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": 50},
        "description": "Repeatable (`tag=a&tag=b`): tasks having all of these tags "
        "(case-insensitive).",
    }
)
class TagNamesFilter(django_filters.Filter):
    field_class = TagNamesFormField


@extend_schema_field(
    {
        "type": "string",
        "enum": [label for _, label in Priority.choices],
        "description": "Comma-separated priority names (`high,medium`): any of them.",
    }
)
class PriorityNamesFilter(django_filters.BaseInFilter, django_filters.ChoiceFilter):
    """`priority=high,medium`: any of these priorities."""


class TaskOrderingFilter(django_filters.OrderingFilter):
    def filter(self, qs: QuerySet, value: list[str] | None) -> QuerySet:
        params = value or DEFAULT_ORDERING
        order_by = []
        for param in params:
            descending = param.startswith("-")
            for expression in ORDERINGS[param.lstrip("-")]:
                # due_date (and due_time) without a value come last in both directions.
                order_by.append(
                    expression.desc(nulls_last=True)
                    if descending
                    else expression.asc(nulls_last=True)
                )
        return qs.order_by(*order_by, "id")


def _owned_lists(request) -> QuerySet:
    return TaskList.objects.owned_by(request.user) if request else TaskList.objects.none()


def _owned_tasks(request) -> QuerySet:
    return Task.objects.owned_by(request.user) if request else Task.objects.none()


def _id_or(keyword: str, description: str) -> dict:
    return {
        "oneOf": [{"type": "string", "format": "uuid"}, {"type": "string", "enum": [keyword]}],
        "description": description,
    }


def _boolean(description: str) -> dict:
    return {"type": "boolean", "description": description}


CSV_PARAMETERS = {"ordering", "priority"}


class TaskFilter(django_filters.FilterSet):
    completed = extend_schema_field(_boolean("`true`: completed tasks; `false`: open ones."))(
        StrictBooleanFilter()
    )
    priority = PriorityNamesFilter(
        choices=[(label, label) for _, label in Priority.choices],
        method="filter_priority",
        help_text="Comma-separated priority names: any of them.",
    )
    list = extend_schema_field(
        _id_or("inbox", "One of your list ids, or `inbox` for tasks without a list.")
    )(
        django_filters.ModelChoiceFilter(
            queryset=_owned_lists,
            null_value="inbox",
            null_label="Inbox",
            help_text="One of your list ids, or `inbox` for tasks without a list.",
        )
    )
    tag = TagNamesFilter(method="filter_tags", help_text="Repeatable: tasks with all of them.")
    due_after = django_filters.DateFilter(
        field_name="due_date",
        lookup_expr="gte",
        input_formats=["%Y-%m-%d"],
        help_text="`YYYY-MM-DD`: due on or after this date.",
    )
    due_before = django_filters.DateFilter(
        field_name="due_date",
        lookup_expr="lte",
        input_formats=["%Y-%m-%d"],
        help_text="`YYYY-MM-DD`: due on or before this date.",
    )
    overdue = extend_schema_field(
        _boolean(
            "`true`: open and due before now in your time zone (a task due today without a "
            "time is not overdue yet); `false`: all others."
        )
    )(StrictBooleanFilter(method="filter_overdue"))
    has_due = extend_schema_field(_boolean("`true`: with a due date; `false`: without."))(
        StrictBooleanFilter(method="filter_has_due")
    )
    parent = extend_schema_field(
        _id_or("none", "One of your task ids (its subtasks), or `none` for top-level tasks.")
    )(
        django_filters.ModelChoiceFilter(
            queryset=_owned_tasks,
            null_value="none",
            null_label="None",
            help_text="One of your task ids (its subtasks), or `none` for top-level tasks.",
        )
    )
    search = django_filters.CharFilter(
        method="filter_search",
        max_length=SEARCH_MAX_LENGTH,
        help_text="Full-text search in title and description: every word must start a word "
        "of the task, case-insensitively (`pay ren` finds 'Pay rent').",
    )
    updated_since = UtcIsoDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gte",
        help_text="RFC 3339 timestamp (`2026-11-22T09:30:00Z`): changed at or after it.",
    )
    ordering = TaskOrderingFilter(
        fields=tuple(ORDERINGS),
        help_text="Comma-separated; `-` for descending; due_date without a value comes last. "
        "Default `position`; the id always breaks ties.",
    )

    class Meta:
        model = Task
        fields: list[str] = []

    def __init__(self, data=None, *args, **kwargs) -> None:
        # Only the filters this request names, and the ordering (it has a default): django-filter
        # deep-copies every filter and builds a form field for each on every request, most of a
        # filtered list's CPU (bench/README.md). An absent parameter filters nothing anyway.
        self.base_filters = {
            name: filter_
            for name, filter_ in type(self).base_filters.items()
            if name == "ordering" or (data is not None and name in data)
        }
        super().__init__(data, *args, **kwargs)

    def is_valid(self) -> bool:
        # `?due_after=` is a mistake to report, not "no filter" (django-filter's default);
        # only an empty search means what it says. Comma-separated values pass their items
        # through unchecked when empty (`ordering=,`, `priority=high,`): an error too.
        for name in self.filters:
            value = self.data.get(name)
            if name == "search" or value is None:
                continue
            if value == "":
                self.form.add_error(name, "This parameter needs a value.")
            elif name in CSV_PARAMETERS and "" in (item.strip() for item in value.split(",")):
                self.form.add_error(name, "An item between the commas is empty.")
        return super().is_valid()

    def filter_priority(self, qs: QuerySet, name: str, value: Sequence[str]) -> QuerySet:
        return qs.filter(priority__in=[Priority[label.upper()] for label in value])

    def filter_tags(self, qs: QuerySet, name: str, value: Sequence[str]) -> QuerySet:
        keys = {tag.lower() for tag in value}
        if not keys:
            return qs
        tag_ids = [tag.pk for tag in tags_by_key(self.request.user.pk, list(keys)).values()]
        if len(tag_ids) < len(keys):
            return qs.none()  # a tag that does not exist: no task has all of them
        having_all = (
            Task.tags.through.objects.filter(tag_id__in=tag_ids)
            .values("task_id")
            .annotate(matched=Count("tag_id"))
            .filter(matched=len(tag_ids))
            .values("task_id")
        )
        return qs.filter(pk__in=having_all)

    def filter_overdue(self, qs: QuerySet, name: str, value: bool) -> QuerySet:
        now = timezone.now().astimezone(ZoneInfo(self.request.user.timezone))
        # A task due today without a time is not overdue before the day ends.
        overdue = Q(completed=False) & (
            Q(due_date__lt=now.date()) | Q(due_date=now.date(), due_time__lt=now.time())
        )
        return qs.filter(overdue) if value else qs.exclude(overdue)

    def filter_has_due(self, qs: QuerySet, name: str, value: bool) -> QuerySet:
        return qs.filter(due_date__isnull=not value)

    def filter_search(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        query = prefix_tsquery(value, self.request.user)
        if query is None:
            return qs.none()  # nothing searchable in the text (only punctuation)
        return qs.filter(search_vector=TsQueryLiteral(query))
