import os
import random
import subprocess
from collections import defaultdict
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from bench import prepare
from tasks.filters import TsQueryLiteral, prefix_tsquery
from tasks.management.commands.seed_bench import HEAVY_EMAIL, POSITION_GAP, bench_users
from tasks.models import Tag, Task, TaskList, TaskSearch
from tasks.services import task_create, task_update, tasks_bulk_apply
from todo_project.devservices import LOCAL_SERVER_DEFAULTS
from todo_project.tests.helpers import database_url_for_this_test

pytestmark = pytest.mark.django_db(transaction=True)

TINY = {"users": 3, "tasks_per_user": 40, "heavy_tasks": 120, "not_production": True}


def test_seed_bench_creates_the_requested_users_and_tasks(capsys):
    call_command("seed_bench", **TINY)

    assert bench_users().count() == 4
    heavy = User.objects.get(email=HEAVY_EMAIL)
    assert Task.objects.owned_by(heavy).count() == 120
    for user in bench_users().exclude(pk=heavy.pk):
        assert Task.objects.owned_by(user).count() == 40
        assert TaskList.objects.owned_by(user).count() == 5
        assert Tag.objects.owned_by(user).count() == 8
    assert TaskList.objects.owned_by(heavy).count() == 20
    assert "(240 tasks)" in capsys.readouterr().out


def test_seeded_tasks_look_like_the_apps_own():
    call_command("seed_bench", **TINY)
    tasks = list(Task.objects.filter(owner__in=bench_users()).prefetch_related("tags"))

    groups = defaultdict(list)
    for task in tasks:
        groups[(task.owner_id, task.list_id, task.parent_id)].append(task.position)
    for positions in groups.values():
        # Gapped by POSITION_GAP inside each (owner, list, parent), like a run of creates.
        assert sorted(positions) == [POSITION_GAP * n for n in range(1, len(positions) + 1)]

    by_id = {task.id: task for task in tasks}
    for task in tasks:
        assert all(tag.owner_id == task.owner_id for tag in task.tags.all())
        if task.list_id is not None:
            assert TaskList.objects.get(pk=task.list_id).owner_id == task.owner_id
        if task.parent_id is not None:
            parent = by_id[task.parent_id]
            assert parent.parent_id is None  # one level deep
            assert (parent.owner_id, parent.list_id) == (task.owner_id, task.list_id)
        if task.recurrence:
            assert task.due_date is not None and task.recurrence_start == task.due_date
        assert task.completed == (task.completed_at is not None)
    # The variety the scenarios need is there.
    assert any(task.recurrence for task in tasks)
    assert any(task.parent_id for task in tasks)
    assert any(task.due_time for task in tasks)
    assert any(task.description for task in tasks)
    assert any(task.completed for task in tasks)
    # The search rows are filled by PostgreSQL.
    heavy = User.objects.get(email=HEAVY_EMAIL)
    report = TsQueryLiteral(prefix_tsquery("report", heavy))
    assert TaskSearch.objects.filter(owner=heavy, search_vector=report).exists()


def test_seed_bench_is_idempotent_and_reset_replaces_the_data(capsys):
    call_command("seed_bench", **TINY)
    first_ids = set(Task.objects.filter(owner__in=bench_users()).values_list("id", flat=True))

    call_command("seed_bench", **TINY)
    assert "nothing to do" in capsys.readouterr().out
    assert set(Task.objects.filter(owner__in=bench_users()).values_list("id", flat=True)) == (
        first_ids
    )

    call_command("seed_bench", **TINY, reset=True)
    assert Task.objects.filter(owner__in=bench_users()).count() == 240
    assert bench_users().count() == 4

    call_command("seed_bench", **{**TINY, "users": 2, "tasks_per_user": 10, "heavy_tasks": 30})
    assert bench_users().count() == 3
    assert Task.objects.filter(owner__in=bench_users()).count() == 50


