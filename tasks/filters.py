"""Query parameters of GET /api/v1/tasks/: every invalid value is a 400 naming the parameter.

django-filter validates each parameter with a form field; DjangoFilterBackend raises the form's
errors as a DRF ValidationError keyed by parameter name, which the problem handler renders.
Every parameter but `tag` takes one value: one given twice is a 400 too (repeated_parameters(),
the paginator's `limit` and `offset` included). Unknown parameters are ignored. TaskFilter
declares the parameters (validation, OpenAPI); filter_criteria() turns its valid values into
criteria; filter_tasks() is the one place that says what they mean in SQL. The lists read their
plainest valid parameters without the FilterSet (quick_filter_values), to the same values.
"""

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, time
from typing import Any
from zoneinfo import ZoneInfo

import django_filters
from django import forms
from django.contrib.postgres.expressions import ArraySubquery
from django.contrib.postgres.search import SearchQuery
from django.core.validators import MaxLengthValidator
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.http import QueryDict
from django.utils import timezone
from django_filters.constants import EMPTY_VALUES
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError

from tasks.models import (
    NO_SUCH_LIST,
    NO_SUCH_TASK,
    TAG_NAME_MAX_LENGTH,
    Priority,
    Task,
    TaskList,
    TaskSearch,
    by_name,
    search_owner_key,
    tags_named,
)
from tasks.recurrence import past_times_of_day
from todo_project.fields import (
    BOOLEAN_MESSAGE,
    CANONICAL_DATE,
    CANONICAL_UUID,
    DATE_FORMAT_MESSAGE,
    UUID_MESSAGE,
    at_most_characters,
    composed,
    each_one_of,
    no_such_day,
    trimmed,
)

# At most the 255 characters a stored lexeme keeps (tasks.models.TaskSearch.search_vector):
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
    "title": by_name("title"),
}
DEFAULT_ORDERING = ["position"]
NULLABLE_ORDERINGS = frozenset({"due_date"})


# Each word of the text, as the parser that built `search_vector` splits it and folded as it
# folds them (accents off, then cut: migration 0013; a word of marks alone is no word), quoted
# for the tsquery syntax (backslashes and quotes doubled) behind the owner's key, as a prefix;
# the words joined by AND. Cast to tsquery, not read by to_tsquery, which would split a word
# again into a phrase (`bar-baz` into `bar-baz <-> bar <-> baz`) that the parts search_vector
# adds to joined words (`/foo/bar-baz` gives `bar-baz` and `baz` the positions of the whole)
# could not match.
_PREFIX_TSQUERY_SQL = r"""
    SELECT string_agg(
        '''' || %s || replace(replace(word, '\', '\\'), '''', '''''') || ''':*', ' & '
    )::tsquery::text
    FROM unnest(to_tsvector('simple', %s)), left(task_search_fold(lexeme), 255) AS word
    WHERE word <> ''
"""


def prefix_tsquery(text: str, owner) -> str | None:
    """The tsquery (as text) matching `owner`'s tasks that have every word of `text` as a
    word prefix.

    PostgreSQL itself splits the text into words with the same parser (config 'simple') that
    built `search_vector` and quotes each one: no input can make a tsquery syntax error. None
    when the text has no word at all (there is never an empty word: `'<key>':*` would match
    every task of the owner).
    """
    with connection.cursor() as cursor:
        cursor.execute(_PREFIX_TSQUERY_SQL, [search_owner_key(owner.pk), text])
        return cursor.fetchone()[0] or None


class TsQueryLiteral(SearchQuery):
    """A tsquery given as text, cast as is: a constant, not a sub-select, so the planner
    estimates its selectivity from the column statistics and picks the GIN index."""

    template = "%(expressions)s::tsquery"

    def __init__(self, query: str) -> None:
        super().__init__(query)

    def as_sql(self, compiler, connection, function=None, template=None):
        return super().as_sql(compiler, connection, function, self.template)


def search_matches(tsquery: str) -> QuerySet:
    """The TaskSearch rows (tasks.models) whose vector matches `tsquery` (prefix_tsquery()'s).

    filter_tasks() takes the tasks whose id is among them: `id IN (SELECT task_id ...)`, which
    the planner runs either way round. For a rare word it reads the search index first and
    looks up the few tasks; for a common word and a page in an index's order it walks that
    index and probes each task's row here by its key until the page is full (bench/README.md,
    "The search index in a table of its own"; fast_read.SearchedRows picks between them for
    the generic plan). The owner's key in the tsquery keeps the index walk to the owner's
    entries; the tasks' `owner_id` condition keeps every answer the owner's.
    """
    return TaskSearch.objects.filter(search_vector=TsQueryLiteral(tsquery))


