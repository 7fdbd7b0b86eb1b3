"""The migrations describe the models exactly: a model change without its migration fails here,
not on a deploy (`makemigrations --check` exits non-zero when it would write one)."""

import importlib
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from tasks.management.commands.migrate import MIGRATE_LOCK
from todo_project.tests.helpers import (
    autovacuum_off,
    connection_of_its_own,
    database_url_for_this_test,
    start_in_thread,
    wait_for_lock_waiters,
)


def migrate_to(*target: str) -> None:
    """Migrates the test database to (app, migration), or to the latest of every app: then with
    no autovacuum on the tables the way back dropped and the way forward created anew, as on
    every other (conftest.py's django_db_setup)."""
    executor = MigrationExecutor(connection)
    executor.migrate([target] if target else executor.loader.graph.leaf_nodes())
    if not target:
        autovacuum_off(connection)


@pytest.fixture(autouse=True)
def _back_to_the_latest_migrations(request):
    """A test that migrates back leaves the database as the rest of the suite expects it."""
    yield
    if request.node.get_closest_marker("django_db"):
        migrate_to()


@pytest.mark.django_db
def test_the_models_need_no_new_migration(capsys):
    try:
        call_command("makemigrations", "--check", "--dry-run")
    except SystemExit:
        pytest.fail(f"makemigrations would write a migration:\n{capsys.readouterr().out}")


@pytest.mark.django_db(transaction=True)
def test_migrate_runs_without_the_web_workers_statement_timeout():
    # As if DB_STATEMENT_TIMEOUT were in the container's environment: an index built on a
    # large table may rightly take longer.
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '5s'")
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("0",)


def start_migrate() -> subprocess.Popen:
    """`manage.py migrate` as a container starts it, on this test's database."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": database_url_for_this_test(), "DEBUG": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.django_db(transaction=True)
def test_migrate_waits_while_another_migrate_runs_then_finds_nothing_to_do():
    """Containers started together each run migrate: they take turns on an advisory lock."""
    with connection_of_its_own(connection) as other_migrate:
        other_migrate.execute("SELECT pg_advisory_lock(%s, %s)", MIGRATE_LOCK)
        waiting = start_migrate()
        time.sleep(3)
        assert waiting.poll() is None, waiting.communicate()  # still waiting for the lock
        other_migrate.execute("SELECT pg_advisory_unlock(%s, %s)", MIGRATE_LOCK)
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert "No migrations to apply." in out
    with connection.cursor() as cursor:  # and it let go of the lock
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", MIGRATE_LOCK)
        assert cursor.fetchone() == (True,)
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", MIGRATE_LOCK)


@pytest.mark.django_db(transaction=True)
def test_a_migrate_building_an_index_concurrently_does_not_deadlock_with_one_waiting():
    """CREATE INDEX CONCURRENTLY waits for every older snapshot: a migrate waiting for the lock
    inside a statement held one while the lock's holder waited for it, and PostgreSQL ended
    one of them (replicas started together on a database with such a migration pending)."""
    with connection_of_its_own(connection) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", MIGRATE_LOCK)
        waiting = start_migrate()
        try:
            deadline = time.monotonic() + 30
            while not _asked_for_the_lock(holder) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert waiting.poll() is None, waiting.communicate()
            holder.execute("SET lock_timeout = '20s'")
            holder.execute("CREATE INDEX CONCURRENTLY built_meanwhile ON tasks_task (title)")
            holder.execute("DROP INDEX CONCURRENTLY built_meanwhile")
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s, %s)", MIGRATE_LOCK)
            out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert "No migrations to apply." in out
    assert "Another migrate is running on this database: waiting for it." in err


@pytest.mark.django_db(transaction=True)
def test_a_migrate_stopped_in_a_statement_ends_its_session_and_lets_go_of_the_migrate_lock():
    """`docker stop` (SIGTERM, which the image's CMD passes on) kills migrate without a word to
    PostgreSQL: its session went on with the statement, holding its locks and the migrate lock,
    and the next container's migrate waited for that ghost."""
    with connection_of_its_own(connection) as other, other.transaction():
        # A long transaction that migrate's statement (here its first read) waits behind.
        other.execute("LOCK TABLE django_migrations IN ACCESS EXCLUSIVE MODE")
        migrate = start_migrate()
        assert wait_for_lock_waiters(connection, 1, timeout=30), migrate.communicate()
        migrate.send_signal(signal.SIGTERM)
        migrate.wait(10)
        deadline = time.monotonic() + 5
        while not (free := _migrate_lock_is_free(other)) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert free, "5 s after migrate exited, its session still held the migrate lock"


def _migrate_lock_is_free(session) -> bool:
    if session.execute("SELECT pg_try_advisory_lock(%s, %s)", MIGRATE_LOCK).fetchone()[0]:
        session.execute("SELECT pg_advisory_unlock(%s, %s)", MIGRATE_LOCK)
        return True
    return False


def _asked_for_the_lock(holder) -> bool:
    """Whether another session has asked for the migrate lock (it has connected and tried)."""
    row = holder.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
        " AND datname = current_database() AND query LIKE %s",
        ["%pg_%advisory_lock%"],
    ).fetchone()
    return row[0] > 0


