"""Puts the bench data back in its starting state and writes the load generator's data file.

    python -m bench.prepare OUT.lua [--users N] [--min-bulk-batches N]
    python -m bench.prepare --reset-only

Undoes what the write scenarios of an earlier run did (tasks they created are deleted, tasks
they completed are reopened), then mints an access token for N bench users (and the heavy user)
and picks, for each, the task ids the scenarios use. The file is Lua source (`return {...}`),
read once per wrk thread. `--reset-only` undoes and writes nothing: bench/run.py runs it before
each round of `bulk complete 100`, to reopen the batches. `--min-bulk-batches N` refuses, before
any load, data too small for that scenario: each of wrk's N threads needs a batch of its own.
"""

import argparse
import os
import random
import sys
from datetime import timedelta
from pathlib import Path

CREATED_TITLE = "bench-created"  # the create scenario's titles (the reset goes by date)
BULK_SIZE = 100
# Batches per user (about all the open top-level plain tasks a seeded user has): 600 for 200
# users, a few seconds of the bulk scenario, which bench/run.py therefore runs in short rounds,
# reopening them before each.
BULK_BATCHES = 3


def lua(value) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}={lua(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "{" + ",".join(lua(item) for item in value) + "}"
    return str(value)


def reset_write_scenarios(seeded_at) -> None:
    """Puts the bench users' tasks back as seeded. Every task the runs made is newer than the
    seed (created ones, and the next occurrences of completed recurring ones): they go. Every
    task the runs completed is open again, without a next occurrence, so that each run
    completes the same recurring tasks from the same dates; before, each run left ~4,000 more
    tasks behind (+110,000 in a day's runs) and moved every series a period further."""
    from django.db import connection

    owners = "SELECT id FROM accounts_user WHERE email LIKE '%%@bench.example'"
    made_by_runs = f"SELECT id FROM tasks_task WHERE owner_id IN ({owners}) AND created_at > %s"
    with connection.cursor() as cursor:
        # Seeded completions are older than the seed; later ones came from a run.
        cursor.execute(
            "UPDATE tasks_task SET completed = false, completed_at = NULL, "
            "next_occurrence_id = NULL "
            f"WHERE owner_id IN ({owners}) AND completed AND completed_at > %s",
            [seeded_at],
        )
        cursor.execute(
            f"DELETE FROM tasks_task_tags WHERE task_id IN ({made_by_runs})", [seeded_at]
        )
        cursor.execute(f"DELETE FROM tasks_task WHERE id IN ({made_by_runs})", [seeded_at])


def token_for(user) -> str:
    from accounts.tokens import GENERATION_CLAIM, AccessToken

    token = AccessToken.for_user(user)
    token[GENERATION_CLAIM] = user.token_generation
    token.set_exp(lifetime=timedelta(hours=2))  # outlives any run, whatever the setting says
    return str(token)


def user_entry(user, rng: random.Random) -> dict:
    from tasks.models import Task

    tasks = Task.objects.owned_by(user)
    ids = [str(pk) for pk in tasks.order_by("?").values_list("id", flat=True)[:20]]
    recurring = [
        str(pk)
        for pk in tasks.filter(completed=False, recurrence__isnull=False).values_list(
            "id", flat=True
        )[:20]
    ]
    plain = tasks.filter(recurrence__isnull=True)
    # Moves happen among top-level siblings of one list.
    list_id = (
        tasks.filter(parent__isnull=True, list__isnull=False)
        .values_list("list_id", flat=True)
        .first()
    )
    siblings = [
        str(pk)
        for pk in plain.filter(list_id=list_id, parent__isnull=True).values_list("id", flat=True)[
            :12
        ]
    ]
    # Top-level tasks only: a batch's task is never completed by another batch completing its
    # parent, so every answer completes its whole batch (scenario.lua checks `updated`).
    open_ids = [
        str(pk)
        for pk in plain.filter(completed=False, parent__isnull=True).values_list("id", flat=True)[
            : BULK_SIZE * BULK_BATCHES
        ]
    ]
    rng.shuffle(ids)
    return {
        "token": token_for(user),
        "ids": ids,
        "recurring": recurring,
        "siblings": siblings,
        "list": str(list_id),
        "bulk": [
            open_ids[start : start + BULK_SIZE]
            for start in range(0, len(open_ids) - BULK_SIZE + 1, BULK_SIZE)
        ],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--reset-only", action="store_true", help="undo, write no data file")
    parser.add_argument(
        "--min-bulk-batches",
        type=int,
        default=0,
        help="fail unless there are this many bulk batches (bench/run.py: its wrk threads)",
    )
    args = parser.parse_args(argv)
    if (args.out is None) != args.reset_only:
        parser.error("give OUT.lua, or --reset-only")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "todo_project.settings")
    import django

    django.setup()
    from django.db import transaction

    from tasks.management.commands.seed_bench import HEAVY_EMAIL, bench_users

    heavy = bench_users().get(email=HEAVY_EMAIL)
    with transaction.atomic():
        reset_write_scenarios(heavy.date_joined)
    from django.db import connection

    with connection.cursor() as cursor:
        # Writes of earlier runs leave pages not all-visible: counts would visit the heap.
        cursor.execute("VACUUM (ANALYZE) tasks_task")
    if args.reset_only:
        return 0
    rng = random.Random(11)
    users = list(bench_users().exclude(pk=heavy.pk).order_by("email")[: args.users])
    entries = [user_entry(user, rng) for user in users]
    batches = sum(len(entry["bulk"]) for entry in entries)
    if batches < args.min_bulk_batches:
        # scenario.lua gives each wrk thread a share of the batches; a thread without one fails
        # in Lua ("attempt to index local 'batch'") in the middle of the run.
        sys.exit(
            f"bench.prepare: `bulk complete 100` needs at least {args.min_bulk_batches} batches "
            f"of {BULK_SIZE} open top-level tasks (one per wrk thread); the {len(users)} users' "
            f"tasks make {batches}. Seed more tasks per user (--seed-tasks; about 200 make a "
            "batch), run fewer --threads, or leave the scenario out (--scenarios)."
        )
    data = {
        "users": entries,
        "heavy": {"token": token_for(heavy)},
        "created_title": CREATED_TITLE,
        "bulk_size": BULK_SIZE,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("return " + lua(data) + "\n")
    print(f"Wrote {args.out} ({len(users)} users).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
