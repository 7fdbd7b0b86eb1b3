"""task_search_lexemes in PL/pgSQL (migration 0026, review 39b): its body planned once per
connection, not once per statement calling it (every create paid ~0.2 ms of PostgreSQL's time
for that planning), and the vectors it makes are those of 0013's SQL function."""

import importlib
import re

import pytest
from django.db import connection

from tasks.tests.test_filters import TRICKY_TASKS

pytestmark = pytest.mark.django_db

accents = importlib.import_module("tasks.migrations.0013_search_ignores_accents")
planned_once = importlib.import_module("tasks.migrations.0026_search_lexemes_planned_once")

# 0013's body, run as a statement of its own: the vector as the SQL function made it.
_BODY = accents.CREATE_LEXEMES.split("AS $$", 1)[1].rsplit("$$", 1)[0]
SQL_FUNCTION_BODY = re.sub(
    r"\bprefix\b", "%(prefix)s::text", re.sub(r"\bwords\b", "%(words)s::tsvector", _BODY)
)

TEXTS = [f"{title} {description}" for title, description in TRICKY_TASKS] + [
    "",
    "   ",
    "a",
    "x-y-z " * 40,
    "'single' \"double\" back\\slash \\\\ 'it''s'",
    "ﬁ ﬂ Ǆ ǅ ǆ İı ß ẞ",
]


def _language() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
            " WHERE p.oid = 'task_search_lexemes(tsvector, text)'::regprocedure"
        )
        return cursor.fetchone()[0]


def test_the_lexemes_function_keeps_its_plan():
    # An SQL function with a FROM clause is never inlined: PostgreSQL planned its body again
    # for every statement that called it (the search trigger of every create).
    assert _language() == "plpgsql"


@pytest.mark.parametrize("text", TEXTS)
def test_the_vector_is_the_sql_functions(text):
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_tsvector('simple', %s)::text", [text])
        words = cursor.fetchone()[0]
        cursor.execute(
            "SELECT task_search_lexemes(%s::tsvector, %s)::text", [words, "0123456789ab"]
        )
        made = cursor.fetchone()[0]
        cursor.execute(
            f"SELECT ({SQL_FUNCTION_BODY})::text", {"words": words, "prefix": "0123456789ab"}
        )
        expected = cursor.fetchone()[0]
    assert made == expected


def test_a_null_argument_is_still_a_null_vector():
    with connection.cursor() as cursor:
        cursor.execute("SELECT task_search_lexemes(NULL, 'k'), task_search_lexemes('a', NULL)")
        assert cursor.fetchone() == (None, None)


def test_the_same_vector_after_many_calls_on_one_connection():
    # From the sixth call on, PL/pgSQL may run a generic plan: the same answers.
    with connection.cursor() as cursor:
        answers = set()
        for _ in range(12):
            cursor.execute(
                "SELECT task_search_lexemes(to_tsvector('simple', %s), 'k')::text",
                ["it's http://x.com/a-b Café"],
            )
            answers.add(cursor.fetchone()[0])
    assert len(answers) == 1


def test_the_migration_reverses_to_the_sql_function():
    assert planned_once.Migration.operations[0].reverse_sql == accents.CREATE_LEXEMES
    assert "LANGUAGE sql" in accents.CREATE_LEXEMES
    assert "LANGUAGE plpgsql" in planned_once.CREATE_LEXEMES