@pytest.mark.django_db(transaction=True)
def test_existing_emails_get_unicode_domains_unless_another_account_has_that_form():
    from accounts.models import User

    before, after = (
        ("accounts", "0005_revoked_token_family"),
        ("accounts", "0006_emails_with_unicode_domains"),
    )
    migrate_to(*before)
    # Stored as the old normalisation did (lower case only); create() does not normalise.
    ascii_only = User.objects.create(email="anna@xn--exmple-cua.com")
    taken = User.objects.create(email="bob@xn--exmple-cua.com")
    User.objects.create(email="bob@exämple.com")
    plain = User.objects.create(email="carl@example.com")
    migrate_to(*after)
    emails = dict(User.objects.values_list("pk", "email"))
    assert emails[ascii_only.pk] == "anna@exämple.com"
    assert emails[taken.pk] == "bob@xn--exmple-cua.com"  # left for support: two accounts
    assert emails[plain.pk] == "carl@example.com"


def titles_found(owner, word: str) -> set[tuple[str]]:
    """The titles of `owner`'s tasks with a word starting with this one, as stored: quoted as
    tasks.filters.prefix_tsquery does, but neither split nor folded (its fold needs 0013)."""
    from tasks.models import search_owner_key

    # SQL: the column is no field of Task since 0022.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT title FROM tasks_task WHERE owner_id = %s AND search_vector @@ %s::tsquery",
            [owner.pk, f"'{search_owner_key(owner.pk)}{word}':*"],
        )
        return set(cursor.fetchall())


@pytest.mark.django_db(transaction=True)
def test_existing_search_vectors_get_the_parts_of_joined_words_and_lose_them_when_reversed(
    django_user_model,
):
    from tasks.models import Task

    before, after = (
        ("tasks", "0009_search_index_with_a_small_pending_list"),
        ("tasks", "0010_search_finds_parts_of_joined_words"),
    )
    found = titles_found

    migrate_to(*before)
    owner = django_user_model.objects.create(email="anna@example.com")
    # More than one of the migration's batches (5,000 tasks each).
    Task.objects.bulk_create(
        Task(owner=owner, title=f"plain {i}", position=i + 1) for i in range(5_100)
    )
    joined = Task.objects.create(owner=owner, title="Mail bob@example.org", position=9_999)
    stamps = Task.objects.values_list("updated_at", "version").get(pk=joined.pk)
    assert found(owner, "example") == set()

    migrate_to(*after)
    assert found(owner, "example") == {("Mail bob@example.org",)}
    assert found(owner, "plain") and len(found(owner, "plain")) == 5_100
    assert Task.objects.values_list("updated_at", "version").get(pk=joined.pk) == stamps

    migrate_to(*before)
    assert found(owner, "example") == set()
    assert found(owner, "bob@example.org") == {("Mail bob@example.org",)}
    migrate_to(*after)
    assert found(owner, "example") == {("Mail bob@example.org",)}


@pytest.mark.django_db(transaction=True)
def test_existing_search_vectors_lose_their_accents_and_get_them_back_when_reversed(
    django_user_model,
):
    from tasks.models import Task

    before, after = ("tasks", "0012_deleted_task"), ("tasks", "0013_search_ignores_accents")
    migrate_to(*before)
    owner = django_user_model.objects.create(email="anna@example.com")
    # More than one of the migration's batches (5,000 tasks each), ASCII ones left alone.
    Task.objects.bulk_create(
        Task(owner=owner, title=f"plain {i}", position=i) for i in range(5_100)
    )
    cafe = Task.objects.create(owner=owner, title="Café", description="piñata", position=9_999)
    stamps = Task.objects.values_list("updated_at", "version").get(pk=cafe.pk)
    assert titles_found(owner, "café") == {("Café",)} and titles_found(owner, "cafe") == set()

    migrate_to(*after)
    assert titles_found(owner, "cafe") == titles_found(owner, "pinata") == {("Café",)}
    assert titles_found(owner, "café") == set()  # stored folded: a search folds its words too
    assert len(titles_found(owner, "plain")) == 5_100
    assert Task.objects.values_list("updated_at", "version").get(pk=cafe.pk) == stamps

    migrate_to(*before)
    assert titles_found(owner, "café") == {("Café",)} and titles_found(owner, "cafe") == set()
    migrate_to(*after)
    assert titles_found(owner, "cafe") == {("Café",)}


class Killed(Exception):
    pass


def killing_the_recompute(execute, sql, params, many, context):
    """The deploy is killed (or a batch hits a lock timeout) during a vector recompute."""
    if "SET title = title" in sql:
        raise Killed
    return execute(sql, params, many, context)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("start", "target"),
    [
        (("tasks", "0012_deleted_task"), ("tasks", "0013_search_ignores_accents")),
        (("tasks", "0014_titles_sort_accents_aside"), ("tasks", "0012_deleted_task")),
    ],
    ids=["forward", "back"],
)
def test_the_accent_migrations_run_again_after_an_interrupted_run(django_user_model, start, target):
    # atomic = False: the steps before the interruption stay. Every container runs `migrate`
    # as it starts: if 0013 could not run again (CREATE FUNCTION of a function there, DROP of
    # one gone), none would start until someone dropped the function by hand.
    from tasks.models import Task

    migrate_to(*start)
    owner = django_user_model.objects.create(email="anna@example.com")
    Task.objects.create(owner=owner, title="Café", position=1)
    with connection.execute_wrapper(killing_the_recompute), pytest.raises(Killed):
        migrate_to(*target)
    migrate_to(*target)  # the deploy, again
    assert titles_found(owner, "cafe" if target[1].startswith("0013") else "café") == {("Café",)}


