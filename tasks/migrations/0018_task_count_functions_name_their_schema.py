"""The task-count triggers' functions (0005) work whatever the caller's search_path.

They named tasks_ownertaskcount without a schema, so they found it through the search_path of
the session writing tasks. pg_dump's files and pg_restore set it to '' first: every INSERT or
DELETE of tasks they made failed (`relation "tasks_ownertaskcount" does not exist`), and a
data-level restore of the tasks restored none of them (review 31g).

Each function gets its own search_path, the schema tasks_ownertaskcount is in, looked up in the
catalog as this migration runs (`ALTER FUNCTION … SET search_path = <that schema>`). Rather than:
- `SET search_path FROM CURRENT`: it would store the migrating session's whole path, typically
  `"$user", public`, and `$user` is then whoever writes: a restore run by another role that
  has a schema of its name (or one that holds a table of that name) would resolve there first.
- Naming the schema inside the bodies: the same dependency on the schema's name, but the four
  bodies rewritten (CREATE OR REPLACE, with the schema spliced into the SQL) for nothing.
A deployment whose tables are not in `public` (a DATABASE_URL with `options=-c search_path=todo`,
a role whose `$user` schema holds them) keeps working: the schema is the table's, not a
literal. Renaming that schema later would need this migration's statement run again.

pg_catalog stays searched first (PostgreSQL puts it there when a path does not name it), so
the built-ins resolve as before; the transition tables the triggers read are not looked up by
schema. The cost is a setting saved and restored around each call: once per statement for the
statement-level triggers, once per row changing owner (which nothing in the app does).

Reverse: the functions lose their own setting and use the caller's path again.
"""

from django.db import migrations

FUNCTIONS = [
    "tasks_task_count_inserted",
    "tasks_task_count_deleted",
    "tasks_task_count_reassigned",
    "tasks_task_count_truncated",
]

FORWARD = """
DO $$
DECLARE
    schema text := (
        SELECT relnamespace::regnamespace::text FROM pg_class  -- quoted if it must be
        WHERE oid = 'tasks_ownertaskcount'::regclass
    );
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY[
        'tasks_task_count_inserted', 'tasks_task_count_deleted',
        'tasks_task_count_reassigned', 'tasks_task_count_truncated'
    ] LOOP
        EXECUTE format('ALTER FUNCTION %I() SET search_path = %s', name, schema);
    END LOOP;
END
$$;
"""

BACKWARD = "".join(f"ALTER FUNCTION {name}() RESET search_path;\n" for name in FUNCTIONS)


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0017_priority_index_ends_in_the_id"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
