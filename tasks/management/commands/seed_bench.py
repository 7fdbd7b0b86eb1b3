"""Seeds the benchmark data set (bench/README.md): many ordinary users and one heavy user.

Default: 1,000 users with 1,000 tasks each and one user with 100,000 tasks, written with COPY
in one transaction (about three minutes here). Running it again with the same sizes does
nothing; other sizes, or `--reset`, replace the bench data. Only users whose address ends in
BENCH_EMAIL_DOMAIN are ever touched.

A benchmark tool, never to be run against a production database: for the COPY it drops the
indexes, unique constraints and foreign keys of tasks_task and tasks_task_tags and builds them
again (tasks_bulk_load), which takes ACCESS EXCLUSIVE locks on those tables and the ones their
keys reference (accounts_user, tasks_tasklist, tasks_tag) until it commits: every API request,
sign-in included, waits for the whole seed.
"""

import argparse
import copy
import random
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time

from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, models, transaction

from accounts.models import User
from tasks.management.commands.seed_demo import on_the_project_local_database
from tasks.models import Tag, Task, TaskList, TaskSearch

BENCH_EMAIL_DOMAIN = "bench.example"
HEAVY_EMAIL = f"bench-heavy@{BENCH_EMAIL_DOMAIN}"
BENCH_PASSWORD = "bench-password-2026"
# The app's own gap between neighbours (services.task_move): moves find room without renumbering.
POSITION_GAP = 1024
DEFAULT_USERS = 1_000
DEFAULT_TASKS_PER_USER = 1_000
DEFAULT_HEAVY_TASKS = 100_000
# The largest data set it seeds. The users, with their lists and tags, are objects in memory
# (~10 KB a user: 1 GB at 100,000) and so are the tasks' tag links (~300 B a task: 3 GB at
# 10,000,000); `--users 99999999999999999999` took 13.7 GB in 10 minutes before its first
# statement, on a machine the benchmark shares (review 44d).
MAX_USERS = 100_000
MAX_TASKS = 10_000_000

# A small vocabulary, so that `search=` finds a realistic share of tasks (one word is in ~3%).
WORDS = [
    "report",
    "invoice",
    "budget",
    "meeting",
    "review",
    "draft",
    "email",
    "call",
    "plan",
    "order",
    "garden",
    "kitchen",
    "car",
    "dentist",
    "doctor",
    "school",
    "birthday",
    "present",
    "travel",
    "flight",
    "hotel",
    "visa",
    "passport",
    "tax",
    "insurance",
    "bank",
    "loan",
    "rent",
    "lease",
    "contract",
    "client",
    "project",
    "release",
    "deploy",
    "server",
    "backup",
    "database",
    "design",
    "sketch",
    "slides",
    "notes",
    "agenda",
    "minutes",
    "summary",
    "letter",
    "form",
    "renewal",
    "ticket",
    "concert",
    "museum",
    "library",
    "books",
    "groceries",
    "laundry",
    "paint",
    "repair",
    "plumber",
    "electrician",
    "roof",
    "window",
    "door",
    "fence",
    "bike",
    "train",
    "bus",
    "gym",
    "yoga",
    "run",
    "swim",
    "recipe",
    "dinner",
    "lunch",
    "breakfast",
    "party",
]
VERBS = [
    "buy",
    "call",
    "check",
    "fix",
    "send",
    "write",
    "read",
    "book",
    "plan",
    "pay",
    "clean",
    "prepare",
    "review",
    "update",
]
TAG_NAMES = [
    "home",
    "work",
    "money",
    "errands",
    "health",
    "family",
    "urgent",
    "later",
    "waiting",
    "someday",
    "phone",
    "computer",
    "shopping",
    "car",
    "garden",
    "travel",
    "reading",
    "admin",
    "calls",
    "ideas",
    "school",
    "kids",
    "friends",
    "taxes",
    "bills",
    "music",
    "sport",
    "learning",
    "cooking",
    "repairs",
]
LIST_NAMES = [
    "Home",
    "Work",
    "Errands",
    "Projects",
    "Shopping",
    "Health",
    "Finance",
    "Travel",
    "Garden",
    "Reading",
    "Learning",
    "Family",
    "Friends",
    "Car",
    "House",
    "Admin",
    "Ideas",
    "Someday",
    "Music",
    "Sport",
]
RECURRENCES = (
    "FREQ=DAILY",
    "FREQ=WEEKLY;BYDAY=MO",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH",
    "FREQ=MONTHLY;BYMONTHDAY=1",
    "FREQ=YEARLY",
)
TIMEZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")