@pytest.mark.django_db(transaction=True)
def test_existing_names_are_composed_tags_of_one_name_merged_lists_left(django_user_model):
    from tasks.models import Tag, Task, TaskList

    before, after = ("tasks", "0014_titles_sort_accents_aside"), ("tasks", "0015_names_composed")
    migrate_to(*before)
    owner = django_user_model.objects.create(email="anna@example.com")
    other = django_user_model.objects.create(email="bob@example.com")
    # Stored as before the rule; create() does not compose.
    tags = {
        name: Tag.objects.create(owner=owner, name=name)
        for name in ("Café", "CAFE\u0301", "The\u0301", "e\u0301\u0323", "e\u0323\u0301", "plain")
    }
    bobs = Tag.objects.create(owner=other, name="Cafe\u0301")
    tasks = {}
    for title, names in {
        "both": ["Café", "CAFE\u0301"],
        "decomposed": ["CAFE\u0301"],
        "composed": ["Café", "plain"],
        "tea": ["The\u0301"],
        "marks": ["e\u0301\u0323", "e\u0323\u0301"],
    }.items():
        tasks[title] = Task.objects.create(owner=owner, title=title, position=len(tasks))
        tasks[title].tags.set([tags[name] for name in names])
    lists = {
        name: TaskList.objects.create(owner=owner, name=name, position=i)
        for i, name in enumerate(("Café", "cafe\u0301", "The\u0301"))
    }

    migrate_to(*after)
    assert sorted(Tag.objects.filter(owner=owner).values_list("name", flat=True)) == sorted(
        ["Café", "Thé", "\u1eb9\u0301", "plain"]
    )
    assert Tag.objects.get(pk=bobs.pk).name == "Café"  # another owner's: renamed, not merged
    tagged = {
        task.title: (sorted(tag.name for tag in task.tags.all()), task.version)
        for task in Task.objects.filter(owner=owner).prefetch_related("tags")
    }
    assert tagged == {
        "both": (["Café"], 2),
        "decomposed": (["Café"], 2),
        "composed": (["Café", "plain"], 1),  # its tags kept their names
        "tea": (["Thé"], 2),
        "marks": (["\u1eb9\u0301"], 3),  # one tag renamed, the other merged into it
    }
    assert Tag.objects.get(name="Café", owner=owner).pk == tags["Café"].pk
    names = dict(TaskList.objects.values_list("pk", "name"))
    assert names[lists["cafe\u0301"].pk] == "cafe\u0301"  # left: "Café" is taken
    assert names[lists["The\u0301"].pk] == "Thé"
    assert TaskList.objects.get(pk=lists["The\u0301"].pk).version == 2
    assert TaskList.objects.get(pk=lists["cafe\u0301"].pk).version == 1

    migrate_to(*before)  # nothing to undo: the composed names are the same names
    assert Tag.objects.filter(owner=owner).count() == 4


@pytest.mark.django_db(transaction=True)
def test_a_name_that_composing_makes_too_long_for_its_column_stays_as_it_is(django_user_model):
    from tasks.models import Tag, TaskList

    migrate_to("tasks", "0014_titles_sort_accents_aside")
    owner = django_user_model.objects.create(email="anna@example.com")
    # U+0958 is two code points composed (a composition exclusion): 60 > 50, 120 > 100.
    tag = Tag.objects.create(owner=owner, name="\u0958" * 30)
    tasklist = TaskList.objects.create(owner=owner, name="\u0958" * 60, position=1)

    migrate_to("tasks", "0015_names_composed")

    assert Tag.objects.get(pk=tag.pk).name == "\u0958" * 30
    assert TaskList.objects.get(pk=tasklist.pk).name == "\u0958" * 60


J_CARON = "\u01f0"  # ǰ: no composed capital, "J" + U+030C is its upper case


def unique_name_indexes() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname LIKE '%%name_unique_per_owner%%' AND i.indisvalid AND i.indisunique"
        )
        return dict(cursor.fetchall())


