"""The hot read path: the task list and one task, rendered from `.values_list()` with orjson.

DRF's per-object serializer costs more than the database on these two endpoints (bench/README.md
has the figures). Here the rows come straight from the database as tuples, tags included (an
ARRAY subquery per row instead of a prefetch query), and are rendered to exactly the bytes that
TaskSerializer + JSONRenderer produce: same keys in the same order, timestamps in UTC with `Z`
and whole seconds, `HH:MM` times, priority names, tags sorted case-insensitively. Writes and
everything else keep the serializer; tests compare both paths byte for byte.

The plainest GET of one task and the list's plain GETs (any page and filters) go further and
skip DRF's dispatch (`with_fast_get`, `with_fast_list`): the user check rides on the first
statement (the task, the task count), and every other case is left to the viewset. The list's
SQL is compiled once per process: per shape of its filters when it has any (CompiledShapes).
"""

import functools
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
from django.db import connections
from django.db.models import Count, F, QuerySet, Value
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django_filters.utils import translate_validation
from rest_framework import mixins
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework_simplejwt.exceptions import TokenError

from accounts.authentication import (
    HOLDER_PLACEHOLDERS,
    holder_claims,
    is_our_scheme,
    token_holders,
    valid_access_token,
)
from accounts.models import User
from tasks.filters import (
    ORDERINGS,
    PAGINATION_PARAMETERS,
    SEARCH_ROW_CRITERIA,
    TaskFilter,
    filter_criteria,
    filter_tasks,
    links_of_all,
    order_tasks,
    owner_search_rows,
    quick_filter_values,
    repeated_parameters,
)
from tasks.models import (
    OwnerTaskCount,
    Priority,
    Tag,
    Task,
    loaded_columns,
    name_sort_key,
    tag_names_of_task,
)
from todo_project.compiled import CompiledQuery, CompiledShapes, fetch_all
from todo_project.conditional import etag_for
from todo_project.fast_lane import FAST_ANSWER_TRIED
from todo_project.ratelimit import RateLimitThrottle, count_request
from todo_project.request_id import AUTHENTICATED_USER_ID

if TYPE_CHECKING:
    from tasks.views import TaskPagination

FORMAT_PARAMETER = api_settings.URL_FORMAT_OVERRIDE  # `?format=json`: DRF's negotiation
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


def task_rows(queryset: QuerySet) -> QuerySet:
    """The queryset's tasks as tuples in COLUMNS order, with their tag names in one query."""
    # prefetch_related("tags") of the serializer path has no meaning for tuples.
    queryset = queryset.prefetch_related(None).annotate(tag_names=tag_names_of_task())
    return queryset.values_list(
        *[("tag_names" if column == "tags" else column) for column in COLUMNS]
    )


# One task of one owner, for GET. Building this queryset and compiling it on every request
# cost more CPU than running it: its SQL is compiled once per process (todo_project/compiled.py).
TASK_OF_OWNER = CompiledQuery(
    lambda owner, task: task_rows(Task.objects.owned_by(owner).filter(pk=task).order_by())[:1],
    owner=uuid.UUID(int=1),
    task=uuid.UUID(int=2),
)

# One task of the user an access token speaks for: authentication and lookup in one statement
# (the fast GET below). No row: the token is refused, or the task is not the holder's.
TASK_OF_TOKEN_HOLDER = CompiledQuery(
    lambda task, **holder: task_rows(
        Task.objects.filter(pk=task, owner__in=token_holders(**holder)).order_by()
    )[:1],
    task=uuid.UUID(int=2),
    **HOLDER_PLACEHOLDERS,
)

# The task count of the user an access token speaks for (tasks.OwnerTaskCount, joined: None
# when it has no row, i.e. no task) and its time zone (the overdue filter's): authentication
# and the list's count in one statement (the fast list below). No row: the token is refused.
TASK_COUNT_OF_TOKEN_HOLDER = CompiledQuery(
    lambda **holder: token_holders(**holder).values_list("owner_task_count__tasks", "timezone")[:1],
    **HOLDER_PLACEHOLDERS,
)


# Every task of one owner in the default order (the list without parameters), and their ids
# alone (a deep page's, DEFERRED_FROM).
OWNER_TASKS_IN_ORDER = CompiledQuery(
    lambda owner: order_tasks(Task.objects.owned_by(owner)).values_list(*PLAIN_COLUMNS),
    owner=uuid.UUID(int=1),
)
OWNER_TASK_IDS_IN_ORDER = CompiledQuery(
    lambda owner: order_tasks(Task.objects.owned_by(owner)).values_list("id"),
    owner=uuid.UUID(int=1),
)
# The owner's tasks that match TaskFilter.criteria(), their ids alone, and their number:
# building and compiling these took most of a filtered list's CPU, so each shape of criteria
# is compiled once.
MATCHING_TASKS = CompiledShapes(
    lambda owner, **criteria: filter_tasks(Task.objects.owned_by(owner), criteria).values_list(
        *PLAIN_COLUMNS
    )
)
MATCHING_TASK_IDS = CompiledShapes(
    lambda owner, **criteria: filter_tasks(Task.objects.owned_by(owner), criteria).values_list("id")
)


class RowCount(Count):
    """COUNT(*) as psycopg reads it, an int and never NULL: without Count's int() converter,
    which CompiledQuery refuses."""

    convert_value = staticmethod(Count._convert_value_noop)

    def __init__(self) -> None:
        super().__init__("*")


MATCHING_TASK_COUNT = CompiledShapes(
    lambda owner, **criteria: (
        filter_tasks(Task.objects.owned_by(owner), criteria)
        .order_by()
        .values(one=Value(1))  # a constant: COUNT(*) without a GROUP BY
        .annotate(count=RowCount())
        .values_list("count")
    )
)

# A search alone, or with `completed` and `priority` only (filters.SEARCH_ROW_CRITERIA): its
# matches counted in tasks_tasksearch, without tasks_task. Each task has its row there, with
# the task's owner, completion and priority (kept by the triggers of migration 0019), so the
# count is the one of MATCHING_TASK_COUNT. Joined to tasks_task, the heavy user's
# `search=report` (12,000 matches) counted in 20-25 ms instead of 6-10 ms (bench/README.md),
# and `completed=false&search=meeting` in 26-63 ms instead of ~6 (bench/README.md, 2026-12-05).
SEARCH_MATCH_COUNT = CompiledShapes(
    lambda owner, **criteria: (
        owner_search_rows(owner, criteria)
        .order_by()
        .values(one=Value(1))
        .annotate(count=RowCount())
        .values_list("count")
    )
)

