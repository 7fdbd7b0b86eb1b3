"""Titles and tag names sort case and accents aside (tasks.models.SortKey): "Émile" between
"apple" and "zeta", not after "z" as the C collation's bytes had it.

text_sort_key is lower case after 0013's accent fold, in an SQL function that is not STRICT,
so PostgreSQL inlines it into the built-in functions, in a query's ORDER BY and in the index's
expression alike (the planner matches them), at their cost: sorting 200,000 of the benchmark's
titles took 0.26-0.29 s, as by LOWER(title) (0.27-0.31 s); a STRICT one, called per row, took
0.50-0.60 s. The title index
(owner, LOWER(title)) is replaced by (owner, text_sort_key(title)), built CONCURRENTLY, the
tasks table taking writes meanwhile; the old one is dropped CONCURRENTLY after it.
"""

import importlib

from django.db import migrations, models
from django.db.models import F

import tasks.models
from tasks.concurrent_index import build_concurrently, drop_concurrently

accents = importlib.import_module("tasks.migrations.0013_search_ignores_accents")

CREATE_SORT_KEY = f"""
CREATE OR REPLACE FUNCTION text_sort_key(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT lower({accents.folded("value")}) $$
"""


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run in a transaction; so each step can run again after an
    # interrupted run (OR REPLACE, IF EXISTS, build_concurrently).
    atomic = False

    dependencies = [
        ("tasks", "0013_search_ignores_accents"),
    ]

    operations = [
        migrations.RunSQL(CREATE_SORT_KEY, reverse_sql="DROP FUNCTION IF EXISTS text_sort_key(text)"),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="task",
                    index=models.Index(
                        F("owner"), tasks.models.SortKey("title"), name="task_owner_title_key"
                    ),
                ),
            ],
            database_operations=build_concurrently(
                "task_owner_title_key", 'tasks_task (owner_id, (text_sort_key(title) COLLATE "C"))'
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="task", name="task_owner_title"),
            ],
            database_operations=drop_concurrently(
                "task_owner_title", "tasks_task (owner_id, lower(title))"
            ),
        ),
    ]
