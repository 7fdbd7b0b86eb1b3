from django.core.management.base import BaseCommand

from tasks.models import DeletedTask
from tasks.sync import DELETIONS_KEPT, purge_deletions
from todo_project.commands import ensure_tables_of


class Command(BaseCommand):
    help = (
        f"Deletes the ids of tasks deleted more than {DELETIONS_KEPT.days} days ago, which "
        "tasks/changes/ no longer sends (a sync that began before that is told to start over). "
        "Run it as a periodic job (daily)."
    )

    def handle(self, *args, **options) -> None:
        ensure_tables_of(DeletedTask)
        deleted = purge_deletions()
        if options["verbosity"] > 0:  # -v 0 for cron: no mail every day
            self.stdout.write(f"Deleted {deleted} id(s) of tasks deleted long ago.")
