#!/usr/bin/env python
import os
import signal
import sys


def main() -> None:
    # Empty is unset, as for every variable (README.md, "Configuration"): setdefault kept it.
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        os.environ["DJANGO_SETTINGS_MODULE"] = "todo_project.settings"
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except KeyboardInterrupt:
        # Ctrl-C (a long seed_bench, a migrate): a line, not 25 of traceback; then death by
        # SIGINT as Python's own exit on it, so that shells and make see it (status 130).
        if "--traceback" in sys.argv:
            raise
        # The same Ctrl-C comes twice under todo_project.devservices (`make manage`, `make
        # bench`): from the terminal and passed on by the wrapper. The second is ignored here.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.stderr.write("Interrupted.\n")
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except Exception as error:
        # A database out of reach or refusing us (down, wrong host, port, name, role or
        # password): what to fix, in one line and exit status 1 as a CommandError has, not a
        # traceback of Django's connection code in the log (`--traceback` keeps it).
        from todo_project.commands import NOT_MIGRATED, not_migrated
        from todo_project.problems import is_database_unavailable

        if "--traceback" in sys.argv:
            raise
        if is_database_unavailable(error):
            message = " ".join(str(error).split())
            sys.stderr.write(f"Cannot use the database of DATABASE_URL: {message}\n")
            sys.exit(1)
        # A table missing because migrations are pending (Django's own commands, such as the
        # cron job clearsessions or createsuperuser, check nothing first): the line the
        # project's commands give, not a ProgrammingError traceback (review 44d).
        if not_migrated(error):
            sys.stderr.write(f"CommandError: {NOT_MIGRATED}\n")
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
