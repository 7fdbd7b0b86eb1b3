"""Search ignores accents: `cafe` finds `Café`, `uber` finds `über`, `pinata` finds `piñata`,
and `café` finds `cafe`.

Both sides are folded by task_search_fold: the text's words as they are stored, and the
searched words (tasks.filters.prefix_tsquery). It takes off the marks of the Combining
Diacritical Marks blocks (NFD, those marks dropped, then NFC again, so that Hangul and kana stay
whole): the accents of Latin, Greek and Cyrillic letters, é, ü, ñ, å, ç, ő, ș, ё (and й, as и).
Arabic and Hebrew vowel marks, in blocks of their own, stay. Letters of their own stay as they
are (ß, æ, ø, ł, đ, ı). Built-in functions only (normalize, regexp_replace), all immutable:
the embedded PostgreSQL has no `unaccent`, and a generated column could not call its stable
function anyway.

The fold comes before the cut at 255 characters, which it could otherwise push past the
2,046 bytes of a lexeme (a few characters, such as U+1D160, decompose into three that do not
compose again). As in 0010, task_search_lexemes keeps its name and signature: no table
rewrite; the rows whose vector changes (those with a character beyond ASCII in their title or
description) are updated in batches of their own transactions, without a new version.
"""

import functools
import importlib

from django.db import migrations

joined_words = importlib.import_module("tasks.migrations.0010_search_finds_parts_of_joined_words")

# The blocks of combining diacritical marks: basic, extended, supplement, for symbols, halves.
MARKS = r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
BEYOND_ASCII = r"[^\x01-\x7f]"


def folded(word: str) -> str:
    """SQL: `word` without its accents (ASCII as it is: the check costs less than the fold)."""
    return (
        f"CASE WHEN {word} ~ '{BEYOND_ASCII}'"
        f" THEN normalize(regexp_replace(normalize({word}, NFD), '{MARKS}', '', 'g'), NFC)"
        f" ELSE {word} END"
    )


# For the searched words (tasks.filters.prefix_tsquery).
CREATE_FOLD = f"""
CREATE OR REPLACE FUNCTION task_search_fold(word text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT {folded("word")} $$
"""

# Inline, not a call of task_search_fold for every word of every write: a lexeme cost 2.6 times
# as much through the call (200,000 of the benchmark's tasks: 9.2 s → 23.9 s), 1.2 times inline
# (4.2 s → 5.1 s for 100,000 in ASCII; 5.8 s → 8.4 s with five accented words in each).
CREATE_LEXEMES = joined_words.CREATE_FUNCTION.replace(
    "SELECT left(lexeme, 255) AS word", f"SELECT left({folded('lexeme')}, 255) AS word", 1
)
assert CREATE_LEXEMES != joined_words.CREATE_FUNCTION

recompute = functools.partial(joined_words.recompute_changed_vectors, pattern=BEYOND_ASCII)


class Migration(migrations.Migration):
    # Each batch commits on its own: no long lock, no huge transaction. So every step can run
    # again after an interrupted run, either way (CREATE OR REPLACE, DROP IF EXISTS).
    atomic = False

    dependencies = [
        ("tasks", "0012_deleted_task"),
    ]

    operations = [
        # Reversed, these run bottom up: the previous function back, then the vectors again.
        migrations.RunPython(migrations.RunPython.noop, recompute),
        migrations.RunSQL(
            [CREATE_FOLD, CREATE_LEXEMES],
            reverse_sql=[
                joined_words.CREATE_FUNCTION,
                "DROP FUNCTION IF EXISTS task_search_fold(text)",
            ],
        ),
        migrations.RunPython(recompute, migrations.RunPython.noop),
    ]
