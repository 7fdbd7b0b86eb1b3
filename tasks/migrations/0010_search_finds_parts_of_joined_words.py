"""Search finds the parts of words joined by punctuation: `example` finds `anna@example.com`,
`local` finds `/usr/local/bin`, `foo` finds `https://github.com/foo/bar`.

PostgreSQL's parser keeps an email, a URL's path or a file name as one word, and a prefix
search only matches a word's start. task_search_lexemes now adds, for every word with ASCII
punctuation inside, the rest of the word after each run of punctuation (`example.com`, `com`;
at most 16 of them, of the word's first 255 characters), with the word's positions.

The function keeps its name and signature, so the generated column stays as it is (no table
rewrite, no lock beyond the rows updated). Stored vectors are not recomputed by a new function
body: the rows whose vector changes, which have such punctuation in their title or description,
are updated in batches of their own transactions (`SET title = title`, which recomputes the
column; nothing else changes: no version, `updated_at` or ETag). Every task is read once
(11 s for the benchmark's 1.1M tasks, which have no punctuation); each one rewritten updates
all its indexes (~0.2 ms a row here).
"""

import importlib

from django.db import migrations, transaction

# A run of ASCII punctuation: !"#$%&'()*+,-./ :;<=>?@ [\]^_` {|}~
PUNCTUATION = r"[!-/:-@[-`{-~]+"

CREATE_FUNCTION = rf"""
CREATE OR REPLACE FUNCTION task_search_lexemes(words tsvector, prefix text) RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(string_agg(
        '''' || replace(replace(prefix || part, '\', '\\'), '''', '''''') || ''''
        || coalesce(':' || w.places, ''),
        ' '
    ), '')::tsvector
    FROM (
        SELECT left(lexeme, 255) AS word, (
            SELECT string_agg(position::text || weight, ',')
            FROM unnest(positions, weights) AS p(position, weight)
        ) AS places
        FROM unnest(words)
    ) AS w
    CROSS JOIN LATERAL (
        SELECT w.word
        UNION ALL
        SELECT substr(w.word, regexp_instr(w.word, '{PUNCTUATION}', 1, n, 1))
        FROM generate_series(1, least(regexp_count(w.word, '{PUNCTUATION}'), 16)) AS n
    ) AS parts(part)
    WHERE part <> ''
$$
"""

PREVIOUS_FUNCTION = importlib.import_module(
    "tasks.migrations.0004_search_scoped_to_owner"
).CREATE_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)

BATCH = 5_000


def recompute_changed_vectors(apps, schema_editor, pattern=PUNCTUATION):
    """Update, batch by batch of ids, the rows whose stored vector is no longer what the
    column's expression gives, among those whose title or description matches `pattern` (the
    only ones a new function body can change)."""
    database = schema_editor.connection
    with database.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d"
            " JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
            " WHERE d.adrelid = 'tasks_task'::regclass AND a.attname = 'search_vector'"
        )
        (expression,) = cursor.fetchone()
        after = ""  # the first batch has no lower bound
        params = []
        while True:
            with transaction.atomic(using=database.alias):
                cursor.execute(
                    f"SELECT id FROM (SELECT id FROM tasks_task WHERE TRUE {after}"
                    " ORDER BY id LIMIT %s) AS batch ORDER BY id DESC LIMIT 1",
                    [*params, BATCH],
                )
                last = cursor.fetchone()
                if last is None:
                    return
                (upper,) = last
                cursor.execute(
                    f"UPDATE tasks_task SET title = title WHERE id <= %s {after}"
                    " AND (title ~ %s OR description ~ %s)"
                    f" AND search_vector IS DISTINCT FROM ({expression})",
                    [upper, *params, pattern, pattern],
                )
            after, params = "AND id > %s", [upper]


class Migration(migrations.Migration):
    atomic = False  # each batch commits on its own: no long lock, no huge transaction

    dependencies = [
        ("tasks", "0009_search_index_with_a_small_pending_list"),
    ]

    operations = [
        # Reversed, these run bottom up: the previous function back, then the vectors again.
        migrations.RunPython(migrations.RunPython.noop, recompute_changed_vectors),
        migrations.RunSQL(CREATE_FUNCTION, reverse_sql=PREVIOUS_FUNCTION),
        migrations.RunPython(recompute_changed_vectors, migrations.RunPython.noop),
    ]