TASK_COLUMNS = (
    "id",
    "owner_id",
    "title",
    "description",
    "completed",
    "completed_at",
    "priority",
    "due_date",
    "due_time",
    "list_id",
    "parent_id",
    "position",
    "recurrence",
    "recurrence_start",
    "version",
    "created_at",
    "updated_at",
)


@dataclass
class Sizes:
    users: int
    tasks_per_user: int
    heavy_tasks: int

    @property
    def label(self) -> str:
        # Kept in the heavy user's display name: the marker of a complete seed of these sizes.
        return f"Bench heavy {self.users}x{self.tasks_per_user}+{self.heavy_tasks}"


@dataclass
class OwnerRows:
    owner_id: uuid.UUID
    list_ids: list[uuid.UUID]
    tag_ids: list[int]
    # Next free position per (list, parent), like services do for a new task.
    next_position: dict = field(default_factory=dict)


class TaskRowFactory:
    """Deterministic (seeded) task rows, with the shape of real use."""

    def __init__(self, rng: random.Random, seeded_at: datetime) -> None:
        self.rng = rng
        self.seeded_at = seeded_at
        self.today = seeded_at.date()

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def _position(self, owner: OwnerRows, list_id, parent_id) -> int:
        key = (list_id, parent_id)
        position = owner.next_position.get(key, 0) + POSITION_GAP
        owner.next_position[key] = position
        return position

    def rows(self, owner: OwnerRows, count: int):
        """Yields (task row, tag ids) pairs; parents always come before their subtasks."""
        rng = self.rng
        recent_parents: dict = {}
        for _ in range(count):
            task_id = self.uuid4()
            list_id = rng.choice(owner.list_ids) if rng.random() < 0.8 else None
            parent_id = None
            candidates = recent_parents.get(list_id)
            if candidates and rng.random() < 0.1:
                parent_id = rng.choice(candidates)
            created_at = self.seeded_at - timedelta(seconds=rng.randrange(3600, 365 * 86400))
            updated_at = created_at + timedelta(seconds=rng.randrange(0, 3000))
            due_date = due_time = recurrence = None
            if rng.random() < 0.6:
                due_date = self.today + timedelta(days=rng.randrange(-60, 120))
                if rng.random() < 0.3:
                    due_time = clock_time(rng.randrange(7, 21), rng.choice((0, 15, 30, 45)))
            completed = rng.random() < 0.3
            top_level_open = parent_id is None and due_date is not None and not completed
            if top_level_open and rng.random() < 0.08:
                recurrence = rng.choice(RECURRENCES)
            title = " ".join((rng.choice(VERBS), rng.choice(WORDS), rng.choice(WORDS)))
            description = (
                " ".join(rng.choices(WORDS, k=rng.randrange(3, 30))) if rng.random() < 0.5 else ""
            )
            row = (
                task_id,
                owner.owner_id,
                title.capitalize(),
                description,
                completed,
                updated_at if completed else None,
                rng.choices((0, 1, 2, 3), weights=(50, 20, 20, 10))[0],
                due_date,
                due_time,
                list_id,
                parent_id,
                self._position(owner, list_id, parent_id),
                recurrence,
                due_date if recurrence else None,
                rng.randrange(1, 4),
                created_at,
                updated_at,
            )
            tags = rng.sample(owner.tag_ids, k=min(len(owner.tag_ids), rng.choice((0, 0, 1, 2, 3))))
            if parent_id is None and recurrence is None:
                # Subtasks hang off recent top-level tasks of the same list; one level deep.
                bucket = recent_parents.setdefault(list_id, [])
                bucket.append(task_id)
                if len(bucket) > 20:
                    bucket.pop(0)
            yield row, tags


