"""task_search_lexemes in PL/pgSQL, its body unchanged: planned once per connection instead of
once per statement that calls it.

PostgreSQL cannot inline an SQL function with a FROM clause, so it plans the body of
task_search_lexemes (0010, 0013) again for every statement that calls it, before running it: for
a one-task INSERT, the search trigger's (tasks_task_search_inserted, 0023), that planning was
~0.2 ms of the trigger's ~0.3 ms, the body itself ~0.07 ms (EXPLAIN ANALYZE, review 39b). Every
create, every next occurrence of a recurring task and every edit of a title or description
paid it. PL/pgSQL keeps the plan of its `RETURN (SELECT ...)` for the connection's life (a
generic plan once five custom ones cost no less), so a call runs the body only: the search
trigger 0.31 -> 0.12 ms (median of 60 creates), PostgreSQL's CPU per API create ~1.3 -> ~1.1 ms.
A statement computing many vectors (a backfill, the bench's seed) planned it once anyway:
20,000 tasks' vectors 0.88-0.92 s either way.

The vector is the same: the same SELECT, over the same arguments (STRICT, IMMUTABLE and
PARALLEL SAFE as before); tests/test_filters.py's vector tests and test_task_search_table's
checks compare it with the words as Python splits and folds them, and with the SQL body run
as a plain statement (tasks/tests/test_search_lexemes_plpgsql.py). No row changes: nothing to
recompute. Reverse: 0013's SQL function again.
"""

import importlib

from django.db import migrations

accents = importlib.import_module("tasks.migrations.0013_search_ignores_accents")

# 0013's statement, its body made the expression of a PL/pgSQL RETURN.
_HEAD, _BODY = accents.CREATE_LEXEMES.split("AS $$", 1)
_BODY = _BODY.rsplit("$$", 1)[0].strip()
assert "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE" in _HEAD and _BODY.startswith("SELECT ")
CREATE_LEXEMES = (
    _HEAD.replace("LANGUAGE sql", "LANGUAGE plpgsql", 1)
    + f"AS $$\nBEGIN\n    RETURN ({_BODY});\nEND\n$$"
)


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0025_due_date_index_ends_in_the_id"),
    ]

    operations = [
        migrations.RunSQL(CREATE_LEXEMES, reverse_sql=accents.CREATE_LEXEMES),
    ]
