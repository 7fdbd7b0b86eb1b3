"""Django's `migrate`, one at a time per database.

Every container runs `migrate` as it starts (Dockerfile), so replicas started together ran it
at once: each saw the same migrations unapplied, the second failed on the first's tables
("relation already exists") and its container exited. A session-level advisory lock makes them
take turns; the ones that waited then find nothing left to apply. The lock is PostgreSQL's
two-key form, a key space apart from the single-key locks the services take per sibling group.

The others wait by asking again (`pg_try_advisory_lock`), never inside a statement: a waiting
`pg_advisory_lock` holds a snapshot, and CREATE INDEX CONCURRENTLY (tasks.0008, 0011, 0014,
0016, 0017, 0020, 0024, 0025, 0027, 0028, accounts.0008) waits for every older snapshot to end, so the migrate holding the
lock and the ones waiting for it deadlocked, and PostgreSQL ended one side: a waiter's
container, or the holder's build, which left an invalid index behind.
"""

import time

from django.core.management.commands import migrate
from django.db import connections

# "todo" in ASCII, then which lock of the project's: 1, migrations.
MIGRATE_LOCK = (0x746F646F, 1)
POLL_SECONDS = 0.25


class Command(migrate.Command):
    help = migrate.Command.help + " Waits while another migrate runs on the same database."

    def handle(self, *args, **options):
        connection = connections[options["database"]]
        with connection.cursor() as cursor:
            # A migration may rightly run long (an index built on a large table), and a
            # container's environment may carry the web workers' DB_STATEMENT_TIMEOUT.
            cursor.execute("SET statement_timeout = 0")
            # A migrate stopped by a signal (docker stop: the image's CMD passes it on) dies
            # without a word to PostgreSQL, which did not notice a client gone while a
            # statement ran or waited for a lock: the session went on with it, its locks and
            # the migrate lock held, and the next container's migrate waited for that ghost. This
            # checks the client every second meanwhile, so the session ends with the process
            # (PostgreSQL 14+; an older one has no such setting, and would refuse the SET).
            if connection.pg_version >= 140000:
                cursor.execute("SET client_connection_check_interval = '1s'")
        told = False
        while not self._took_the_lock(connection):
            if not told:
                self.stderr.write("Another migrate is running on this database: waiting for it.")
                told = True
            time.sleep(POLL_SECONDS)
        try:
            return super().handle(*args, **options)
        finally:
            if connection.connection is not None:  # the lock went with a closed connection
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", MIGRATE_LOCK)

    @staticmethod
    def _took_the_lock(connection) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", MIGRATE_LOCK)
            return cursor.fetchone()[0]