# The foreign key of tasks_tasksearch, as migration 0019 adds it (Django does not manage it).
TASK_SEARCH_KEY = (
    "tasks_tasksearch_task_id_fk_tasks_task_id",
    "FOREIGN KEY (task_id) REFERENCES tasks_task (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED",
)


def _unchecked(field):
    """The same foreign key without its database constraint (alter_field drops, then re-adds it)."""
    unchecked = copy.copy(field)
    unchecked.db_constraint = False
    return unchecked


# Migration 0029's trigger: each inserted link's task and tag of one owner.
LINK_OWNER_CHECK = "task_tags_inserted_one_owner"


@contextmanager
def tasks_bulk_load():
    """Drops what PostgreSQL would otherwise maintain row by row during the seed and builds it
    again afterwards, each in one pass, from the models' own definitions (same names, same SQL).

    That is Task's Meta indexes and unique constraints, TaskSearch's search index (its rows are
    written by a trigger on tasks_task at the end of the COPY), and the foreign keys of
    tasks_task, tasks_task_tags and tasks_tasksearch (that one PostgreSQL's own, ON DELETE
    CASCADE: migration 0019, TASK_SEARCH_KEY here). At full size, maintaining the indexes made the COPY ~60 s slower, and the
    deferred key checks (one query per key and row, at the commit) took ~55 s; building the
    indexes and validating the keys afterwards takes ~25 s. The links' owner check (migration
    0029) is off meanwhile too: it would read and lock every task and tag once a link, and the
    seed links each task to its owner's tags only. Inside the seed's transaction: a failed seed
    rolls all of it back. The ALTER TABLEs lock tasks_task, and the tables its keys reference,
    until the commit.
    """
    through = Task.tags.through
    foreign_keys = [
        (model, field)
        for model in (Task, through)
        for field in model._meta.local_concrete_fields
        if field.remote_field is not None and field.db_constraint
    ]
    uniques = [c for c in Task._meta.constraints if isinstance(c, models.UniqueConstraint)]
    with connection.schema_editor() as editor:
        for model, field in foreign_keys:
            editor.alter_field(model, field, _unchecked(field))
        for model in (Task, TaskSearch):
            for index in model._meta.indexes:
                editor.remove_index(model, index)
        for constraint in uniques:
            editor.remove_constraint(Task, constraint)
        editor.execute(f"ALTER TABLE tasks_tasksearch DROP CONSTRAINT {TASK_SEARCH_KEY[0]}")
        editor.execute(f"ALTER TABLE tasks_task_tags DISABLE TRIGGER {LINK_OWNER_CHECK}")
    yield
    with connection.schema_editor() as editor:
        editor.execute(f"ALTER TABLE tasks_task_tags ENABLE TRIGGER {LINK_OWNER_CHECK}")
        for constraint in uniques:
            editor.add_constraint(Task, constraint)
        for model in (Task, TaskSearch):
            for index in model._meta.indexes:
                editor.add_index(model, index)
        for model, field in foreign_keys:
            editor.alter_field(model, _unchecked(field), field)
        editor.execute("ALTER TABLE tasks_tasksearch ADD CONSTRAINT {} {}".format(*TASK_SEARCH_KEY))


def bench_users():
    return User.objects.filter(email__endswith=f"@{BENCH_EMAIL_DOMAIN}")


