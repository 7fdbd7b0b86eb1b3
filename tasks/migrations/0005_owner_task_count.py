# The per-owner task count (tasks.OwnerTaskCount), kept exact by triggers on tasks_task.
#
# Statement-level AFTER INSERT / AFTER DELETE triggers read the statement's rows from transition
# tables and change each owner's count once per statement: a bulk insert or a COPY of a million
# rows is one upsert per owner, not one per row. Rows are locked in owner order, so two
# statements touching several owners never wait on each other in a cycle. A count that reaches
# 0 goes with its row. A row-level trigger moves a task between owners' counts when an UPDATE
# changes owner_id (nothing in the app does; raw SQL could); TRUNCATE empties the counts.
#
# All in one transaction: CREATE TRIGGER locks out writers of tasks_task until the commit, so
# the backfill, which runs after it, counts every task exactly once. Should the counts ever be
# written by hand, the same INSERT rebuilds them after `LOCK tasks_task IN SHARE MODE;
# DELETE FROM tasks_ownertaskcount;`, in one transaction.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

FORWARD = """
CREATE FUNCTION tasks_task_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tasks_ownertaskcount AS counted (owner_id, tasks)
    SELECT owner_id, count(*) FROM inserted_tasks GROUP BY owner_id ORDER BY owner_id
    ON CONFLICT (owner_id) DO UPDATE SET tasks = counted.tasks + EXCLUDED.tasks;
    RETURN NULL;
END
$$;

CREATE FUNCTION tasks_task_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    gone record;
    remaining bigint;
BEGIN
    -- One owner at a time, in owner order (UPDATE has no ORDER BY).
    FOR gone IN
        SELECT owner_id, count(*) AS tasks FROM deleted_tasks GROUP BY owner_id ORDER BY owner_id
    LOOP
        UPDATE tasks_ownertaskcount SET tasks = tasks - gone.tasks WHERE owner_id = gone.owner_id
        RETURNING tasks INTO remaining;
        -- Missing (or below zero: the CHECK) only if someone wrote the counts behind the
        -- triggers' back: fail loudly rather than serve wrong counts from then on.
        IF NOT FOUND THEN
            RAISE EXCEPTION 'tasks_ownertaskcount has no row for owner %: rebuild it', gone.owner_id;
        END IF;
        IF remaining = 0 THEN
            DELETE FROM tasks_ownertaskcount WHERE owner_id = gone.owner_id;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- As if the task were deleted from its old owner and inserted for the new one.
CREATE FUNCTION tasks_task_count_reassigned() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    remaining bigint;
BEGIN
    UPDATE tasks_ownertaskcount SET tasks = tasks - 1 WHERE owner_id = OLD.owner_id
    RETURNING tasks INTO remaining;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tasks_ownertaskcount has no row for owner %: rebuild it', OLD.owner_id;
    END IF;
    IF remaining = 0 THEN
        DELETE FROM tasks_ownertaskcount WHERE owner_id = OLD.owner_id;
    END IF;
    INSERT INTO tasks_ownertaskcount AS counted (owner_id, tasks) VALUES (NEW.owner_id, 1)
    ON CONFLICT (owner_id) DO UPDATE SET tasks = counted.tasks + 1;
    RETURN NULL;
END
$$;

CREATE FUNCTION tasks_task_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasks_ownertaskcount;
    RETURN NULL;
END
$$;

CREATE TRIGGER task_count_inserted AFTER INSERT ON tasks_task
    REFERENCING NEW TABLE AS inserted_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_task_count_inserted();

CREATE TRIGGER task_count_deleted AFTER DELETE ON tasks_task
    REFERENCING OLD TABLE AS deleted_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_task_count_deleted();

-- Row-level with a WHEN: Django's save() names every column, so `UPDATE OF owner_id` alone
-- would fire on each save; the WHEN test costs nothing when the owner stays.
CREATE TRIGGER task_count_reassigned AFTER UPDATE OF owner_id ON tasks_task
    FOR EACH ROW WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id)
    EXECUTE FUNCTION tasks_task_count_reassigned();

CREATE TRIGGER task_count_truncated AFTER TRUNCATE ON tasks_task
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_task_count_truncated();

INSERT INTO tasks_ownertaskcount (owner_id, tasks)
SELECT owner_id, count(*) FROM tasks_task GROUP BY owner_id;
"""

BACKWARD = """
DROP TRIGGER task_count_truncated ON tasks_task;
DROP TRIGGER task_count_reassigned ON tasks_task;
DROP TRIGGER task_count_deleted ON tasks_task;
DROP TRIGGER task_count_inserted ON tasks_task;
DROP FUNCTION tasks_task_count_truncated();
DROP FUNCTION tasks_task_count_reassigned();
DROP FUNCTION tasks_task_count_deleted();
DROP FUNCTION tasks_task_count_inserted();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('tasks', '0004_search_scoped_to_owner'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='OwnerTaskCount',
            fields=[
                ('owner', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True, related_name='+', serialize=False, to=settings.AUTH_USER_MODEL)),
                ('tasks', models.PositiveIntegerField()),
            ],
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
