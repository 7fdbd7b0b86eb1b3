"""tasks_tasksearch (migrations 0019-0021) through data-level restores and 0020's backfill
(review 33a):

- a data-level restore of the tasks with their search rows (what `pg_restore --data-only` of a
  `pg_dump --data-only` file, or `psql -f` of one, runs: the tasks' COPY, whose insert trigger
  writes the search rows, then the search rows' COPY) loads: 0021 skips a dumped row whose
  task has one (it failed on tasks_tasksearch_pkey; in one transaction nothing was restored);
- README "Backups and restores" rebuilds the search rows after a restore without triggers
  (`--disable-triggers`), which left them missing or stale;
- 0020's backfill gets through a deadlock with an API write that wrote two tasks' search rows
  in the other order (PostgreSQL ended the batch, and `migrate` with it).
"""

import re
import types
from importlib import import_module
from pathlib import Path

import pytest
from django.db import connection, connections, transaction
from django.db.utils import OperationalError

from conftest import client_for
from tasks import services
from tasks.models import Priority, Task, TaskSearch
from tasks.tests.test_task_search_table import out_of_step
from todo_project.tests.helpers import start_in_thread, wait_for_lock_waiters
from todo_project.tests.test_migrations import (  # noqa: F401 - the autouse fixture
    _back_to_the_latest_migrations,
    migrate_to,
)

backfill = import_module("tasks.migrations.0020_task_search_index_moved")

pytestmark = pytest.mark.django_db(transaction=True)


def searched(user, text: str, **filters) -> tuple[int, set[str]]:
    answer = client_for(user).get("/api/v1/tasks/", {"search": text, "limit": 200, **filters})
    assert answer.status_code == 200
    body = answer.json()
    return body["count"], {task["title"] for task in body["results"]}


def some_tasks(user, other_user, make_list) -> None:
    home = make_list("Home")
    for n in range(4):
        services.task_create(
            user=user,
            data={
                "title": f"report {n}",
                "description": "quarterly numbers",
                "priority": Priority.HIGH if n % 2 else Priority.LOW,
                "completed": n == 3,
                **({"list": home} if n % 2 else {}),
            },
        )
    services.task_create(user=other_user, data={"title": "report of the other"})


def stored_columns(table: str) -> str:
    """The columns pg_dump writes for `table`: all but generated ones."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)"
            " FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = %s AND is_generated = 'NEVER'",
            [table],
        )
        return cursor.fetchone()[0]


def dumped(table: str) -> bytes:
    """`table`'s rows as pg_dump's COPY writes them."""
    data = bytearray()
    sql = f"COPY {table} ({stored_columns(table)}) TO STDOUT"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for block in copy:
            data += block
    return bytes(data)


def restore(cursor, table: str, columns: str, data: bytes) -> None:
    with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        copy.write(data)


def empty_the_tasks() -> None:
    """A migrated database without the tasks (their search rows go with them)."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM tasks_task_tags")
        cursor.execute("DELETE FROM tasks_task")
    assert TaskSearch.objects.count() == 0


def test_a_data_level_restore_of_the_tasks_with_their_search_rows_loads(
    user, other_user, make_list
):
    """Finding 1. pg_dump writes tasks_tasksearch's rows like any table's, after tasks_task's
    (its foreign key); a data-level restore loads tasks_task first, whose insert trigger copies
    every restored task's search row, then the dumped search rows: duplicate keys. In one
    transaction (pg_restore -1, psql -1 -v ON_ERROR_STOP=1) that undoes the whole restore;
    without, the restore exits 1 on an error the README does not mention. Measured with the
    real tools on a migrated database (24 tasks of 3 users): `pg_restore --data-only -1 -t ...
    data.dump` -> `duplicate key value violates unique constraint "tasks_tasksearch_pkey"`,
    0 tasks restored. The restore must load, and the search rows then match the tasks."""
    some_tasks(user, other_user, make_list)
    task_data, search_data = dumped("tasks_task"), dumped("tasks_tasksearch")
    task_columns, search_columns = stored_columns("tasks_task"), stored_columns("tasks_tasksearch")
    empty_the_tasks()

    with transaction.atomic(), connection.cursor() as cursor:  # as pg_restore -1 runs it
        cursor.execute("SELECT quote_ident(current_schema())")
        (schema,) = cursor.fetchone()
        cursor.execute("SET LOCAL search_path TO ''")  # what every pg_dump file sets
        restore(cursor, f"{schema}.tasks_task", task_columns, task_data)
        restore(cursor, f"{schema}.tasks_tasksearch", search_columns, search_data)

    assert Task.objects.count() == 5
    assert out_of_step() == []
    assert searched(user, "rep") == (4, {f"report {n}" for n in range(4)})
    assert searched(user, "quarterly", completed="false", priority="high")[0] == 1


