from django.core.management.base import BaseCommand

from tasks.models import IdempotencyRecord
from todo_project.commands import ensure_tables_of
from todo_project.idempotency import purge_expired


class Command(BaseCommand):
    help = (
        "Deletes expired Idempotency-Key records (IDEMPOTENCY_KEY_TTL_SECONDS, 24 h unless set). "
        "Expired records are already ignored; this keeps the table small. Run it as a periodic "
        "job (hourly)."
    )

    def handle(self, *args, **options) -> None:
        ensure_tables_of(IdempotencyRecord)
        deleted = purge_expired()
        if options["verbosity"] > 0:  # -v 0 for cron: no mail every hour
            self.stdout.write(f"Deleted {deleted} expired idempotency key(s).")
