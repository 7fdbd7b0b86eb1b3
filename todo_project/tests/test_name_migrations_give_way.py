"""Migrations 0015 and 0016 merge and rename a row at a time while the API takes writes (a
rolling deploy): each in a transaction of its own that gives way to a write in its way (rolls
back past a short lock wait, runs again), and re-reads once locked what it read before."""

import contextlib
import importlib
import threading
import time
import types

import psycopg
import pytest
from django.db import OperationalError, connection, transaction

from todo_project.tests.helpers import connection_of_its_own
from todo_project.tests.test_migrations import (  # noqa: F401 - the autouse fixture
    J_CARON,
    _back_to_the_latest_migrations,
    migrate_to,
)

BEFORE_0015 = ("tasks", "0014_titles_sort_accents_aside")
S15 = ("tasks", "0015_names_composed")
S16 = ("tasks", "0016_names_unique_lowered_then_composed")
composed_names = importlib.import_module("tasks.migrations.0015_names_composed")


def raw_tag(owner, name: str) -> int:
    """A tag inserted as stored before 0015 (the model would compose the name)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tasks_tag (owner_id, name) VALUES (%s, %s) RETURNING id", [owner.pk, name]
        )
        return cursor.fetchone()[0]


def link(db, task_id, tag_id) -> None:
    """As a task write links a tag (TAG_LOCKS): the tag read FOR KEY SHARE, then the link."""
    db.execute("SELECT 1 FROM tasks_tag WHERE id = %s FOR KEY SHARE", [tag_id])
    db.execute("INSERT INTO tasks_task_tags (task_id, tag_id) VALUES (%s, %s)", [task_id, tag_id])


def api_connection() -> psycopg.Connection:
    """Another client, in a transaction, as a worker's request."""
    db = connection_of_its_own(connection)
    db.execute("SET lock_timeout = '10s'")  # never a hung test
    db.autocommit = False
    return db


