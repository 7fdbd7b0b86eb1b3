"""Review 40g: guards for 2c3fa8e (a recurring task's completion in two round trips fewer) and
351b27b (TaskMoveSerializer.plain_anchor, fast_read.WrittenTaskResponse).

No finding of the review is a defect of these commits, so no test here fails on 4f0e9e4: each
one guards a property the review checked (old code 9c3ee0d gives the same results where it has
the code under test). Run (copied into tasks/tests/):

    TODO_DATA_DIR=/tmp/r40g-data .venv/bin/pytest -q -p no:cacheprovider -n 2 \
        tasks/tests/test_fused_completion_guards.py
"""

import random
import threading
import time
import uuid
from collections import Counter
from datetime import date

import psycopg
import pytest
from django.db import connection, connections, transaction
from rest_framework.renderers import JSONRenderer

from conftest import client_for
from tasks import services
from tasks.models import POSITION_GAP, OwnerTaskCount, Task, _task_to_write_query
from tasks.serializers import TaskMoveSerializer
from tasks.tests.deadlocks import ranked
from todo_project import ratelimit
from todo_project.tests.helpers import (
    connection_of_its_own,
    start_in_thread,
    wait_for_lock_waiters,
)

RULE = {"due_date": date(2026, 12, 1), "recurrence": "FREQ=DAILY"}
RULE_JSON = {"due_date": "2026-12-01", "recurrence": "FREQ=DAILY"}


@pytest.fixture
def unthrottled(monkeypatch):
    # Hundreds of writes a test: the rate limits would answer 429s.
    monkeypatch.setattr(ratelimit.RateLimitThrottle, "allow_request", lambda *_: True)


def _anchors(rng: random.Random) -> list:
    """Move bodies near `{"after": "<id>"}`: case, spaces, other UUID spellings, unicode and
    fullwidth digits, very long strings, other types, other keys."""
    bodies = []
    for _ in range(3000):
        u = str(uuid.uuid4())
        i = rng.randrange(len(u))
        value = rng.choice(
            [
                u,
                u.upper(),
                "".join(c.upper() if rng.random() < 0.5 else c for c in u),
                f" {u}",
                f"{u}\n",
                u.replace("-", ""),
                f"urn:uuid:{u}",
                "{" + u + "}",
                u[:i] + rng.choice("٠١٢٣٤٥٦٧٨٩０１ｆＦ") + u[i + 1 :],
                u * rng.randrange(2, 50),
                u[:-1],
                f"{u}0",
                u[:8] + u[9:13] + "-" + u[8] + u[13:],
            ]
        )
        bodies.append(
            rng.choice(
                [
                    {"after": value},
                    {"after": [value]},
                    {"after": {"id": value}},
                    {"after": value, "list": None},
                    {"AFTER": value},
                ]
            )
        )
    return [*bodies, {"after": 2**128 - 1}, {"after": 0}, {"after": True}, {"after": 1.5}]


@pytest.mark.django_db
def test_plain_anchor_is_the_serializers_value_for_every_body_it_takes(rf, user):
    request = rf.post("/")
    request.user = user
    taken = 0
    for body in _anchors(random.Random(40)):
        plain = TaskMoveSerializer.plain_anchor(body)
        if plain is None:
            continue  # the serializer's, as before
        taken += 1
        serializer = TaskMoveSerializer(data=body, context={"request": request})
        assert serializer.is_valid(), (body, serializer.errors)
        assert plain == dict(serializer.validated_data), body
    assert taken > 100


ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "application/json; charset=utf-8",
    "application/*",
    "application/json;q=0.9, */*;q=0.1",
    "text/html, application/json;q=0.5",
    "application/json; indent=2",
    "APPLICATION/JSON",
]


