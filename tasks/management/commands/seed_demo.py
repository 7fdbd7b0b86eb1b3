"""Creates the demo account with a few lists and tasks, if it does not exist yet.

Local development only: the accounts it makes have passwords published in the README, so it
refuses to run unless DEBUG is on (`make run` sets DEBUG=1).
"""

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from accounts.models import User
from tasks import recurrence, services
from tasks.models import Priority
from todo_project import devservices

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password-2026"
# Only for a local development database (make run passes --with-admin): a known password.
DEMO_ADMIN_EMAIL = "admin@example.com"
DEMO_ADMIN_PASSWORD = "admin-password-2026"


def on_the_project_local_database() -> bool:
    """Whether the database is the PostgreSQL todo_project.devservices runs under .data/: one
    Unix socket there, and nothing libpq would reach instead (a host list falls back to its
    next host, a `hostaddr` connects over TCP)."""
    settings_dict = connection.settings_dict
    options = settings_dict["OPTIONS"]
    host = settings_dict["HOST"] or options.get("host", "")
    return (
        host.startswith("/")
        and "," not in host
        and not options.get("hostaddr")
        and Path(host).resolve().is_relative_to(devservices.DATA_DIR.resolve())
    )


class Command(BaseCommand):
    help = (
        "Create the demo user (demo@example.com) with sample lists and tasks, if absent. "
        "Local development only: refuses to run unless DEBUG is on (its passwords are public)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--with-admin",
            action="store_true",
            help=f"also create the superuser {DEMO_ADMIN_EMAIL} (local development only)",
        )

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        # -v 0: nothing on stdout, as Django's own commands (the refusals and warnings go to
        # stderr whatever the verbosity).
        say = self.stdout.write if options["verbosity"] > 0 else lambda text: None
        # With DEBUG off this is a real deployment: an account whose password anyone can read in
        # the README (a superuser with --with-admin) would be a way in.
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates accounts with passwords published in the README: it runs "
                "only with DEBUG on, on a local development database (make run does it)."
            )
        if options["with_admin"] and not on_the_project_local_database():
            # make run with DATABASE_URL exported (a shared or production database, perhaps):
            # no superuser whose password anyone can read.
            self.stderr.write(
                f"Not creating the demo superuser {DEMO_ADMIN_EMAIL}: the database is not the "
                "project-local one under .data/ (DATABASE_URL is set). Use createsuperuser."
            )
        elif options["with_admin"] and not User.objects.filter(email=DEMO_ADMIN_EMAIL).exists():
            User.objects.create_superuser(
                email=DEMO_ADMIN_EMAIL, password=DEMO_ADMIN_PASSWORD, display_name="Admin"
            )
            say(f"Created demo superuser {DEMO_ADMIN_EMAIL}.")
        if User.objects.filter(email=DEMO_EMAIL).exists():
            say(f"Demo user {DEMO_EMAIL} already exists.")
            return
        user = User.objects.create_user(
            email=DEMO_EMAIL, password=DEMO_PASSWORD, display_name="Demo", timezone="Europe/Berlin"
        )
        # Through the services, as the API does: ranks, tags and recurrence starts are right.
        home = services.list_create(user=user, name="Home", color="#2E7D32", position=None)
        work = services.list_create(user=user, name="Work", color="#1565C0", position=None)
        today = recurrence.today_in(user.timezone)
        samples = [
            ("Pay rent", home, Priority.HIGH, today + timedelta(days=3), ["money"], "FREQ=MONTHLY"),
            ("Buy groceries", home, Priority.MEDIUM, today, ["errands"], None),
            (
                "Prepare the quarterly review",
                work,
                Priority.HIGH,
                today + timedelta(days=7),
                [],
                None,
            ),
            ("Answer email", work, Priority.LOW, None, [], None),
            ("Call the dentist", None, Priority.NONE, today - timedelta(days=1), ["errands"], None),
        ]
        for title, task_list, priority, due, tags, rule in samples:
            services.task_create(
                user=user,
                data={
                    "title": title,
                    "list": task_list,
                    "priority": priority,
                    "due_date": due,
                    "tags": tags,
                    "recurrence": rule,
                },
            )
        say(f"Created demo user {DEMO_EMAIL} with {len(samples)} tasks.")
