"""The floor: the task list and the task get as a raw WSGI app, without Django.

psycopg + orjson + PyJWT only, run by gunicorn with the same settings as the real server. It
does the work the real endpoints cannot avoid and nothing else:

- verifies the access token's HS256 signature, expiry and type with the same key (PyJWT, as
  simplejwt does), then looks the user up (`is_active`, one primary-key select): the API must
  do that too, since a deactivated user's tokens stop working at once, and compares the
  token's `gen` claim with the user's token generation (accounts.authentication);
- the list: the owner's task count and one page of 50 tasks by position, tags aggregated in
  the same query;
- the get: one select by (id, owner).

No rate limiting (a Redis round trip in the API), no logout denylist (an EXISTS in the API's
user query), no request-id or access log, no middleware: it is a floor, not a rival.

A request with the header `X-Floor-Rate-Limit: count` is also counted against its user in Redis
(REDIS_URL), with the API's one-round-trip script and RATE_LIMIT_USER, and answered with the
RateLimit-* headers (a 429 over the limit): the floor of the work the contract's shared rate
limit adds (the `floor get +limit` scenario).

Its JSON has the shape of the contract's task object and `{count, next, previous, results}`.

    gunicorn bench.floor:application -c gunicorn.conf.py      # PORT, WEB_CONCURRENCY as usual
"""

import os
import time
import uuid
from urllib.parse import parse_qs

import jwt
import orjson
import psycopg
import redis

PRIORITY_LABELS = ("none", "low", "medium", "high")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
TASKS_PATH = "/api/v1/tasks/"

TASK_SELECT = """
SELECT t.id, t.title, t.description, t.completed, t.completed_at, t.priority, t.due_date,
       t.due_time, t.list_id,
       ARRAY(SELECT g.name FROM tasks_task_tags l JOIN tasks_tag g ON g.id = l.tag_id
             WHERE l.task_id = t.id ORDER BY text_sort_key(g.name) COLLATE "C", g.name COLLATE "C") AS tags,
       t.parent_id, t.position, t.recurrence, t.next_occurrence_id, t.created_at, t.updated_at,
       t.version
  FROM tasks_task t
"""
LIST_SQL = TASK_SELECT + " WHERE t.owner_id = %s ORDER BY t.position, t.id LIMIT %s OFFSET %s"
# The owner's maintained task count, as the API's default list reads it (tasks.OwnerTaskCount).
COUNT_SQL = "SELECT coalesce((SELECT tasks FROM tasks_ownertaskcount WHERE owner_id = %s), 0)"
GET_SQL = TASK_SELECT + " WHERE t.id = %s AND t.owner_id = %s"
USER_SQL = "SELECT is_active, token_generation FROM accounts_user WHERE id = %s"
# todo_project.cache.COUNT_SCRIPT (a test keeps the two equal; importing it would load Django).
COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""
RATE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

JSON = [("Content-Type", "application/json")]
PROBLEM = [("Content-Type", "application/problem+json")]


def task_json(row) -> dict:
    """One task row of TASK_SELECT as the contract's task object."""
    due_time = row[7]
    return {
        "id": row[0],
        "title": row[1],
        "description": row[2],
        "completed": row[3],
        "completed_at": row[4],
        "priority": PRIORITY_LABELS[row[5]],
        "due_date": row[6],
        "due_time": None if due_time is None else f"{due_time.hour:02d}:{due_time.minute:02d}",
        "list": row[8],
        "tags": row[9],
        "parent": row[10],
        "position": row[11],
        "recurrence": row[12],
        "next_occurrence": row[13],
        "created_at": row[14],
        "updated_at": row[15],
        "version": row[16],
    }


def dumps(data) -> bytes:
    # Timestamps in UTC with Z and whole seconds, as the API renders them.
    return orjson.dumps(data, option=orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS)


class Unauthorized(Exception):
    pass


