"""A restored search row that its task already has is skipped (review 33a).

A data-level restore (`pg_restore --data-only`, `psql -f` of a `--data-only` dump) loads
tasks_task, whose insert trigger (0019) writes each restored task's search row, then the dumped
tasks_tasksearch rows (its foreign key puts them after the tasks): every one a duplicate key,
so the restore failed, and in one transaction (`-1`) restored nothing. This BEFORE INSERT
trigger drops such a row; the trigger's copy, made from the restored task itself, stays.

It fires only for a statement a client sent (`pg_trigger_depth() = 0`: a restore's COPY, 0020's
backfill, whose ON CONFLICT DO NOTHING did the same): the triggers of tasks_task write their
rows at depth 1 and never reach the function. So a client's upsert of a row that exists
(`ON CONFLICT DO UPDATE`) changes nothing either: the rows are the triggers' to write. A restore with `--disable-triggers` turns it off
with the others and loads the dumped rows as they are (README "Backups and restores").
The function carries its table's schema as search_path, as 0018's and 0019's do.
"""

from django.db import migrations

from tasks.table_lock import lock_giving_way

FORWARD = """
CREATE FUNCTION tasks_task_search_restored() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM tasks_tasksearch WHERE task_id = NEW.task_id) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER task_search_restored BEFORE INSERT ON tasks_tasksearch
    FOR EACH ROW WHEN (pg_trigger_depth() = 0)
    EXECUTE FUNCTION tasks_task_search_restored();

DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION tasks_task_search_restored() SET search_path = %s',
        (SELECT relnamespace::regnamespace::text FROM pg_class
         WHERE oid = 'tasks_tasksearch'::regclass)
    );
END
$$;
"""

BACKWARD = """
DROP TRIGGER task_search_restored ON tasks_tasksearch;
DROP FUNCTION tasks_task_search_restored();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0020_task_search_index_moved"),
    ]

    # The trigger locks tasks_tasksearch, which every task create and text edit writes: taken
    # first, giving way to writes.
    operations = [lock_giving_way("tasks_tasksearch"), migrations.RunSQL(FORWARD, BACKWARD)]