def test_seed_bench_writes_nothing_on_stdout_with_verbosity_0(capsys):
    # -v 0 is Django's "minimal output" (review 47d: the seed and the rerun printed their line).
    call_command("seed_bench", **TINY, verbosity=0)
    call_command("seed_bench", **TINY, verbosity=0)

    assert bench_users().count() == 4
    assert capsys.readouterr().out == ""


def test_seed_bench_leaves_other_users_alone(make_user):
    someone = make_user(email="someone@example.com")
    Task.objects.create(owner=someone, title="Mine", position=POSITION_GAP)

    call_command("seed_bench", **TINY)
    call_command("seed_bench", **TINY, reset=True)

    assert Task.objects.owned_by(someone).count() == 1
    assert User.objects.filter(pk=someone.pk).exists()


def test_the_bulk_batches_are_open_top_level_tasks_that_a_reset_reopens(monkeypatch):
    """Every bench bulk request must complete its whole batch: no task of one batch is a subtask
    that another batch's completion cascades to, and a reset reopens them for the next round."""
    call_command("seed_bench", **TINY)
    monkeypatch.setattr(prepare, "BULK_SIZE", 4)
    user = bench_users().exclude(email=HEAVY_EMAIL).order_by("email").first()

    batches = prepare.user_entry(user, random.Random(1))["bulk"]

    ids = [task_id for batch in batches for task_id in batch]
    assert [len(batch) for batch in batches] == [4] * prepare.BULK_BATCHES
    assert len(set(ids)) == len(ids)
    tasks = Task.objects.filter(pk__in=ids)
    assert len(tasks) == len(ids)
    assert all(not t.completed and t.parent_id is None and t.recurrence is None for t in tasks)
    for batch in batches:
        updated = tasks_bulk_apply(user=user, action="complete", ids=batch)
        assert updated == len(batch)

    assert prepare.main(["--reset-only"]) == 0
    assert not Task.objects.filter(pk__in=ids, completed=True).exists()


def test_a_reset_undoes_recurring_completions_and_deletes_what_the_runs_made():
    """Each run completed the same recurring tasks' next occurrences and left both behind: the
    data set grew by ~4,000 tasks a run and every series moved a period further."""
    call_command("seed_bench", **TINY)
    user = bench_users().exclude(email=HEAVY_EMAIL).order_by("email").first()
    seeded = {row["id"]: row for row in Task.objects.values()}
    recurring = Task.objects.filter(owner=user, completed=False, recurrence__isnull=False).first()
    done = task_update(task=recurring, user=user, data={"completed": True})
    copy = Task.objects.get(pk=done.next_occurrence_id)
    task_update(task=copy, user=user, data={"completed": True})  # and its copy in turn
    task_create(user=user, data={"title": "made by the create scenario", "tags": ["new"]})
    assert Task.objects.count() == len(seeded) + 3

    assert prepare.main(["--reset-only"]) == 0
    after = {row["id"]: row for row in Task.objects.values()}
    assert set(after) == set(seeded)
    fields = ["completed", "completed_at", "next_occurrence_id", "due_date", "recurrence"]
    assert {f: after[recurring.pk][f] for f in fields} == {
        f: seeded[recurring.pk][f] for f in fields
    }


@pytest.mark.parametrize("option", ["--users", "--tasks-per-user", "--heavy-tasks"])
@pytest.mark.parametrize("size", ["-5", "0"])
def test_a_size_below_one_is_refused_and_nothing_is_seeded(option, size):
    with pytest.raises(CommandError, match=f"argument {option}: must be a whole number"):
        call_command("seed_bench", option, size)

    assert not bench_users().exists()


def test_it_refuses_a_database_not_the_project_local_one_unless_told_it_is_no_production(
    monkeypatch,
):
    from tasks.management.commands import seed_bench

    monkeypatch.setattr(seed_bench, "on_the_project_local_database", lambda: False)
    sizes = {**TINY, "not_production": False}
    with pytest.raises(CommandError, match="runs on the project-local database under .data/"):
        call_command("seed_bench", **sizes)
    assert not bench_users().exists()

    call_command("seed_bench", **TINY)
    assert bench_users().count() == 4