@pytest.mark.django_db(transaction=True)
def test_names_one_by_the_new_key_are_merged_tags_and_renamed_lists(django_user_model):
    from tasks.models import Tag, Task, TaskList

    before, after = (
        ("tasks", "0015_names_composed"),
        ("tasks", "0016_names_unique_lowered_then_composed"),
    )
    migrate_to(*before)
    owner = django_user_model.objects.create(email="anna@example.com")
    other = django_user_model.objects.create(email="bob@example.com")
    older = Tag.objects.create(owner=owner, name=f"{J_CARON}ob")
    newer = Tag.objects.create(owner=owner, name="J\u030cOB")  # one name by the new key
    bobs = Tag.objects.create(owner=other, name="J\u030cob")
    tasks = {}
    for title, tags in {"both": [older, newer], "newer": [newer], "older": [older]}.items():
        tasks[title] = Task.objects.create(owner=owner, title=title, position=len(tasks))
        tasks[title].tags.set(tags)
    long_name = "J\u030c" + "a" * 94 + " bcd"  # 100 characters, the most a list's name may have
    lists = [
        TaskList.objects.create(owner=owner, name=name, position=i)
        for i, name in enumerate(
            [f"{J_CARON}ob", "J\u030cOB", f"{J_CARON}ob (2)", long_name,
             f"{J_CARON}" + "A" * 94 + " bcd"]
        )
    ]  # fmt: skip

    migrate_to(*after)

    assert list(Tag.objects.filter(owner=owner).values_list("pk", "name")) == [
        (older.pk, f"{J_CARON}ob")  # the oldest kept
    ]
    assert Tag.objects.get(pk=bobs.pk).name == "J\u030cob"  # another owner's: his own
    tagged = {
        task.title: ([tag.name for tag in task.tags.all()], task.version)
        for task in Task.objects.filter(owner=owner).prefetch_related("tags")
    }
    assert tagged == {
        "both": ([f"{J_CARON}ob"], 2),
        "newer": ([f"{J_CARON}ob"], 2),
        "older": ([f"{J_CARON}ob"], 1),  # its tag kept its name
    }
    renamed = {row.pk: (row.name, row.version) for row in TaskList.objects.all()}
    assert [renamed[row.pk] for row in lists] == [
        (f"{J_CARON}ob", 1),  # the oldest kept
        ("J\u030cOB (3)", 2),  # " (2)" is taken
        (f"{J_CARON}ob (2)", 1),
        (long_name, 1),
        (f"{J_CARON}" + "A" * 94 + " (2)", 2),  # cut to fit, the space before the number kept
    ]
    assert unique_name_indexes() == {
        "tag_name_unique_per_owner": "CREATE UNIQUE INDEX tag_name_unique_per_owner ON "
        "public.tasks_tag USING btree (owner_id, NORMALIZE(lower((name)::text), NFC))",
        "tasklist_name_unique_per_owner": "CREATE UNIQUE INDEX tasklist_name_unique_per_owner ON "
        "public.tasks_tasklist USING btree (owner_id, NORMALIZE(lower((name)::text), NFC))",
    }

    migrate_to(*before)  # the LOWER() indexes back; nothing else to undo
    assert unique_name_indexes() == {
        "tag_name_unique_per_owner": "CREATE UNIQUE INDEX tag_name_unique_per_owner ON "
        "public.tasks_tag USING btree (owner_id, lower((name)::text))",
        "tasklist_name_unique_per_owner": "CREATE UNIQUE INDEX tasklist_name_unique_per_owner ON "
        "public.tasks_tasklist USING btree (owner_id, lower((name)::text))",
    }


def killing_the_rename(execute, sql, params, many, context):
    """The deploy is killed between the drop of the old index and the rename of the new one."""
    if "RENAME TO tag_name_unique_per_owner" in sql:
        raise Killed
    return execute(sql, params, many, context)


@pytest.mark.django_db(transaction=True)
def test_the_new_name_key_migration_runs_again_after_an_interrupted_run():
    migrate_to("tasks", "0015_names_composed")
    with connection.cursor() as cursor:
        # An interrupted build of the new index: invalid, as a killed CREATE INDEX CONCURRENTLY.
        cursor.execute("CREATE INDEX tasklist_name_unique_per_owner_new ON tasks_tasklist (name)")
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false"
            " WHERE indexrelid = 'tasklist_name_unique_per_owner_new'::regclass"
        )
    with connection.execute_wrapper(killing_the_rename), pytest.raises(Killed):
        migrate_to()
    assert "tag_name_unique_per_owner" not in unique_name_indexes()  # dropped, not yet renamed

    migrate_to()  # the deploy, again

    indexes = unique_name_indexes()
    assert sorted(indexes) == ["tag_name_unique_per_owner", "tasklist_name_unique_per_owner"]
    assert all("NORMALIZE(lower((name)::text), NFC)" in index for index in indexes.values())
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname LIKE '%%\\_new'")
        assert cursor.fetchone() == (0,)