def after_first(marker: str, then):
    """An execute wrapper: `then()` once, after the first statement containing `marker`."""
    done = []

    def wrapper(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if marker in sql and not done:
            done.append(True)
            then()
        return result

    return wrapper


def an_old_worker(sql: str, *params):
    """A write by a worker not yet deployed, committed at once (for after_first)."""

    def write():
        with connection_of_its_own(connection) as old_worker:
            old_worker.execute(sql, params)

    return write


def committed(db, errors: list, write) -> None:
    """`write()` then a commit on `db`; its error noted in `errors` (a deadlock: the write was
    the one ended), and rolled back."""
    try:
        write()
        db.commit()
    except psycopg.Error as error:
        errors.append(error)
        db.rollback()


def in_a_thread(*steps) -> threading.Thread:
    """`steps` run one after the other in a thread of their own, started now."""

    def run():
        for step in steps:
            step()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def two_tags_of_one_new_key(django_user_model):
    """Before 0016: an owner's "ǰob" and "J̌OB" (two LOWER()s, one new key), and a task."""
    from tasks.models import Tag, Task

    migrate_to(*S15)
    owner = django_user_model.objects.create(email="anna@example.com")
    kept = Tag.objects.create(owner=owner, name=f"{J_CARON}ob")
    merged = Tag.objects.create(owner=owner, name="J\u030cOB")
    return owner, kept, merged, Task.objects.create(owner=owner, title="x", position=0)


def migrate_meanwhile(target, *wrappers, threads: list, closing: list) -> None:
    """Migrates to `target` under the execute `wrappers`, then waits for the `threads` they
    started; the connections `closing` closed whatever happens."""
    try:
        with contextlib.ExitStack() as stack:
            for wrapper in wrappers:
                stack.enter_context(connection.execute_wrapper(wrapper))
            migrate_to(*target)
        for thread in threads:
            thread.join(timeout=15)
    finally:
        for db in closing:
            db.close()


def names_of_tags_of(task) -> list[str]:
    return sorted(tag.name for tag in task.tags.all())


@pytest.mark.django_db(transaction=True)
def test_0016_gives_way_to_a_task_write_it_would_deadlock_with(django_user_model):
    # TAG_LOCKS' rare other order: a task linked to the merged tag between the merge's task
    # lock and its tag lock, then written again at once. PostgreSQL ended one of the two, often
    # the migration, and the deploy's `migrate` failed (review 27c).
    from tasks.models import Tag

    owner, kept, merged, task = two_tags_of_one_new_key(django_user_model)
    w1, w2 = api_connection(), api_connection()
    threads, api_errors = [], []

    def linked_and_held_between_the_two_locks():
        link(w1, task.pk, merged.pk)  # a write links the merged tag...
        # ...and a write of the same task holds it, as every task write does first
        w2.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR NO KEY UPDATE", [task.pk])

        def then_links_the_kept_tag():
            # waits for the merge holding the kept tag
            committed(w2, api_errors, lambda: link(w2, task.pk, kept.pk))

        threads.append(
            in_a_thread(
                lambda: time.sleep(0.3),
                w1.commit,  # the merge takes the tags, then waits for the task (W2)...
                lambda: time.sleep(0.3),
                then_links_the_kept_tag,  # ...which waits for the merge: a deadlock
            )
        )

    migrate_meanwhile(
        S16,
        after_first("FOR NO KEY UPDATE OF t", linked_and_held_between_the_two_locks),
        threads=threads,
        closing=[w1, w2],
    )

    assert api_errors == []
    assert list(Tag.objects.filter(owner=owner).values_list("pk", flat=True)) == [kept.pk]
    assert names_of_tags_of(task) == [kept.name]


@pytest.mark.django_db(transaction=True)
def test_0016_gives_way_to_a_write_that_waited_first_rather_than_have_it_ended(
    django_user_model,
):
    # The same two orders, the write waiting first: in a deadlock, PostgreSQL ends the one that
    # waited longest, here the write (a 503). The merge's short lock wait ends it first.
    from tasks.models import Tag

    owner, kept, merged, task = two_tags_of_one_new_key(django_user_model)
    api = api_connection()
    threads, api_errors = [], []

    def linked_between_the_two_locks():
        with connection_of_its_own(connection) as other:
            link(other, task.pk, merged.pk)

    def the_write_holds_the_task_then_waits_for_the_kept_tag():
        api.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR NO KEY UPDATE", [task.pk])

        threads.append(
            in_a_thread(lambda: committed(api, api_errors, lambda: link(api, task.pk, kept.pk)))
        )
        time.sleep(0.3)  # then the merge bumps the task: it waits for the write

    migrate_meanwhile(
        S16,
        after_first("FOR NO KEY UPDATE OF t", linked_between_the_two_locks),
        after_first("FOR UPDATE) AS locked", the_write_holds_the_task_then_waits_for_the_kept_tag),
        threads=threads,
        closing=[api],
    )

    assert api_errors == []
    assert list(Tag.objects.filter(owner=owner).values_list("pk", flat=True)) == [kept.pk]
    assert names_of_tags_of(task) == [kept.name]


@pytest.mark.django_db(transaction=True)
def test_0015_merges_a_tag_at_a_time_so_a_write_waits_for_one_merge_only(django_user_model):
    # 0015 was one transaction: the first merge's tags stayed locked until the last merge, which
    # locked its tasks then (tags, then tasks): a deadlock with a write of one of those tasks
    # adding the first merge's tag, and all of 0015 rolled back (review 27c).
    from tasks.models import Task

    migrate_to(*BEFORE_0015)
    owner = django_user_model.objects.create(email="anna@example.com")
    raw_tag(owner, "Caf\u00e9")
    cafe_decomposed = raw_tag(owner, "Cafe\u0301")  # merged into "Café" first
    raw_tag(owner, "Th\u00e9")
    the_decomposed = raw_tag(owner, "The\u0301")  # merged second
    task = Task.objects.create(owner=owner, title="x", position=0)
    with connection.cursor() as cursor:
        link(cursor, task.pk, the_decomposed)
    api = api_connection()
    threads, api_errors = [], []

    def a_write_of_the_task_adding_cafe():
        api.execute("SELECT 1 FROM tasks_task WHERE id = %s FOR NO KEY UPDATE", [task.pk])

        def then_links_cafe():
            with connection_of_its_own(connection) as reader:
                (cafe,) = reader.execute(
                    "SELECT id FROM tasks_tag WHERE name = 'Caf\u00e9'"
                ).fetchone()
            committed(api, api_errors, lambda: link(api, task.pk, cafe))

        threads.append(in_a_thread(lambda: time.sleep(0.3), then_links_cafe))

    migrate_meanwhile(
        S15,
        after_first("FOR UPDATE) AS locked", a_write_of_the_task_adding_cafe),
        threads=threads,
        closing=[api],
    )

    assert api_errors == []
    assert names_of_tags_of(task) == ["Caf\u00e9", "Th\u00e9"]
    assert not Task.objects.filter(tags__id__in=[cafe_decomposed, the_decomposed]).exists()


@pytest.mark.django_db(transaction=True)
def test_0015_merges_into_the_tag_of_the_name_it_looked_up_not_one_renamed_since(
    django_user_model,
):
    # An old worker renames "Café" to "Work" between 0015's lookup and its lock: "Cafe\u0301"
    # was merged into "Work", a name its tasks never had (review 27c).
    from tasks.models import Tag, Task

    migrate_to(*BEFORE_0015)
    owner = django_user_model.objects.create(email="anna@example.com")
    cafe = raw_tag(owner, "Caf\u00e9")
    decomposed = raw_tag(owner, "Cafe\u0301")
    task = Task.objects.create(owner=owner, title="x", position=0)
    with connection.cursor() as cursor:
        link(cursor, task.pk, decomposed)

    renamed_by_an_old_worker = an_old_worker(
        "UPDATE tasks_tag SET name = 'Work' WHERE id = %s", cafe
    )

    with connection.execute_wrapper(
        after_first("LOWER(name) = LOWER(%s) AND id <> %s", renamed_by_an_old_worker)
    ):
        migrate_to(*S15)

    assert names_of_tags_of(task) == ["Caf\u00e9"]
    assert sorted(Tag.objects.filter(owner=owner).values_list("name", flat=True)) == [
        "Caf\u00e9",
        "Work",
    ]


@pytest.mark.django_db(transaction=True)
def test_0015_merges_into_a_tag_of_the_composed_name_made_since_its_lookup(django_user_model):
    # The rename to the composed name meets a unique violation: it runs again, and merges.
    from tasks.models import Tag, Task

    migrate_to(*BEFORE_0015)
    owner = django_user_model.objects.create(email="anna@example.com")
    decomposed = raw_tag(owner, "Cafe\u0301")
    task = Task.objects.create(owner=owner, title="x", position=0)
    with connection.cursor() as cursor:
        link(cursor, task.pk, decomposed)

    made_by_a_worker = an_old_worker(
        "INSERT INTO tasks_tag (owner_id, name) VALUES (%s, 'Caf\u00e9')", owner.pk
    )

    with connection.execute_wrapper(
        after_first("LOWER(name) = LOWER(%s) AND id <> %s", made_by_a_worker)
    ):
        migrate_to(*S15)

    made = Tag.objects.get(owner=owner)
    assert made.pk != decomposed
    assert names_of_tags_of(task) == ["Caf\u00e9"]


@pytest.mark.django_db(transaction=True)
def test_0016_merges_a_set_whose_oldest_was_renamed_away_into_the_next(django_user_model):
    # The oldest renamed away after the sets were read: the others were left unmerged, and the
    # unique index's build failed until a second `migrate` (review 27c).
    from tasks.models import Tag

    migrate_to(*S15)
    owner = django_user_model.objects.create(email="anna@example.com")
    # Three names of one new key, of three LOWER()s (U+1E98: no composed capital either).
    oldest = Tag.objects.create(owner=owner, name=f"{J_CARON}\u1e98")
    second = Tag.objects.create(owner=owner, name="J\u030c\u1e98")
    Tag.objects.create(owner=owner, name=f"{J_CARON}W\u030a")

    renamed_by_an_old_worker = an_old_worker(
        "UPDATE tasks_tag SET name = 'Work' WHERE id = %s", oldest.pk
    )

    with connection.execute_wrapper(
        after_first("array_agg(id ORDER BY id) FROM tasks_tag", renamed_by_an_old_worker)
    ):
        migrate_to(*S16)

    assert dict(Tag.objects.filter(owner=owner).values_list("pk", "name")) == {
        oldest.pk: "Work",
        second.pk: second.name,
    }


@pytest.mark.django_db(transaction=True)
def test_a_merge_held_up_past_the_limit_fails_the_migrate_and_the_next_one_does_it(
    django_user_model, monkeypatch
):
    from tasks.models import Tag

    monkeypatch.setattr(composed_names, "GIVE_UP_AFTER", 1)
    owner, kept, _merged, _task = two_tags_of_one_new_key(django_user_model)
    long_transaction = api_connection()
    long_transaction.execute("SELECT 1 FROM tasks_tag WHERE id = %s FOR KEY SHARE", [kept.pk])
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '10s'")  # without the limit: fails, not hangs
    try:
        with pytest.raises(OperationalError, match="lock timeout"):
            migrate_to(*S16)
    finally:
        long_transaction.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")

    migrate_to(*S16)
    assert list(Tag.objects.filter(owner=owner).values_list("pk", flat=True)) == [kept.pk]


@pytest.mark.django_db(transaction=True)
def test_a_merges_lock_wait_and_commit_settings_end_with_its_transaction(django_user_model):
    def settings() -> tuple:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('lock_timeout'), current_setting('synchronous_commit')"
            )
            return cursor.fetchone()

    two_tags_of_one_new_key(django_user_model)
    before = settings()
    seen = []

    def noting_the_settings_in_the_merge(execute, sql, params, many, context):
        if "DELETE FROM tasks_tag WHERE" in sql:
            seen.append(settings())
        return execute(sql, params, many, context)

    with connection.execute_wrapper(noting_the_settings_in_the_merge):
        migrate_to(*S16)

    assert seen == [("200ms", "off")]
    assert settings() == before != ("200ms", "off")


