"""Review 39g: what the review of 389ccef (a move's write fused into its anchor's read),
0cb2221 (tasks.0026, task_search_lexemes in PL/pgSQL) and c711656 (a create's group lock in its
count statement, its rank read by its INSERT) checked, kept as tests. The review found no
break: these pass on main at c711656. They pin what the commits' own tests leave open: the
create's lock order under a generic plan (prepared statements are on), real concurrent creates
in one group on connections of their own, the vectors under every plan_cache_mode, and the
fused move's row against task_save()'s for every move shape.
"""

import importlib
import random
from datetime import date

import pytest
from django.db import connection, transaction
from django.db.models import Count

from tasks import services
from tasks.models import POSITION_GAP, Task
from tasks.tests.deadlocks import run_while_the_count_row_is_held
from tasks.tests.test_filters import TRICKY_TASKS
from todo_project.tests.helpers import outcomes_in_threads

accents = importlib.import_module("tasks.migrations.0013_search_ignores_accents")


def _generic_plan(cursor) -> None:
    cursor.execute("SET plan_cache_mode = force_generic_plan")


# c711656 ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_count_statements_generic_plan_takes_the_group_lock_first():
    with connection.cursor() as cursor:
        _generic_plan(cursor)
        try:
            cursor.execute(
                "PREPARE review_39g_count(uuid, bigint) AS "
                + services._LOCKED_GROUP_AND_COUNT.replace("%s", "$1", 1).replace("%s", "$2", 1)
            )
            cursor.execute(
                "EXPLAIN EXECUTE review_39g_count('00000000-0000-0000-0000-000000000001', 1)"
            )
            plan = "\n".join(row for (row,) in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE ALL")
            cursor.execute("RESET plan_cache_mode")
    assert "$1" in plan, plan  # generic indeed
    assert plan.index("One-Time Filter") < plan.index("on tasks_ownertaskcount c"), plan


@pytest.mark.django_db(transaction=True)
def test_a_create_under_a_generic_plan_holds_the_group_lock_while_it_waits_for_the_count(user):
    services.task_create(user=user, data={"title": "First"})

    def create():
        with connection.cursor() as cursor:
            _generic_plan(cursor)
        return services.task_create(user=user, data={"title": "Second"})

    assert run_while_the_count_row_is_held(user, create).position == 2 * POSITION_GAP


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("shape", ["inbox", "tags", "first_task", "subtask", "list"])
def test_concurrent_creates_in_one_group_take_distinct_ranks(user, make_list, shape):
    data = {}
    if shape == "tags":
        data["tags"] = ["a", "b"]
    if shape == "subtask":
        data["parent"] = services.task_create(user=user, data={"title": "Parent"})
    if shape == "list":
        data["list"] = make_list("Home")
    if shape != "first_task" and shape != "subtask":
        services.task_create(user=user, data={"title": "Elsewhere", "list": make_list("Other")})
    per_thread = 1 if shape == "first_task" else 4

    def creates(n: int) -> list[int]:
        return [
            services.task_create(user=user, data={**data, "title": f"t{n}-{k}"}).position
            for k in range(per_thread)
        ]

    outcomes = outcomes_in_threads(6, creates)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    ranks = sorted(rank for o in outcomes for rank in o)
    assert len(set(ranks)) == len(ranks)
    doubled = (
        Task.objects.filter(owner=user)
        .values("list_id", "parent_id", "position")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert not doubled.exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT tasks FROM tasks_ownertaskcount WHERE owner_id = %s", [user.pk])
        assert cursor.fetchone()[0] == Task.objects.filter(owner=user).count()


# tasks.0026 ---------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["auto", "force_generic_plan", "force_custom_plan"])
def test_the_plpgsql_vectors_are_the_sql_functions_under_every_plan_mode(mode):
    rnd = random.Random(39)
    alphabet = "aé ü-./@_:'\\\"ñÅß日本語한국어\u0301\u0308\U0001d160x1,;!?()[]{}#~`abcdefg"
    texts = [f"{title} {description}" for title, description in TRICKY_TASKS]
    texts += ["", " ", "a.b" * 3000, "é" * 5000]
    texts += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 60))) for _ in range(300)]
    sql_function = accents.CREATE_LEXEMES.replace(
        "FUNCTION task_search_lexemes(", "FUNCTION pg_temp.review_39g_lexemes(", 1
    )
    with connection.cursor() as cursor:
        cursor.execute(sql_function)
        cursor.execute(f"SET plan_cache_mode = {mode}")
        cursor.execute("DISCARD PLANS")  # the PL/pgSQL plan made again under this mode
        try:
            for prefix in ["0123456789ab", "", None, "a'b\\"]:
                cursor.execute(
                    "SELECT count(*) FROM unnest(%s::text[]) AS t(text) WHERE"
                    " task_search_lexemes(to_tsvector('simple', text), %s)::text IS DISTINCT FROM"
                    " pg_temp.review_39g_lexemes(to_tsvector('simple', text), %s)::text",
                    [texts, prefix, prefix],
                )
                assert cursor.fetchone()[0] == 0, prefix
            # One call per statement (a trigger's way): its cached plan, generic from the 6th.
            for text in texts[:40]:
                cursor.execute(
                    "SELECT task_search_lexemes(to_tsvector('simple', %s), 'k')::text"
                    " = pg_temp.review_39g_lexemes(to_tsvector('simple', %s), 'k')::text",
                    [text, text],
                )
                assert cursor.fetchone()[0], text
        finally:
            cursor.execute("RESET plan_cache_mode")