def test_its_help_warns_off_production_and_says_what_each_size_is(capsys):
    with pytest.raises(SystemExit):
        call_command("seed_bench", "--help")

    text = " ".join(capsys.readouterr().out.split())
    assert "NEVER run it against a production database" in text
    assert "--users USERS ordinary bench users" in text
    assert "--tasks-per-user TASKS_PER_USER tasks of each ordinary user" in text
    assert "--heavy-tasks HEAVY_TASKS tasks of the one heavy user" in text


def test_prepare_refuses_data_with_fewer_bulk_batches_than_wrk_threads(tmp_path):
    """With too few open tasks, a wrk thread got no bulk batch and failed in Lua mid-run."""
    call_command("seed_bench", **TINY)  # 40 tasks a user: no batch of 100
    out = tmp_path / "data.lua"

    with pytest.raises(SystemExit, match=r"needs at least 2 batches of 100 .* make 0\."):
        prepare.main([str(out), "--min-bulk-batches=2"])

    assert not out.exists()


def test_prepare_writes_the_data_when_every_thread_gets_a_batch(tmp_path, monkeypatch):
    call_command("seed_bench", **TINY)
    monkeypatch.setattr(prepare, "BULK_SIZE", 4)  # 3 users x BULK_BATCHES batches of 4
    out = tmp_path / "data.lua"

    assert prepare.main([str(out), "--min-bulk-batches=9"]) == 0
    assert out.read_text().startswith("return {") and "bulk_size=4" in out.read_text()
    with pytest.raises(SystemExit, match="needs at least 10 batches of 4"):
        prepare.main([str(out), "--min-bulk-batches=10"])


def test_the_bench_runner_checks_the_batches_before_starting_any_server(tmp_path):
    """bench/run.py's prepare step, as it runs it, against this test database."""
    from bench import run

    call_command("seed_bench", **TINY)
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_this_test(),
        "SECRET_KEY": "bench-test-" * 5,  # bench/run.py's server_env gives it one
        **LOCAL_SERVER_DEFAULTS,  # make bench runs it under todo_project.devservices
    }
    args = SimpleNamespace(threads=2, users=200)
    bulk = [row for row in run.SCENARIOS if row[0] == "bulk complete 100"]

    done = subprocess.run(
        run.prepare_command(args, bulk), env=env, cwd=run.ROOT, capture_output=True, text=True
    )

    assert done.returncode == 1
    assert "`bulk complete 100` needs at least 2 batches" in done.stderr
    assert "Traceback" not in done.stderr
    reads = [row for row in run.SCENARIOS if row[0] == "list"]
    assert run.prepare_command(args, reads)[-1] == "--min-bulk-batches=0"


def test_seed_bench_sizes_given_on_the_command_line_are_read_as_numbers():
    # The suite passes sizes as keyword options (call_command(users=2)), which skips argparse's
    # `type`: the CLI path `make bench` uses (`--users 2`) ran positive_int's success return
    # nowhere, and a non-number nowhere either.
    from django.core.management import CommandError, call_command

    from tasks.management.commands.seed_bench import positive_int

    assert positive_int("3") == 3
    assert positive_int("007") == 7
    with pytest.raises(CommandError, match="must be a whole number of at least 1, not 'x'"):
        call_command("seed_bench", "--users", "x")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sizes",
    [
        ["--users", "99999999999999999999"],  # took 13.7 GB in 10 minutes, no statement yet
        ["--users", "100001", "--tasks-per-user", "1"],
        ["--users", "1000", "--tasks-per-user", "10000", "--heavy-tasks", "1"],
    ],
)
def test_sizes_past_what_the_machine_holds_are_refused_before_anything(sizes, monkeypatch):
    # Review 44d: a mistyped size built its users in memory until the machine ran out.
    from tasks.management.commands import seed_bench

    monkeypatch.setattr(
        seed_bench.Command, "_seed", lambda *a: pytest.fail("seeded past the bounds")
    )
    with pytest.raises(CommandError, match="seeds at most 100,000 users and 10,000,000 tasks"):
        call_command("seed_bench", *sizes, "--not-production")
    assert not bench_users().exists()