@pytest.mark.django_db(transaction=True)
def test_the_reverse_of_the_new_name_key_migration_runs_again_after_an_interrupted_run():
    def killing_the_last_drop(execute, sql, params, many, context):
        if "DROP INDEX CONCURRENTLY IF EXISTS tag_name_unique_per_owner_new" in sql:
            raise Killed  # both indexes there: the LOWER() one built again, the new one not gone
        return execute(sql, params, many, context)

    with connection.execute_wrapper(killing_the_last_drop), pytest.raises(Killed):
        migrate_to("tasks", "0015_names_composed")
    migrate_to("tasks", "0015_names_composed")  # the rollback, again

    assert unique_name_indexes()["tag_name_unique_per_owner"].endswith(
        "(owner_id, lower((name)::text))"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('tag_name_unique_per_owner_new')")
        assert cursor.fetchone() == (None,)


@pytest.mark.django_db(transaction=True)
def test_the_new_name_key_migration_reads_the_sets_to_resolve_in_one_statement_a_table(
    django_user_model, django_assert_max_num_queries
):
    from tasks.models import Tag

    resolve = importlib.import_module(
        "tasks.migrations.0016_names_unique_lowered_then_composed"
    ).resolve_names_of_one_key
    migrate_to("tasks", "0015_names_composed")
    owners = django_user_model.objects.bulk_create(
        [django_user_model(email=f"o{i}@example.com") for i in range(20)]
    )
    Tag.objects.bulk_create(
        [Tag(owner=o, name=f"Caf\u00e9 {j}") for o in owners for j in range(10)]
    )
    Tag.objects.create(owner=owners[0], name="J\u030cOB")
    Tag.objects.create(owner=owners[0], name=f"{J_CARON}ob")

    with django_assert_max_num_queries(12), connection.schema_editor(atomic=False) as editor:
        # A read a table; for the one set, its lock wait, its locks, its check and its merge
        # (8) in a transaction (BEGIN, COMMIT). It was a query per name, 200 here.
        resolve(None, editor)

    assert Tag.objects.filter(owner=owners[0]).count() == 11


composed_names = importlib.import_module("tasks.migrations.0015_names_composed")


def merge(tag, into) -> None:
    """A merge as 0015 and 0016 run it, in a transaction of its own."""
    with transaction.atomic(), connection.cursor() as cursor:
        composed_names.lock_tags(cursor, [tag.pk], into.pk)
        composed_names.merge_tags(cursor, [tag.pk], into.pk, timezone.now())


@pytest.mark.django_db(transaction=True)
def test_a_tag_being_merged_takes_no_link_until_the_merge_commits(django_user_model):
    # A worker not yet deployed links a task to the tag between the merge's copy of its links
    # and their delete: the link was deleted with the rest, the task silently without its tag.
    import psycopg

    from tasks.models import Tag, Task

    owner = django_user_model.objects.create(email="anna@example.com")
    kept = Tag.objects.create(owner=owner, name="kept")
    merged = Tag.objects.create(owner=owner, name="merged")
    task = Task.objects.create(owner=owner, title="x", position=0)
    refused = []

    def an_old_worker_links_meanwhile(execute, sql, params, many, context):
        if sql.startswith("DELETE FROM tasks_task_tags WHERE tag_id") and not refused:
            with connection_of_its_own(connection) as other:
                other.execute("SET lock_timeout = '200ms'")
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    other.execute(
                        "INSERT INTO tasks_task_tags (task_id, tag_id) VALUES (%s, %s)",
                        [task.pk, merged.pk],
                    )
                refused.append(True)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(an_old_worker_links_meanwhile):
        merge(merged, kept)

    assert refused
    assert list(Tag.objects.filter(owner=owner).values_list("name", flat=True)) == ["kept"]


@pytest.mark.django_db(transaction=True)
def test_a_merge_locks_as_the_api_does_so_a_task_write_meanwhile_does_not_deadlock(
    django_user_model,
):
    # A task write holds its task, then reads the tags it links FOR KEY SHARE (TAG_LOCKS). A
    # merge that took the tags first, then the tasks, deadlocked with it (review 27b).
    import threading

    import psycopg

    from tasks.models import Tag, Task

    owner = django_user_model.objects.create(email="anna@example.com")
    kept = Tag.objects.create(owner=owner, name="kept")
    merged = Tag.objects.create(owner=owner, name="merged")
    task = Task.objects.create(owner=owner, title="x", position=0)
    task.tags.add(merged)
    errors = []
    with connection_of_its_own(connection) as api:
        api.autocommit = False
        api.execute("SELECT id FROM tasks_task WHERE id = %s FOR NO KEY UPDATE", [task.pk])

        def then_reads_its_tags() -> None:
            time.sleep(0.3)  # the merge is waiting for the task meanwhile
            try:
                api.execute(
                    "SELECT id FROM tasks_tag WHERE id IN (%s, %s) ORDER BY id FOR KEY SHARE",
                    [kept.pk, merged.pk],
                )
            except psycopg.errors.DeadlockDetected as error:
                errors.append(error)
            api.rollback()

        thread = threading.Thread(target=then_reads_its_tags)
        thread.start()
        try:
            merge(merged, kept)
        except Exception as error:  # noqa: BLE001 - the deploy's migrate would fail
            errors.append(error)
        thread.join()

    assert errors == []
    assert [tag.name for tag in Task.objects.get(pk=task.pk).tags.all()] == ["kept"]


def renaming_away_once_the_sets_are_read(table: str, pk, name: str):
    """A worker not yet deployed renames a row of a set between the read and its resolving."""
    done = []

    def wrapper(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "array_agg" in sql and f"FROM {table} " in sql and not done:
            done.append(True)
            with connection_of_its_own(connection) as other:
                other.execute(f"UPDATE {table} SET name = %s WHERE id = %s", [name, pk])
        return result

    return wrapper


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("table", ["tasks_tag", "tasks_tasklist"])
def test_a_row_renamed_away_after_the_sets_were_read_is_neither_merged_nor_renamed(
    django_user_model, table
):
    from tasks.models import Tag, TaskList

    model = {"tasks_tag": Tag, "tasks_tasklist": TaskList}[table]
    resolve = importlib.import_module(
        "tasks.migrations.0016_names_unique_lowered_then_composed"
    ).resolve_names_of_one_key
    migrate_to("tasks", "0015_names_composed")
    owner = django_user_model.objects.create(email="anna@example.com")
    model.objects.create(owner=owner, name=f"{J_CARON}ob")
    newer = model.objects.create(owner=owner, name="J\u030cOB")

    with (
        connection.execute_wrapper(renaming_away_once_the_sets_are_read(table, newer.pk, "Work")),
        connection.schema_editor(atomic=False) as editor,
    ):
        resolve(None, editor)

    assert sorted(model.objects.values_list("name", flat=True)) == ["Work", f"{J_CARON}ob"]


@pytest.mark.django_db(transaction=True)
def test_existing_emails_get_the_domain_their_mail_goes_to_unless_another_account_has_it():
    from accounts.models import User

    before, after = (
        ("accounts", "0006_emails_with_unicode_domains"),
        ("accounts", "0007_emails_mapped_as_the_mailer_maps_them"),
    )
    migrate_to(*before)
    # Stored as the old normalisation did; create() does not normalise.
    full_width = User.objects.create(email="anna@ｅｘａｍｐｌｅ.com")
    taken = User.objects.create(email="bob@exa\u00admple.com")
    User.objects.create(email="bob@example.com")
    german = User.objects.create(email="carl@straße.de")
    unicode = User.objects.create(email="dora@exämple.com")
    too_long = User.objects.create(email="e" * 220 + "@" + "ß" * 30 + ".de")  # 254, then 284
    migrate_to(*after)
    emails = dict(User.objects.values_list("pk", "email"))
    assert emails[full_width.pk] == "anna@example.com"
    assert emails[taken.pk] == "bob@exa\u00admple.com"  # left for support: two accounts
    assert emails[german.pk] == "carl@strasse.de"  # where Django's mailer sends it
    assert emails[unicode.pk] == "dora@exämple.com"
    assert emails[too_long.pk] == too_long.email  # mapped, it would not fit the column


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("before", "after", "index", "columns"),
    [
        (
            "0007_owner_task_count_reachable_from_its_user",
            "0008_list_counts_from_an_index",
            "task_list_completed",
            "(list_id, completed)",
        ),
        (
            "0010_search_finds_parts_of_joined_words",
            "0011_task_updated_index",
            "task_updated",
            "(updated_at, id)",
        ),
        (
            "0013_search_ignores_accents",
            "0014_titles_sort_accents_aside",
            "task_owner_title_key",
            '(owner_id, text_sort_key((title)::text) COLLATE "C")',
        ),
        (  # reversed: the index 0014 dropped, built again
            "0014_titles_sort_accents_aside",
            "0013_search_ignores_accents",
            "task_owner_title",
            "(owner_id, lower((title)::text))",
        ),
        (
            "0024_due_date_descending_index",
            "0025_due_date_index_ends_in_the_id",
            "task_owner_due_id",
            "(owner_id, due_date, due_time, id)",
        ),
        (  # reversed: the index 0025 dropped, built again
            "0025_due_date_index_ends_in_the_id",
            "0024_due_date_descending_index",
            "task_owner_due",
            "(owner_id, due_date, due_time)",
        ),
        (
            "0026_search_lexemes_planned_once",
            "0027_no_caller_reads_all_owners_updates",
            "task_owner_updated_id",
            "(owner_id, updated_at, id)",
        ),
        (
            "0026_search_lexemes_planned_once",
            "0027_no_caller_reads_all_owners_updates",
            "task_admin_updated",
            "(updated_at, id) WHERE (version >= 1)",
        ),
        (  # reversed: the indexes 0027 dropped, built again
            "0027_no_caller_reads_all_owners_updates",
            "0026_search_lexemes_planned_once",
            "task_updated",
            "(updated_at, id)",
        ),
    ],
)
def test_a_concurrent_index_migration_replaces_an_invalid_leftover_of_an_interrupted_build(
    before, after, index, columns
):
    migrate_to("tasks", before)
    with connection.cursor() as cursor:
        # What a CREATE INDEX CONCURRENTLY killed midway leaves: the index, marked invalid.
        cursor.execute(f"CREATE INDEX {index} ON tasks_task (title)")
        cursor.execute(
            f"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{index}'::regclass"
        )
    migrate_to("tasks", after)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i"
            f" WHERE i.indexrelid = '{index}'::regclass"
        )
        valid, definition = cursor.fetchone()
    assert valid
    assert definition.endswith(columns)


