from django.core.management.base import BaseCommand
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.tokens import purge_expired_tokens
from todo_project.commands import ensure_tables_of


class Command(BaseCommand):
    """simplejwt's command of the same name, which this one replaces (accounts is listed before
    its app in INSTALLED_APPS, so the name the cron lines use runs this): it deleted through
    Django's collector, every expired token's id a parameter of one statement, and past 65,535
    failed every day from then on, while the tables grew."""

    help = (
        "Deletes the refresh tokens past their expiry from the blacklist app's tables, in "
        "batches whatever their number. Run it as a periodic job (daily). -v 2 tells how many."
    )

    def handle(self, *args, **options) -> None:
        ensure_tables_of(OutstandingToken, BlacklistedToken)
        deleted = purge_expired_tokens()
        if options["verbosity"] > 1:  # silent by default, as simplejwt's: existing cron lines
            self.stdout.write(f"Deleted {deleted} expired refresh token(s).")
