"""Querysets compiled to SQL once per process, then run with new values: for the hottest reads.

Building and compiling a queryset is most of the CPU a one-row read costs (~1 ms for the user
lookup and the task of a GET, against ~0.1 ms for the query itself; bench/README.md). The SQL
of such a query never changes, only its values: `CompiledQuery` compiles a queryset built with
placeholder values once, then runs that SQL with the real values in their places. The ORM
stays the one place that says what the query is.
"""

import functools
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connections
from django.db.models import QuerySet
from django.db.transaction import TransactionManagementError


class CompiledQuery:
    """`build(**placeholders)` → a `values_list()` queryset; `rows(**values)` runs it as SQL.

    Each placeholder must be a value that nothing else in the query can equal (e.g.
    `uuid.UUID(int=1)`): its positions among the query's parameters are found by equality.
    The rows are what the queryset would give, since the queryset must have no converters
    (checked when compiling, so a field that needs one cannot be added unnoticed).
    """

    def __init__(self, build: Callable[..., QuerySet], **placeholders: Any) -> None:
        self._build = build
        self._placeholders = placeholders

    @functools.cached_property
    def _compiled(self) -> tuple[str, str, list[Any], dict[int, tuple[str, type]], bool, bool]:
        queryset = self._build(**self._placeholders)
        compiler = queryset.query.get_compiler(queryset.db)
        sql, params = compiler.as_sql()
        if compiler.get_converters([column for column, _, _ in compiler.select]):
            raise ValueError("CompiledQuery runs SQL as is: its columns must need no converter.")
        # Django's PostgreSQL backend sends an integer as psycopg's Int4 or Int8 (a subclass
        # of int that says the SQL type): the value put in its place gets the same wrapper.
        slots = {
            at: (name, type(param))
            for at, param in enumerate(params)
            for name, value in self._placeholders.items()
            if _kind(param) is _kind(value) and param == value
        }
        if {name for name, _ in slots.values()} != set(self._placeholders):
            raise ValueError("Every placeholder must appear among the query's parameters.")
        locks = queryset.query.select_for_update
        return queryset.db, sql, list(params), slots, queryset.query.is_sliced, locks

    def rows(self, *, limit: int | None = None, offset: int = 0, **values: Any) -> list[tuple]:
        """The rows for these values; `limit` and `offset` page them."""
        return fetch_all(*self.statement(limit=limit, offset=offset, **values))

    def statement(
        self, *, limit: int | None = None, offset: int = 0, **values: Any
    ) -> tuple[str, str, list[Any]]:
        """(database alias, SQL, parameters) that rows() runs for these values.

        The page is in SQL parameters: Django writes LIMIT and OFFSET into the SQL itself, which
        would make each page another statement for PostgreSQL to parse and plan.
        """
        alias, sql, params, slots, sliced, locks = self._compiled
        if locks and not connections[alias].in_atomic_block:
            # The ORM refuses a select_for_update() outside a transaction when it compiles
            # the query; compiled once, the SQL would run, and its lock would end at once.
            raise TransactionManagementError("A row lock needs a transaction.")
        params = params.copy()
        for at, (name, sent_as) in slots.items():
            value = values[name]
            params[at] = value if type(value) is sent_as else sent_as(value)
        if limit is not None:
            if sliced:
                raise ValueError("A sliced queryset cannot be paged again.")
            sql = f"{sql} LIMIT %s OFFSET %s"
            params += [limit, offset]
        return alias, sql, params


