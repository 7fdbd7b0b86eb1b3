"""Querysets compiled to SQL once per process, then run with new values: for the hottest reads.

Building and compiling a queryset is most of the CPU a one-row read costs (~1 ms for the user
lookup and the task of a GET, against ~0.1 ms for the query itself; bench/README.md). The SQL
of such a query never changes, only its values: `CompiledQuery` compiles a queryset built with
placeholder values once, then runs that SQL with the real values in their places. The ORM
stays the one place that says what the query is.
"""

import functools
from collections.abc import Callable
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
        alias, sql, params = self.statement(limit=limit, offset=offset, **values)
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

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


def _kind(value: Any) -> type:
    """int for any integer but a bool (psycopg's Int4 is an int; True must not match 1)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int
    return type(value)
