"""EXPLAIN (ANALYZE, BUFFERS) of every query the task list runs for the heavy user.

    python -m bench.explain          # run by `python -m bench.run --explain`

Each list request of the benchmark (default page, the filtered ones) goes through the real
view in-process; the SQL it ran is captured and explained, so the plans are the app's own.
Written to bench/results/explain.md and printed.
"""

import os
import sys
from pathlib import Path

LIST_URLS = [
    "/api/v1/tasks/",
    "/api/v1/tasks/?offset=50000",
    "/api/v1/tasks/?completed=false&priority=high,medium&ordering=due_date",
    "/api/v1/tasks/?search=report&ordering=-priority",
    "/api/v1/tasks/?tag=home&has_due=true&ordering=due_date,-priority",
    "/api/v1/tasks/?tag=home",
    "/api/v1/tasks/?completed=false&search=meeting&ordering=-updated_at",
    "/api/v1/tasks/?priority=high&overdue=true&ordering=title",
    "/api/v1/tasks/?ordering=priority",
    "/api/v1/tasks/?ordering=-priority",
]
OUT = Path(__file__).resolve().parent / "results" / "explain.md"


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "todo_project.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from bench.prepare import token_for
    from tasks.management.commands.seed_bench import HEAVY_EMAIL, bench_users

    heavy = bench_users().get(email=HEAVY_EMAIL)
    client = APIClient(HTTP_HOST="localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(heavy)}")
    parts = [f"# EXPLAIN (ANALYZE, BUFFERS) of the list queries, heavy user ({HEAVY_EMAIL})", ""]
    for url in LIST_URLS:
        client.get(url)  # warm caches, then measure the second run
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        parts += [f"## GET {url} → {response.status_code}", ""]
        for query in captured.captured_queries:
            sql = query["sql"]
            read = sql.lstrip().upper().startswith("SELECT")
            if not read or ("tasks_task" not in sql and "tasks_ownertaskcount" not in sql):
                continue
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
                plan = "\n".join(row[0] for row in cursor.fetchall())
            parts += ["```sql", sql, "```", "", "```", plan, "```", ""]
    text = "\n".join(parts)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