@pytest.mark.django_db
@pytest.mark.usefixtures("unthrottled")
@pytest.mark.parametrize("accept", ACCEPTS)
def test_every_written_answer_is_jsonrenderers_rendering_of_its_data(user, accept):
    client = client_for(user)
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    rng = random.Random(7)

    def check(response):
        assert response.status_code < 300, response.content
        rendered = JSONRenderer().render(
            response.data, response.accepted_media_type, response.renderer_context
        )
        assert response.content == rendered
        assert response["Content-Type"] == "application/json"

    titles = ["plain", "ünïcode", 'q"uote\\', "emoji 😀"]
    ids = []
    for n in range(8):
        body = {
            "title": f"{rng.choice(titles)} {n}",
            "tags": [f"t{n % 3}", "ß"],
            "description": rng.choice(["", "a\u2028b\u2029", "tab\tnl\n\x7f", "e\u0301"]),
        }
        if n % 3 == 0:
            body |= {**RULE_JSON, "due_time": "09:30"}
        created = client.post("/api/v1/tasks/", body, format="json", **headers)
        check(created)
        ids.append(created.data["id"])
        first = client.post("/api/v1/tasks/", body, format="json", HTTP_IDEMPOTENCY_KEY=f"k{n}")
        replay = client.post("/api/v1/tasks/", body, format="json", HTTP_IDEMPOTENCY_KEY=f"k{n}")
        assert replay.content == first.content
    for n, pk in enumerate(ids):
        url = f"/api/v1/tasks/{pk}/"
        patched = client.patch(url, {"description": "d\u2028" * n}, format="json", **headers)
        check(patched)
        etag = patched["ETag"]
        check(client.patch(url, {"completed": True}, format="json", HTTP_IF_MATCH=etag, **headers))
        check(client.put(url, {"title": "put", "completed": False}, format="json", **headers))
        after = {"after": ids[(n + 5) % len(ids)]}
        check(client.post(f"{url}move/", after, format="json", **headers))
        check(client.post(f"{url}move/", {"after": None}, format="json", **headers))
        keyed = {"HTTP_IDEMPOTENCY_KEY": f"m{n}", **headers}
        moved = client.post(f"{url}move/?format=json", after, format="json", **keyed)
        check(moved)
        again = client.post(f"{url}move/?format=json", after, format="json", **keyed)
        assert (again.content, again["Content-Type"]) == (moved.content, moved["Content-Type"])


@pytest.mark.django_db
def test_the_slots_rank_is_bisects_over_the_whole_bigint_range():
    # services._SLOT_AFTER's arithmetic, on its own: random rank pairs, extremes, gaps 1 and 2.
    assert "n.position + div(n.next_rank::numeric - n.position, 2) END)::bigint" in (
        services._SLOT_AFTER
    )
    rng = random.Random(40)
    low, high = -(2**63), 2**63 - 1
    pairs = []
    for _ in range(3000):
        a = rng.randrange(low, high - POSITION_GAP)
        pairs += [
            (a, rng.randrange(a + 1, high + 1)),
            (a, None),
            (a, a + rng.choice([1, 2, 3])),
            (rng.randrange(low, low + 10), rng.randrange(high - 10, high + 1)),
        ]
    sql = (
        "SELECT (CASE WHEN n.next_rank IS NULL THEN n.position::numeric + %s"
        " ELSE n.position + div(n.next_rank::numeric - n.position, 2) END)::bigint"
        " FROM (SELECT %s::bigint AS position, %s::bigint AS next_rank) n"
        " WHERE n.next_rank IS NULL OR n.next_rank::numeric - n.position > 1"
    )
    with connection.cursor() as cursor:
        for a, b in pairs:
            cursor.execute(sql, [POSITION_GAP, a, b])
            row = cursor.fetchone()
            assert (row[0] if row else None) == services._bisect(a, b), (a, b)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["auto", "force_generic_plan", "force_custom_plan"])
@pytest.mark.parametrize("parent", ["open", "any"])
def test_a_prepared_locking_read_waits_for_the_parent_before_it_locks_the_task(user, mode, parent):
    # Run, not EXPLAINed: the statement prepared (as DB_PREPARED_STATEMENTS prepares it) and
    # run often enough for a generic plan; while it waits for the parent, the task is free.
    top = services.task_create(user=user, data={"title": "Parent"})
    subtask = services.task_create(user=user, data={"title": "Sub", "parent": top, **RULE})
    with transaction.atomic():
        _, sql, params = _task_to_write_query(parent).statement(owner=user.pk, pk=subtask.pk)
    with (
        connection_of_its_own(connection) as reader,
        connection_of_its_own(connection) as holder,
        connection_of_its_own(connection) as prober,
    ):
        reader.execute(f"SET plan_cache_mode = {mode}")
        for _ in range(8):
            with reader.transaction():
                reader.execute(sql, params, prepare=True).fetchall()
        read = {}

        def locking_read():
            with reader.transaction():
                read["rows"] = reader.execute(sql, params, prepare=True).fetchall()

        with holder.transaction():
            holder.execute("SELECT FROM tasks_task WHERE id = %s FOR UPDATE", [top.pk])
            thread = threading.Thread(target=locking_read)
            thread.start()
            assert wait_for_lock_waiters(connection, 1)
            with prober.transaction():
                try:
                    prober.execute(
                        "SELECT FROM tasks_task WHERE id = %s FOR UPDATE NOWAIT", [subtask.pk]
                    )
                    task_locked_first = False
                except psycopg.errors.LockNotAvailable:
                    task_locked_first = True
        thread.join(10)
    assert not task_locked_first
    assert read["rows"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "meanwhile, status, copies",
    [
        # The parent completed (its cascade completed the subtask): the completion reads it
        # again (changed_meanwhile) and finds it completed: no second copy.
        (
            (
                "UPDATE tasks_task SET completed = true, completed_at = now(),"
                " version = version + 1 WHERE id IN (%(parent)s, %(sub)s)"
            ),
            200,
            1,
        ),
        ("DELETE FROM tasks_task WHERE id IN (%(sub)s, %(parent)s)", 404, 0),
        ("UPDATE tasks_task SET title = 'S2', version = version + 1 WHERE id = %(sub)s", 200, 2),
        ("SELECT 1", 200, 2),
    ],
)
def test_a_subtasks_completion_after_its_parents_writer(user, meanwhile, status, copies):
    top = services.task_create(user=user, data={"title": "P"})
    subtask = services.task_create(user=user, data={"title": "S", "parent": top, **RULE})
    client = client_for(user)
    with connection_of_its_own(connection) as other:
        with other.transaction():
            other.execute("SELECT FROM tasks_task WHERE id = %s FOR UPDATE", [top.pk])
            completing = start_in_thread(
                lambda: client.patch(
                    f"/api/v1/tasks/{subtask.pk}/", {"completed": True}, format="json"
                )
            )
            assert wait_for_lock_waiters(connection, 1)
            other.execute(meanwhile, {"parent": top.pk, "sub": subtask.pk})
        answer = completing()
    assert answer.status_code == status, answer.content
    assert Task.objects.filter(owner=user, title__startswith="S").count() == copies
    if status == 200:
        row = Task.objects.get(pk=subtask.pk)
        assert (answer.json()["version"], answer.json()["title"]) == (row.version, row.title)
    counted = OwnerTaskCount.objects.filter(owner=user).values_list("tasks", flat=True).first()
    assert (counted or 0) == Task.objects.filter(owner=user).count()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("unthrottled")
