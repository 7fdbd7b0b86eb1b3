"""Task search vectors in a table of their own (tasks.TaskSearch), kept in step by triggers.

Why: no task UPDATE is a HOT update (`updated_at` is indexed), so with the GIN index on
tasks_task every row version, every bump of a task's version included (tag rename or delete,
bulk actions, a list deleted into the Inbox, completions), re-inserted every lexeme of the
task's unchanged vector: a tag rename over 500 tasks with 10,000-character descriptions took
11.2 s and 2.36 GB of WAL (review 32b). TaskSearch rows change only with a task's searchable
text. This migration makes the table and its triggers (in one transaction, like 0005); 0020
fills it, builds its search index CONCURRENTLY and then drops `task_search` from tasks_task.

- The foreign key to tasks_task is ON DELETE CASCADE, written here rather than by Django (the
  model says db_constraint=False): every delete of tasks (the ORM's cascades, the services'
  raw DELETE, account deletion, raw SQL) takes the row with it, in the same statement.
- A statement-level AFTER INSERT trigger copies the new tasks' vectors from its transition
  table: one INSERT per statement, a COPY or a bulk insert of recurring copies included.
- A row-level AFTER UPDATE OF title, description, owner_id trigger, WHEN the vector or the owner
  changed, writes the new ones. Bumps (which name none of those columns) never fire it; a
  save() naming every column fires it only when the text changed (WHEN costs nothing else). It
  upserts, so that an update made while 0020's backfill runs cannot be overwritten by the
  backfill's older copy (the backfill inserts with ON CONFLICT DO NOTHING).
- `completed` and `priority` are copied too (unindexed), so that a search combined with them
  is counted here without tasks_task (2026-12-05): a row-level AFTER UPDATE OF completed,
  priority trigger, WHEN either changed, updates them. No index of this table holds them and
  the table's fillfactor is 50, so that update is HOT (a small row version on the same page,
  the vector's TOAST pointer shared): a version on another page would put every lexeme of the
  vector into the GIN index again. Bulk complete/reopen/set_priority fire it; tag renames,
  tag deletes, moves and other bumps (which name neither column) do not.
- TRUNCATE of tasks_task needs tasks_tasksearch truncated with it (the foreign key): Django's
  flush names every table.

The vector stays a generated column of tasks_task (the source the triggers copy): code of the
release before, still running during a rolling deploy, reads and searches it. A later release
drops that column and computes the vector here.

The functions carry their table's schema as search_path, as 0018 gave the count triggers'.
Reverse: triggers, functions and table dropped (0020 reversed first builds `task_search` again).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import django.contrib.postgres.search
from tasks.table_lock import lock_giving_way

FORWARD = """
-- Room on each page for a second version of every row: completed/priority updates stay HOT.
ALTER TABLE tasks_tasksearch SET (fillfactor = 50);

ALTER TABLE tasks_tasksearch ADD CONSTRAINT tasks_tasksearch_task_id_fk_tasks_task_id
    FOREIGN KEY (task_id) REFERENCES tasks_task (id) ON DELETE CASCADE
    DEFERRABLE INITIALLY DEFERRED;

CREATE FUNCTION tasks_task_search_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tasks_tasksearch (task_id, owner_id, completed, priority, search_vector)
    SELECT id, owner_id, completed, priority, search_vector FROM inserted_tasks;
    RETURN NULL;
END
$$;

CREATE FUNCTION tasks_task_search_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tasks_tasksearch AS searched (task_id, owner_id, completed, priority, search_vector)
    VALUES (NEW.id, NEW.owner_id, NEW.completed, NEW.priority, NEW.search_vector)
    ON CONFLICT (task_id) DO UPDATE
    SET owner_id = EXCLUDED.owner_id, completed = EXCLUDED.completed,
        priority = EXCLUDED.priority, search_vector = EXCLUDED.search_vector;
    RETURN NULL;
END
$$;

-- Unindexed columns only: a HOT update of the search row (fillfactor 50), no GIN work. No
-- row yet: 0020's backfill has not reached the task, and may have read it before this update
-- (its FOR KEY SHARE lets the update through), so the row is written here, and the backfill's
-- ON CONFLICT DO NOTHING keeps it.
CREATE FUNCTION tasks_task_search_filtered() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasks_tasksearch SET completed = NEW.completed, priority = NEW.priority
    WHERE task_id = NEW.id;
    IF NOT FOUND THEN
        INSERT INTO tasks_tasksearch AS searched
            (task_id, owner_id, completed, priority, search_vector)
        VALUES (NEW.id, NEW.owner_id, NEW.completed, NEW.priority, NEW.search_vector)
        ON CONFLICT (task_id) DO UPDATE
        SET completed = EXCLUDED.completed, priority = EXCLUDED.priority;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER task_search_inserted AFTER INSERT ON tasks_task
    REFERENCING NEW TABLE AS inserted_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_task_search_inserted();

-- UPDATE OF: a bump's UPDATE (version, updated_at, completed, position...) never fires it.
-- Django's save() names every column, so the WHEN keeps a save that changed no text from
-- writing: the vector (generated, so computed by then in an AFTER trigger) is compared, so
-- that a rewrite of the vectors (an UPDATE recomputing them, as 0010 and 0013 did) is copied
-- too.
CREATE TRIGGER task_search_changed AFTER UPDATE OF title, description, owner_id ON tasks_task
    FOR EACH ROW WHEN (
        OLD.search_vector IS DISTINCT FROM NEW.search_vector
        OR OLD.owner_id IS DISTINCT FROM NEW.owner_id
    )
    EXECUTE FUNCTION tasks_task_search_changed();

-- Bulk complete/reopen/set_priority and a PATCH of either; save() names every column, so WHEN.
CREATE TRIGGER task_search_filtered AFTER UPDATE OF completed, priority ON tasks_task
    FOR EACH ROW WHEN (
        OLD.completed IS DISTINCT FROM NEW.completed
        OR OLD.priority IS DISTINCT FROM NEW.priority
    )
    EXECUTE FUNCTION tasks_task_search_filtered();

DO $$
DECLARE
    schema text := (
        SELECT relnamespace::regnamespace::text FROM pg_class
        WHERE oid = 'tasks_tasksearch'::regclass
    );
BEGIN
    EXECUTE format('ALTER FUNCTION tasks_task_search_inserted() SET search_path = %s', schema);
    EXECUTE format('ALTER FUNCTION tasks_task_search_changed() SET search_path = %s', schema);
    EXECUTE format('ALTER FUNCTION tasks_task_search_filtered() SET search_path = %s', schema);
END
$$;
"""

BACKWARD = """
DROP TRIGGER task_search_filtered ON tasks_task;
DROP TRIGGER task_search_changed ON tasks_task;
DROP TRIGGER task_search_inserted ON tasks_task;
DROP FUNCTION tasks_task_search_filtered();
DROP FUNCTION tasks_task_search_changed();
DROP FUNCTION tasks_task_search_inserted();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0018_task_count_functions_name_their_schema"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The foreign key and the triggers lock tasks_task: taken first, giving way to writes.
        lock_giving_way("tasks_task"),
        migrations.CreateModel(
            name="TaskSearch",
            fields=[
                (
                    "task",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="tasks.task",
                    ),
                ),
                (
                    "owner",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                ("completed", models.BooleanField()),
                (
                    "priority",
                    models.PositiveSmallIntegerField(
                        choices=[(0, "none"), (1, "low"), (2, "medium"), (3, "high")]
                    ),
                ),
                ("search_vector", django.contrib.postgres.search.SearchVectorField()),
            ],
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