# Tags alone: their tasks counted from their links, without tasks_task. Every link joins a task
# and a tag of one owner (migrations 0029, 0030), and the tags are the caller's, so their links'
# tasks are too. One link of the first tag per task that has them all, the others' probed by
# the links' (task_id, tag_id) key. The heavy user's tag on 4,000 of its 100,000 tasks: 17-19
# -> 0.8-1.1 ms in-process, the statement 0.37 ms (each task was read by key for its owner;
# session 46).
TAGGED_TASK_COUNT = CompiledShapes(
    lambda tags: (
        links_of_all(tags)
        .order_by()
        .values(one=Value(1))
        .annotate(count=RowCount())
        .values_list("count")
    )
)


@functools.cache
def page_columns(alias: str) -> str:
    """The select list of with_tags_sql(): a page's columns in COLUMNS order, the tag names of
    each row by an index lookup of its id (tag_names_of_task() in SQL: its outer row is `page`).

    The row's links are read in a subquery of their own (OFFSET 0 keeps PostgreSQL from merging
    it into the join), where no index but those that lead with task_id can serve: joined to
    tasks_tag directly, the links could be read in tag_id order (a merge join's reason) off
    their tag_id index, the task as a filter, and under the statistics of an emptied table
    (one row, to the planner) every link of the row's tag was read: with a tag on 20,000 tasks
    a page of 200 took 0.26-0.33 s, a changes page of 1,000 1.6-1.9 s (review 38a). The join
    to tasks_tag stays a join, planned as before with fresh statistics: a name looked up per
    link in a scalar subquery instead (what tag_names_of_task() does for one task) was a seq
    scan of tasks_tag per link when it had a few pages, a changes page 2-3 times slower."""
    quote = connections[alias].ops.quote_name
    links = Task.tags.field
    tag_id = quote(links.m2m_reverse_name())
    tag_names = (
        f"ARRAY(SELECT tag.{quote('name')} FROM"
        f" (SELECT link.{tag_id} FROM {quote(links.m2m_db_table())} link"
        f" WHERE link.{quote(links.m2m_column_name())} = page.{quote('id')} OFFSET 0) link"
        f" JOIN {quote(Tag._meta.db_table)} tag ON tag.{quote('id')} = link.{tag_id})"
    )
    return ", ".join(
        tag_names if column == "tags" else f"page.{quote(column)}" for column in COLUMNS
    )


# A condition always true whose function PostgreSQL marks PARALLEL UNSAFE, so that no plan of
# the statement it is in runs on parallel workers (the docs' "Parallel Safety": the planner
# checks the whole statement before planning it). For a walk whose matches the planner takes for
# fewer than they are: a tag's links are estimated spread over every owner's tasks (4,181 of
# 100,000 tasks taken for 1,356), so a walk looked long enough to share out, and a Gather Merge
# of two workers read 2,874 tasks and took 21-59 ms where one process reads 1,288 (2.4 ms;
# review 43e). current_schema() is NULL when no schema of the search path exists: IS NOT
# DISTINCT FROM keeps it true then too.
SERIAL_ONLY = "pg_catalog.current_schema() IS NOT DISTINCT FROM pg_catalog.current_schema()"


# A page from this offset on is read as its ids alone, then each of its rows by primary key
# (with_tags_sql's `deferred`): the rows it skips are read off the index of the page's order
# alone, not from the table. The heavy user's 100,000 tasks, in-process, by position: offset
# 5,000 2.6 -> 1.4 ms, 20,000 8.5 -> 3.3 ms, 70,000 34-73 -> 6.4-7.2 ms (every order whose
# index ends in the id alike; bench/README.md); before 1,000, the 50 lookups by key cost
# 0.05-0.25 ms more than the rows skipped save (session 46; review 46a: even near 250).
DEFERRED_FROM = 1_000


def with_tags_sql(
    alias: str, page_sql: str, *, serial: bool = False, deferred: bool = False
) -> str:
    """A page's SQL (PLAIN_COLUMNS, LIMIT and OFFSET included; `deferred`: its ids alone) made
    one whose rows are in COLUMNS order, tags included: in one round trip, and for the page's
    rows alone.

    The page query sits in FROM because in its own select list PostgreSQL would build the tag
    array of every row it sorts and skips by the OFFSET, not just of the page (a deep page of
    the heavy user took 290 ms that way instead of 170). Rows keep the page's order: nothing
    outside it groups or sorts, and a deferred page's rows are joined to its ids by a lateral
    subquery that no plan can make other than a nested loop over them in their order: its
    OFFSET 0 is what keeps it a subquery; without it PostgreSQL pulls it up into a join, which
    it may plan in another order (review 46a: 14 page-equality subtests failed).
    """
    where = f" WHERE {SERIAL_ONLY}" if serial else ""
    rows = f"({page_sql}) AS page"
    if deferred:
        quote = connections[alias].ops.quote_name
        table, task_id = quote(Task._meta.db_table), quote("id")
        rows = (
            f"({page_sql}) AS ids CROSS JOIN LATERAL (SELECT * FROM {table}"
            f" WHERE {table}.{task_id} = ids.{task_id} OFFSET 0) AS page"
        )
    return f"SELECT {page_columns(alias)} FROM {rows}{where}"


class CompiledRows:
    """What DRF's paginator asks of a queryset, count() and one slice, answered by SQL
    compiled once per process (the lists; bench/README.md has what it saves). A slice is rows
    of COLUMNS, tags included (with_tags_sql). `ids`: the query's ids alone, which a page
    from DEFERRED_FROM on is read by; None: never."""

    def __init__(
        self,
        query: CompiledQuery | CompiledShapes,
        count: Callable[[], int],
        *,
        ids: CompiledQuery | CompiledShapes | None = None,
        prepared: bool = True,
        serial: bool = False,
        **values,
    ) -> None:
        self._query, self._ids, self._count, self._values = query, ids, count, values
        self._prepared = prepared  # False: planned with its values each time (fetch_all)
        self._serial = serial  # True: no parallel plan (SERIAL_ONLY)

    def count(self) -> int:
        return self._count()

    def __getitem__(self, page: slice) -> list[tuple]:
        alias, sql, params = self._statement(page, self._values)
        sql = with_tags_sql(alias, sql, serial=self._serial, deferred=self._deferred(page))
        return fetch_all(alias, sql, params, prepared=self._prepared)

    def _deferred(self, page: slice) -> bool:
        """Whether the page is read as its ids alone (with_tags_sql's `deferred`)."""
        return self._ids is not None and page.start >= DEFERRED_FROM

    def _statement(self, page: slice, values: dict) -> tuple[str, str, list]:
        """The page's statement (CompiledQuery.statement()) for these values."""
        query = self._ids if self._deferred(page) else self._query
        return query.statement(limit=page.stop - page.start, offset=page.start, **values)