@pytest.mark.django_db(transaction=True)
def test_a_cron_purge_runs_while_another_models_migration_is_pending(capsys):
    # A release applies its migrations after the code is out: the hourly job still has its
    # table and must not fail (and mail) for a migration it does not need.
    migrate_to("accounts", "0006_emails_with_unicode_domains")
    call_command("purge_idempotency_keys")
    call_command("purge_deleted_tasks")
    assert "Deleted 0 expired idempotency key(s)." in capsys.readouterr().out


TASK_COUNT_FUNCTIONS = [
    f"tasks_task_count_{what}" for what in ("inserted", "deleted", "reassigned", "truncated")
]


def search_paths_of_the_task_count_functions() -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proname, proconfig FROM pg_proc WHERE proname = ANY(%s)", [TASK_COUNT_FUNCTIONS]
        )
        return dict(cursor.fetchall())


@pytest.mark.django_db(transaction=True)
def test_the_task_count_functions_get_their_tables_schema_as_search_path_and_lose_it_reversed():
    """tasks.0018: the triggers' functions no longer depend on the caller's search_path (a
    pg_dump file's is empty); the reverse gives them back the caller's."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT quote_ident(current_schema())")
        (schema,) = cursor.fetchone()
    assert search_paths_of_the_task_count_functions() == {
        name: [f"search_path={schema}"] for name in TASK_COUNT_FUNCTIONS
    }
    migrate_to("tasks", "0017_priority_index_ends_in_the_id")
    assert search_paths_of_the_task_count_functions() == dict.fromkeys(TASK_COUNT_FUNCTIONS)


def search_indexes_and_triggers() -> tuple[list, list]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, t.relname FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
            " JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'gin' ORDER BY 1"
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'tasks_task'::regclass"
            " AND tgname LIKE 'task_search%' ORDER BY 1"
        )
        return indexes, [name for (name,) in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
def test_the_search_vectors_move_to_their_table_and_back_when_reversed(django_user_model):
    """tasks.0019/0020: every existing task gets its search row (more than one of the copy's
    batches of 5,000), the index moves to tasks_tasksearch; reversed, `task_search` is built on
    tasks_task again and the table goes."""
    from tasks.models import Task

    before = ("tasks", "0018_task_count_functions_name_their_schema")
    migrate_to(*before)
    assert search_indexes_and_triggers() == ([("task_search", "tasks_task")], [])
    owner = django_user_model.objects.create(email="anna@example.com")
    Task.objects.bulk_create(
        Task(
            owner=owner,
            title=f"plain {i}",
            position=i + 1,
            completed=i % 3 == 0,  # completed and priority are copied too
            completed_at=timezone.now() if i % 3 == 0 else None,
            priority=i % 4,
        )
        for i in range(5_100)
    )

    migrate_to()
    assert search_indexes_and_triggers() == (
        [("tasksearch_vector", "tasks_tasksearch")],
        ["task_search_changed", "task_search_filtered", "task_search_inserted"],
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE s.search_vector"
            " = task_search_vector(t.title, t.description, t.owner_id)"
            " AND s.owner_id = t.owner_id AND s.completed = t.completed"
            " AND s.priority = t.priority) FROM tasks_task t"
            " JOIN tasks_tasksearch s ON s.task_id = t.id"
        )
        assert cursor.fetchone() == (5_100, 5_100)
    from tasks.filters import prefix_tsquery, search_matches

    matches = search_matches(prefix_tsquery("plain", owner)).values("task_id")
    assert Task.objects.filter(owner=owner, pk__in=matches).count() == 5_100

    migrate_to(*before)
    assert search_indexes_and_triggers() == ([("task_search", "tasks_task")], [])
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('tasks_tasksearch')")
        assert cursor.fetchone() == (None,)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("before", "written"),
    [
        # 0019's foreign key and triggers lock tasks_task: any write of a task waits.
        (("tasks", "0018_task_count_functions_name_their_schema"), "version = version + 1"),
        # 0021's trigger locks tasks_tasksearch: a text edit writes it through 0019's trigger.
        (("tasks", "0020_task_search_index_moved"), "title = title || ' edited'"),
        # 0023's DROP COLUMN takes ACCESS EXCLUSIVE: any read or write of a task waits.
        (("tasks", "0022_task_search_vector_unread"), "version = version + 1"),
    ],
)
def test_a_migration_locking_a_written_table_gives_way_to_the_writes_meanwhile(
    django_user_model, before, written
):
    """Behind a write still in flight, 0019 and 0021 waited for their lock, and every later
    write of the table queued behind them: the release before, serving meanwhile, answered
    nothing for as long as that write took (review 34a)."""
    from tasks.models import Task

    migrate_to(*before)
    owner = django_user_model.objects.create(email="anna@example.com")
    in_flight_task, next_task = (
        Task.objects.create(owner=owner, title=title, position=position)
        for position, title in enumerate(["in flight", "next"])
    )
    update = f"UPDATE tasks_task SET {written} WHERE id = %s"
    with connection_of_its_own(connection) as in_flight, connection_of_its_own(connection) as nxt:
        in_flight.autocommit = False
        in_flight.execute(update, [in_flight_task.pk])
        migrated = start_in_thread(migrate_to)
        assert wait_for_lock_waiters(connection, 1)  # the migration, behind the write
        time.sleep(0.3)
        # A later write of another row still gets the table: it would wait for ever before.
        nxt.execute("SET lock_timeout = '2s'")
        nxt.execute(update, [next_task.pk])
        in_flight.commit()
        migrated()
    # Once the writes let it, the migration went through.
    executor = MigrationExecutor(connection)
    assert executor.migration_plan(executor.loader.graph.leaf_nodes()) == []


def search_rows() -> dict:
    """Each task's search row: (owner, vector as text, the transaction that last wrote it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT task_id, owner_id, search_vector::text, xmin::text FROM tasks_tasksearch"
        )
        return {task_id: rest for task_id, *rest in cursor.fetchall()}