# The criteria that tasks_tasksearch answers alone: its rows carry the task's owner, `completed`
# and `priority` (kept in step by migration 0019's triggers).
SEARCH_ROW_CRITERIA = frozenset({"search", "completed", "priorities"})


def owner_search_rows(owner, criteria: Mapping[str, Any]) -> QuerySet:
    """The owner's TaskSearch rows that match the search and, when given, `completed` and
    `priorities` (SEARCH_ROW_CRITERIA): on one table, as main's BitmapAnd of the search index
    with an owner index was. Joined to tasks_task instead, the heavy user's
    `completed=false&search=meeting` counted in 26-63 ms rather than 5.6 (bench/README.md, 2026-12-05)."""
    rows = search_matches(criteria["search"]).filter(owner=owner)
    if "completed" in criteria:
        rows = rows.filter(completed=criteria["completed"])
    if "priorities" in criteria:
        rows = rows.filter(priority__in=criteria["priorities"])
    return rows


class TrueOrFalseFormField(forms.TypedChoiceField):
    """A query parameter of `true` or `false` only, the strings: anything else is an error, never
    silently ignored. (A JSON body's booleans: todo_project.fields.StrictBooleanField.)"""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.update(
            choices=[("true", "true"), ("false", "false")],
            coerce=lambda value: value == "true",
            empty_value=None,
            error_messages={"invalid_choice": BOOLEAN_MESSAGE},  # as a body's
        )
        super().__init__(*args, **kwargs)


class TrueOrFalseFilter(django_filters.Filter):
    field_class = TrueOrFalseFormField


class CanonicalDateFormField(forms.DateField):
    """`YYYY-MM-DD` exactly, like the dates of a body (todo_project.fields.CanonicalDateField):
    strptime alone also reads `2026-1-1` and `+2026-01-01`, and the form strips spaces."""

    def to_python(self, value):
        if value and not CANONICAL_DATE.fullmatch(value):
            raise forms.ValidationError(DATE_FORMAT_MESSAGE, code="invalid")
        try:
            return super().to_python(value)
        except forms.ValidationError:  # of the form, but no day of the calendar
            raise forms.ValidationError(no_such_day(value), code="invalid") from None


class CanonicalDateFilter(django_filters.DateFilter):
    field_class = CanonicalDateFormField


# RFC 3339's date-time (section 5.6): seconds and an offset required, `T` and `Z` either case.
RFC3339_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-5][0-9])"  # offset minutes 00-59: Django reads +05:99 as +06:39
)


class UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """An RFC 3339 timestamp, handed to the database in UTC: PostgreSQL refuses offsets past
    ±15:59 that Python accepts (up to ±23:59), which would be a 500. Only RFC 3339: Django
    also reads a bare date or a time without an offset, whose instant nobody can know."""

    def to_python(self, value):
        if value and not RFC3339_DATE_TIME.fullmatch(value):
            if RFC3339_DATE_TIME.fullmatch(value.replace(" ", "+")):
                # `+01:00` written into the URL as it is: a query string's `+` is a space. The
                # `%` go in as params: django-filter's translate_validation %-formats messages.
                raise forms.ValidationError(
                    "A + in a query string is a space: send the offset's + as %(plus)s "
                    "(%(escaped)s).",
                    code="invalid",
                    params={"plus": "%2B", "escaped": value.replace(" ", "%2B")},
                )
            raise forms.ValidationError(
                "Enter an RFC 3339 timestamp with its offset, e.g. 2026-11-22T09:30:00Z.",
                code="invalid",
            )
        try:
            value = super().to_python(value and value.upper())
        except forms.ValidationError:
            # Of RFC 3339's form, yet no instant Python can hold: a 30 February, a 25th hour,
            # a leap second (60): said so, not Django's "Enter a valid date/time.".
            raise forms.ValidationError(f"There is no such instant: {value}.") from None
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
        names = value or []
        if len(names) > MAX_TAG_FILTERS:
            raise forms.ValidationError(f"At most {MAX_TAG_FILTERS} tags.")
        # Every bad value, each naming its item as a body's list does ("Item 1: ..."): which
        # of up to MAX_TAG_FILTERS chips to mark.
        errors = []
        for index, name in enumerate(names):
            if "\x00" in name:
                errors.append(f"Item {index}: Null characters are not allowed.")
            # Counted as names are stored; looked up as sent (models.tags_named trims it,
            # unless a tag has it as given). Worded as a body's tag names are.
            elif not (length := len(composed(trimmed(name)))):
                errors.append(f"Item {index}: This field may not be blank.")
            elif length > TAG_NAME_MAX_LENGTH:
                errors.append(f"Item {index}: {at_most_characters(TAG_NAME_MAX_LENGTH)}")
        if errors:
            raise forms.ValidationError(errors)
        return names


