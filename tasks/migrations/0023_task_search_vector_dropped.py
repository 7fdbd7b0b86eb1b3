"""tasks_task's generated `search_vector` column goes: the search triggers compute the vector.

The second of two steps (0022 was the first). Since 0019/0020 the app searches
tasks_tasksearch, and the column was only the source its triggers copied; since 0022 no code
reads it. Every task row still carried its vector (up to ~190 kB a task with a long
description; inline in the row for a short one), written again with every row version: each
bump, completion and move of a task.

- `task_search_vector(title, description, owner_id)`, an IMMUTABLE SQL function, is the
  column's expression (migrations 0004, 0010, 0013, as `pg_get_expr` shows it): the one place
  that says what a task's vector is.
- The three trigger functions of 0019 compute the vector with it instead of copying the column.
- `task_search_changed` fires when the title, description or owner changed (it compared the
  vectors); its function writes the search row only when the vector or owner differs from the
  row's, so an edit that leaves the words alone (`Buy milk` -> `Buy milk!`) still writes and
  locks nothing there and puts no lexeme into the GIN index again.
- So `UPDATE tasks_task SET title = title` no longer recomputes a vector, as 0010 and 0013 did
  after changing task_search_lexemes (their helper reads the column: it works before 0023
  only). A later change of the vector's definition updates tasks_tasksearch itself, in
  batches: `SET search_vector = task_search_vector(t.title, t.description, t.owner_id) FROM
  tasks_task t WHERE ... AND search_vector IS DISTINCT FROM` that (0021's trigger is on
  INSERT only).
- Then the column is dropped (the triggers no longer depend on it: dropping it first would
  take them with it under CASCADE, or fail without).

`DROP COLUMN` takes ACCESS EXCLUSIVE on tasks_task, which even reads wait for: taken first,
giving way to the API's reads and writes meanwhile (tasks/table_lock.py); once held, every
statement here is instant (a drop only marks the column; its bytes go as rows are rewritten,
or with `VACUUM FULL`): 1.8 s for the benchmark's 1.1M tasks, whose table then takes 218 MB
instead of 514 MB (after VACUUM FULL, 12.4 s). The release before (0022's) neither reads nor
writes the column.

Reverse: the column is added back as it was (a rewrite of tasks_task under ACCESS EXCLUSIVE:
71-83 s for those 1.1M tasks), then 0019's trigger functions and condition.
"""

from django.db import migrations

from tasks.table_lock import lock_giving_way

# The generated column's expression, as `pg_get_expr` shows it (migrations 0004, 0010, 0013).
VECTOR = (
    "task_search_lexemes(to_tsvector('simple', COALESCE(title, '') || ' ' || "
    "COALESCE(description, '')), left(replace(owner_id::text, '-', ''), 12))"
)

# The functions carry their table's schema as search_path, as 0018's, 0019's and 0021's do.
SEARCH_PATH = """
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

# task_search_vector has no search_path of its own: PostgreSQL never inlines an SQL function
# with a SET clause, and each call then planned task_search_lexemes' body again (~150 us a
# row: an INSERT ... SELECT of 20,000 tasks 1.5 s -> 5.3 s, README's rebuild of the search rows
# and a data-level restore 2-20 times as long; review 35c). Its body names task_search_lexemes
# with its schema instead (the built-ins are pg_catalog's, searched first whatever the path).
FORWARD = f"""
DO $$
BEGIN
    EXECUTE format(
        'CREATE FUNCTION task_search_vector(title text, description text, owner_id uuid)'
        ' RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',
        format('SELECT %s.%s', (
            SELECT relnamespace::regnamespace::text FROM pg_class
            WHERE oid = 'tasks_tasksearch'::regclass
        ), $vector${VECTOR}$vector$)
    );
END
$$;

CREATE OR REPLACE FUNCTION tasks_task_search_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tasks_tasksearch (task_id, owner_id, completed, priority, search_vector)
    SELECT id, owner_id, completed, priority, task_search_vector(title, description, owner_id)
    FROM inserted_tasks;
    RETURN NULL;
END
$$;