class FloorApp:
    """A WSGI app; one database connection per process, opened on first use (after fork)."""

    def __init__(
        self, conninfo: str = "", signing_key: str = "", connection=None, redis_url: str = ""
    ) -> None:
        self.conninfo = conninfo
        self.signing_key = signing_key
        self.connection = connection
        self.redis_url = redis_url
        self._counter = None

    def _db(self):
        if self.connection is None or self.connection.closed:
            self.connection = psycopg.connect(
                self.conninfo or os.environ["DATABASE_URL"],
                autocommit=True,
                options="-c TimeZone=UTC",
            )
        return self.connection

    def _count(self, owner: uuid.UUID) -> tuple[int, list[tuple[str, str]]]:
        """Counts the request in the owner's fixed window: (requests over the limit, headers)."""
        if self._counter is None:
            client = redis.Redis.from_url(self.redis_url or os.environ["REDIS_URL"])
            self._counter = client.register_script(COUNT_SCRIPT)
        number, _, unit = (os.environ.get("RATE_LIMIT_USER") or "100/m").partition("/")
        limit, period = int(number), RATE_PERIODS[unit[-1:] or "s"]
        now = int(time.time())
        window_end = now - now % period + period
        count = int(self._counter(keys=[f"floor:{owner}:{window_end}"], args=[period + 1]))
        headers = [
            ("RateLimit-Limit", str(limit)),
            ("RateLimit-Remaining", str(max(0, limit - count))),
            ("RateLimit-Reset", str(max(1, window_end - now))),
        ]
        return count - limit, headers

    def _owner(self, environ) -> uuid.UUID:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Bearer "):
            raise Unauthorized
        key = self.signing_key or os.environ.get("JWT_SIGNING_KEY") or os.environ["SECRET_KEY"]
        try:
            claims = jwt.decode(header[7:], key, algorithms=["HS256"])
            owner = uuid.UUID(claims["user_id"])
        except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
            raise Unauthorized from None
        if claims.get("token_type") != "access":
            raise Unauthorized
        row = self._db().execute(USER_SQL, (owner,)).fetchone()
        # Revocation as the API does it: the token must carry the user's current generation.
        if row is None or not row[0] or claims.get("gen", 0) != row[1]:
            raise Unauthorized
        return owner

    def task_list(self, environ, owner: uuid.UUID) -> bytes:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        limit = min(int(query.get("limit", [DEFAULT_LIMIT])[0]), MAX_LIMIT)
        offset = int(query.get("offset", [0])[0])
        if limit < 1 or offset < 0:
            raise ValueError
        db = self._db()
        count = db.execute(COUNT_SQL, (owner,)).fetchone()[0]
        rows = db.execute(LIST_SQL, (owner, limit, offset)).fetchall()
        base = f"http://{environ.get('HTTP_HOST', 'localhost')}{TASKS_PATH}"
        next_url = (
            f"{base}?limit={limit}&offset={offset + limit}" if offset + limit < count else None
        )
        if offset <= 0:
            previous_url = None
        elif offset - limit <= 0:
            previous_url = f"{base}?limit={limit}"
        else:
            previous_url = f"{base}?limit={limit}&offset={offset - limit}"
        return dumps(
            {
                "count": count,
                "next": next_url,
                "previous": previous_url,
                "results": [task_json(row) for row in rows],
            }
        )

    def task_get(self, task_id: uuid.UUID, owner: uuid.UUID):
        row = self._db().execute(GET_SQL, (task_id, owner)).fetchone()
        return None if row is None else row

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "GET" or not path.startswith(TASKS_PATH):
            return self._problem(start_response, "404 Not Found")
        try:
            owner = self._owner(environ)
        except Unauthorized:
            return self._problem(start_response, "401 Unauthorized")
        limit_headers = []
        if environ.get("HTTP_X_FLOOR_RATE_LIMIT") == "count":
            over, limit_headers = self._count(owner)
            if over > 0:
                return self._problem(start_response, "429 Too Many Requests", limit_headers)
        rest = path[len(TASKS_PATH) :]
        if not rest:
            try:
                body = self.task_list(environ, owner)
            except ValueError:
                return self._problem(start_response, "400 Bad Request")
            start_response("200 OK", [*JSON, ("Content-Length", str(len(body))), *limit_headers])
            return [body]
        try:
            task_id = uuid.UUID(rest.rstrip("/"))
        except ValueError:
            return self._problem(start_response, "404 Not Found")
        row = self.task_get(task_id, owner)
        if row is None:
            return self._problem(start_response, "404 Not Found")
        body = dumps(task_json(row))
        start_response(
            "200 OK",
            [*JSON, ("Content-Length", str(len(body))), ("ETag", f'"{row[16]}"'), *limit_headers],
        )
        return [body]

    @staticmethod
    def _problem(start_response, status: str, headers: list[tuple[str, str]] = ()):
        code, title = status.split(" ", 1)
        body = dumps({"type": "about:blank", "title": title, "status": int(code)})
        start_response(status, [*PROBLEM, ("Content-Length", str(len(body))), *headers])
        return [body]


application = FloorApp()