@pytest.mark.django_db(transaction=True)
def test_0015_leaves_a_tag_an_old_worker_renamed_after_the_read(django_user_model):
    # Its rename was overwritten with the composed name read before (review 28).
    from tasks.models import Tag

    migrate_to(*BEFORE_0015)
    owner = django_user_model.objects.create(email="anna@example.com")
    decomposed = raw_tag(owner, "Cafe\u0301")

    renamed_by_an_old_worker = an_old_worker(
        "UPDATE tasks_tag SET name = 'Work' WHERE id = %s", decomposed
    )

    with connection.execute_wrapper(
        after_first("octet_length(name) <> char_length(name)", renamed_by_an_old_worker)
    ):
        migrate_to(*S15)

    assert list(Tag.objects.filter(owner=owner).values_list("pk", "name")) == [(decomposed, "Work")]


@pytest.mark.django_db(transaction=True)
def test_0015_leaves_a_list_an_old_worker_renamed_after_the_read(django_user_model):
    from tasks.models import TaskList

    migrate_to(*BEFORE_0015)
    owner = django_user_model.objects.create(email="anna@example.com")
    listed = TaskList.objects.create(owner=owner, name="tmp", position=1)
    with connection.cursor() as cursor:  # as stored before 0015 (the model would compose it)
        cursor.execute("UPDATE tasks_tasklist SET name = 'Cafe\u0301' WHERE id = %s", [listed.pk])

    renamed_by_an_old_worker = an_old_worker(
        "UPDATE tasks_tasklist SET name = 'Work', version = version + 1 WHERE id = %s", listed.pk
    )

    with connection.execute_wrapper(
        after_first("FROM tasks_tasklist WHERE owner_id", renamed_by_an_old_worker)
    ):
        migrate_to(*S15)

    assert TaskList.objects.filter(pk=listed.pk).values_list("name", "version").get() == (
        "Work",
        listed.version + 1,
    )


@pytest.mark.django_db(transaction=True)
def test_giving_way_refuses_to_run_inside_another_transaction():
    # There, a step that gave way would keep its locks (the outer transaction's), and its lock
    # wait would last to the outer COMMIT (review 28).
    with transaction.atomic(), pytest.raises(RuntimeError, match="transaction of its own"):
        composed_names.in_a_transaction_giving_way(connection, lambda cursor: None)


@pytest.mark.django_db(transaction=True)
def test_a_step_whose_rows_keep_changing_gives_up_too(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(
        composed_names,
        "time",
        types.SimpleNamespace(
            monotonic=lambda: clock[0], sleep=lambda seconds: clock.__setitem__(0, clock[0] + 1)
        ),
    )
    runs = []

    def step(cursor):
        runs.append(True)
        assert len(runs) < 1_000, "never gives up"
        raise composed_names.Again

    with pytest.raises(composed_names.Again):
        composed_names.in_a_transaction_giving_way(connection, step)

    assert len(runs) == composed_names.GIVE_UP_AFTER + 2  # one a (fake) second, then one past