def has_the_vector_column() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'tasks_task' AND column_name = 'search_vector'"
        )
        return cursor.fetchone()[0] == 1


@pytest.mark.django_db(transaction=True)
def test_the_search_vector_column_goes_the_triggers_compute_it_and_it_comes_back_reversed(
    django_user_model,
):
    """tasks.0023: tasks_task's generated column is dropped, the triggers compute the vector
    with task_search_vector(), the same one; reversed, the column is back, as it was."""
    from tasks.models import Task

    before = ("tasks", "0022_task_search_vector_unread")
    migrate_to(*before)
    owner, other = (
        django_user_model.objects.create(email=email)
        for email in ("anna@example.com", "bob@example.com")
    )
    texts = [
        ("Mail bob@example.org", ""),
        ("Crème brûlée", "for Zoë's party"),
        ("Notes", "see /usr/share " + "z" * 300),
    ]
    tasks = [
        Task.objects.create(owner=owner, title=title, description=description, position=i + 1)
        for i, (title, description) in enumerate(texts)
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, search_vector::text FROM tasks_task")
        generated = dict(cursor.fetchall())
    rows = search_rows()
    assert {task_id: vector for task_id, (_, vector, _) in rows.items()} == generated

    migrate_to()
    assert not has_the_vector_column()
    assert search_rows() == rows  # not written again
    kept, edited, moved = tasks
    with connection.cursor() as cursor:
        cursor.execute("UPDATE tasks_task SET title = title || '!' WHERE id = %s", [kept.pk])
        cursor.execute("UPDATE tasks_task SET title = 'Rent' WHERE id = %s", [edited.pk])
        cursor.execute("UPDATE tasks_task SET owner_id = %s WHERE id = %s", [other.pk, moved.pk])
        cursor.execute(
            "SELECT task_search_vector('Rent', 'for Zoë''s party', %s)::text", [owner.pk]
        )
        rent = cursor.fetchone()[0]
    # A task created now gets the vector the column gave a task of the same text and owner.
    again = [
        Task.objects.create(owner=owner, title=title, description=description, position=9 + i)
        for i, (title, description) in enumerate(texts)
    ]
    after = search_rows()
    assert [after[task.pk][1] for task in again] == [generated[task.pk] for task in tasks]
    assert after[kept.pk] == rows[kept.pk]  # the same words: no new row version
    assert after[edited.pk][:2] == [owner.pk, rent] != rows[edited.pk][:2]
    assert after[moved.pk][0] == other.pk

    migrate_to(*before)
    assert has_the_vector_column()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE s.search_vector = t.search_vector), count(*)"
            " FROM tasks_task t JOIN tasks_tasksearch s ON s.task_id = t.id"
        )
        assert cursor.fetchone() == (6, 6)
        cursor.execute(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'task_search_changed'"
        )
        assert "old.search_vector IS DISTINCT FROM new.search_vector" in cursor.fetchone()[0]
        cursor.execute("SELECT to_regprocedure('task_search_vector(text, text, uuid)')")
        assert cursor.fetchone() == (None,)
    Task.objects.filter(pk=kept.pk).update(title="Groceries")
    assert "groceries" in search_rows()[kept.pk][1]  # the release before's triggers work


