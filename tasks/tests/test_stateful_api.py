"""A model-based (stateful) test of the tasks API: Hypothesis drives lists, tasks and tags of two
users through the real API (in-process, real PostgreSQL, each request committed), keeps a plain
Python model of what each user's data must be, and after every step compares the model with
the API's own reads.

Why `transaction=True`: every request commits as in production. The changes feed orders by
`updated_at`, stamped per write, and `DeletedTask` rows, advisory locks and retries are
per-transaction; inside one test transaction every write would share one transaction and its
savepoints would hide what a commit does. Each Hypothesis example makes two new users, so the
examples of one test share the database without seeing each other (all data is per owner), and
the test's flush clears it once at the end.

In the suite: 12 examples of 20 steps, derandomized (the same examples on every run, as
tests/test_fuzz.py: CI fails only for a change of the code). To hunt, with random examples:
STATEFUL_EXAMPLES=60 STATEFUL_STEPS=60 (about 5 minutes a run; --hypothesis-seed=N to repeat
one); STATEFUL_STATS=1 with -s prints how often each rule ran and with which status. Review 36d
wrote it: its runs (40 x 40 and 60 x 60 over 8 seeds) found no bug, only mistakes of the model,
each a reading of the contract now in the model's comments.
"""

import os
import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.utils import timezone
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from accounts.models import User
from conftest import DEFAULT_PASSWORD, client_for
from todo_project.tests.helpers import state_machine_settings

# No word is a prefix of another: `search=<word>` finds exactly the titles with that word.
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
TAGS = ["home", "work", "urgent", "errands"]
PRIORITIES = ["none", "low", "medium", "high"]
RULES = ["FREQ=DAILY", "FREQ=WEEKLY;COUNT=3"]
PROBLEM = "application/problem+json"
STATS: dict = {}
# Django's clock (timezone.now) moves STEP_TIME at each step, from 00:01 UTC today (so "today"
# stays today for 240 steps): a sync's cursor then starts the next sync after the step before
# the last (sync.COMMIT_LAG is 5 minutes), and the changes feed is tested, not just resent whole.
STEP_TIME = timedelta(minutes=6)
CLOCK = [None]


def today() -> date:
    return date.today()


def due_dates():
    return st.integers(1, 30).map(lambda d: (today() + timedelta(days=d)).isoformat())


def casings(name: str):
    return st.sampled_from([name, name.upper(), name.capitalize()])


class Model:
    """What one user's data must be."""

    def __init__(self) -> None:
        self.lists: dict[str, dict] = {}  # id -> {name}
        self.tasks: dict[str, dict] = {}
        self.groups: dict[tuple, list[str]] = {}  # ("L", list) or ("P", parent) -> ordered ids
        self.tags: set[str] = set()  # lower-case names of the tags that exist
        self.pending_copies: list[tuple[str, str]] = []  # (source id, "yes" | "maybe")

    # order
    @staticmethod
    def key(task: dict) -> tuple:
        return ("P", task["parent"]) if task["parent"] else ("L", task["list"])

    def unplace(self, tid: str) -> None:
        self.groups[self.key(self.tasks[tid])].remove(tid)

    def append(self, tid: str) -> None:
        self.groups.setdefault(self.key(self.tasks[tid]), []).append(tid)

    def subtasks(self, tid: str) -> list[str]:
        return list(self.groups.get(("P", tid), []))

    def bump(self, tid: str) -> None:
        self.tasks[tid]["version"] += 1
        self.changed.add(tid)

    def delete(self, ids) -> None:
        doomed = set()
        for tid in ids:
            doomed.add(tid)
            doomed.update(self.subtasks(tid))
        for tid in doomed:
            self.unplace(tid)
        for tid in doomed:
            del self.tasks[tid]
            self.groups.pop(("P", tid), None)
        for task in self.tasks.values():
            if task["next"] in doomed:
                task["next"] = None
                self.bump(task["id"])
        self.deleted |= doomed

    def complete(self, tid: str, via_parent: bool = False) -> None:
        task = self.tasks[tid]
        if task["completed"]:
            return
        task["completed"] = True
        self.bump(tid)
        if task["rec"] and task["next"] is None:
            if task["rec"] == "FREQ=DAILY":
                self.pending_copies.append((tid, "yes"))
            elif task["idx"] is None:
                self.pending_copies.append((tid, "maybe"))
            else:
                self.pending_copies.append((tid, "yes" if task["idx"] + 1 < 3 else "no"))
        if not task["parent"]:
            for sub in self.subtasks(tid):
                self.complete(sub, via_parent=True)

    def begin_step(self) -> None:
        self.changed: set[str] = set()
        self.moved_groups: dict[tuple, int] = {}  # group -> moves into it this step
        self.deleted: set[str] = set()