def delete_bench_data() -> None:
    """Removes every bench user with their data; set-based SQL, the ORM cascade is too slow."""
    owners = "SELECT id FROM accounts_user WHERE email LIKE %s"
    pattern = f"%@{BENCH_EMAIL_DOMAIN}"
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM tasks_task_tags WHERE task_id IN "
            f"(SELECT id FROM tasks_task WHERE owner_id IN ({owners}))",
            [pattern],
        )
        # Their search rows by hand: the seed runs this with tasks_tasksearch's foreign key (and
        # so its ON DELETE CASCADE) dropped (tasks_bulk_load).
        cursor.execute(f"DELETE FROM tasks_tasksearch WHERE owner_id IN ({owners})", [pattern])
        cursor.execute(f"DELETE FROM tasks_task WHERE owner_id IN ({owners})", [pattern])
        cursor.execute(f"DELETE FROM tasks_tag WHERE owner_id IN ({owners})", [pattern])
        cursor.execute(f"DELETE FROM tasks_tasklist WHERE owner_id IN ({owners})", [pattern])
    # Whatever else points at a user (tokens, idempotency records...) goes the ORM way.
    bench_users().delete()


def positive_int(text: str) -> int:
    """argparse type of the sizes: a size of 0 or less would seed nothing the bench can use."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


class Command(BaseCommand):
    help = (
        "Seed the benchmark data set (bench users and one heavy user); see bench/README.md. "
        "A benchmark tool: NEVER run it against a production database. It deletes every "
        f"*@{BENCH_EMAIL_DOMAIN} user, and for its COPY drops and rebuilds the indexes, "
        "constraints and foreign keys of tasks_task and tasks_task_tags, which locks the users, "
        "lists, tags and tasks tables against every read and write until it commits (minutes "
        "at the default sizes)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--users",
            type=positive_int,
            default=DEFAULT_USERS,
            help=f"ordinary bench users (default {DEFAULT_USERS:,})",
        )
        parser.add_argument(
            "--tasks-per-user",
            type=positive_int,
            default=DEFAULT_TASKS_PER_USER,
            help=f"tasks of each ordinary user (default {DEFAULT_TASKS_PER_USER:,})",
        )
        parser.add_argument(
            "--heavy-tasks",
            type=positive_int,
            default=DEFAULT_HEAVY_TASKS,
            help=f"tasks of the one heavy user, {HEAVY_EMAIL} (default {DEFAULT_HEAVY_TASKS:,})",
        )
        parser.add_argument("--seed", type=int, default=7, help="random seed (reproducible)")
        parser.add_argument(
            "--reset", action="store_true", help="replace the bench data even if present"
        )
        parser.add_argument(
            "--not-production",
            action="store_true",
            help="run on a database other than the project-local one under .data/ (a "
            "benchmark database set by DATABASE_URL); you confirm it is not production",
        )

    def handle(self, *args, **options) -> None:
        # One mistyped command in a production container would lock every table for minutes
        # and add 1,001 accounts whose password is in this file.
        if not (options["not_production"] or on_the_project_local_database()):
            raise CommandError(
                "seed_bench locks the users and tasks tables for minutes and makes accounts "
                "with a published password: it runs on the project-local database under "
                ".data/ (make bench), or with --not-production on a benchmark database."
            )
        sizes = Sizes(options["users"], options["tasks_per_user"], options["heavy_tasks"])
        tasks = sizes.users * sizes.tasks_per_user + sizes.heavy_tasks
        if sizes.users > MAX_USERS or tasks > MAX_TASKS:
            raise CommandError(
                f"{sizes.users:,} users and {tasks:,} tasks: seed_bench seeds at most "
                f"{MAX_USERS:,} users and {MAX_TASKS:,} tasks (the default: "
                f"{DEFAULT_USERS:,} and {DEFAULT_USERS * DEFAULT_TASKS_PER_USER + DEFAULT_HEAVY_TASKS:,})."
            )
        if (
            not options["reset"]
            and User.objects.filter(email=HEAVY_EMAIL, display_name=sizes.label).exists()
        ):
            if options["verbosity"] > 0:  # -v 0: nothing on stdout
                self.stdout.write(f"Bench data already seeded ({sizes.label}); nothing to do.")
            return
        started = time.monotonic()
        with transaction.atomic(), tasks_bulk_load():
            delete_bench_data()
            total = self._seed(sizes, random.Random(options["seed"]))
        with connection.cursor() as cursor:
            # Fresh statistics and visibility map: index-only counts, plans as in steady state.
            tables = (
                "accounts_user",
                "tasks_tasklist",
                "tasks_tag",
                "tasks_task",
                "tasks_tasksearch",
            )
            for table in tables:
                cursor.execute(f"VACUUM (ANALYZE) {table}")
            cursor.execute("VACUUM (ANALYZE) tasks_task_tags")
        if options["verbosity"] > 0:
            self.stdout.write(
                f"Seeded {sizes.users} users x {sizes.tasks_per_user} tasks and one heavy user "
                f"with {sizes.heavy_tasks} ({total} tasks) in {time.monotonic() - started:.1f} s."
            )

    def _seed(self, sizes: Sizes, rng: random.Random) -> int:
        seeded_at = datetime.now(UTC).replace(microsecond=0)
        password = make_password(BENCH_PASSWORD)  # hashed once: Argon2 per user takes minutes
        people = [
            User(
                email=f"bench-{number:05d}@{BENCH_EMAIL_DOMAIN}",
                password=password,
                display_name=f"Bench {number}",
                timezone=TIMEZONES[number % len(TIMEZONES)],
                date_joined=seeded_at,
            )
            for number in range(sizes.users)
        ]
        # Written last in the same transaction: its label marks the seed as complete.
        heavy = User(
            email=HEAVY_EMAIL,
            password=password,
            display_name=sizes.label,
            timezone="Europe/Berlin",
            date_joined=seeded_at,
        )
        User.objects.bulk_create([*people, heavy], batch_size=2000)
        factory = TaskRowFactory(rng, seeded_at)
        plan = [(user, sizes.tasks_per_user, 5, 8) for user in people]
        plan.append((heavy, sizes.heavy_tasks, 20, 30))
        owners = self._lists_and_tags(plan, factory)
        total = 0
        with connection.cursor() as cursor:
            raw = cursor.cursor  # psycopg's own cursor, for COPY
            tag_links = []
            with raw.copy(f"COPY tasks_task ({', '.join(TASK_COLUMNS)}) FROM STDIN") as copy:
                for owner, (_, count, _, _) in zip(owners, plan, strict=True):
                    for row, tags in factory.rows(owner, count):
                        copy.write_row(row)
                        tag_links.extend((row[0], tag) for tag in tags)
                        total += 1
            with raw.copy("COPY tasks_task_tags (task_id, tag_id) FROM STDIN") as copy:
                for link in tag_links:
                    copy.write_row(link)
        return total

    def _lists_and_tags(self, plan, factory: TaskRowFactory) -> list[OwnerRows]:
        lists, tags = [], []
        for user, _, list_count, tag_count in plan:
            lists.extend(
                TaskList(
                    id=factory.uuid4(),
                    owner=user,
                    name=name,
                    position=index * POSITION_GAP,
                    color=None if index % 3 else "#1565C0",
                )
                for index, name in enumerate(LIST_NAMES[:list_count], start=1)
            )
            tags.extend(Tag(owner=user, name=name) for name in TAG_NAMES[:tag_count])
        TaskList.objects.bulk_create(lists, batch_size=5000)
        Tag.objects.bulk_create(tags, batch_size=5000)
        by_owner: dict = {user.pk: OwnerRows(user.pk, [], []) for user, _, _, _ in plan}
        for task_list in lists:
            by_owner[task_list.owner_id].list_ids.append(task_list.id)
        for tag in tags:
            by_owner[tag.owner_id].tag_ids.append(tag.id)
        return [by_owner[user.pk] for user, _, _, _ in plan]