# 389ccef ------------------------------------------------------------------------------------

_FUSED = services._ANCHOR_READ_AND_PLACED
_NOT_FUSED = _FUSED.replace(
    "WHERE tasks_task.id = %(task)s", "WHERE false AND tasks_task.id = %(task)s", 1
)


class _Undone(Exception):
    pass


def _row(task_id) -> dict:
    row = Task.objects.filter(pk=task_id).values().get()
    row.pop("updated_at")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT owner_id, completed, priority, search_vector::text FROM tasks_tasksearch"
            " WHERE task_id = %s",
            [task_id],
        )
        row["search"] = cursor.fetchone()
    return row


def _move(task_id, anchor_id, list_, statement, monkeypatch) -> tuple[object, dict, dict]:
    monkeypatch.setattr(services, "_ANCHOR_READ_AND_PLACED", statement)
    placed = []
    place_after = services._place_after

    def spy(*args, **kwargs):
        placed.append(place_after(*args, **kwargs))
        return placed[-1]

    monkeypatch.setattr(services, "_place_after", spy)
    with transaction.atomic():
        task = services.task_to_write(Task.objects.get(pk=task_id).owner_id, task_id)
        moved = services.task_move(task=task, after=anchor_id, list_=list_, locked=True)
        in_memory = {f.attname: getattr(moved, f.attname) for f in Task._meta.concrete_fields}
        in_memory.pop("updated_at")
        stamped = moved.updated_at == Task.objects.get(pk=task_id).updated_at
        subtasks = sorted(Task.objects.filter(parent_id=task_id).values_list("list_id", "version"))
        return placed[-1], {**_row(task_id), "subtasks": subtasks}, in_memory | {"ok": stamped}


@pytest.mark.django_db
@pytest.mark.parametrize("shape", ["plain", "other_list", "subtask", "completed", "recurring"])
def test_the_fused_move_writes_what_task_save_wrote(user, make_list, make_task, shape, monkeypatch):
    home, work = make_list("Home"), make_list("Work")
    parent = make_task("Parent", list=home)
    extra = {
        "completed": {"completed": True},
        "recurring": {"due_date": date(2026, 12, 1), "recurrence": "FREQ=DAILY"},
    }.get(shape, {})
    where = {"parent": parent} if shape == "subtask" else {"list": home}
    task = make_task("Moved", description="café x.y@z", **where, **extra)
    make_task("Its subtask", parent=task) if shape != "subtask" else None
    make_task("Anchor", **where)
    make_task("Next", **where)
    anchor = Task.objects.get(title="Anchor")
    list_ = services.UNCHANGED
    if shape == "other_list":
        anchor = make_task("Anchor there", list=work)
        make_task("Next there", list=work)
        list_ = work
    with transaction.atomic():
        before = _move(task.pk, anchor.pk, list_, _NOT_FUSED, monkeypatch)
        transaction.set_rollback(True)
    after = _move(task.pk, anchor.pk, list_, _FUSED, monkeypatch)
    assert before[0] is True and after[0] is services.PLACED_AND_SAVED
    assert after[1] == before[1]
    assert after[2] == before[2] and after[2]["ok"]
