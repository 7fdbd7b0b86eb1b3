"""Django's `migrate`, one at a time per database.

Every container runs `migrate` as it starts (Dockerfile), so replicas started together ran it
at once: each saw the same migrations unapplied, the second failed on the first's tables
("relation already exists") and its container exited. A session-level advisory lock makes them
take turns; the ones that waited then find nothing left to apply. The lock is PostgreSQL's
two-key form, a key space apart from the single-key locks the services take per sibling group.
"""

from django.core.management.commands import migrate
from django.db import connections

# "todo" in ASCII, then which lock of the project's: 1, migrations.
MIGRATE_LOCK = (0x746F646F, 1)


class Command(migrate.Command):
    help = migrate.Command.help + " Waits while another migrate runs on the same database."

    def handle(self, *args, **options):
        with connections[options["database"]].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", MIGRATE_LOCK)
        try:
            return super().handle(*args, **options)
        finally:
            connection = connections[options["database"]]
            if connection.connection is not None:  # the lock went with a closed connection
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", MIGRATE_LOCK)