@pytest.mark.django_db(transaction=True)
def test_a_migration_asks_long_enough_for_postgresql_to_cancel_an_autovacuum_in_its_way():
    """PostgreSQL cancels an autovacuum in a lock's way only after deadlock_timeout (1 s): asked
    200 ms at a time, 0019 waited out the whole autovacuum, and failed (review 34d). No
    autovacuum can be started on demand here: a client backend holding the table stands in."""
    from tasks import table_lock

    def wait(sql: str) -> timedelta:
        with connection.cursor() as cursor:
            cursor.execute(sql, {"tables": ["tasks_task"], "wait": table_lock.LOCK_WAIT})
            return cursor.fetchone()[0]

    standing_in = table_lock._LOCK_WAIT_NOW.replace("'autovacuum worker'", "'client backend'")
    assert standing_in != table_lock._LOCK_WAIT_NOW
    assert wait(standing_in) == timedelta(milliseconds=200)  # nobody holds the table
    with connection_of_its_own(connection) as vacuum, vacuum.transaction():
        vacuum.execute("LOCK TABLE tasks_task IN SHARE UPDATE EXCLUSIVE MODE")  # VACUUM's lock
        assert wait(standing_in) == timedelta(milliseconds=1200)
        assert wait(table_lock._LOCK_WAIT_NOW) == timedelta(milliseconds=200)  # no autovacuum


@pytest.mark.django_db(transaction=True)
def test_tables_a_migration_test_created_anew_run_without_autovacuum():
    """Back before 0019 drops tasks_tasksearch, forward creates it anew: with autovacuum on
    again, the plan tests after this one on the worker could have their statistics replaced
    (review 41f's residual)."""
    migrate_to("tasks", "0018_task_count_functions_name_their_schema")
    migrate_to()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'm')
              AND NOT coalesce('autovacuum_enabled=false' = ANY (c.reloptions), false)
            """
        )
        assert cursor.fetchall() == []