# No `maxLength` on the items: a name is counted trimmed and composed (`e` + U+0301 is one
# character), which JSON Schema's count of the raw value is not.
@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "maxItems": MAX_TAG_FILTERS,
        "description": f"Repeatable (`tag=a&tag=b`), at most {MAX_TAG_FILTERS} times: tasks "
        f"having all of these tags (case-insensitive). Each name has 1–{TAG_NAME_MAX_LENGTH} "
        "characters, counted trimmed and composed (NFC), as tag names are stored.",
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


def order_tasks(tasks: QuerySet, ordering: Sequence[str] = DEFAULT_ORDERING) -> QuerySet:
    """`tasks` in the order of these `ordering` parameters, the id breaking ties."""
    order_by = []
    for param in ordering:
        descending = param.startswith("-")
        name = param.lstrip("-")
        # due_date (and due_time) without a value come last in both directions. Only there:
        # DESC NULLS LAST on a column that has no NULL is no backward read of its index, so
        # `-title` sorted all of a user's tasks (100,000: ~200 ms a page, 2 ms for `title`).
        nulls_last = True if name in NULLABLE_ORDERINGS else None
        for expression in ORDERINGS[name]:
            order_by.append(
                expression.desc(nulls_last=nulls_last)
                if descending
                else expression.asc(nulls_last=nulls_last)
            )
    # The id ties in the direction of the last field, so that an index ending in the id serves
    # both directions (read backward for a descending one): `-priority` with the id ascending
    # sorted the whole `high` group for every page.
    return tasks.order_by(*order_by, "-id" if ordering and ordering[-1].startswith("-") else "id")


def due_before_now(today: date, past_times: Sequence[time]) -> Q:
    """Due before now in the owner's zone: on an earlier date than `today`, or on it at one of
    `past_times` (recurrence.past_times_of_day). A task due today without a time is not overdue
    before the day ends. The API's `overdue` and the admin's due filter."""
    starts, ends = past_times[::2], past_times[1::2]
    past_today = Q(pk__in=[])
    for start, end in zip(starts, ends, strict=True):
        past_today |= Q(due_time__gte=start, due_time__lt=end)
    return Q(due_date__lt=today) | (Q(due_date=today) & past_today)


def links_of_all(tag_ids: Sequence) -> QuerySet:
    """One link per task that has every one of `tag_ids`: the first tag's, each other probed by
    the links' (task_id, tag_id) key. Any owner's tasks: the caller scopes the tags."""
    links = Task.tags.through.objects
    tagged = links.filter(tag_id=tag_ids[0])
    for tag_id in tag_ids[1:]:
        tagged = tagged.filter(Exists(links.filter(task_id=OuterRef("task_id"), tag_id=tag_id)))
    return tagged


