#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "todo_project.settings")
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except Exception as error:
        # A database out of reach or refusing us (down, wrong host, port, name, role or
        # password): what to fix, in one line and exit status 1 as a CommandError has, not a
        # traceback of Django's connection code in the log (`--traceback` keeps it).
        from todo_project.problems import is_database_unavailable

        if "--traceback" in sys.argv or not is_database_unavailable(error):
            raise
        message = " ".join(str(error).split())
        sys.stderr.write(f"Cannot use the database of DATABASE_URL: {message}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