def fetch_all(alias: str, sql: str, params: list[Any], *, prepared: bool = True) -> list[tuple]:
    """The rows of `sql` run with `params` on database `alias` (a statement() of this module).

    `prepared=False`: never run as a statement prepared on the connection (server-side
    binding prepares one at its second run, DB_PREPARED_STATEMENTS), whose plan PostgreSQL may
    make once for any values after five runs (a generic plan): as an unnamed statement it is
    planned with its values each time."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        if prepared:
            cursor.execute(sql, params)
            return cursor.fetchall()
        psycopg_connection = connection.connection
        threshold = psycopg_connection.prepare_threshold
        psycopg_connection.prepare_threshold = None  # psycopg: never prepare
        try:
            cursor.execute(sql, params)
            return cursor.fetchall()
        finally:
            psycopg_connection.prepare_threshold = threshold


# A placeholder of each type of value CompiledShapes takes, the nth: distinct from every other.
PLACEHOLDERS: dict[type, Callable[[int], Any]] = {
    uuid.UUID: lambda n: uuid.UUID(int=n),
    int: lambda n: -(2**62) - n,  # in a list only (ids): a lone int is part of the shape
    str: lambda n: f"\x00placeholder {n}",  # PostgreSQL text never holds a NUL: no real value
    date: date.fromordinal,  # 0001-01-0n
    time: lambda n: time(microsecond=n),
    datetime: lambda n: datetime(1, 1, 1, tzinfo=UTC) + timedelta(microseconds=n),
}
# Values whose every change may change the SQL (a bool can be `NOT "completed"`, an ordering
# another ORDER BY): each is part of the shape.
SHAPING = (type(None), bool, int, tuple)


class CompiledShapes:
    """Querysets whose SQL depends on some of their values: one CompiledQuery per shape.

    `build(**values)` → a `values_list()` queryset; `rows(**values)` runs the SQL compiled for
    the values' shape. None, bools, ints and tuples are the shape itself (the filtered list's
    booleans, priorities, ordering). UUIDs, dates, times, datetimes and strings are values: a
    placeholder of their type stands for each when compiling (CompiledQuery). A list is a list
    of such values or ints (ids), its length part of the shape. Only the `max_shapes` most
    recently used stay compiled: a client that sends shape after shape costs CPU, never memory.
    """

    def __init__(self, build: Callable[..., QuerySet], *, max_shapes: int = 256) -> None:
        self._build = build
        self._compiled = functools.lru_cache(maxsize=max_shapes)(self._compile)

    def cache_info(self) -> functools._CacheInfo:
        return self._compiled.cache_info()

    def rows(self, *, limit: int | None = None, offset: int = 0, **values: Any) -> list[tuple]:
        query, flat = self._query_for(values)
        return query.rows(limit=limit, offset=offset, **flat)

    def statement(
        self, *, limit: int | None = None, offset: int = 0, **values: Any
    ) -> tuple[str, str, list[Any]]:
        query, flat = self._query_for(values)
        return query.statement(limit=limit, offset=offset, **flat)

    def _query_for(self, values: dict[str, Any]) -> tuple[CompiledQuery, dict[str, Any]]:
        """The values' shape compiled, and the values it takes (lists flattened)."""
        shape, flat = _shape_of(values)
        return self._compiled(shape), flat

    def _compile(self, shape: tuple) -> CompiledQuery:
        values, placeholders = {}, {}
        for name, kind, detail in shape:
            if kind == "fixed":
                values[name] = detail
            elif kind == "list":
                values[name] = [
                    _placeholder(placeholders, f"{name}.{at}", of) for at, of in enumerate(detail)
                ]
            else:
                values[name] = _placeholder(placeholders, name, detail)
        return CompiledQuery(lambda **_: self._build(**values), **placeholders)


def _placeholder(placeholders: dict[str, Any], name: str, kind: type) -> Any:
    placeholders[name] = PLACEHOLDERS[kind](len(placeholders) + 1)
    return placeholders[name]


def _shape_of(values: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    """(the values' shape, the values that CompiledQuery puts in the placeholders' places)."""
    shape, flat = [], {}
    for name, value in sorted(values.items()):
        kind = type(value)
        if kind is list:
            shape.append((name, "list", tuple(_value_type(item) for item in value)))
            flat.update((f"{name}.{at}", item) for at, item in enumerate(value))
        elif kind in SHAPING:
            shape.append((name, "fixed", value))
        else:
            shape.append((name, "value", _value_type(value)))
            flat[name] = value
    return tuple(shape), flat


def _value_type(value: Any) -> type:
    if type(value) not in PLACEHOLDERS:
        raise TypeError(f"CompiledShapes has no placeholder for a {type(value).__name__}.")
    return type(value)


def _kind(value: Any) -> type:
    """int for any integer but a bool (psycopg's Int4 is an int; True must not match 1)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int
    return type(value)
