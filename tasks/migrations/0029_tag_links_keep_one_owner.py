"""A task's tags are its owner's, enforced by the database: what the API and the admin check,
a write by raw SQL, a restore or a future bug can no longer break.

The task list counts a tag's tasks from the tag's links alone (fast_read.TAGGED_TASK_COUNT):
0.37 ms for a tag on 4,000 of the benchmark's heavy user's tasks, where counting the owner's
tasks that have it read each task by key (17-19 ms in-process). That count is the owner's only if every
link joins a task and a tag of one owner.

- A statement-level AFTER INSERT (and UPDATE) trigger on tasks_task_tags checks the links the
  statement wrote, from its transition table: one query per statement, a bulk insert of
  links included (a link is never updated by the app; raw SQL could). An INSERT of 1-3 links
  on the benchmark's data 0.08-0.13 -> 0.14-0.21 ms.
- A row-level AFTER UPDATE OF owner_id trigger on tasks_task and one on tasks_tag, WHEN the
  owner changed (nothing in the app changes one; raw SQL could, and 0005's count triggers
  follow it): the row's links must stay within its new owner, so a task or tag with another
  owner's links cannot move.
- A link whose task or tag the statement cannot read is refused too: the links' foreign keys
  are checked at the commit, so a link written before its task, then the task with another
  owner, would pass (review 46b).
- Either raises check_violation (SQLSTATE 23514): Django's IntegrityError, the write undone.
- A link's insert and an owner change in two transactions at once: the link trigger locks the
  task and the tag FOR SHARE, which any UPDATE of them waits for; whichever comes second sees
  the other's write and refuses. The app's writers of links hold their task's row lock already
  (the same transaction's); a tag's rename waits for a link of it being written.

The three tables' locks are asked for in one statement, giving way to writes (a request given
up lets go of all three; review 46b). The links written before are checked by 0030, after this commits: the check reads every link
(0.54 s for the benchmark's 1.3M), which here would hold the tables' writes that long. The
functions carry their table's schema as search_path, as 0018 gave the count triggers'.
Reverse: triggers and functions dropped.
"""

from django.db import migrations

from tasks.table_lock import lock_giving_way

FORWARD = """
-- Each link's task and tag read by primary key (LATERAL ... OFFSET 0: a probe per link, whatever
-- the estimates: joined, under the statistics of an emptied table the plan scanned the links
-- once a task, a merge of a tag on 20,000 tasks past 10 s), and locked FOR SHARE as read: an
-- owner change of either waits for this transaction, then its own trigger reads the links
-- committed; one made before is waited for here, and the owner read as it left it. FOR KEY
-- SHARE (what the links' foreign keys lock at the commit) waits for no UPDATE of owner_id: no
-- unique index a foreign key could use holds it (the tasks' is deferrable, the tags' on an
-- expression). The app's writers of links hold their task's row lock already. Outer joins: the
-- links' foreign keys are checked at the commit (Django's DEFERRABLE INITIALLY DEFERRED), so a
-- link written before its task or tag would have dropped out of an inner join and passed, and
-- the task then inserted with another owner (review 46b); such a link is refused.
CREATE FUNCTION tasks_task_tags_one_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (
        SELECT count(*) FILTER (
            WHERE task.owner_id IS NULL OR tag.owner_id IS NULL OR task.owner_id <> tag.owner_id
        )
        FROM written_links link
        LEFT JOIN LATERAL (
            SELECT owner_id FROM tasks_task WHERE id = link.task_id OFFSET 0 FOR SHARE
        ) task ON true
        LEFT JOIN LATERAL (
            SELECT owner_id FROM tasks_tag WHERE id = link.tag_id OFFSET 0 FOR SHARE
        ) tag ON true
    ) > 0 THEN
        RAISE EXCEPTION 'a task''s tag must be its owner''s'
            USING ERRCODE = 'check_violation', TABLE = 'tasks_task_tags',
            DETAIL = 'Each link''s task and tag are written before it, of one owner.';
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION tasks_task_owner_keeps_its_tags() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT FROM tasks_task_tags link JOIN tasks_tag tag ON tag.id = link.tag_id
        WHERE link.task_id = NEW.id AND tag.owner_id <> NEW.owner_id
    ) THEN
        RAISE EXCEPTION 'a task with tags of its owner''s cannot change owner'
            USING ERRCODE = 'check_violation', TABLE = 'tasks_task';
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION tasks_tag_owner_keeps_its_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT FROM tasks_task_tags link JOIN tasks_task task ON task.id = link.task_id
        WHERE link.tag_id = NEW.id AND task.owner_id <> NEW.owner_id
    ) THEN
        RAISE EXCEPTION 'a tag on tasks of its owner''s cannot change owner'
            USING ERRCODE = 'check_violation', TABLE = 'tasks_tag';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER task_tags_inserted_one_owner AFTER INSERT ON tasks_task_tags
    REFERENCING NEW TABLE AS written_links
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_task_tags_one_owner();

CREATE TRIGGER task_tags_updated_one_owner AFTER UPDATE ON tasks_task_tags
    REFERENCING NEW TABLE AS written_links
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_task_tags_one_owner();

-- save() names every column: WHEN keeps the check to a real change of owner.
CREATE TRIGGER task_owner_keeps_its_tags AFTER UPDATE OF owner_id ON tasks_task
    FOR EACH ROW WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id)
    EXECUTE FUNCTION tasks_task_owner_keeps_its_tags();

CREATE TRIGGER tag_owner_keeps_its_tasks AFTER UPDATE OF owner_id ON tasks_tag
    FOR EACH ROW WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id)
    EXECUTE FUNCTION tasks_tag_owner_keeps_its_tasks();

DO $$
DECLARE
    schema text := (
        SELECT relnamespace::regnamespace::text FROM pg_class
        WHERE oid = 'tasks_task_tags'::regclass
    );
BEGIN
    EXECUTE format('ALTER FUNCTION tasks_task_tags_one_owner() SET search_path = %s', schema);
    EXECUTE format('ALTER FUNCTION tasks_task_owner_keeps_its_tags() SET search_path = %s', schema);
    EXECUTE format('ALTER FUNCTION tasks_tag_owner_keeps_its_tasks() SET search_path = %s', schema);
END
$$;
"""

TABLES = ["tasks_task", "tasks_tag", "tasks_task_tags"]

BACKWARD = """
DROP TRIGGER tag_owner_keeps_its_tasks ON tasks_tag;
DROP TRIGGER task_owner_keeps_its_tags ON tasks_task;
DROP TRIGGER task_tags_updated_one_owner ON tasks_task_tags;
DROP TRIGGER task_tags_inserted_one_owner ON tasks_task_tags;
DROP FUNCTION tasks_tag_owner_keeps_its_tasks();
DROP FUNCTION tasks_task_owner_keeps_its_tags();
DROP FUNCTION tasks_task_tags_one_owner();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0028_created_index_ends_in_the_id"),
    ]

    operations = [
        # CREATE TRIGGER locks each table: taken first, giving way to writes, all three in
        # one request (one each held tasks_task, every task write waiting, while it asked
        # for the next behind a write of links in flight; review 46b).
        lock_giving_way(TABLES),
        migrations.RunSQL(FORWARD, BACKWARD),
        # Reversed, DROP TRIGGER takes ACCESS EXCLUSIVE: asked for the same way first.
        lock_giving_way(TABLES, "ACCESS EXCLUSIVE", reverse=True),
    ]
