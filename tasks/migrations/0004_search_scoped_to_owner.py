# Search lexemes scoped to their owner (see search_owner_key in tasks/models.py).
#
# Neither PostgreSQL nor Django can change a generated column's expression in place: the
# column and its GIN index are dropped and added again, which rewrites the tasks table and
# rebuilds all its indexes under an ACCESS EXCLUSIVE lock (about 3 minutes for 1.1M tasks, see
# bench/README.md). Run `VACUUM (ANALYZE) tasks_task` afterwards: the rewritten table has no
# visibility map yet (counts read the heap until a vacuum) and no statistics on the column.

import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models.functions.comparison
import django.db.models.functions.text
from django.db import migrations, models

# Every lexeme of `words` prefixed by `prefix`, its positions and weights kept. Lexemes are cut
# at 255 characters (at most 1,020 bytes), so prefix + lexeme stays under the 2,047-byte limit
# of a lexeme; searched words are shorter (tasks.filters.SEARCH_MAX_LENGTH). The tsvector is
# written as text with every lexeme quoted (quotes and backslashes doubled), then read back.
# Immutable, as a generated column's expression must be.
CREATE_FUNCTION = r"""
CREATE FUNCTION task_search_lexemes(words tsvector, prefix text) RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(string_agg(
        '''' || replace(replace(prefix || left(lexeme, 255), '\', '\\'), '''', '''''') || ''''
        || coalesce(':' || (
            SELECT string_agg(position::text || weight, ',')
            FROM unnest(positions, weights) AS p(position, weight)
        ), ''),
        ' '
    ), '')::tsvector
    FROM unnest(words)
$$
"""


class Migration(migrations.Migration):

    dependencies = [
        ('tasks', '0003_idempotency_record'),
    ]

    operations = [
        migrations.RunSQL(CREATE_FUNCTION, reverse_sql="DROP FUNCTION task_search_lexemes"),
        migrations.RemoveIndex(
            model_name='task',
            name='task_search',
        ),
        migrations.RemoveField(
            model_name='task',
            name='search_vector',
        ),
        migrations.AddField(
            model_name='task',
            name='search_vector',
            field=models.GeneratedField(db_persist=True, expression=models.Func(django.contrib.postgres.search.SearchVector('title', 'description', config='simple'), django.db.models.functions.text.Left(django.db.models.functions.text.Replace(django.db.models.functions.comparison.Cast('owner', models.TextField()), models.Value('-'), models.Value('')), 12), function='task_search_lexemes', output_field=django.contrib.postgres.search.SearchVectorField()), output_field=django.contrib.postgres.search.SearchVectorField()),
        ),
        migrations.AddIndex(
            model_name='task',
            index=django.contrib.postgres.indexes.GinIndex(fields=['search_vector'], name='task_search'),
        ),
    ]