def filter_tasks(tasks: QuerySet, criteria: Mapping[str, Any]) -> QuerySet:
    """`tasks` narrowed and ordered by TaskFilter.criteria(): what each filter means in SQL.

    The filtered list compiles this once per shape of criteria, with placeholders for their
    values (tasks/fast_read.py): it must build the query from the criteria alone.
    """
    if "completed" in criteria:
        tasks = tasks.filter(completed=criteria["completed"])
    if "priorities" in criteria:
        tasks = tasks.filter(priority__in=criteria["priorities"])
    if "list" in criteria:
        tasks = tasks.filter(list=criteria["list"])  # None: the inbox
    if "parent" in criteria:
        tasks = tasks.filter(parent=criteria["parent"])  # None: top-level tasks
    if "tags" in criteria:
        tag_ids = criteria["tags"]
        links = Task.tags.through.objects
        if criteria.get("tags_walk"):
            # Many of a big account's tasks have the tags (fast_read.TaggedRows decides): the
            # plan walks an index in the page's order and probes each task's links by their
            # unique (task_id, tag_id) key until the page is full. One EXISTS a tag: estimated
            # from each tag's links, where the GROUP BY below is estimated at a few rows
            # whatever the tags, so that every plan read all the tags' tasks and sorted them
            # (4,181 of 100,000 for the first page: 18,245 buffers, 13-36 ms; review 43e).
            if criteria.get("tags_probe"):
                # The walk's page (fast_read.TaggedRows): each task's links counted by the
                # (task_id, tag_id) key, an EXISTS with a GROUP BY that no plan turns into a
                # join, so the walk is the plan. One EXISTS a tag was estimated as if the tags
                # were independent: two that go together (2,000 tasks have both of 4,000 and
                # 2,000 of 20,000) taken for ~180, the walk looked long, and every plan read the
                # 2,000 and sorted them (review 43f); one tag's, from its links spread over
                # every owner's tasks (review 44a). The count keeps one EXISTS a tag (below).
                having_all_of_task = (
                    links.filter(task_id=OuterRef("pk"), tag_id__in=tag_ids)
                    .values("task_id")
                    .annotate(matched=Count("tag_id"))
                    .filter(matched=len(tag_ids))
                )
                tasks = tasks.filter(Exists(having_all_of_task))
            else:
                for tag_id in tag_ids:
                    tasks = tasks.filter(
                        Exists(links.filter(task_id=OuterRef("pk"), tag_id=tag_id))
                    )
        else:
            having_all = (
                links.filter(tag_id__in=tag_ids)
                .values("task_id")
                .annotate(matched=Count("tag_id"))
                .filter(matched=len(tag_ids))
                .values("task_id")
            )
            tasks = tasks.filter(pk__in=having_all)
    if "due_after" in criteria:
        tasks = tasks.filter(due_date__gte=criteria["due_after"])
    if "due_before" in criteria:
        tasks = tasks.filter(due_date__lte=criteria["due_before"])
    if "overdue" in criteria:
        overdue = Q(completed=False) & due_before_now(
            criteria["local_date"], criteria["past_times"]
        )
        if criteria["overdue"]:
            # The bound the OR of due_before_now() implies, for an index to start at: walking
            # task_owner_due_desc from the latest due date, the heavy user's `-due_date` page
            # filtered ~40,000 future tasks away (24-55 ms) before reaching the overdue ones;
            # 0.5 ms now. (Counted twice, it makes the row estimate low: 2,721 for 13,953. The
            # other orderings kept their plans.)
            tasks = tasks.filter(overdue, due_date__lte=criteria["local_date"])
        else:
            tasks = tasks.exclude(overdue)
    if "has_due" in criteria:
        tasks = tasks.filter(due_date__isnull=not criteria["has_due"])
    if "search" in criteria:
        if "search_index_first" in criteria:
            # Few matches (fast_read.SearchedRows decides): their ids listed once, off the
            # search index, by an InitPlan, then looked up by primary key and sorted. As
            # `id IN (SELECT ... WHERE owner_id = ...)` the planner was free to turn it round,
            # and with the side table first merged it did: it walked a normal user's 1,000 tasks and
            # probed the search table 1,000 times for 122 matches (2.4 ms, 4,590 buffers).
            # An ARRAY() is computed before the scan, so no estimate can turn it inside out,
            # in a custom plan or a generic one (bench/README.md, 2026-12-05).
            ids = owner_search_rows(criteria["search_index_first"], criteria).values("task_id")
            tasks = tasks.filter(pk__any_of=ArraySubquery(ids))
        else:
            # Many matches: the plan walks an index in the page's order and probes each task's
            # search row by its key until the page is full.
            tasks = tasks.filter(pk__in=search_matches(criteria["search"]).values("task_id"))
    if "updated_since" in criteria:
        tasks = tasks.filter(updated_at__gte=criteria["updated_since"])
    return order_tasks(tasks, criteria.get("ordering", DEFAULT_ORDERING))


class OwnedChoiceFormField(django_filters.fields.ModelChoiceField):
    """One of the caller's ids, or the null keyword: a value that is no UUID is worded as in a
    body, not Django's '“abc” is not a valid UUID.' (curly quotes) from the lookup."""

    def to_python(self, value):
        keyword = value in EMPTY_VALUES or value == self.null_value
        if not keyword and not CANONICAL_UUID.fullmatch(value):
            raise forms.ValidationError(UUID_MESSAGE, code="invalid")
        return super().to_python(value)