# A walk of a tag's or a search's page (CountedFirstRows._bounded_walk) reads at most
# WALK_BOUND times its expected length, (offset + limit) x tasks / matches rows of the page's
# order, or `matches` rows if more; when the page's rows are not all among them, the page is
# the matches read and sorted. The expected length holds for matches spread along the order,
# but a tag first used recently, or a word, is on the newest tasks, at the end of `position`
# (the default order), `created_at` and `updated_at`: at 100,000 tasks, the newest 5,000
# tagged, the first page walked 95,050 tasks, 120-128 ms; bounded at 5,000, then the 5,000
# read and sorted, 23-26 ms. A spread tag's page 0.1-0.3 ms more, by `created_at` (its index
# has no id: the bound sorts what it walks) 0.35-0.8 ms (review 44e F2, 44f, 45a). Twice, not
# four times: where the walk is at least a quarter of the matches, a tag on the heavy user's
# newest 2,300 tasks took 32 ms bounded at 4 x, 18 ms at 2 x (the planner's join: 6 ms), spread
# tags alike at both (session 45).
WALK_BOUND = 2
# ... bounded only while the walk given up and the matches read after it cost less than a
# walk of all the owner's tasks: a match read and sorted counted as GIVEN_UP_WALK tasks walked
# (1.6-3.9 at 100,000 tasks: 5,000 tagged read and sorted in 8.3-12 ms, 30,000 in 66-116 ms, a
# walk 1.0-1.1 us a task; review 44f).
GIVEN_UP_WALK = 4

# The owner's first tasks in a page's order, each with every column: a bounded walk's table.
OWNER_TASKS_FIRST = CompiledShapes(
    lambda owner, ordering: order_tasks(Task.objects.owned_by(owner), ordering).values_list(
        *loaded_columns(Task)
    )
)


@functools.lru_cache(maxsize=256)
def bounded_walk_sql(alias: str, walk_sql: str, first_sql: str) -> str | None:
    """The walk over the owner's first tasks in the page's order (first_sql: OWNER_TASKS_FIRST
    under a LIMIT) instead of all of them: a CTE of the table's name stands for the table in the
    walk's SQL, as in narrowed_page_sql. Referenced once, the CTE is inlined, so the walk still
    reads the owner's index lazily and stops at its page, or at the LIMIT. None where
    walked_table() is: the CTE would stand for the table elsewhere too."""
    table = walked_table(alias, walk_sql)
    return None if table is None else f"WITH {table} AS ({first_sql}) {walk_sql}"


def bounded_order(ordering: Sequence[str]) -> bool:
    """Whether a walk in this order can be bounded: by columns alone. Over an expression of a
    subquery's column (the title's SortKey) PostgreSQL does not see the subquery's order: it
    sorted every task of the bound, 1-3.7 ms more a page of a spread tag (review 44f)."""
    return all(isinstance(by, F) for name in ordering for by in ORDERINGS[name.lstrip("-")])


def walked_table(alias: str, walk_sql: str) -> str | None:
    """tasks_task's quoted name, for a walk that reads the table in its own FROM alone; None
    for one that reads it elsewhere too (no filter does today), where a CTE of the table's name
    (narrowed_page_sql, bounded_walk_sql) would stand for the table as well."""
    table = connections[alias].ops.quote_name(Task._meta.db_table)
    if len(re.findall(rf"\b(?:FROM|JOIN) {re.escape(table)}", walk_sql)) != 1:
        return None
    return table