def readme_rebuild_of_the_search_rows() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Backups and restores", 1)[1].split("\n### ", 1)[0]
    found = re.search(
        r"```sql\n(BEGIN;\n(?:(?!```).)*?tasks_tasksearch.*?COMMIT;)\n```", section, re.DOTALL
    )
    assert found, (
        "README's Backups and restores has no statements that rebuild tasks_tasksearch after "
        "a data-level restore (it names only tasks_ownertaskcount)"
    )
    return found.group(1)


def test_the_readme_rebuilds_the_search_rows_after_a_restore_without_triggers(
    user, other_user, make_list
):
    """Finding 2. `pg_restore --data-only --disable-triggers` (pg_dump's own hint for this
    schema's circular foreign keys, and what a `--data-only` restore of a full `pg_dump -Fc`
    archive needs: its tasks_task data comes before tasks_tasklist's and fails the list key)
    loads tasks without their search rows when tasks_tasksearch is not among the restored
    tables, or with rows of another moment when it is. Measured: 24 tasks restored, 0 search
    rows, every search empty. The README says to rebuild the counts after any data-level
    restore; it must rebuild tasks_tasksearch too."""
    some_tasks(user, other_user, make_list)
    task_data, task_columns = dumped("tasks_task"), stored_columns("tasks_task")
    stale_task = Task.objects.get(title="report 0")
    empty_the_tasks()

    with connection.cursor() as cursor:  # what --disable-triggers wraps each table's COPY in
        cursor.execute("ALTER TABLE tasks_task DISABLE TRIGGER ALL")
        try:
            restore(cursor, "tasks_task", task_columns, task_data)
        finally:
            cursor.execute("ALTER TABLE tasks_task ENABLE TRIGGER ALL")
        # And a search row from a dump of another moment: another text, still open.
        cursor.execute(
            "INSERT INTO tasks_tasksearch (task_id, owner_id, completed, priority, search_vector)"
            " VALUES (%s, %s, true, 0, to_tsvector('simple', 'stale'))",
            [stale_task.pk, user.pk],
        )
    assert searched(user, "rep")[0] == 0  # the restored tasks, unsearchable

    with connection.cursor() as cursor:
        cursor.execute(readme_rebuild_of_the_search_rows())

    assert out_of_step() == []
    assert searched(user, "rep") == (4, {f"report {n}" for n in range(4)})


def test_the_backfill_does_not_fail_migrate_on_a_deadlock_with_an_api_write(user):
    """Finding 3. 0020 copies a batch in one INSERT ... SELECT ... ON CONFLICT DO NOTHING. An
    API transaction that writes the search row of a task the batch has not reached (the
    triggers' upsert, or the completion trigger's NOT FOUND insert) and then of one the batch
    has already inserted, uncommitted, waits for the batch, which waits for it: PostgreSQL
    aborts the batch ("deadlock detected") and `migrate` stops in 0020. Here: a bulk-style
    priority change of the last task of the batch, then of the first. The backfill must get
    through (try the batch again: it is idempotent). Run on the schema it ran on: until 0023,
    tasks_task had the vectors it copies."""
    migrate_to("tasks", "0022_task_search_vector_unread")
    for n in range(6):
        services.task_create(user=user, data={"title": f"task {n}"})
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM tasks_tasksearch")  # as before 0020's copy reached them
    in_order = list(Task.objects.order_by("id").values_list("id", flat=True))
    first, last = in_order[0], in_order[-1]

    def run_the_backfill() -> None:
        backfill.copy_the_vectors(None, types.SimpleNamespace(connection=connections["default"]))

    with transaction.atomic():
        Task.objects.filter(pk=last).update(priority=Priority.HIGH)  # its search row, inserted
        finished = start_in_thread(run_the_backfill)  # inserts `first`'s, then waits on `last`
        assert wait_for_lock_waiters(connection, 1)
        Task.objects.filter(pk=first).update(priority=Priority.LOW)  # waits on the backfill
    try:
        finished()
    except OperationalError as error:
        pytest.fail(f"0020's backfill failed on a concurrent API write: {error}")
    migrate_to()
    assert out_of_step() == []
