"""The hot read path: the task list and one task, rendered from `.values_list()` with orjson.

DRF's per-object serializer costs more than the database on these two endpoints (bench/README.md
has the figures). Here the rows come straight from the database as tuples, tags included (one
ARRAY subquery by id instead of a prefetch query), and are rendered to exactly the bytes that
TaskSerializer + JSONRenderer produce: same keys in the same order, timestamps in UTC with `Z`
and whole seconds, `HH:MM` times, priority names, tags sorted case-insensitively. Writes and
everything else keep the serializer; tests compare both paths byte for byte.
"""

import functools
from collections.abc import Iterable, Sequence

import orjson
from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import OuterRef, QuerySet
from django.http import Http404, HttpResponse
from rest_framework.request import Request

from tasks.filters import TaskFilter
from tasks.models import Priority, Tag, Task

PAGINATION_PARAMETERS = {"limit", "offset"}
PRIORITY_NAMES = dict(Priority.choices)
# Column order of a row; `tags` is the ARRAY subquery, the rest are Task's own columns.
COLUMNS = (
    "id",
    "title",
    "description",
    "completed",
    "completed_at",
    "priority",
    "due_date",
    "due_time",
    "list_id",
    "tags",
    "parent_id",
    "position",
    "recurrence",
    "next_occurrence_id",
    "created_at",
    "updated_at",
    "version",
)
# orjson writes aware UTC datetimes as `...+00:00` and keeps microseconds; the contract wants
# `2026-11-22T09:30:00Z`, which is what these two options give for UTC values.
ORJSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS
# JSONRenderer escapes these two for JavaScript; so must we, to stay byte-identical.
LINE_SEPARATOR, PARAGRAPH_SEPARATOR = "\u2028".encode(), "\u2029".encode()


TAGS_AT = COLUMNS.index("tags")
VERSION_AT = COLUMNS.index("version")
PLAIN_COLUMNS = COLUMNS[:TAGS_AT] + COLUMNS[TAGS_AT + 1 :]


def _tag_names() -> ArraySubquery:
    return ArraySubquery(Tag.objects.filter(tasks=OuterRef("pk")).order_by().values("name"))


def task_rows(queryset: QuerySet) -> QuerySet:
    """The queryset's tasks as tuples in COLUMNS order, with their tag names in one query."""
    # prefetch_related("tags") of the serializer path has no meaning for tuples.
    queryset = queryset.prefetch_related(None).annotate(tag_names=_tag_names())
    return queryset.values_list(
        *[("tag_names" if column == "tags" else column) for column in COLUMNS]
    )


@functools.cache
def all_task_rows() -> QuerySet:
    """task_rows() of every task, built once per process; callers narrow it with owned_by().

    Building the annotation and the values_list again on every GET of one task cost ~0.5 ms
    of CPU (bench/README.md); a clone of this one costs a few µs.
    """
    return task_rows(Task.objects.order_by())


@functools.cache
def tag_names_by_id() -> QuerySet:
    """(id, tag names) of every task, built once per process (~0.3 ms a list request)."""
    return Task.objects.order_by().annotate(tag_names=_tag_names()).values_list("pk", "tag_names")


def with_tags(rows: Sequence[Sequence]) -> list[tuple]:
    """Rows of PLAIN_COLUMNS made rows of COLUMNS: the tags of a whole page in one query.

    A page's tags are fetched apart from the page itself: in one query, PostgreSQL may compute
    the tag array of every row it sorts, not just of the page (a deep offset of the heavy user
    took 290 ms that way instead of 170 ms); by id they cost one index lookup per task.
    """
    if not rows:
        return []
    names = dict(tag_names_by_id().filter(pk__in=[row[0] for row in rows]))
    return [(*row[:TAGS_AT], names[row[0]], *row[TAGS_AT:]) for row in rows]


def task_data(row: Sequence) -> dict:
    """One row of task_rows() as the contract's task object (TaskSerializer's shape)."""
    (
        task_id,
        title,
        description,
        completed,
        completed_at,
        priority,
        due_date,
        due_time,
        list_id,
        tags,
        parent_id,
        position,
        recurrence,
        next_occurrence_id,
        created_at,
        updated_at,
        version,
    ) = row
    return {
        "id": task_id,
        "title": title,
        "description": description,
        "completed": completed,
        "completed_at": completed_at,
        "priority": PRIORITY_NAMES[priority],
        "due_date": due_date,
        "due_time": None if due_time is None else f"{due_time.hour:02d}:{due_time.minute:02d}",
        "list": list_id,
        "tags": sorted(tags, key=_tag_order) if len(tags) > 1 else tags,
        "parent": parent_id,
        "position": position,
        "recurrence": recurrence,
        "next_occurrence": next_occurrence_id,
        "created_at": created_at,
        "updated_at": updated_at,
        "version": version,
    }


def _tag_order(name: str) -> tuple[str, str]:
    return (name.lower(), name)


def render(data) -> bytes:
    """JSON bytes exactly as DRF's JSONRenderer writes them (compact, UTF-8)."""
    body = orjson.dumps(data, option=ORJSON_OPTIONS)
    if b"\xe2\x80" in body:  # cheap pre-check: both separators start with these two bytes
        body = body.replace(LINE_SEPARATOR, b"\\u2028").replace(PARAGRAPH_SEPARATOR, b"\\u2029")
    return body


def render_page(
    *, count: int, next_url: str | None, previous_url: str | None, rows: Iterable[Sequence]
) -> bytes:
    return render(
        {
            "count": count,
            "next": next_url,
            "previous": previous_url,
            "results": [task_data(row) for row in rows],
        }
    )


def list_response(view, request: Request) -> HttpResponse:
    """What ListModelMixin.list answers, through the view's own filters and paginator."""
    queryset = view.get_queryset()
    paginator = view.paginator
    if request.query_params.keys() <= PAGINATION_PARAMETERS:
        # Nothing to filter: building the FilterSet and its form would only end in the default
        # ordering, which its own ordering filter gives at a fraction of the cost.
        queryset = TaskFilter.base_filters["ordering"].filter(queryset, None)
        # All the user's tasks: their maintained count, whatever their number (~10 ms for
        # 100,000 tasks as a COUNT(*)).
        paginator.all_tasks_of = request.user
    else:
        queryset = view.filter_queryset(queryset)
    page = view.paginate_queryset(queryset.prefetch_related(None).values_list(*PLAIN_COLUMNS))
    rows = with_tags(page)
    body = render_page(
        count=paginator.count,
        next_url=paginator.get_next_link(),
        previous_url=paginator.get_previous_link(),
        rows=rows,
    )
    return HttpResponse(body, content_type="application/json")


def retrieve_response(view, request: Request) -> HttpResponse:
    """What RetrieveModelMixin.retrieve answers; not the caller's is a 404 like unknown."""
    lookup = view.lookup_url_kwarg or view.lookup_field
    # The view's get_queryset() is owned_by(user) plus a prefetch the rows do not use.
    queryset = all_task_rows().owned_by(request.user).filter(pk=view.kwargs[lookup])
    row = next(iter(queryset[:1]), None)
    if row is None:
        raise Http404
    view.conditional_version = row[VERSION_AT]  # for the ETag (todo_project.conditional)
    return HttpResponse(render(task_data(row)), content_type="application/json")