-- Only when the words or the owner differ from the row's: an edit of the text that keeps its
-- words neither writes nor locks the row (no lexeme into the GIN index again, no WAL), as the
-- vectors compared in the trigger's condition did before. An upsert's ON CONFLICT DO UPDATE
-- ... WHERE would lock it even so (review 35c). A missing row (deleted by hand) comes back.
CREATE OR REPLACE FUNCTION tasks_task_search_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    new_vector tsvector := task_search_vector(NEW.title, NEW.description, NEW.owner_id);
BEGIN
    UPDATE tasks_tasksearch
    SET owner_id = NEW.owner_id, completed = NEW.completed, priority = NEW.priority,
        search_vector = new_vector
    WHERE task_id = NEW.id AND (
        search_vector IS DISTINCT FROM new_vector OR owner_id IS DISTINCT FROM NEW.owner_id
    );
    IF NOT FOUND THEN
        INSERT INTO tasks_tasksearch (task_id, owner_id, completed, priority, search_vector)
        VALUES (NEW.id, NEW.owner_id, NEW.completed, NEW.priority, new_vector)
        ON CONFLICT (task_id) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION tasks_task_search_filtered() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasks_tasksearch SET completed = NEW.completed, priority = NEW.priority
    WHERE task_id = NEW.id;
    IF NOT FOUND THEN
        INSERT INTO tasks_tasksearch AS searched
            (task_id, owner_id, completed, priority, search_vector)
        VALUES (NEW.id, NEW.owner_id, NEW.completed, NEW.priority,
                task_search_vector(NEW.title, NEW.description, NEW.owner_id))
        ON CONFLICT (task_id) DO UPDATE
        SET completed = EXCLUDED.completed, priority = EXCLUDED.priority;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER task_search_changed ON tasks_task;
CREATE TRIGGER task_search_changed AFTER UPDATE OF title, description, owner_id ON tasks_task
    FOR EACH ROW WHEN (
        OLD.title IS DISTINCT FROM NEW.title
        OR OLD.description IS DISTINCT FROM NEW.description
        OR OLD.owner_id IS DISTINCT FROM NEW.owner_id
    )
    EXECUTE FUNCTION tasks_task_search_changed();

{SEARCH_PATH}

ALTER TABLE tasks_task DROP COLUMN search_vector;
"""

# 0019's, as they were.
BACKWARD = f"""
ALTER TABLE tasks_task ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    {VECTOR}
) STORED;

CREATE OR REPLACE FUNCTION tasks_task_search_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tasks_tasksearch (task_id, owner_id, completed, priority, search_vector)
    SELECT id, owner_id, completed, priority, search_vector FROM inserted_tasks;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION tasks_task_search_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tasks_tasksearch AS searched (task_id, owner_id, completed, priority, search_vector)
    VALUES (NEW.id, NEW.owner_id, NEW.completed, NEW.priority, NEW.search_vector)
    ON CONFLICT (task_id) DO UPDATE
    SET owner_id = EXCLUDED.owner_id, completed = EXCLUDED.completed,
        priority = EXCLUDED.priority, search_vector = EXCLUDED.search_vector;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION tasks_task_search_filtered() RETURNS trigger LANGUAGE plpgsql AS $$
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

DROP TRIGGER task_search_changed ON tasks_task;
CREATE TRIGGER task_search_changed AFTER UPDATE OF title, description, owner_id ON tasks_task
    FOR EACH ROW WHEN (
        OLD.search_vector IS DISTINCT FROM NEW.search_vector
        OR OLD.owner_id IS DISTINCT FROM NEW.owner_id
    )
    EXECUTE FUNCTION tasks_task_search_changed();

{SEARCH_PATH}

DROP FUNCTION task_search_vector(text, text, uuid);
"""


class Migration(migrations.Migration):
    dependencies = [("tasks", "0022_task_search_vector_unread")]

    operations = [
        # DROP COLUMN takes ACCESS EXCLUSIVE: first, giving way.
        lock_giving_way("tasks_task", "ACCESS EXCLUSIVE"),
        migrations.RunSQL(FORWARD, BACKWARD),
        # So does ADD COLUMN, reversed: asked for without a lock_timeout, it queued every read
        # of a task behind a write in flight before its rewrite even began (review 35b).
        lock_giving_way("tasks_task", "ACCESS EXCLUSIVE", reverse=True),
    ]
