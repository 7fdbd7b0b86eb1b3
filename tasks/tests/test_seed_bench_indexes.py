"""seed_bench drops tasks_task's indexes, unique constraints and foreign keys (and the search
index and key of tasks_tasksearch, which a trigger fills) for its COPY and
builds them again (tasks_bulk_load): afterwards the schema is the one the migrations made."""

import re

import pytest
from django.core.management import call_command
from django.db import connection

from tasks.management.commands import seed_bench
from tasks.management.commands.seed_bench import bench_users
from tasks.models import Task, TaskSearch

pytestmark = pytest.mark.django_db(transaction=True)

SMALL = {"users": 3, "tasks_per_user": 20, "heavy_tasks": 50, "not_production": True}
TABLES = ["tasks_task", "tasks_task_tags", "tasks_tasksearch"]
WITH_CLAUSE = re.compile(r"(?<=WITH \()([^)]*)(?=\))")


def schema() -> dict:
    """Indexes, constraints and triggers of the tables the seed alters, as PostgreSQL has them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)",
            [TABLES],
        )
        # Storage parameters in one order: the seed adds Django's index SQL, (limit, fastupdate);
        # migration 0009 set them with ALTER INDEX, (fastupdate, limit). The same index: before
        # this, whether the two texts matched hung on which tests had seeded earlier.
        indexes = sorted(
            (table, name, WITH_CLAUSE.sub(lambda m: ", ".join(sorted(m[1].split(", "))), text))
            for table, name, text in cursor.fetchall()
        )
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), condeferrable,"
            " condeferred, convalidated FROM pg_constraint WHERE conrelid = ANY(%s::regclass[])",
            [TABLES],
        )
        constraints = sorted(cursor.fetchall())
        # Foreign keys live on as triggers on both sides; internal triggers' names hold an OID.
        cursor.execute(
            "SELECT t.tgrelid::regclass::text, coalesce(c.conname, t.tgname),"
            " t.tgfoid::regprocedure::text, t.tgtype, t.tgenabled, t.tgdeferrable,"
            " t.tginitdeferred FROM pg_trigger t"
            " LEFT JOIN pg_constraint c ON c.oid = t.tgconstraint"
            " WHERE t.tgrelid = ANY(%s::regclass[]) OR c.conrelid = ANY(%s::regclass[])",
            [TABLES, TABLES],
        )
        triggers = sorted(cursor.fetchall())
    return {"indexes": indexes, "constraints": constraints, "triggers": triggers}


def test_a_seed_leaves_indexes_constraints_and_keys_as_the_migrations_made_them():
    before = schema()
    names = {name for _, name, _ in before["indexes"]}
    assert {index.name for index in Task._meta.indexes} <= names
    assert "tasksearch_vector" in names
    assert "task_position_unique_in_group" in names
    assert any("FOREIGN KEY" in definition for _, _, definition, *_ in before["constraints"])
    # The links' owner check (migration 0029), which the seed turns off while it loads.
    assert ("tasks_task_tags", seed_bench.LINK_OWNER_CHECK) in {
        (table, name) for table, name, *_ in before["triggers"]
    }

    call_command("seed_bench", **SMALL, reset=True)
    assert schema() == before
    assert Task.objects.filter(owner__in=bench_users()).count() == 3 * 20 + 50
    assert TaskSearch.objects.filter(owner__in=bench_users()).count() == 3 * 20 + 50

    # Again over the seeded rows: the delete runs with the keys dropped too.
    call_command("seed_bench", **SMALL, reset=True)
    assert schema() == before
    assert Task.objects.filter(owner__in=bench_users()).count() == 3 * 20 + 50


def test_a_failed_seed_rolls_back_to_the_same_schema(monkeypatch):
    before = schema()
    seed = seed_bench.Command._seed

    def seed_then_fail(self, *args, **kwargs):
        seed(self, *args, **kwargs)  # every row written, nothing rebuilt yet
        raise RuntimeError("seed failed")

    monkeypatch.setattr(seed_bench.Command, "_seed", seed_then_fail)
    with pytest.raises(RuntimeError, match="seed failed"):
        call_command("seed_bench", **SMALL, reset=True)

    assert schema() == before
    assert not bench_users().exists()