class CountedFirstRows(CompiledRows):
    """Rows whose page's SQL is chosen by how many tasks match, so counted before the page
    (TaskPagination reads the page first and counts only a full one: a list that fits one page
    runs its count too, a cheap one, since few tasks match). `few` when matches^2 <= (offset +
    limit) x tasks: reading the matches and sorting them costs ~matches rows, a walk of the
    page's order ~(offset + limit) x tasks / matches, a row walked and a match read about the
    same."""

    def __init__(self, count: Callable[[], int], count_all: Callable[[], int], **kwargs) -> None:
        super().__init__(MATCHING_TASKS, count=count, ids=MATCHING_TASK_IDS, **kwargs)
        self._count_all = count_all
        self._matches: int | None = None

    def count(self) -> int:
        if self._matches is None:
            self._matches = self._count()
        return self._matches

    def __getitem__(self, page: slice) -> list[tuple]:
        matches = self.count()
        if page.start >= matches:
            return []  # no task matches, or none this far: no page to read
        return self._page(page, few=matches * matches <= page.stop * self._count_all())

    def _page(self, page: slice, few: bool) -> list[tuple]:
        raise NotImplementedError

    def _walk_bound(self, page: slice) -> int | None:
        """How many of the owner's first tasks in the page's order its walk may read, at most
        WALK_BOUND x its expected length or the matches' number; None: not bounded (a walk of
        few tasks, or not much longer than reading the matches, or an order by an expression)."""
        matches, tasks = self.count(), self._count_all()
        # At least the matches' number: a walk given up costs the `few` page's reading of them
        # on top of it, GIVEN_UP_WALK x matches, so a bound that falls with the matches made a
        # walk just past it many times slower (review 45a: a tag on 20,000 of 100,000 tasks
        # whose first page is 3,000 tasks in, bounded at 1,000: 4.6 -> 66.6 ms); at least
        # `matches` keeps that at most 1 + GIVEN_UP_WALK times the walk.
        bound = max(WALK_BOUND * page.stop * tasks // matches, matches, page.stop)
        if bound + GIVEN_UP_WALK * matches >= tasks:
            return None
        return bound if bounded_order(self._values["ordering"]) else None

    def _bounded_walk(self, page: slice, values: dict, bound: int) -> list[tuple] | None:
        """The page of the walk (`values`) over the owner's first `bound` tasks in the page's
        order alone (bounded_walk_sql) when all its rows are among them: every row before one
        of them in the order is too, so it is the unbounded walk's page. Else the `few` page.
        None: the walk's SQL cannot be bounded (bounded_walk_sql)."""
        matches = self.count()
        alias, walk_sql, walk_params = self._statement(page, values)
        _, first_sql, first_params = OWNER_TASKS_FIRST.statement(
            limit=bound, owner=values["owner"], ordering=values["ordering"]
        )
        sql = bounded_walk_sql(alias, walk_sql, first_sql)
        if sql is None:
            return None
        # On one process (SERIAL_ONLY), and prepared as the rows' other pages are: a tag's page
        # planned with its values each time, a search's prepared. A search's generic plan walks
        # (the heavy user's spread words within 0.25 ms); its custom plans (a connection's
        # first five runs, every run under DB_PREPARED_STATEMENTS=0) read the bound whole and
        # hash it with the word's matches: a word whose page comes early 0.6 -> 3.9 ms (review
        # 45b F2; a per-task probe fixed that but made a walk given up 3.3 -> 14.2 ms).
        sql = with_tags_sql(alias, sql, serial=True, deferred=self._deferred(page))
        rows = fetch_all(alias, sql, [*first_params, *walk_params], prepared=self._prepared)
        whole = len(rows) == min(page.stop, matches) - page.start
        return rows if whole else self._page(page, few=True)


class SearchedRows(CountedFirstRows):
    """A searched list's rows (CountedFirstRows).

    The search index is on tasks_tasksearch (migration 0019), so a page has two plans: walk
    the owner's tasks in the page's order and probe each one's search row until the page is
    full (~(offset + limit) x tasks / matches probes), or read the matches off the search
    index and sort them (~matches). The planner picks well with the values in hand, but a
    prepared statement's generic plan (PostgreSQL's after five runs) knows neither the word
    nor the owner: it walked the heavy user's 100,000 tasks for a word they had 7 times (and
    a normal user's 1,000 for any rare word: 0.2 -> 1.7 ms). So the shape differs: when
    matches^2 <= (offset + limit) x tasks, the page takes `search_index_first`: the matching
    ids as `id = ANY(ARRAY(SELECT task_id ... WHERE owner_id = ...))`, an InitPlan computed
    once, then the tasks by primary key (filters.filter_tasks; as `IN (SELECT ...)` the
    planner could still walk the owner's tasks and probe the search table per task: 1,000
    probes for a normal user's 122 matches, bench/README.md). Otherwise the plan walks
    (bench/README.md, "The search index in a table of its own"), at most WALK_BOUND x its
    expected length: a word added to the heavy user's newest 5,000 tasks was at the end of the
    default order, and the first page walked the 95,000 before them (364 -> 53 ms)."""

    def _page(self, page: slice, few: bool) -> list[tuple]:
        bound = None if few else self._walk_bound(page)
        walked = None if bound is None else self._bounded_walk(page, self._values, bound)
        if walked is not None:
            return walked
        values = (
            {**self._values, "search_index_first": self._values["owner"]} if few else self._values
        )
        alias, sql, params = self._statement(page, values)
        return fetch_all(alias, with_tags_sql(alias, sql, deferred=self._deferred(page)), params)


# A filtered list whose tasks that pass its narrowing filter (a poll's changes, the tasks due
# by a date, the completed ones, ...) are at most this many reads its page from them alone
# (NarrowedRows). At 1,000 of the heavy user's changes that page takes 1.4-2.2 ms, as much as
# a walk of their 100,000 tasks in an uncorrelated order (1.4-2.0 ms; 0.4-0.8 ms at 3,000).
FEW_MATCHES = 1_000
# A filtered list is narrowed (but for a poll) only for an owner of at least this many tasks:
# a walk of fewer costs at most a few ms (~0.4 ms a 1,000 tasks), while the narrowed page of a
# bench user's 1,000 cost 0.3-0.7 ms more than their walk (`completed=false` matches ~700 of
# them, all read: 0.94 ms against 0.23; review 42d).
NARROWED_FROM = 10_000
# The same accounts' filtered pages are never run as prepared statements (fetch_all's
# `prepared`), so PostgreSQL plans each with its values (~0.4 ms a page; 0.5-1.1 ms narrowed).
# A prepared statement's generic plan, which a worker's connection settles on after five runs,
# takes the owner for one of average size; for a broad filter on a big account it read all
# the matches and sorted them where a walk of the page's index reads the page: 20,000 tasks,
# `completed=false&ordering=due_date` (most undated: one group of the open-due index to sort)
# 0.25 -> 6.2 ms, `updated_since=<old>&priority=none&ordering=title` 0.5 -> 19 ms; at
# 100,000 among 5,000 accounts of 20, 1 -> 62 ms (review 43d). The owner's id written into
# the SQL made the generic plan sound too, but PostgreSQL then planned each run anyway (the
# generic plan no longer looked cheaper): no planning saved.


def narrowings_of(alias: str, criteria: dict) -> list[tuple[str, str, list]]:
    """The filters a list's page can read its rows from when few of the owner's tasks pass one
    (NarrowedRows), in the order they are tried: each (its SQL over tasks_task's columns, an
    order only an owner's index of it gives, its values). Each is one of the criteria's own
    conditions, or one they imply, so that the rows it leaves are a superset of the page's.
    None whose column the page's order leads with: that walk reads the matches first already."""
    quote = connections[alias].ops.quote_name
    lead = criteria["ordering"][0].lstrip("-")
    due, due_time, task_id = quote("due_date"), quote("due_time"), quote("id")
    by_due = f"{due}, {due_time}, {task_id}"
    narrowings = []
    if "updated_since" in criteria and lead != "updated_at":
        updated = quote("updated_at")
        narrowings.append(
            (f"{updated} >= %s", f"{updated}, {task_id}", [criteria["updated_since"]])
        )
    if ("due_after" in criteria or "due_before" in criteria) and lead != "due_date":
        bounds = [(">=", "due_after"), ("<=", "due_before")]
        present = [(op, criteria[name]) for op, name in bounds if name in criteria]
        where = " AND ".join(f"{due} {op} %s" for op, _ in present)
        narrowings.append((where, by_due, [value for _, value in present]))
    completed = quote("completed")
    if criteria.get("overdue") and lead != "due_date":
        # filter_tasks' bound of `overdue`: open, and due by the owner's local date.
        where = f"NOT {completed} AND {due} <= %s"
        narrowings.append((where, f"{completed}, {due}", [criteria["local_date"]]))
    elif "completed" in criteria:  # an overdue task is open: `completed` narrows it no further
        narrowings.append((f"{completed} = %s", f"{completed}, {due}", [criteria["completed"]]))
    # `IN (...)` of several values on the index's second column is no index condition that
    # keeps (priority, id)'s order in PostgreSQL 16: a walk in the priority order reads it as
    # a filter over every task of the owner, so it is narrowed too, and the narrowing is
    # bounded by the range of the values, which is one (review 42e: 20,000 index entries read
    # for 20 matches, 5-7 ms; the range reads the 20).
    priorities = list(criteria.get("priorities", ()))
    if priorities and (lead != "priority" or len(priorities) > 1):
        priority = quote("priority")
        if len(priorities) == 1:
            narrowings.append((f"{priority} = %s", f"{priority}, {task_id}", priorities))
        else:
            listed = ", ".join(["%s"] * len(priorities))
            where = f"{priority} BETWEEN %s AND %s AND {priority} IN ({listed})"
            values = [min(priorities), max(priorities), *priorities]
            narrowings.append((where, f"{priority}, {task_id}", values))
    if "has_due" in criteria and lead != "due_date":
        narrowings.append((f"{due} IS {'NOT ' if criteria['has_due'] else ''}NULL", by_due, []))
    return narrowings


@functools.lru_cache(maxsize=256)  # one per shape of the list's SQL, as CompiledShapes keeps
def narrowed_page_sql(
    alias: str, walk_sql: str, narrowings: tuple[tuple[str, str], ...], many_sql: str | None = None
) -> str | None:
    """A narrowed page (NarrowedRows): for each narrowing (its SQL and index order), the
    owner's tasks that pass it counted up to a bound, then one of two pages: the walk over the
    tasks of the first narrowing whose count is within the bound, else the walk over the
    table. The other page is never run, nor a count past the first within the bound (a
    one-time filter's AND and OR stop at the first term that decides); `many_sql`, the page
    over the table when it is another SQL than the walk's. None for a walk that
    reads the table anywhere but in its own FROM (no filter does today): the CTE below would
    stand for the table there too.

    The narrowed page is the walk itself, its table the chosen narrowing's tasks: a CTE named
    as the table stands for it in the walk's SQL (inside the CTE, the name is still the
    table's). Read in its order under a LIMIT it never reaches, only the owner's index of that
    order can serve the CTE, whatever the estimates: without them a custom plan of the table's
    main owner read it whole (3.3 ms for 30 changes). The walk's SQL is in the statement twice
    whatever the number of narrowings (once a narrowing, it was 7,304 characters against 4,442
    with four, parsed anew by each request without prepared statements: 0.1-0.2 ms).
    """
    table = walked_table(alias, walk_sql)
    if table is None:
        return None
    quote = connections[alias].ops.quote_name
    owner = quote(Task._meta.get_field("owner").column)
    # Counted in that order too: as a bare LIMIT, a custom plan of an owner of most of the
    # table whose tasks all matched read the count by a Seq Scan, through every other
    # account's rows before the owner's in the heap (20,000 of them: 0.7 -> 3.0 ms; review 42c).
    narrowed = [
        f"{table} WHERE {owner} = %s AND {where} ORDER BY {order} LIMIT %s"
        for where, order in narrowings
    ]
    counts = ", ".join(
        f"matches_{n} AS MATERIALIZED (SELECT count(*) AS n FROM (SELECT FROM {tasks}) found)"
        for n, tasks in enumerate(narrowed)
    )
    within = [f"(SELECT n FROM matches_{n}) <= %s" for n in range(len(narrowed))]
    past = [f"(SELECT n FROM matches_{n}) > %s" for n in range(len(narrowed))]
    # The first narrowing's tasks within the bound: one walk over them, whichever it is.
    first_within = " UNION ALL ".join(
        f"SELECT * FROM (SELECT * FROM {tasks}) narrowed WHERE {' AND '.join([*past[:n], within[n]])}"
        for n, tasks in enumerate(narrowed)
    )
    return (
        f"WITH {counts} SELECT * FROM (WITH {table} AS MATERIALIZED ({first_within}) {walk_sql})"
        f" few WHERE {' OR '.join(within)}"
        f" UNION ALL SELECT * FROM ({many_sql or walk_sql}) many WHERE {' AND '.join(past)}"
    )


def narrowed_page_params(
    owner,
    walk_params: list,
    narrowings_params: list[list],
    bound: int,
    many_params: list | None = None,
) -> list:
    """narrowed_page_sql's parameters, in the order of its placeholders (`many_params`: those
    of its `many_sql`)."""
    narrowed = [[owner, *values, bound + 1] for values in narrowings_params]
    counts = [value for values in narrowed for value in values]
    first_within = [
        value for n, values in enumerate(narrowed) for value in [*values, *[bound] * (n + 1)]
    ]
    k = len(narrowed)
    many = walk_params if many_params is None else many_params
    return [*counts, *first_within, *walk_params, *[bound] * k, *many, *[bound] * k]


class NarrowedRows(CompiledRows):
    """A filtered list's rows: the page read from the owner's tasks that pass one selective
    filter alone when they are few (narrowings_of), else by the filtered list's walk.

    The walk follows the owner's index of the page's order and filters out every task that
    does not match: about (offset + limit) x tasks / matches rows. Sorting the matches costs
    about their number. A custom plan picks between the two from estimates. A generic plan,
    which a worker's connection settles on after five runs of a statement, knows neither the
    owner nor the values: it walked the heavy user's 100,000 tasks for 29 changes (33-50 ms a
    page; bench data, review 42b), and for 20 tasks due in 2001 (`due_before`, 35-45 ms;
    review 42d). Custom plans walk too when the owner's share of a value is not the table's
    (their estimate): 20 completed, 20 `high` or 20 overdue tasks of the heavy user's 100,000,
    32-45 ms (review 42d), and an owner of most of the table (2.8-6.1 ms for 30 changes). The
    paginator reads the page before it counts, so the choice is made at run time inside the
    one statement: the owner's tasks that pass a narrowing filter are counted off its index,
    up to FEW_MATCHES + 1 (an index-only read), the next filter's only when the one before
    passes the bound (`completed=false&priority=high`: the open tasks are most, the `high`
    ones few), and a one-time filter runs one of the pages (narrowed_page_sql). Same rows,
    same order: each is the same SQL over the same rows (tasks/tests/test_poll_plans.py and
    test_narrowed_plans.py compare them page by page). `narrowings`: narrowings_of()'s, for
    these values."""

    def __init__(
        self,
        query: CompiledQuery | CompiledShapes,
        count: Callable[[], int],
        *,
        narrowings: list[tuple[str, str, list]],
        many_values: dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(query, count, **kwargs)
        self._narrowings = narrowings
        self._many_values = many_values  # the page over the table's, if not the walk's values

    def __getitem__(self, page: slice) -> list[tuple]:
        values, narrowings = self._values, self._narrowings
        alias, walk_sql, walk_params = self._statement(page, values)
        many_sql = many_params = None
        if self._many_values is not None:
            _, many_sql, many_params = self._statement(page, self._many_values)
        sql = narrowed_page_sql(
            alias, walk_sql, tuple((where, order) for where, order, _ in narrowings), many_sql
        )
        if sql is None:
            return super().__getitem__(page)
        narrowings_params = [narrowing_params for _, _, narrowing_params in narrowings]
        params = narrowed_page_params(
            values["owner"], walk_params, narrowings_params, FEW_MATCHES, many_params
        )
        sql = with_tags_sql(alias, sql, serial=self._serial, deferred=self._deferred(page))
        return fetch_all(alias, sql, params, prepared=self._prepared)


# One tag's page whose walk is not bounded (`title`, which no bound serves; a tag on so many
# tasks that reading them after a walk given up costs more than the walk: _walk_bound; or a
# bound past PLANNED_WALK_BOUND) is the walk only when it reads at most a quarter of the tag's
# tasks: matches^2 >= WALK_SURELY x (offset + limit) x tasks; below that the planner picks: it
# read a tag on the titles last in order and sorted them (the bench's heavy user, 2,300 tasks:
# 11 ms) where the walk went through every title before them (290 ms; session 45). Several
# tags' page is always the walk (TaggedRows). A walked row costs more than a row of the join
# that reads all the tasks: at 100,000 tasks, a tag on 60,000 or 30,000, the walk took
# 0.30-0.42 of the join's time when it read 11-23 % of the tag's tasks, 0.55 at 28 %,
# 0.72-0.93 at 42-67 %, 1.3 at 56 % (review 44a).
WALK_SURELY = 4
# ... and one tag's page below that walks, bounded, only when its bound is at most this many
# tasks (several tags' walk keeps its bound, whatever its size: they have no other plan):
# given up, the walk and the tagged tasks read by key after it cost up to ~30 ms there, where
# deeper pages of bigger tags found the planner's hash join cheaper (the newest 15,000 of
# 100,000 at offset 1,000: 34-46 ms joined, 75-101 ms bounded; review 45c), and the planner's
# walk of a first page through a tag on the newest 4,400 took 242 ms (26 ms bounded).
PLANNED_WALK_BOUND = 5_000


class TaggedRows(CountedFirstRows):
    """A big account's list filtered by tags (CountedFirstRows).

    A page has two plans. Read the tasks that have the tags (the tags' links, each task by its
    primary key) and sort them: ~matches rows. Or walk the owner's index of the page's order
    and probe each task's links until the page is full: ~(offset + limit) x tasks / matches
    rows (filters.filter_tasks' `tags_walk`). The first is the one every plan of the GROUP BY
    took, its estimate a few rows whatever the tags: a tag on 4,181 of 100,000 tasks, 18,245
    buffers and 13-36 ms a first page, where the walk reads ~1,300 tasks (5,164 buffers;
    review 43e). The walk is taken unless `few` (or one tag's page is the planner's, below),
    its page counting each task's links to the tags in one EXISTS (`tags_probe`), which no
    plan turns into a join: one EXISTS a tag multiplied their shares as if they were
    independent, and two tags that go together were taken for a few tasks, so no plan walked
    (review 43f); and one tag's own EXISTS is estimated
    from the tag's links spread over every owner's tasks, so that a deep page's walk looked
    three times as long as it is and the plan joined and sorted (60,000 of 100,000 tasks,
    offset 4,000: 116-123 ms against 35 ms walked; review 44a). Between `few` and four times
    that (matches^2 up to 4 x (offset + limit) x tasks) one tag's plan was the planner's,
    which flipped with the statistics' sample: a spread tag on the bench's heavy user, 4-6 ms
    one run and 15-17 the next, and a tag on its newest 4,400 tasks walked them all (242 ms);
    walked, 4.7-6.4 ms and 26 ms (session 45); so one tag's such page walks when its walk is
    bounded within PLANNED_WALK_BOUND, else it stays the planner's (WALK_SURELY); several tags'
    walk keeps its bound whatever its size (unbounded, a pair on the newest 15,000 of 100,000
    tasks at offset 1,000 walked 86,050: 70 ms, bounded 16 + 30 ms; review 45d). The walk is
    bounded (WALK_BOUND), so that a tag first used recently, on the newest tasks, the last of
    the default order, is read and sorted after a bounded walk; before a narrowed page too, whose
    walk over the table is the same (a tag on the newest 5,000 of 100,000 with `has_due=false`:
    88 -> 21 ms). The count keeps one EXISTS a tag (a probe per task would walk them all)."""

    def __init__(
        self,
        count: Callable[[], int],
        count_all: Callable[[], int],
        *,
        narrowings: list[tuple[str, str, list]],
        **values,
    ) -> None:
        super().__init__(count, count_all, prepared=False, **values)
        self._narrowings = narrowings  # narrowings_of()'s: the page is a NarrowedRows' if any

    def _page(self, page: slice, few: bool) -> list[tuple]:
        matches, tasks = self.count(), self._count_all()
        several = len(self._values["tags"]) > 1
        surely = matches**2 >= WALK_SURELY * page.stop * tasks
        bound = None if few else self._walk_bound(page)
        if bound is not None and bound > PLANNED_WALK_BOUND and not several and not surely:
            bound = None  # one tag's planner's page (several tags' plan is always the walk)
        many_values = None
        if few:
            values = self._values
            if self._narrowings:
                # The narrowed tasks probe their links, one EXISTS a tag; the page over the
                # table keeps the GROUP BY (the tagged tasks read and sorted). Narrowed, the
                # GROUP BY's links joined the narrowed tasks (a CTE, estimated at one row) in a
                # nested loop that scanned them once a narrowed task: at 100,000 tasks, a tag
                # on 95,000 and 1,000 `high`, `tag=...&priority=high` 14.8 s a first page, 7 ms
                # now; a walk given up (_bounded_walk) took that page too (15,000 tasks, 3.8 ->
                # 561 ms; review 45b).
                values, many_values = {**values, "tags_walk": True}, values
        elif bound is not None or several or surely:
            values = {**self._values, "tags_walk": True, "tags_probe": True}
            walked = None if bound is None else self._bounded_walk(page, values, bound)
            if walked is not None:
                return walked
        else:  # no bound, and a walk not surely the shorter: the planner's walk, or its join
            values = {**self._values, "tags_walk": True}
        kwargs = {"prepared": self._prepared, "serial": not few, **values}
        if self._narrowings:
            rows = NarrowedRows(
                self._query,
                self.count,
                ids=self._ids,
                narrowings=self._narrowings,
                many_values=many_values,
                **kwargs,
            )
        else:
            rows = CompiledRows(self._query, self.count, ids=self._ids, **kwargs)
        return rows[page]


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
        "tags": sorted(tags, key=name_sort_key) if len(tags) > 1 else tags,
        "parent": parent_id,
        "position": position,
        "recurrence": recurrence,
        "next_occurrence": next_occurrence_id,
        "created_at": created_at,
        "updated_at": updated_at,
        "version": version,
    }


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


def plain_json_accepted(request: Request) -> bool:
    """DRF chose plain JSON; `application/json; indent=4` asks JSONRenderer to indent."""
    return request.accepted_media_type == "application/json"


def listed_tasks(params: QueryDict, requester, count_all: Callable[[], int]) -> Sequence:
    """What the paginator pages for these list parameters: compiled rows, or [] when no task can
    match. `requester` is what the filters read of a request, its user; `count_all` gives the
    number of all the user's tasks. Invalid filters raise DRF's ValidationError (a 400), as
    DjangoFilterBackend does."""
    owner = requester.user.pk
    count_all = functools.cache(count_all)  # a query (OwnerTaskCount), asked up to three times
    if params.keys() <= PAGINATION_PARAMETERS and not repeated_parameters(params):
        # Nothing to filter, nor to report (TaskFilter does): no FilterSet and its form.
        return CompiledRows(
            OWNER_TASKS_IN_ORDER, count=count_all, ids=OWNER_TASK_IDS_IN_ORDER, owner=owner
        )
    values = quick_filter_values(params)
    if values is None:  # not plainly valid: the FilterSet's form says whether it is
        filters = TaskFilter(params, Task.objects.none(), request=requester)
        if not filters.is_valid():
            raise translate_validation(filters.errors)
        values = filters.form.cleaned_data
    criteria = filter_criteria(values, requester.user)
    if criteria is None:
        return []
    tags_alone = criteria.keys() == {"tags", "ordering"}
    if criteria.keys() == {"ordering"}:
        count = count_all  # in another order, but all of them: not a COUNT(*) of 100,000 rows
    elif tags_alone:
        # Several tags planned with their values: a generic plan read the first tag's links
        # (the lowest id's) whatever the others', a tag on 60,000 tasks with one on 5: 6-11 ms
        # against 0.06 ms from the rare one's (review 46b). One tag's plan is the same for any.
        count = lambda: fetch_all(
            *TAGGED_TASK_COUNT.statement(tags=criteria["tags"]),
            prepared=len(criteria["tags"]) == 1,
        )[0][0]
    elif "search" in criteria and criteria.keys() - {"ordering"} <= SEARCH_ROW_CRITERIA:
        searched = {name: criteria[name] for name in criteria.keys() & SEARCH_ROW_CRITERIA}
        count = lambda: SEARCH_MATCH_COUNT.rows(owner=owner, **searched)[0][0]
    else:
        count = lambda: MATCHING_TASK_COUNT.rows(owner=owner, **criteria)[0][0]
    if "search" in criteria:
        return SearchedRows(count, count_all, owner=owner, **criteria)
    big = criteria.keys() != {"ordering"} and count_all() >= NARROWED_FROM
    polled = "updated_since" in criteria and criteria["ordering"][0].lstrip("-") != "updated_at"
    # A poll always has one: updated_since, its order not led by updated_at.
    narrowings = narrowings_of(Task.objects.db, criteria) if polled or big else []
    if big and "tags" in criteria:
        if not tags_alone:
            # Counted as the walk reads them, one EXISTS a tag (estimated from each tag's
            # links), and planned with the values: for the GROUP BY, estimated at a few rows,
            # every plan probed the tasks by primary key once a link (a tag on 60,000 tasks:
            # 240,491 buffers, 190-230 ms), and a generic plan of the EXISTS takes each tag
            # for an average one (a tag on 5 tasks hashed the owner's 100,000: 2-3 -> 10-14 ms).
            tagged = MATCHING_TASK_COUNT.statement(owner=owner, **criteria, tags_walk=True)
            count = lambda: fetch_all(*tagged, prepared=False)[0][0]
        return TaggedRows(count, count_all, narrowings=narrowings, owner=owner, **criteria)
    # A big account's filtered page is planned with its values (see NARROWED_FROM).
    if narrowings:
        return NarrowedRows(
            MATCHING_TASKS,
            count,
            ids=MATCHING_TASK_IDS,
            narrowings=narrowings,
            owner=owner,
            prepared=not big,
            **criteria,
        )
    return CompiledRows(
        MATCHING_TASKS, count, ids=MATCHING_TASK_IDS, owner=owner, prepared=not big, **criteria
    )


def page_body(paginator: "TaskPagination", request: HttpRequest, tasks: Sequence) -> bytes:
    """The list's JSON for the page of `tasks` that the request asks for, with the paginator's
    own count and links."""
    page = paginator.paginate_queryset(tasks, request)
    return render_page(
        count=paginator.count,
        next_url=paginator.get_next_link(),
        previous_url=paginator.get_previous_link(),
        rows=page,
    )


def list_response(view, request: Request) -> HttpResponse:
    """What ListModelMixin.list answers, through the view's own filters and paginator."""
    if not plain_json_accepted(request):
        return mixins.ListModelMixin.list(view, request)
    owner = request.user.pk
    # All the owner's tasks: their maintained count, one lookup whatever their number (a
    # COUNT(*) of the heavy user's 100,000 took ~10 ms).
    tasks = listed_tasks(request.query_params, request, lambda: OwnerTaskCount.of(owner))
    body = page_body(view.paginator, request, tasks)
    return HttpResponse(body, content_type="application/json")


def retrieve_response(view, request: Request) -> HttpResponse:
    """What RetrieveModelMixin.retrieve answers; not the caller's is a 404 like unknown."""
    if not plain_json_accepted(request):
        return mixins.RetrieveModelMixin.retrieve(view, request)
    lookup = view.lookup_url_kwarg or view.lookup_field
    # A UUID: the route's lookup_value_regex (views.UUID_PATTERN) passes nothing else.
    task_id = uuid.UUID(view.kwargs[lookup])
    # The same rows as the view's get_queryset() (owned_by(user)), without its prefetch.
    rows = TASK_OF_OWNER.rows(owner=request.user.pk, task=task_id)
    if not rows:
        raise Http404
    row = rows[0]
    view.conditional_version = row[VERSION_AT]  # for the ETag (todo_project.conditional)
    return HttpResponse(render(task_data(row)), content_type="application/json")


def written_task_data(task: Task) -> dict:
    """TaskSerializer(task).data of a task a write has just saved, from the instance itself:
    what this write made of it (the services keep `tag_names`), in plain JSON values (what
    the idempotency record stores and DRF renders to the same bytes as a GET of it).

    Reading the task back cost a query; the serializer would also query its tags and render
    field by field (~2.5 ms of CPU a write)."""
    return orjson.loads(written_task_body(task))


def written_task_body(task: Task) -> bytes:
    """written_task_data() rendered: the JSON bytes of the write's answer (render())."""
    if task.tag_names is None:
        raise ValueError("A write's answer needs the task's tag names (models.task_to_write).")
    row = [task.tag_names if column == "tags" else getattr(task, column) for column in COLUMNS]
    return render(task_data(row))


class WrittenTaskResponse(Response):
    """Response(written_task_data(task)) whose plain-JSON rendering is the body render() made
    of it already: the same bytes JSONRenderer writes of `data` (render()), without rendering
    them again. `data` stays, for what reads it (the ETag, an idempotency record); another
    accepted type (`application/json; indent=4`) is rendered from it as before."""

    def __init__(self, task: Task, status: int) -> None:
        self.body = written_task_body(task)
        super().__init__(orjson.loads(self.body), status=status)

    @property
    def rendered_content(self) -> bytes:
        if (
            self.accepted_media_type == "application/json"
            and type(self.accepted_renderer) is JSONRenderer
            and self.content_type is None
        ):
            self["Content-Type"] = JSONRenderer.media_type  # as Response.rendered_content
            return self.body
        return super().rendered_content


# Accept headers that DRF's negotiation answers with JSONRenderer's plain application/json.
PLAIN_JSON_ACCEPTS = {"", "*/*", "application/json"}


def _allowed(viewset_view: Callable) -> str:
    """DRF's Allow header: the methods with an action here, plus those the class has (OPTIONS)."""
    methods = {*viewset_view.actions, *(["head"] if "get" in viewset_view.actions else [])}
    return ", ".join(
        method.upper()
        for method in viewset_view.cls.http_method_names
        if method in methods or hasattr(viewset_view.cls, method)
    )


def with_fast_get(viewset_view: Callable) -> Callable:
    """The viewset's detail view, its plainest GET answered without DRF.

    Through DRF, a GET of one task took two queries (the user, then the task) and its dispatch
    (authentication, throttling, content negotiation, finalizing) most of the request's CPU
    (bench/README.md). When the request is the plain case, fast_task_get() answers it with the
    user check and the task in one statement; anything else, and every error (401, 404, 406,
    429, a 304), goes to the viewset untouched. The schema still sees the viewset
    (functools.wraps keeps its `cls`, `actions`, `csrf_exempt`).
    """
    lookup = viewset_view.cls.lookup_url_kwarg or viewset_view.cls.lookup_field
    allow = _allowed(viewset_view)

    def fast_answer(request: HttpRequest, **kwargs) -> HttpResponse | None:
        return fast_task_get(request, kwargs[lookup], allow) if request.method == "GET" else None

    return _with_fast_answer(viewset_view, fast_answer)


def with_fast_list(viewset_view: Callable) -> Callable:
    """The viewset's list view, its plain GETs answered without DRF: what with_fast_get does for
    one task, with fast_task_list() (the token check, the task count and the user's time zone in
    one statement), for any page and filters. `?format=`, errors and the rest go to the
    viewset."""
    allow = _allowed(viewset_view)
    paginator_class = viewset_view.cls.pagination_class

    def fast_answer(request: HttpRequest, **kwargs) -> HttpResponse | None:
        if request.method != "GET":
            return None
        return fast_task_list(request, allow, paginator_class())

    return _with_fast_answer(viewset_view, fast_answer)


def _with_fast_answer(viewset_view: Callable, fast_answer: Callable) -> Callable:
    """The view: fast_answer's response, else the viewset's. fast_answer is also the view's
    attribute, for the lane in front of Django's middleware (todo_project/fast_lane.py)."""

    @functools.wraps(viewset_view)
    def view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        tried = request.META.get(FAST_ANSWER_TRIED)  # by the lane, for this very request
        if isinstance(tried, Exception):
            raise tried
        response = None if tried else fast_answer(request, **kwargs)
        return viewset_view(request, *args, **kwargs) if response is None else response

    view.fast_answer = fast_answer
    return view


def _plain_token_holder(request: HttpRequest) -> dict | None:
    """token_holders()'s arguments when the request is the plain case the fast reads answer: no
    `?format=` (DRF's to read), plain JSON accepted, no If-None-Match (a 304 is the viewset's:
    todo_project.conditional), and a valid access token under one of the schemes authentication
    takes (accounts.authentication.is_our_scheme: "Bearer"). None for anything else."""
    meta = request.META
    if (
        meta.get("HTTP_ACCEPT", "") not in PLAIN_JSON_ACCEPTS
        or "HTTP_IF_NONE_MATCH" in meta
        or (meta.get("QUERY_STRING") and FORMAT_PARAMETER in request.GET)
    ):
        return None
    scheme, _, raw_token = meta.get("HTTP_AUTHORIZATION", "").partition(" ")
    if not is_our_scheme(scheme.encode()):  # as JWTAuthentication.get_raw_token reads it
        return None
    try:
        return holder_claims(valid_access_token(raw_token.encode()))
    except TokenError:
        return None


def _counted(request: HttpRequest, holder: dict) -> bool:
    """Counts the request against the holder's rate limit: False when it is over the limit (the
    viewset counts it again, over the limit already, and answers the 429)."""
    usage = count_request(request, *RateLimitThrottle.user_bucket(holder["user"]))
    if usage is not None and usage.exceeded:
        return False
    setattr(request, AUTHENTICATED_USER_ID, holder["user"])
    return True


def fast_task_get(request: HttpRequest, task_id: str, allow: str) -> HttpResponse | None:
    """The 200 that TaskViewSet.retrieve would answer, byte for byte; None when this request
    needs the viewset (tests compare both paths, case by case)."""
    holder = _plain_token_holder(request)
    if holder is None or request.META.get("QUERY_STRING"):
        return None
    task = uuid.UUID(task_id)  # the route's regex passes only UUIDs, as for retrieve_response
    rows = TASK_OF_TOKEN_HOLDER.rows(task=task, **holder)
    if not rows:
        return None  # a refused token or not the holder's task: the viewset says which
    if not _counted(request, holder):
        return None
    row = rows[0]
    response = HttpResponse(render(task_data(row)), content_type="application/json")
    response["ETag"] = etag_for(row[VERSION_AT])
    response["Allow"] = allow
    return response


def fast_task_list(
    request: HttpRequest, allow: str, paginator: "TaskPagination"
) -> HttpResponse | None:
    """The 200 that TaskViewSet.list answers, byte for byte, any page and filters; None when
    this request needs the viewset (tests compare both paths, case by case)."""
    holder = _plain_token_holder(request)
    if holder is None:
        return None
    found = TASK_COUNT_OF_TOKEN_HOLDER.rows(**holder)
    if not found:
        return None  # a refused token: the viewset says why
    task_count, timezone = found[0]
    # What the filters read of the user; from_db: a saved user, as related filters require.
    user = User.from_db(None, ["id", "timezone"], (holder["user"], timezone))
    try:
        paginator.get_limit(request), paginator.get_offset(request)
        tasks = listed_tasks(request.GET, Requester(user), lambda: task_count or 0)
    except ValidationError:
        return None  # the viewset answers the 400 (and counts the request once)
    if not _counted(request, holder):
        return None
    response = HttpResponse(page_body(paginator, request, tasks), content_type="application/json")
    response["Allow"] = allow
    return response


@dataclass(frozen=True)
class Requester:
    """What TaskFilter reads of a request: its user (the fast list has no DRF request)."""

    user: User