class TasksAPI(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        CLOCK[0] = datetime.combine(today(), time(0, 1), tzinfo=UTC)
        self.users = [
            User.objects.create_user(
                email=f"u-{uuid.uuid4().hex[:12]}@example.com", password=DEFAULT_PASSWORD
            )
            for _ in range(2)
        ]
        self.clients = [client_for(user) for user in self.users]
        self.models = [Model(), Model()]
        self.cursors: list[str | None] = [None, None]
        self.devices: list[dict] = [{}, {}]
        self.seen_positions: list[dict] = [{}, {}]
        self.last_server: list[dict] = [{}, {}]
        self.acting = 0
        self.steps = 0
        self.idem: dict = {}
        for m in self.models:
            m.begin_step()

    # --- plumbing -----------------------------------------------------------------------------

    def call(self, u: int, method: str, url: str, data=None, **headers):
        client = self.clients[u]
        kwargs = {"format": "json"} if data is not None else {}
        response = getattr(client, method)(url, data, **kwargs, **headers)
        assert response.status_code < 500, (
            method,
            url,
            data,
            response.status_code,
            response.content,
        )
        if 400 <= response.status_code < 500:
            assert response["Content-Type"].startswith(PROBLEM), (url, response["Content-Type"])
        return response

    def step(self, u: int) -> Model:
        CLOCK[0] += STEP_TIME
        self.acting = u
        self.steps += 1
        return self.models[u]

    def other(self, u: int) -> int:
        return 1 - u

    def expect(self, response, code: int, what: str = "") -> None:
        STATS[(what.split(" ")[0][:20], code)] = STATS.get((what.split(" ")[0][:20], code), 0) + 1
        assert response.status_code == code, (what, code, response.status_code, response.content)

    @initialize()
    def seed(self):
        CLOCK[0] += STEP_TIME
        """Each user starts with a list, tasks in it and in the Inbox, a subtask, a tag and a
        recurring task, so that the first rules have something to work on."""
        for u in (0, 1):
            m = self.models[u]
            r = self.call(u, "post", "/api/v1/lists/", {"name": "Home"})
            lid = r.json()["id"]
            m.lists[lid] = {"name": "Home"}
            due = (today() + timedelta(days=3)).isoformat()
            for body in (
                {"title": "alpha bravo", "list": lid, "tags": ["home"]},
                {"title": "charlie", "list": lid},
                {"title": "delta", "tags": ["work", "home"]},
                {"title": "echo", "due_date": due, "recurrence": "FREQ=WEEKLY;COUNT=3"},
            ):
                r = self.call(u, "post", "/api/v1/tasks/", body)
                self.expect(r, 201, "seed")
                tid = r.json()["id"]
                m.tasks[tid] = {
                    "id": tid,
                    "title": body["title"],
                    "completed": False,
                    "priority": "none",
                    "list": body.get("list"),
                    "parent": None,
                    "tags": set(body.get("tags", [])),
                    "due": body.get("due_date"),
                    "rec": body.get("recurrence"),
                    "version": 1,
                    "next": None,
                    "idx": 0,
                }
                m.tags |= set(body.get("tags", []))
                m.append(tid)
            first = m.groups[("L", lid)][0]
            r = self.call(u, "post", "/api/v1/tasks/", {"title": "golf", "parent": first})
            self.expect(r, 201, "seed")
            tid = r.json()["id"]
            m.tasks[tid] = {
                "id": tid,
                "title": "golf",
                "completed": False,
                "priority": "none",
                "list": lid,
                "parent": first,
                "tags": set(),
                "due": None,
                "rec": None,
                "version": 1,
                "next": None,
                "idx": 0,
            }
            m.append(tid)

    # --- lists --------------------------------------------------------------------------------

    @rule(
        u=st.integers(0, 1),
        name=st.sampled_from(["Home", "Work", "Shop", "home", "Garden", "Later"]),
    )
    def create_list(self, u, name):
        m = self.step(u)
        r = self.call(u, "post", "/api/v1/lists/", {"name": name})
        taken = any(l["name"].lower() == name.lower() for l in m.lists.values())
        self.expect(r, 400 if taken else 201, "list create")
        if not taken:
            m.lists[r.json()["id"]] = {"name": name}

    @rule(
        u=st.integers(0, 1), data=st.data(), name=st.sampled_from(["Home", "Work", "Shop", "Later"])
    )
    def rename_list(self, u, data, name):
        m = self.step(u)
        if not m.lists:
            return
        lid = data.draw(st.sampled_from(list(m.lists)))
        r = self.call(u, "patch", f"/api/v1/lists/{lid}/", {"name": name})
        taken = any(l["name"].lower() == name.lower() for i, l in m.lists.items() if i != lid)
        self.expect(r, 400 if taken else 200, "list rename")
        if not taken:
            m.lists[lid]["name"] = name

    @rule(u=st.integers(0, 1), data=st.data(), delete_tasks=st.booleans())
    def delete_list(self, u, data, delete_tasks):
        m = self.step(u)
        if not m.lists:
            return
        lid = data.draw(st.sampled_from(list(m.lists)))
        url = f"/api/v1/lists/{lid}/" + ("?tasks=delete" if delete_tasks else "")
        self.expect(self.call(u, "delete", url), 204, "list delete")
        top = list(m.groups.get(("L", lid), []))
        if delete_tasks:
            m.delete(top)
        else:
            for tid in top:
                m.unplace(tid)
                m.tasks[tid]["list"] = None
                m.append(tid)
                m.bump(tid)
                for sub in m.subtasks(tid):
                    m.tasks[sub]["list"] = None
                    m.bump(sub)
        m.groups.pop(("L", lid), None)
        del m.lists[lid]

    # --- tasks --------------------------------------------------------------------------------

    def draw_list(self, data, u, m):
        """(value to send, expected status or None)"""
        choice = data.draw(st.sampled_from(["none", "mine", "theirs"]))
        if choice == "mine" and m.lists:
            return data.draw(st.sampled_from(list(m.lists))), None
        theirs = self.models[self.other(u)].lists
        if choice == "theirs" and theirs:
            return data.draw(st.sampled_from(list(theirs))), 400
        return None, None

    @rule(
        u=st.integers(0, 1),
        data=st.data(),
        words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=2),
        tags=st.lists(st.sampled_from(TAGS), max_size=2),
        due=st.none() | due_dates(),
        rec=st.none() | st.sampled_from(RULES),
        priority=st.sampled_from(PRIORITIES),
        idem=st.booleans(),
    )
    def create_task(self, u, data, words, tags, due, rec, priority, idem):
        m = self.step(u)
        body = {"title": " ".join(words), "priority": priority}
        expected = 201
        list_id, status = self.draw_list(data, u, m)
        if list_id is not None:
            body["list"] = list_id
            expected = status or expected
        parent_choice = data.draw(st.sampled_from(["none", "top", "sub", "theirs"]))
        parent = None
        if parent_choice == "top":
            tops = [t for t in m.tasks.values() if not t["parent"]]
            if tops:
                parent = data.draw(st.sampled_from([t["id"] for t in tops]))
                if "list" in body and body["list"] != m.tasks[parent]["list"]:
                    expected = 400
        elif parent_choice == "sub":
            subs = [t for t in m.tasks.values() if t["parent"]]
            if subs:
                parent = data.draw(st.sampled_from([t["id"] for t in subs]))
                expected = 400
        elif parent_choice == "theirs":
            theirs = self.models[self.other(u)].tasks
            if theirs:
                parent = data.draw(st.sampled_from(list(theirs)))
                expected = 400
        if parent:
            body["parent"] = parent
        if tags:
            body["tags"] = [data.draw(casings(t)) for t in tags]
        if due:
            body["due_date"] = due
        if rec:
            body["recurrence"] = rec
            if not due:
                expected = 400
        headers = {}
        if idem:
            headers["HTTP_IDEMPOTENCY_KEY"] = key = uuid.uuid4().hex
        r = self.call(u, "post", "/api/v1/tasks/", body, **headers)
        self.expect(r, expected, f"create {body}")
        if expected != 201:
            return
        answer = r.json()
        tid = answer["id"]
        list_ = m.tasks[parent]["list"] if parent else body.get("list")
        m.tasks[tid] = {
            "id": tid,
            "title": body["title"],
            "completed": False,
            "priority": priority,
            "list": list_,
            "parent": parent,
            "tags": {t.lower() for t in tags},
            "due": due,
            "rec": rec,
            "version": 1,
            "next": None,
            "idx": 0,
        }
        m.tags |= {t.lower() for t in tags}
        m.append(tid)
        m.changed.add(tid)
        assert answer["version"] == 1
        if idem:
            self.idem[u] = (key, body, r.status_code, answer)

    @rule(
        u=st.integers(0, 1),
        data=st.data(),
        words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=2),
        rec=st.none() | st.sampled_from(RULES),
        due=due_dates(),
    )
    def create_task_plain(self, u, data, words, rec, due):
        self.create_task(u, data, words, [], due, rec, "none", False)

    @rule(u=st.integers(0, 1), other_body=st.booleans())
    def replay_create(self, u, other_body):
        self.step(u)
        if u not in self.idem:
            return
        key, body, status, answer = self.idem[u]
        if other_body:
            r = self.call(
                u,
                "post",
                "/api/v1/tasks/",
                {**body, "title": body["title"] + " x"},
                HTTP_IDEMPOTENCY_KEY=key,
            )
            self.expect(r, 422, "idempotency key, another body")
            return
        r = self.call(u, "post", "/api/v1/tasks/", body, HTTP_IDEMPOTENCY_KEY=key)
        self.expect(r, status, "replay")
        assert r["Idempotent-Replayed"] == "true"
        assert r.json() == answer

    def pick_task(self, data, u, m, *, theirs_ok=True):
        """(id, is_mine)"""
        pool = list(m.tasks)
        theirs = list(self.models[self.other(u)].tasks)
        if theirs and theirs_ok and (not pool or data.draw(st.integers(0, 9)) == 0):
            return data.draw(st.sampled_from(theirs)), False
        if not pool:
            return None, True
        return data.draw(st.sampled_from(pool)), True

    def apply_patch(self, m, tid, fields):
        """The model's PATCH: returns the expected status."""
        t = m.tasks[tid]
        p = fields.get("parent")
        if p is not None and (p == tid or m.tasks[p]["parent"] or m.subtasks(tid)):
            return 400
        if "due_date" in fields and fields["due_date"] is None and t["rec"]:
            return 400
        if (
            "list" in fields
            and t["parent"]
            and "parent" not in fields
            and fields["list"] != t["list"]
        ):
            return 400
        before = dict(t, tags=set(t["tags"]))
        if "title" in fields:
            t["title"] = fields["title"]
        if "priority" in fields:
            t["priority"] = fields["priority"]
        if "tags" in fields:
            t["tags"] = {x.lower() for x in fields["tags"]}
            m.tags |= t["tags"]
        if "due_date" in fields:
            t["due"] = fields["due_date"]
            if t["rec"] and fields["due_date"] != before["due"]:
                t["idx"] = None
        placement = False
        if "parent" in fields and fields["parent"] != t["parent"]:
            m.unplace(tid)
            t["parent"] = fields["parent"]
            if t["parent"]:
                t["list"] = m.tasks[t["parent"]]["list"]
            m.append(tid)
            placement = True
        elif "list" in fields and fields["list"] != t["list"]:
            m.unplace(tid)
            t["list"] = fields["list"]
            m.append(tid)
            placement = True
            for sub in m.subtasks(tid):
                m.tasks[sub]["list"] = t["list"]
                m.bump(sub)
        changed = placement or any(before[k] != t[k] for k in ("title", "priority", "tags", "due"))
        completing = fields.get("completed") is True and not t["completed"]
        if fields.get("completed") is False and t["completed"]:
            t["completed"] = False
            changed = True
        if completing:
            m.complete(tid)  # bumps it once, whatever else changed
        elif changed:
            m.bump(tid)
        return 200

    @rule(u=st.integers(0, 1), data=st.data())
    def patch_task(self, u, data):
        m = self.step(u)
        tid, mine = self.pick_task(data, u, m)
        if tid is None:
            return
        fields = {}
        for name in data.draw(
            st.sets(
                st.sampled_from(
                    ["title", "completed", "priority", "list", "parent", "tags", "due_date"]
                ),
                min_size=1,
                max_size=3,
            )
        ):
            if name == "title":
                fields["title"] = " ".join(
                    data.draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=2))
                )
            elif name == "completed":
                fields["completed"] = data.draw(st.booleans())
            elif name == "priority":
                fields["priority"] = data.draw(st.sampled_from(PRIORITIES))
            elif name == "list" and "parent" not in fields:
                fields["list"] = data.draw(st.none() | st.sampled_from(list(m.lists) or [None]))
            elif name == "parent" and "list" not in fields:
                fields["parent"] = data.draw(st.none() | st.sampled_from(list(m.tasks) or [None]))
            elif name == "tags":
                fields["tags"] = data.draw(st.lists(st.sampled_from(TAGS), max_size=3, unique=True))
            elif name == "due_date":
                fields["due_date"] = data.draw(st.none() | due_dates())
        if not fields:
            return
        if not mine:
            self.expect(self.call(u, "patch", f"/api/v1/tasks/{tid}/", fields), 404, "theirs")
            return
        snapshot = self.snapshot(m)
        expected = self.apply_patch(m, tid, fields)
        r = self.call(u, "patch", f"/api/v1/tasks/{tid}/", fields)
        self.expect(r, expected, f"patch {fields} of {snapshot[0][tid]}")
        if expected != 200:
            self.restore(m, snapshot)

    @rule(
        u=st.integers(0, 1),
        data=st.data(),
        completed=st.booleans(),
        priority=st.sampled_from(PRIORITIES),
    )
    def put_task(self, u, data, completed, priority):
        m = self.step(u)
        tid, _ = self.pick_task(data, u, m, theirs_ok=False)
        if tid is None:
            return
        t = m.tasks[tid]
        body = {
            "title": t["title"],
            "description": "",
            "completed": completed,
            "priority": priority,
            "due_date": t["due"],
            "due_time": None,
            "list": t["list"],
            "tags": sorted(t["tags"]),
            "parent": t["parent"],
            "recurrence": t["rec"],
        }
        self.apply_patch(m, tid, {"completed": completed, "priority": priority})
        self.expect(self.call(u, "put", f"/api/v1/tasks/{tid}/", body), 200, f"put {body}")

    @rule(
        u=st.integers(0, 1), data=st.data(), if_match=st.sampled_from(["none", "current", "stale"])
    )
    def delete_task(self, u, data, if_match):
        m = self.step(u)
        tid, mine = self.pick_task(data, u, m)
        if tid is None:
            return
        headers = {}
        if mine and if_match != "none":
            version = m.tasks[tid]["version"] - (if_match == "stale")
            if version < 1:
                return
            etag = self.call(u, "get", f"/api/v1/tasks/{tid}/")["ETag"]
            if if_match == "stale":
                etag = (
                    etag.replace(f'"{m.tasks[tid]["version"]}', f'"{version}')
                    if f'"{m.tasks[tid]["version"]}' in etag
                    else '"stale-0"'
                )
            headers["HTTP_IF_MATCH"] = etag
        r = self.call(u, "delete", f"/api/v1/tasks/{tid}/", **headers)
        if not mine:
            self.expect(r, 404, "delete theirs")
            return
        if if_match == "stale":
            self.expect(r, 412, f"stale If-Match {headers}")
            return
        self.expect(r, 204, "delete")
        m.delete([tid])

    @rule(u=st.integers(0, 1), data=st.data())
    def move_task(self, u, data):
        m = self.step(u)
        tid, mine = self.pick_task(data, u, m)
        if tid is None:
            return
        if not mine:
            self.expect(
                self.call(u, "post", f"/api/v1/tasks/{tid}/move/", {"after": None}),
                404,
                "move theirs",
            )
            return
        t = m.tasks[tid]
        body: dict = {}
        target_list = t["list"]
        if not t["parent"] and data.draw(st.booleans()):
            target_list = data.draw(st.none() | st.sampled_from(list(m.lists) or [None]))
            body["list"] = target_list
        key = ("P", t["parent"]) if t["parent"] else ("L", target_list)
        group = list(m.groups.get(key, []))
        kind = data.draw(
            st.sampled_from(["null", "sibling", "sibling", "self", "elsewhere", "theirs"])
        )
        expected = 200
        after = None
        if kind == "sibling" and [x for x in group if x != tid]:
            after = data.draw(st.sampled_from([x for x in group if x != tid]))
        elif kind == "self":
            after, expected = tid, 400
        elif kind == "elsewhere":
            others = [x for x in m.tasks if x not in group]
            if others:
                after, expected = data.draw(st.sampled_from(list(others))), 400
        elif kind == "theirs" and self.models[self.other(u)].tasks:
            after, expected = (
                data.draw(st.sampled_from(list(self.models[self.other(u)].tasks))),
                400,
            )
        body["after"] = after
        r = self.call(u, "post", f"/api/v1/tasks/{tid}/move/", body)
        self.expect(r, expected, f"move {body}")
        if expected != 200:
            return
        old = list(m.groups[m.key(t)])
        m.unplace(tid)
        list_changed = target_list != t["list"]
        t["list"] = target_list
        new_group = m.groups.setdefault(m.key(t), [])
        new_group.insert(0 if after is None else new_group.index(after) + 1, tid)
        m.moved_groups[m.key(t)] = m.moved_groups.get(m.key(t), 0) + 1
        if list_changed or m.groups[m.key(t)] != old:
            m.bump(tid)
        if list_changed:
            for sub in m.subtasks(tid):
                m.tasks[sub]["list"] = target_list
                m.bump(sub)

    @rule(u=st.integers(0, 1), data=st.data(), times=st.integers(8, 14))
    def crowd(self, u, data, times):
        """Moves the last task of a group right after the first, again and again, until the gap
        after the first is used up and neighbours are re-ranked (README: Positions)."""
        m = self.step(u)
        groups = [k for k, ids in m.groups.items() if len(ids) >= 3]
        if not groups:
            return
        key = data.draw(st.sampled_from(groups))
        group = m.groups[key]
        for _ in range(times):
            first, last = group[0], group[-1]
            r = self.call(u, "post", f"/api/v1/tasks/{last}/move/", {"after": first})
            self.expect(r, 200, "move crowd")
            group.remove(last)
            group.insert(1, last)
            m.bump(last)
        m.moved_groups[key] = m.moved_groups.get(key, 0) + times

    @rule(u=st.integers(0, 1), data=st.data(), priority=st.sampled_from(PRIORITIES))
    def patch_with_stale_if_match(self, u, data, priority):
        m = self.step(u)
        tid, _ = self.pick_task(data, u, m, theirs_ok=False)
        if tid is None or m.tasks[tid]["version"] < 2:
            return
        etag = self.call(u, "get", f"/api/v1/tasks/{tid}/")["ETag"]
        v = str(m.tasks[tid]["version"])
        assert v in etag, (etag, v)
        stale = etag.replace(v, str(m.tasks[tid]["version"] - 1))
        r = self.call(
            u, "patch", f"/api/v1/tasks/{tid}/", {"priority": priority}, HTTP_IF_MATCH=stale
        )
        self.expect(r, 412, "stale If-Match patch")
        r = self.call(
            u, "patch", f"/api/v1/tasks/{tid}/", {"priority": priority}, HTTP_IF_MATCH=etag
        )
        self.expect(r, 200, "If-Match patch")
        self.apply_patch(m, tid, {"priority": priority})

    @rule(
        u=st.integers(0, 1),
        data=st.data(),
        action=st.sampled_from(
            ["complete", "reopen", "delete", "move", "set_priority", "add_tags", "remove_tags"]
        ),
        bogus=st.sampled_from([None, None, "unknown", "theirs"]),
    )
    def bulk(self, u, data, action, bogus):
        m = self.step(u)
        if not m.tasks:
            return
        ids = data.draw(
            st.lists(st.sampled_from(list(m.tasks)), min_size=1, max_size=4, unique=True)
        )
        body: dict = {"action": action, "ids": list(ids)}
        if action == "move":
            body["list"] = data.draw(st.none() | st.sampled_from(list(m.lists) or [None]))
        if action == "set_priority":
            body["priority"] = data.draw(st.sampled_from(PRIORITIES))
        if action in ("add_tags", "remove_tags"):
            body["tags"] = data.draw(
                st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True)
            )
        if bogus == "unknown":
            body["ids"].append(str(uuid.uuid4()))
        elif bogus == "theirs" and self.models[self.other(u)].tasks:
            body["ids"].append(data.draw(st.sampled_from(list(self.models[self.other(u)].tasks))))
        else:
            bogus = None
        r = self.call(u, "post", "/api/v1/tasks/bulk/", body)
        if bogus:
            self.expect(r, 404, "bulk with a missing id")
            assert r.json()["missing_ids"] == [body["ids"][-1]]
            return
        if action == "move" and any(m.tasks[i]["parent"] not in (None, *ids) for i in ids):
            self.expect(r, 400, "bulk move of a subtask alone")
            return
        self.expect(r, 200, f"bulk {body}")
        updated = 0
        if action == "delete":
            m.delete([i for i in ids if i in m.tasks])
            updated = len(ids)
        was_open = {i for i in ids if action == "complete" and not m.tasks[i]["completed"]}
        for tid in ids:
            if action in ("delete", "move"):
                break
            t = m.tasks[tid]
            if action == "complete":
                # Counted: the named tasks that were open (a subtask named with its parent too).
                if tid in was_open:
                    m.complete(tid)
                    updated += 1
            elif action == "reopen":
                if t["completed"]:
                    t["completed"] = False
                    m.bump(tid)
                    updated += 1
            elif action == "set_priority":
                if t["priority"] != body["priority"]:
                    t["priority"] = body["priority"]
                    m.bump(tid)
                    updated += 1
            elif action == "add_tags":
                new = t["tags"] | set(body["tags"])
                m.tags |= set(body["tags"])
                if new != t["tags"]:
                    t["tags"] = new
                    m.bump(tid)
                    updated += 1
            elif action == "remove_tags":
                new = t["tags"] - set(body["tags"])
                if new != t["tags"]:
                    t["tags"] = new
                    m.bump(tid)
                    updated += 1
        if action == "move":
            # To the end of the target list in the order of their ranks (README: Bulk); the
            # subtasks follow, each counted when named.
            seen = self.last_server[u]
            moving = sorted(
                (i for i in ids if not m.tasks[i]["parent"] and m.tasks[i]["list"] != body["list"]),
                key=lambda i: (seen[i]["position"], i),
            )
            for tid in moving:
                t = m.tasks[tid]
                m.unplace(tid)
                t["list"] = body["list"]
                m.append(tid)
                m.bump(tid)
                m.moved_groups[m.key(t)] = m.moved_groups.get(m.key(t), 0) + 1
                updated += 1
                for sub in m.subtasks(tid):
                    m.tasks[sub]["list"] = t["list"]
                    m.bump(sub)
                    updated += sub in ids
        assert r.json() == {"updated": updated}, (body, r.json(), updated)

    # --- tags ---------------------------------------------------------------------------------

    @rule(u=st.integers(0, 1), data=st.data(), new=st.sampled_from(TAGS + ["later"]))
    def rename_tag(self, u, data, new):
        m = self.step(u)
        if not m.tags:
            return
        old = data.draw(st.sampled_from(sorted(m.tags)))
        if old == new:
            return
        r = self.call(u, "patch", f"/api/v1/tags/{old}/", {"name": new})
        self.expect(r, 200, "tag rename")
        for t in m.tasks.values():
            if old in t["tags"]:
                t["tags"] = (t["tags"] - {old}) | {new}
                m.bump(t["id"])
        m.tags = (m.tags - {old}) | {new}

    @rule(u=st.integers(0, 1), data=st.data())
    def delete_tag(self, u, data):
        m = self.step(u)
        if not m.tags:
            return
        name = data.draw(st.sampled_from(sorted(m.tags)))
        self.expect(self.call(u, "delete", f"/api/v1/tags/{name}/"), 204, "tag delete")
        for t in m.tasks.values():
            if name in t["tags"]:
                t["tags"] = t["tags"] - {name}
                m.bump(t["id"])
        m.tags.discard(name)

    @rule(u=st.integers(0, 1), data=st.data())
    def theirs_are_404(self, u, data):
        self.step(u)
        theirs = self.models[self.other(u)]
        if theirs.tasks:
            tid = data.draw(st.sampled_from(list(theirs.tasks)))
            self.expect(self.call(u, "get", f"/api/v1/tasks/{tid}/"), 404, "get theirs")
        if theirs.lists:
            lid = data.draw(st.sampled_from(list(theirs.lists)))
            self.expect(self.call(u, "get", f"/api/v1/lists/{lid}/"), 404, "list theirs")
            self.expect(self.call(u, "delete", f"/api/v1/lists/{lid}/"), 404, "delete list theirs")

    # --- snapshots ----------------------------------------------------------------------------

    @staticmethod
    def snapshot(m):
        import copy

        return copy.deepcopy((m.tasks, m.groups, m.tags, m.lists, m.pending_copies, m.changed))

    @staticmethod
    def restore(m, snap):
        m.tasks, m.groups, m.tags, m.lists, m.pending_copies, m.changed = snap

    # --- the invariants -----------------------------------------------------------------------

    def server_tasks(self, u) -> dict:
        tasks, url = {}, "/api/v1/tasks/?limit=200"
        while url:
            page = self.call(u, "get", url).json()
            tasks.update((t["id"], t) for t in page["results"])
            url = page["next"]
        return tasks

    @invariant()
    def matches_the_model(self):
        for u in (0, 1):
            self.check_user(u, full=(u == self.acting))
            self.models[u].begin_step()

    def check_user(self, u, full):
        m = self.models[u]
        server = self.server_tasks(u)
        new = set(server) - set(m.tasks)
        # Next occurrences the step made.
        for src, expect in m.pending_copies:
            if src not in server:
                continue
            copy_id = server[src]["next_occurrence"]
            if expect == "no":
                assert copy_id is None, ("COUNT spent, yet a copy", src)
                continue
            if expect == "yes":
                assert copy_id is not None, ("no next occurrence", m.tasks[src])
            if copy_id is None:
                continue
            assert copy_id in new, ("next_occurrence is not a new task", src, copy_id)
            new.discard(copy_id)
            s = m.tasks[src]
            s["next"] = copy_id
            step = 1 if s["rec"] == "FREQ=DAILY" else 7
            m.tasks[copy_id] = dict(
                s,
                id=copy_id,
                completed=False,
                version=1,
                next=None,
                tags=set(s["tags"]),
                due=(date.fromisoformat(s["due"]) + timedelta(days=step)).isoformat(),
                idx=None if s["idx"] is None else s["idx"] + 1,
            )
            group = m.groups[m.key(s)]
            group.insert(group.index(src) + 1, copy_id)
            # Placed right after its source: may re-rank neighbours as a move does.
            m.moved_groups[m.key(s)] = m.moved_groups.get(m.key(s), 0) + 1
            m.changed.add(copy_id)
        m.pending_copies = []
        assert not new, ("tasks the model does not know", [server[i] for i in new])
        assert set(server) == set(m.tasks), ("tasks gone", set(m.tasks) - set(server))
        previous = self.last_server[u]
        for tid, t in m.tasks.items():
            s = server[tid]
            shown = {
                "title": s["title"],
                "completed": s["completed"],
                "priority": s["priority"],
                "list": s["list"],
                "parent": s["parent"],
                "tags": {x.lower() for x in s["tags"]},
                "due": s["due_date"],
                "rec": s["recurrence"],
                "next": s["next_occurrence"],
            }
            want = {k: t[k] for k in shown}
            assert shown == want, (tid, shown, want)
            assert (s["completed_at"] is None) == (not s["completed"])
            if s["version"] != t["version"]:
                # A move that used up a gap re-ranks neighbours: their version moves too, once
                # per re-rank (at most one per move into the group). A task re-ranked and moved
                # back by later moves of the same step may end at its old rank.
                respread = (
                    t["version"] < s["version"] <= t["version"] + m.moved_groups.get(m.key(t), 0)
                    and m.key(t) in m.moved_groups
                )
                assert respread, (
                    f"version of {t['title']!r} ({tid}): model {t['version']}, server "
                    f"{s['version']}, {'changed' if tid in m.changed else 'not changed'} this step, "
                    f"position {previous.get(tid, {}).get('position')} -> {s['position']}, group "
                    f"{m.key(t)} moved into {m.moved_groups.get(m.key(t), 0)} times"
                )
                t["version"] = s["version"]
            # Subtasks: one level deep, in their parent's list.
            if s["parent"]:
                p = server[s["parent"]]
                assert p["parent"] is None and p["list"] == s["list"]
        # The order: positions unique in each group, and the model's order.
        for key, ids in m.groups.items():
            got = sorted((server[i]["position"], i) for i in ids)
            assert len({p for p, _ in got}) == len(got), ("duplicate positions", key, got)
            assert [i for _, i in got] == ids, (
                "order",
                key,
                [server[i]["title"] for _, i in got],
                [server[i]["title"] for i in ids],
            )
        self.last_server[u] = server
        if not full:
            return
        # The list filter's own order of top-level tasks.
        for lid in [None, *m.lists]:
            q = "inbox" if lid is None else lid
            got = [
                t["id"]
                for t in self.call(
                    u, "get", f"/api/v1/tasks/?list={q}&parent=none&limit=200"
                ).json()["results"]
            ]
            assert got == m.groups.get(("L", lid), []), ("list filter order", lid)
        # Lists and their counts.
        body = self.call(u, "get", "/api/v1/lists/").json()
        lists = {l["id"]: l for l in (body["results"] if isinstance(body, dict) else body)}
        assert set(lists) == set(m.lists)
        for lid, l in lists.items():
            mine = [t for t in m.tasks.values() if t["list"] == lid]
            assert l["name"] == m.lists[lid]["name"]
            assert l["task_count"] == len(mine), ("task_count", l, len(mine))
            assert l["open_task_count"] == sum(not t["completed"] for t in mine), (
                "open_task_count",
                l,
            )
        # Tags and their counts.
        tags = {
            t["name"].lower(): t["task_count"] for t in self.call(u, "get", "/api/v1/tags/").json()
        }
        counts = {name: sum(name in t["tags"] for t in m.tasks.values()) for name in m.tags}
        assert tags == counts, ("tags", tags, counts)
        # Search by one word.
        word = WORDS[self.steps % len(WORDS)]
        found = {
            t["id"]
            for t in self.call(u, "get", f"/api/v1/tasks/?search={word}&limit=200").json()[
                "results"
            ]
        }
        assert found == {i for i, t in m.tasks.items() if word in t["title"].split()}, (
            "search",
            word,
        )
        # The changes feed from the last cursor brings the device's copy to the server's.
        device = self.devices[u]
        while True:
            params = {"limit": 1000} | ({"cursor": self.cursors[u]} if self.cursors[u] else {})
            body = self.call(u, "get", "/api/v1/tasks/changes/", params).json()
            partial = "sync: fewer than all" if len(body["changed"]) < len(server) else "sync: all"
            STATS[partial] = STATS.get(partial, 0) + 1
            for t in body["changed"]:
                device[t["id"]] = t
            for gone in body["deleted"]:
                device.pop(gone["id"], None)
            self.cursors[u] = body["cursor"]
            if not body["has_more"]:
                break
        assert {i: t["version"] for i, t in device.items()} == {
            i: t["version"] for i, t in server.items()
        }, "changes feed"
        assert device == server, "changes feed: tasks differ from the list's"


TasksAPI.TestCase.settings = state_machine_settings(steps=20)


@pytest.mark.django_db(transaction=True)
def test_the_tasks_api_matches_a_model_of_two_users(settings, monkeypatch):
    settings.RATE_LIMIT_USER = "100000/m"
    monkeypatch.setattr(timezone, "now", lambda: CLOCK[0])
    run_state_machine_as_test(TasksAPI, settings=TasksAPI.TestCase.settings)


def teardown_module():

    if os.environ.get("STATEFUL_STATS"):
        print(list(STATS.items()))