class OwnedChoiceFilter(django_filters.ModelChoiceFilter):
    field_class = OwnedChoiceFormField


class MaxLengthCharFormField(forms.CharField):
    """A text parameter whose length error is worded as a body's (MAX_LENGTH_MESSAGE), not
    Django's 'Ensure this value has at most 200 characters (it has 201).'"""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.validators = [
            validator
            if not isinstance(validator, MaxLengthValidator)
            else MaxLengthValidator(self.max_length, at_most_characters(self.max_length))
            for validator in self.validators
        ]


class MaxLengthCharFilter(django_filters.CharFilter):
    field_class = MaxLengthCharFormField


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
# The paginator's parameters (views.TaskPagination): checked with the filters' for repeats.
PAGINATION_PARAMETERS = frozenset({"limit", "offset"})
# The one parameter meant to repeat (`tag=a&tag=b`); any other given twice is a 400, never its
# last value silently (QueryDict.get's).
REPEATABLE_PARAMETERS = {"tag"}
# The two mistakes any query parameter can have, in the same words wherever it is read.
GIVEN_TWICE = "This parameter is given more than once."
NEEDS_A_VALUE = "This parameter needs a value."


def single_values(params: QueryDict, *names: str) -> list[str | None]:
    """Each parameter's one value (None when absent); one 400 naming every one that is empty
    or given twice. For the parameters read outside TaskFilter: the paginator's,
    tasks/changes/'s, a list delete's `tasks`."""
    errors = {}
    for name in names:
        values = params.getlist(name)
        if len(values) > 1:
            errors[name] = [GIVEN_TWICE]
        elif values == [""]:
            errors[name] = [NEEDS_A_VALUE]
    if errors:
        raise ValidationError(errors)
    return [params.get(name) for name in names]


def single_value(params: QueryDict, name: str) -> str | None:
    return single_values(params, name)[0]


# Their choices are the requesting user's lists and tasks: their form fields are per request.
PER_USER_PARAMETERS = {"list", "parent"}
# TaskFilter.get_form_class()'s, by the names of the filters a request names.
_FORM_CLASSES: dict[tuple[str, ...], type[forms.Form]] = {}