@pytest.mark.parametrize("tight", [False, True])
def test_completions_creates_moves_and_parent_writes_raced(user, tight):
    # Four threads for 4 s: no 5xx, no 409, the owner's count exact. With every gap used up
    # (tight) PostgreSQL reports deadlocks now and then, run again: as often at 9c3ee0d (see
    # review-40g.md), so not asserted here.
    tops = [services.task_create(user=user, data={"title": f"R{n}", **RULE}) for n in range(6)]
    parents = [services.task_create(user=user, data={"title": f"P{n}"}) for n in range(2)]
    subs = [
        services.task_create(user=user, data={"title": f"S{n}", "parent": parents[n % 2], **RULE})
        for n in range(4)
    ]
    if tight:
        ranked({task: 10 + n for n, task in enumerate([*tops, *parents])})
        ranked({task: 10 + n for n, task in enumerate(subs)})
    failures, statuses = [], Counter()
    stop = time.monotonic() + 4

    def worker(seed):
        rng = random.Random(seed)
        client = client_for(user)
        try:
            while time.monotonic() < stop:
                rows = list(
                    Task.objects.filter(owner=user).values_list("id", "parent_id", "completed")
                )
                top = [str(pk) for pk, parent, _ in rows if parent is None]
                sub = [str(pk) for pk, parent, _ in rows if parent is not None]
                open_ = [str(pk) for pk, _, done in rows if not done] or top
                parent = str(rng.choice(parents).pk)
                op = rng.random()
                if op < 0.35:
                    url, body = f"/api/v1/tasks/{rng.choice(open_)}/", {"completed": True}
                    answer = client.patch(url, body, format="json")
                elif op < 0.5:
                    answer = client.post(
                        "/api/v1/tasks/", {"title": "n", **RULE_JSON}, format="json"
                    )
                elif op < 0.65:
                    url, body = (
                        f"/api/v1/tasks/{rng.choice(top)}/move/",
                        {"after": rng.choice([*top, None])},
                    )
                    answer = client.post(url, body, format="json")
                elif op < 0.75:
                    url, body = (
                        f"/api/v1/tasks/{rng.choice(sub)}/move/",
                        {"after": rng.choice([*sub, None])},
                    )
                    answer = client.post(url, body, format="json")
                elif op < 0.85:
                    body = {"completed": rng.random() < 0.5, "title": "p"}
                    answer = client.patch(f"/api/v1/tasks/{parent}/", body, format="json")
                elif op < 0.92:
                    url = f"/api/v1/tasks/{rng.choice(top + sub)}/"
                    answer = client.patch(url, {"completed": False}, format="json")
                else:
                    body = {"title": "s", "parent": parent, **RULE_JSON}
                    answer = client.post("/api/v1/tasks/", body, format="json")
                statuses[answer.status_code] += 1
                if answer.status_code >= 500 or answer.status_code == 409:
                    failures.append((answer.status_code, answer.content[:300]))
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(repr(error))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures[:5]
    assert sum(statuses.values()) > 100, statuses
    assert OwnerTaskCount.objects.get(owner=user).tasks == Task.objects.filter(owner=user).count()