class TaskFilter(django_filters.FilterSet):
    """The list's parameters. A filter's own `filter()` is never called: criteria() reads the
    valid form, filter_tasks() applies it (`field_name`/`lookup_expr` inform the schema)."""

    completed = extend_schema_field(_boolean("`true`: completed tasks; `false`: open ones."))(
        TrueOrFalseFilter()
    )
    priority = PriorityNamesFilter(
        choices=[(label, label) for _, label in Priority.choices],
        error_messages={"invalid_choice": each_one_of(label for _, label in Priority.choices)},
        help_text="Comma-separated priority names: any of them.",
    )
    list = extend_schema_field(
        _id_or("inbox", "One of your list ids, or `inbox` for tasks without a list.")
    )(
        OwnedChoiceFilter(
            queryset=_owned_lists,
            null_value="inbox",
            null_label="Inbox",
            error_messages={"invalid_choice": NO_SUCH_LIST},  # as in a body
            help_text="One of your list ids, or `inbox` for tasks without a list.",
        )
    )
    tag = TagNamesFilter(help_text="Repeatable: tasks with all of them.")
    due_after = CanonicalDateFilter(
        field_name="due_date",
        lookup_expr="gte",
        input_formats=["%Y-%m-%d"],
        help_text="`YYYY-MM-DD`: due on or after this date.",
    )
    due_before = CanonicalDateFilter(
        field_name="due_date",
        lookup_expr="lte",
        input_formats=["%Y-%m-%d"],
        help_text="`YYYY-MM-DD`: due on or before this date.",
    )
    overdue = extend_schema_field(
        _boolean(
            "`true`: open and due before now in your time zone (a task due today without a "
            "time is not overdue yet; a time the clocks skip or repeat that night is read with "
            "the offset before the change, as a recurrence's UNTIL); `false`: all others."
        )
    )(TrueOrFalseFilter())
    has_due = extend_schema_field(_boolean("`true`: with a due date; `false`: without."))(
        TrueOrFalseFilter()
    )
    parent = extend_schema_field(
        _id_or("none", "One of your task ids (its subtasks), or `none` for top-level tasks.")
    )(
        OwnedChoiceFilter(
            queryset=_owned_tasks,
            null_value="none",
            null_label="None",
            error_messages={"invalid_choice": NO_SUCH_TASK},
            help_text="One of your task ids (its subtasks), or `none` for top-level tasks.",
        )
    )
    search = MaxLengthCharFilter(
        max_length=SEARCH_MAX_LENGTH,
        # No `maxLength`: the cap counts the text trimmed, JSON Schema would count it raw.
        help_text=f"At most {SEARCH_MAX_LENGTH} characters, surrounding whitespace not counted. "
        "Full-text search in title and description: every word must start a word "
        "of the task, case-insensitively and Latin, Greek and Cyrillic accents aside (`pay ren` "
        "finds 'Pay rent', `cafe` finds 'Café'). Emails, URLs, paths and other words joined by "
        "punctuation also start at each of their parts (`example` finds 'anna@example.com', "
        "`local` finds '/usr/local/bin').",
    )
    updated_since = UtcIsoDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gte",
        help_text="RFC 3339 timestamp (`2026-11-22T09:30:00Z`): changed at or after it. "
        "`updated_at` is stamped when a write starts and seen when it commits (under 30 s "
        "later): pass the newest `updated_at` you have seen minus 30 s, and keep tasks you "
        "already have by `id` and `version`. To keep a copy of your tasks, use "
        "`tasks/changes/` instead: a write while you page shifts this list's offsets (a task "
        "can be skipped), and deleted tasks are not in it.",
    )
    ordering = django_filters.OrderingFilter(
        fields=tuple(ORDERINGS),
        error_messages={
            "invalid_choice": each_one_of(ORDERINGS, ", with - before it for descending")
        },
        help_text="Comma-separated; `-` for descending; due_date without a value comes last; "
        "title case and accents aside ('Émile' with 'emile', before 'Zeta'). Default "
        "`position`; the id always breaks ties, in the direction of the last field. "
        "`position` is a rank inside one list and parent: with `list` and `parent` it is the "
        "order a user arranged; across them it interleaves lists and subtasks.",
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

    def get_form_class(self) -> type[forms.Form]:
        # django-filter builds the form class and a form field per filter for every request; the
        # same parameters make the same class (a field is deep-copied per form) but for those
        # whose choices are the user's. At most one class per subset of the parameters.
        names = tuple(self.filters)
        if PER_USER_PARAMETERS.intersection(names):
            return super().get_form_class()
        form_class = _FORM_CLASSES.get(names)
        if form_class is None:
            form_class = _FORM_CLASSES[names] = super().get_form_class()
        return form_class

    def is_valid(self) -> bool:
        # `?due_after=` is a mistake to report, not "no filter" (django-filter's default);
        # only an empty search means what it says. Comma-separated values pass their items
        # through unchecked when empty (`ordering=,`, `priority=high,`): an error too.
        for name in self.filters:
            value = self.data.get(name)
            if name == "search" or value is None:
                continue
            if value == "":  # the one error (not also what the field says of "")
                self.form.errors[name] = self.form.error_class([NEEDS_A_VALUE])
            elif name in CSV_PARAMETERS and "" in (item.strip() for item in value.split(",")):
                self.form.add_error(name, "An item between the commas is empty.")
        # Set, not add_error(): `limit` and `offset` are no fields of the form, and for a filter
        # this is the one error that matters (not that of whichever value the form read).
        for name in repeated_parameters(self.data):
            self.form.errors[name] = self.form.error_class([GIVEN_TWICE])
        return super().is_valid()

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        criteria = self.criteria()
        return queryset.none() if criteria is None else filter_tasks(queryset, criteria)

    def criteria(self) -> dict[str, Any] | None:
        """The valid request's filters as filter_tasks() takes them (filter_criteria())."""
        return filter_criteria(self.form.cleaned_data, self.request.user)


def filter_criteria(data: Mapping[str, Any], user) -> dict[str, Any] | None:
    """Valid filter values (TaskFilter's form.cleaned_data, or quick_filter_values()'s) as
    filter_tasks() takes them: plain values, the tag names made ids, the search a tsquery,
    `overdue` with `user`'s present time of day. None when no task can match (a tag that does
    not exist, a search without a word, overdue and completed)."""
    if data.get("overdue") and data.get("completed"):
        # An overdue task is open (review 43b: a big account's page walked every task for
        # none); before a tag's or a search's lookup (review 43f).
        return None
    criteria: dict[str, Any] = {"ordering": tuple(data.get("ordering") or DEFAULT_ORDERING)}
    for name, value in data.items():
        if name == "ordering" or value in EMPTY_VALUES:
            continue  # as django-filter: an empty value filters nothing
        if name == "priority":
            criteria["priorities"] = tuple(sorted({Priority[label.upper()] for label in value}))
        elif name in {"list", "parent"}:
            null_value = TaskFilter.base_filters[name].null_value
            criteria[name] = None if value == null_value else value.pk
        elif name == "tag":
            # Each name's tag by the unique index's key (models.NameKey).
            tags = [tag for _, tag in tags_named(user.pk, value)]
            if None in tags:
                return None  # a tag that does not exist: no task has all of them
            criteria["tags"] = sorted({tag.pk for tag in tags})
        elif name == "overdue":
            now = timezone.now().astimezone(ZoneInfo(user.timezone))
            # A list: its times are values, its length the shape (CompiledShapes).
            past_times = list(past_times_of_day(now))
            criteria.update(overdue=value, local_date=now.date(), past_times=past_times)
        elif name == "search":
            criteria["search"] = prefix_tsquery(value, user)
            if criteria["search"] is None:
                return None  # nothing searchable in the text (only punctuation)
        else:
            criteria[name] = value
    return criteria


# The parameters quick_filter_values() reads without TaskFilter's form, and their valid values.
_QUICK_BOOLEANS = {"true": True, "false": False}  # TrueOrFalseFormField's
_QUICK_ITEMS = {
    "priority": frozenset(label for _, label in Priority.choices),
    "ordering": frozenset(ORDERINGS).union(f"-{name}" for name in ORDERINGS),
}


def _plain_tag_name(name: str) -> bool:
    """A `tag` value TagNamesFormField takes as it is (what makes it an error, inverted)."""
    return "\x00" not in name and 0 < len(composed(trimmed(name))) <= TAG_NAME_MAX_LENGTH


def quick_filter_values(params: QueryDict) -> dict[str, Any] | None:
    """What TaskFilter's form cleans `params` to when they are valid, read without the
    FilterSet: for the plain cases only, whose every value is one the form takes as it is
    (`true`/`false`, priority names and orderings exactly, a search, tag names). None when it
    cannot vouch: another parameter (list, parent, dates, an unknown one), a value given twice,
    or any value not plainly valid; TaskFilter then decides, and words the 400.

    Building the FilterSet deep-copies its filters and the form its fields, for every request:
    without it, the bench's five filtered URLs took 1.82 -> 1.48 ms of a gunicorn worker's CPU
    a request (median of 7 alternating pairs; review 39c). Tests compare both ways on valid
    and invalid parameters, and their answers byte for byte."""
    values: dict[str, Any] = {}
    for name, given in params.lists():
        if name == "tag":
            if not 0 < len(given) <= MAX_TAG_FILTERS or not all(map(_plain_tag_name, given)):
                return None
            values[name] = given
            continue
        if len(given) != 1:
            return None
        value = given[0]
        if name in {"completed", "overdue", "has_due"}:
            if value not in _QUICK_BOOLEANS:
                return None
            values[name] = _QUICK_BOOLEANS[value]
        elif name in _QUICK_ITEMS:
            items = value.split(",")
            if not _QUICK_ITEMS[name].issuperset(items):
                return None
            values[name] = items
        elif name == "search":
            # forms.CharField: stripped, then its length and null characters checked.
            text = value.strip()
            if len(text) > SEARCH_MAX_LENGTH or "\x00" in text:
                return None
            values[name] = text
        elif name not in PAGINATION_PARAMETERS:
            return None  # the paginator checks its own values
    values.setdefault("ordering", None)
    # In the form's order (the filters' declaration), as filter_criteria() reads them.
    return {name: values[name] for name in TaskFilter.base_filters if name in values}


# Every parameter of the list that takes one value.
SINGLE_VALUED_PARAMETERS = {
    *TaskFilter.base_filters,
    *PAGINATION_PARAMETERS,
} - REPEATABLE_PARAMETERS


def repeated_parameters(params: QueryDict) -> list[str]:
    """The list's single-valued parameters that `params` gives more than once."""
    return [
        name
        for name, values in params.lists()
        if len(values) > 1 and name in SINGLE_VALUED_PARAMETERS
    ]
