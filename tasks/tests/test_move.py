import functools
import random
import uuid
from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks import services
from tasks.models import NO_SUCH_LIST, NO_SUCH_TASK, POSITION_GAP, Task
from todo_project.fields import UUID_MESSAGE as INVALID_UUID
from todo_project.tests.helpers import run_in_threads

pytestmark = pytest.mark.django_db


def order(**group) -> list[str]:
    return list(Task.objects.filter(**group).order_by("position").values_list("title", flat=True))


def test_move_after_another_task(api_client, make_task):
    a, b, c = make_task("a"), make_task("b"), make_task("c")
    response = api_client.post(f"/api/v1/tasks/{c.pk}/move/", {"after": str(a.pk)})
    assert response.status_code == 200
    assert response.json()["id"] == str(c.pk) and response.json()["version"] == 2
    assert order() == ["a", "c", "b"]
    assert a.position < response.json()["position"] < b.position


def test_a_move_honours_if_match_and_answers_the_new_etag(api_client, make_task):
    a, b, c = make_task("a"), make_task("b"), make_task("c")
    url = f"/api/v1/tasks/{c.pk}/move/"
    stale = api_client.post(url, {"after": None}, HTTP_IF_MATCH='"2"')
    assert stale.status_code == 412 and stale["Content-Type"] == "application/problem+json"
    assert order() == ["a", "b", "c"] and Task.objects.get(pk=c.pk).version == 1
    moved = api_client.post(url, {"after": None}, HTTP_IF_MATCH='"1"')
    assert moved.status_code == 200 and moved["ETag"] == '"2"' and order() == ["c", "a", "b"]
    assert api_client.post(url, {"after": str(a.pk)}, HTTP_IF_MATCH='"1"').status_code == 412
    assert api_client.post(url, {"after": str(b.pk)}, HTTP_IF_MATCH="*").status_code == 200
    assert order() == ["a", "b", "c"]


@pytest.mark.parametrize("to", ["first", "after a", "after a, same list given"])
def test_a_move_to_the_place_a_task_has_changes_nothing(
    api_client, make_task, make_list, django_assert_max_num_queries, to
):
    home = make_list("Home")
    a, b, c = make_task("a", list=home), make_task("b", list=home), make_task("c", list=home)
    moving, body = {
        "first": (a, {"after": None}),
        "after a": (b, {"after": str(a.pk)}),
        "after a, same list given": (b, {"after": str(a.pk), "list": str(home.pk)}),
    }[to]
    before = api_client.get(f"/api/v1/tasks/{moving.pk}/")
    with django_assert_max_num_queries(10) as captured:
        response = api_client.post(f"/api/v1/tasks/{moving.pk}/move/", body)
    assert not [q for q in captured.captured_queries if q["sql"].lstrip().startswith("UPDATE")]
    assert response.status_code == 200 and response["ETag"] == before["ETag"] == '"1"'
    assert response.json() == before.json()  # same version, position and updated_at
    assert order() == ["a", "b", "c"]
    assert set(Task.objects.values_list("version", flat=True)) == {1}
    # Moving it elsewhere and back still counts: two changes.
    api_client.post(f"/api/v1/tasks/{moving.pk}/move/", {"after": str(c.pk)})
    back = api_client.post(f"/api/v1/tasks/{moving.pk}/move/", body)
    assert back.json()["version"] == 3 and order() == ["a", "b", "c"]


def test_move_first_with_after_null(api_client, make_task):
    make_task("a")
    make_task("b")
    c = make_task("c")
    api_client.post(f"/api/v1/tasks/{c.pk}/move/", {"after": None})
    assert order() == ["c", "a", "b"]


def test_move_into_another_list_keeps_the_id_and_takes_subtasks(api_client, make_task, make_list):
    home, work = make_list("Home"), make_list("Work")
    task = make_task("task", list=home)
    sub = make_task("sub", parent=task)
    w1 = make_task("w1", list=work)
    response = api_client.post(
        f"/api/v1/tasks/{task.pk}/move/", {"after": str(w1.pk), "list": str(work.pk)}
    )
    assert response.json()["id"] == str(task.pk) and response.json()["list"] == str(work.pk)
    assert order(list=work, parent=None) == ["w1", "task"]
    sub.refresh_from_db()
    assert sub.list_id == work.pk

    api_client.post(f"/api/v1/tasks/{task.pk}/move/", {"after": None, "list": None})
    assert order(list=None, parent=None) == ["task"]


def test_after_must_be_a_sibling_in_the_target_group(api_client, make_task, make_list):
    home = make_list("Home")
    a = make_task("a")
    other = make_task("other", list=home)
    for after in (other.pk, a.pk):
        response = api_client.post(f"/api/v1/tasks/{a.pk}/move/", {"after": str(after)})
        assert response.status_code == 400 and list(response.json()["errors"]) == ["after"]
    missing = api_client.post(f"/api/v1/tasks/{a.pk}/move/", {})
    assert missing.status_code == 400 and list(missing.json()["errors"]) == ["after"]


def test_a_subtask_moves_among_its_siblings_only(api_client, make_task, make_list):
    parent = make_task("parent")
    s1, s2 = make_task("s1", parent=parent), make_task("s2", parent=parent)
    api_client.post(f"/api/v1/tasks/{s1.pk}/move/", {"after": str(s2.pk)})
    assert order(parent=parent) == ["s2", "s1"]
    home = make_list("Home")
    response = api_client.post(
        f"/api/v1/tasks/{s1.pk}/move/", {"after": None, "list": str(home.pk)}
    )
    assert response.status_code == 400
    # The words of a create or a PATCH putting a subtask elsewhere: one rule, one wording.
    assert response.json()["errors"] == {"list": [services.NOT_PARENTS_LIST]}


UNKNOWN = "00000000-0000-4000-8000-00000000dead"
AFTER_UNKNOWN = {"after": [NO_SUCH_TASK]}
OTHER_GROUP = {"after": ["Must be another task of the same list and parent, or null."]}


@pytest.mark.parametrize(
    ("mover", "body", "errors"),
    [
        ("a", {"after": UNKNOWN}, AFTER_UNKNOWN),
        ("a", {"after": "theirs"}, AFTER_UNKNOWN),  # someone else's: as unknown
        ("a", {"after": "a"}, OTHER_GROUP),
        ("a", {"after": "h"}, OTHER_GROUP),
        # The anchor is read by the move, not the serializer; an unknown one still comes with
        # the other fields' errors, first, in the fields' order.
        ("a", {"after": UNKNOWN, "list": UNKNOWN}, {**AFTER_UNKNOWN, "list": [NO_SUCH_LIST]}),
        ("a", {"list": "bad", "after": "theirs"}, {**AFTER_UNKNOWN, "list": [INVALID_UUID]}),
        ("a", {"after": "b", "list": UNKNOWN}, {"list": [NO_SUCH_LIST]}),
        ("a", {"after": None, "list": UNKNOWN}, {"list": [NO_SUCH_LIST]}),
        ("a", {"after": "bad", "list": UNKNOWN}, {"after": [INVALID_UUID], "list": [NO_SUCH_LIST]}),
        # A subtask leaving its parent's list: an unknown anchor is named before that rule.
        ("s1", {"after": UNKNOWN, "list": "home"}, AFTER_UNKNOWN),
        ("s1", {"after": "theirs", "list": "home"}, AFTER_UNKNOWN),
        ("s1", {"after": "s2", "list": "home"}, {"list": [services.NOT_PARENTS_LIST]}),
        ("s1", {"after": None, "list": "home"}, {"list": [services.NOT_PARENTS_LIST]}),
        ("s1", {"after": UNKNOWN}, AFTER_UNKNOWN),
    ],
)
def test_guard_a_move_names_a_refused_anchor_as_before(
    api_client, make_task, make_list, other_user, mover, body, errors
):
    home = make_list("Home")
    parent = make_task("parent")
    ids = {
        "a": make_task("a"),
        "b": make_task("b"),
        "h": make_task("h", list=home),
        "s1": make_task("s1", parent=parent),
        "s2": make_task("s2", parent=parent),
        "theirs": make_task("theirs", owner=other_user),
        "home": home,
    }
    sent = {key: str(ids[value].pk) if value in ids else value for key, value in body.items()}
    response = api_client.post(f"/api/v1/tasks/{ids[mover].pk}/move/", sent, format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"].items()) == list(errors.items())  # in this order
    assert Task.objects.get(pk=ids[mover].pk).version == 1


def test_a_used_up_gap_moves_only_the_tasks_crowded_into_it(make_task, make_list):
    home = make_list("Home")
    a, b, c = make_task("a"), make_task("b"), make_task("c")
    elsewhere = make_task("elsewhere", list=home)
    # Repeatedly moving into the gap after `a` halves it until it is used up (10 moves for a
    # gap of 1024): then the ten moved tasks spread out up to `b`, and the moves go on.
    moved = [make_task(f"m{i}") for i in range(12)]
    for task in moved:
        services.task_move(task=task, after=a)
    assert order(list=None) == ["a", *[t.title for t in reversed(moved)], "b", "c"]
    inbox = dict(Task.objects.filter(list=None).values_list("title", "position"))
    assert len(set(inbox.values())) == len(inbox)
    # Renumbering the whole group would have moved all of these.
    assert [inbox["a"], inbox["b"], inbox["c"]] == [a.position, b.position, c.position]
    assert Task.objects.get(pk=elsewhere.pk).position == elsewhere.position


def test_a_move_whose_spread_moves_the_task_itself_places_it(api_client, user):
    """`a, m9, m8, m7, …` after ten moves into the gap after `a`: moving m7 after `a` spreads
    m9, m8 and m7 itself up, and m7's rank read before that was compared with the new
    neighbours: "already there", a 200 with the old position and version, m7 still fourth, and
    its next If-Match a 412 (review 29d)."""
    post = functools.partial(api_client.post, format="json")
    a = post("/api/v1/tasks/", {"title": "a"}).json()
    post("/api/v1/tasks/", {"title": "b"})
    moved = [post("/api/v1/tasks/", {"title": f"m{i}"}).json() for i in range(10)]
    for task in moved:
        assert post(f"/api/v1/tasks/{task['id']}/move/", {"after": a["id"]}).status_code == 200
    assert order()[:4] == ["a", "m9", "m8", "m7"]

    response = post(f"/api/v1/tasks/{moved[7]['id']}/move/", {"after": a["id"]})

    assert response.status_code == 200
    assert order()[:4] == ["a", "m7", "m9", "m8"]
    stored = Task.objects.get(pk=moved[7]["id"])
    assert (response.json()["position"], response.json()["version"]) == (
        stored.position,
        stored.version,
    )
    assert response["ETag"] == api_client.get(f"/api/v1/tasks/{stored.pk}/")["ETag"]


def test_random_moves_keep_the_order_a_plain_list_predicts(user, make_list):
    """Seeded moves (most after a few hot anchors, whose gaps get used up; some first, some
    across lists) against a list model of "right after `after`" and "first". The code before
    review 29d's fix went wrong at step 194."""
    rng = random.Random(1)
    lists = [None, make_list("L1"), make_list("L2")]
    model = {None: [], lists[1].pk: [], lists[2].pk: []}
    for i in range(40):
        target = rng.choice(lists)
        data = {"title": f"t{i}", **({"list": target} if target else {})}
        model[target and target.pk].append(services.task_create(user=user, data=data).pk)
    ids = [pk for group in model.values() for pk in group]
    hot = rng.sample(ids, 3)
    for step in range(250):
        task_id = rng.choice(ids)
        current = next(key for key, group in model.items() if task_id in group)
        target, key = services.UNCHANGED, current
        if rng.random() < 0.1:
            target = rng.choice(lists)
            key = target and target.pk
        others = [pk for pk in model[key] if pk != task_id]
        draw = rng.random()
        if not others or draw < 0.15:
            after = None
        else:
            anchors = [pk for pk in hot if pk in others] if draw < 0.8 else []
            after = rng.choice(anchors or others)
        services.task_move(
            task=Task.objects.get(pk=task_id),
            after=after and Task.objects.get(pk=after),
            list_=target,
        )
        model[current].remove(task_id)
        model[key].insert(0 if after is None else model[key].index(after) + 1, task_id)
        if step % 10 == 9:
            for group, expected in model.items():
                stored = Task.objects.filter(owner=user, parent=None, list_id=group)
                assert list(stored.order_by("position").values_list("pk", flat=True)) == expected


@pytest.mark.parametrize("how", ["down", "whole-group", "whole-group-onto-a-taken-rank"])
def test_completing_a_recurring_task_by_patch_where_its_spread_moves_it(api_client, user, how):
    """As the bulk tests above, one task by PATCH, the way most clients complete: the spread
    that opens the room for its copy moves the task itself (down, or the whole group
    renumbered), and the completion wrote its old rank back: its copy before it, or it
    elsewhere in the group; onto a rank the renumbering gave another task, a 500 (review 29d)."""
    if how == "down":  # no room after t0 within SPREAD_RUN_LIMIT: t0 and those before move down
        ranks = {"far": -10000, "t-2": -2, **{f"t{rank}": rank for rank in range(LIMIT + 2)}}
    else:  # crowded both ways: the whole group is renumbered to 1024, 2048, …
        base = 2 * POSITION_GAP if how == "whole-group-onto-a-taken-rank" else 0
        ranks = {f"t{rank}": base + rank for rank in range(-LIMIT - 1, LIMIT + 2)}
    (t0,) = _crowded_recurring(user, ranks, {"t0"})

    response = api_client.patch(f"/api/v1/tasks/{t0}/", {"completed": True}, format="json")

    assert response.status_code == 200, response.content
    in_order = sorted(ranks, key=ranks.__getitem__)
    assert order(owner=user) == [
        copy for title in in_order for copy in [title] * (title == "t0") + [title]
    ]
    ids = [str(pk) for pk in Task.objects.order_by("position").values_list("pk", flat=True)]
    assert ids[ids.index(str(t0)) + 1] == response.json()["next_occurrence"]
    assert response.json()["position"] == Task.objects.get(pk=t0).position


def ranks_after_spreading(user, ranks: list[int], above: int) -> list[int]:
    """The Inbox of tasks at these ranks, in order, after opening the gap after `above`."""
    Task.objects.bulk_create(Task(owner=user, title=f"t{rank}", position=rank) for rank in ranks)
    before = timezone.now()
    services._spread_after(user.pk, (None, None), above)
    after = list(Task.objects.order_by("position").values("title", "position"))
    assert [task["title"] for task in after] == [f"t{rank}" for rank in ranks]  # same order
    # A task whose rank moved is changed (a new ETag, and `updated_since` finds it); no other.
    changed = Task.objects.filter(version=2, updated_at__gte=before)
    assert set(changed.values_list("title", flat=True)) == {
        f"t{rank}" for rank, task in zip(ranks, after, strict=True) if task["position"] != rank
    }
    assert not Task.objects.filter(version__gt=2).exists()
    return [task["position"] for task in after]


ROOM, LIMIT = services.SPREAD_ROOM, services.SPREAD_RUN_LIMIT
CROWD = list(range(1, LIMIT + 2))  # more than the limit, no room anywhere


@pytest.mark.parametrize(
    ("ranks", "above", "expected"),
    [
        # The shortest run after the gap that leaves SPREAD_ROOM, spread up to the first that
        # stays: (10000 - 0) // 4 apart. Moving only `1` would leave 1 between ranks.
        ([0, 1, 2, 3, 10000, 10001], 0, [0, 2500, 5000, 7500, 10000, 10001]),
        # A run to the end of the group spreads by the whole gap.
        ([-7, 0, 1, 2], 0, [-7, 0, 1024, 2048]),
        # No room after the gap within the limit: the task before it and its predecessors move
        # down instead, as few as will do: (1 - -10000) // 3 apart.
        ([-10000, -2, 0, *CROWD], 0, [-10000, 1 - 2 * 3333, 1 - 3333, *CROWD]),
        # Crowded both ways: the whole group is renumbered.
        (
            [-1 - n for n in reversed(range(LIMIT + 1))] + [0, *CROWD],
            0,
            [POSITION_GAP * n for n in range(1, 2 * LIMIT + 4)],
        ),
    ],
    ids=["up", "up-to-the-end", "down", "whole-group"],
)
def test_spreading_opens_the_gap_by_moving_the_fewest_ranks(user, ranks, above, expected):
    spread = ranks_after_spreading(user, ranks, above)
    assert spread == expected
    at = ranks.index(above)
    assert spread[at + 1] - spread[at] >= ROOM  # the gap after the task at `above` is open


def test_a_move_after_a_task_that_had_to_move_down_lands_right_after_it(user, make_list):
    ranks = [-10000, 0, *CROWD]
    Task.objects.bulk_create(Task(owner=user, title=f"t{rank}", position=rank) for rank in ranks)
    after = Task.objects.get(title="t0")
    mover = services.task_create(user=user, data={"title": "mover", "list": make_list("Home")})
    services.task_move(task=mover, after=after, list_=None)
    assert order(list=None) == ["t-10000", "t0", "mover", *[f"t{rank}" for rank in CROWD]]


def test_completing_recurring_neighbours_with_no_gap_between_them(user):
    # Each completion's next occurrence goes right after it: three gaps to open in one group,
    # where opening one moves the next task.
    due = {"due_date": date(2999, 1, 1), "recurrence": "FREQ=DAILY"}
    Task.objects.bulk_create(
        [Task(owner=user, title=t, position=n, **due) for n, t in enumerate("abc")]
        + [Task(owner=user, title="next", position=3)]
    )
    recurring = Task.objects.filter(title__in="abc").values_list("pk", flat=True)
    assert services.tasks_bulk_apply(user=user, action="complete", ids=list(recurring)) == 3
    assert order(owner=user) == ["a", "a", "b", "b", "c", "c", "next"]
    assert Task.objects.filter(completed=True).count() == 3
    completed_first = list(Task.objects.order_by("position").values_list("completed", flat=True))
    assert completed_first == [True, False] * 3 + [False]


def _crowded_recurring(user, ranks: dict[str, int], recurring: set[str]) -> list:
    due = {"due_date": date(2999, 1, 1), "recurrence": "FREQ=DAILY"}
    Task.objects.bulk_create(
        Task(owner=user, title=title, position=rank, **(due if title in recurring else {}))
        for title, rank in ranks.items()
    )
    return list(Task.objects.filter(title__in=recurring).values_list("pk", flat=True))


def test_bulk_completing_many_crowded_recurring_tasks_reads_their_ranks_once(user):
    """Each copy goes right after its task, and each task here has a neighbour right after it:
    one spread each. Reading every task's rank again after each spread made this quadratic
    (bulk completing 500 such tasks: 9.3 s, in-process)."""
    n = 30
    ranks = {}
    for k in range(n):
        ranks[f"a{k}"], ranks[f"b{k}"] = POSITION_GAP * (k + 1), POSITION_GAP * (k + 1) + 1
    ids = _crowded_recurring(user, ranks, {f"a{k}" for k in range(n)})

    with CaptureQueriesContext(connection) as queries:
        assert services.tasks_bulk_apply(user=user, action="complete", ids=ids) == n

    assert order(owner=user) == [title for k in range(n) for title in (f"a{k}", f"a{k}", f"b{k}")]
    rank_reads = [q for q in queries.captured_queries if "FROM tasks_task a" in q["sql"]]
    assert len(rank_reads) == 1  # the spreads' moves are applied to the ranks read
    assert len(queries.captured_queries) <= 2 * n + 12  # a spread: its neighbours read, moved


def test_crowded_recurring_tasks_each_get_their_copy_right_after_them(user):
    # t1 and t0 have no room after them within SPREAD_RUN_LIMIT, so their spreads move ranks
    # down, their own too; x's moves y up; u0-u4 are neighbours, which one spread may move
    # before their own turn. The ranks of each anchor and of its successor follow the moves.
    ranks = {"far": -10000, "t-2": -2, **{f"t{rank}": rank for rank in range(LIMIT + 2)}}
    ranks |= {"x": 5000, "y": 5001, **{f"u{n}": 6000 + n for n in range(5)}, "v": 9000}
    copied = {"t0", "t1", "x", *(f"u{n}" for n in range(5))}
    ids = _crowded_recurring(user, ranks, copied)

    assert services.tasks_bulk_apply(user=user, action="complete", ids=ids) == len(copied)

    expected = [copy for title in ranks for copy in [title] * (2 if title in copied else 1)]
    assert order(owner=user) == expected
    positions = list(Task.objects.values_list("position", flat=True))
    assert len(set(positions)) == len(positions)


def test_completing_tasks_in_a_group_renumbered_on_the_way_puts_each_copy_after_its_task(user):
    # No room within SPREAD_RUN_LIMIT either way around `a`: its spread renumbers the whole
    # group, `b` included, whose ranks are read again then.
    ranks = {f"t{rank}": rank for rank in range(-LIMIT - 1, LIMIT + 2)}
    ranks |= {"a": ranks.pop("t0"), "b": 100_000, "c": 100_001}
    ids = _crowded_recurring(user, ranks, {"a", "b"})

    assert services.tasks_bulk_apply(user=user, action="complete", ids=ids) == 2

    in_order = sorted(ranks, key=ranks.__getitem__)
    expected = [copy for title in in_order for copy in [title] * (2 if title in {"a", "b"} else 1)]
    assert order(owner=user) == expected


def test_a_long_crowd_of_recurring_tasks_is_spread_in_a_few_runs_not_one_gap_at_a_time(user):
    """In rank order, each spread opened one gap and pushed the ranks above (or below) it
    again: 500 neighbours moved 16,500 ranks, one task 103 times. In id order, ~770-2,140."""
    n = 500
    ranks = {**{f"r{rank}": rank for rank in range(n)}, "far": 100_000}
    ids = _crowded_recurring(user, ranks, {f"r{rank}" for rank in range(n)})

    assert services.tasks_bulk_apply(user=user, action="complete", ids=ids) == n

    assert order(owner=user) == [f"r{rank}" for rank in range(n) for _ in (0, 1)] + ["far"]
    # Versions: 1 each to start with, +1 each for the n completions, +1 per move.
    moves = sum(Task.objects.filter(version__gt=1).values_list("version", flat=True))
    moves -= 2 * n + Task.objects.filter(title="far", version__gt=1).count()
    assert moves <= 10 * n


def test_a_move_writes_a_constant_number_of_rows(make_task, django_assert_max_num_queries):
    tasks = [make_task(f"t{i}") for i in range(30)]
    with django_assert_max_num_queries(8):
        services.task_move(task=tasks[-1], after=tasks[0])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("gap_used_up", [False, True])
def test_concurrent_moves_keep_a_total_order(make_user, gap_used_up):
    # Six connections move different tasks into the same gap at once: the group lock makes
    # them take turns, so all land between `a` and `b` with distinct positions; with no gap
    # left between `a` and `b`, the first to come spreads the ranks after `a` out.
    owner = make_user()
    a = services.task_create(user=owner, data={"title": "a"})
    b = services.task_create(user=owner, data={"title": "b"})
    if gap_used_up:
        Task.objects.filter(pk=b.pk).update(position=a.position + 1)
    movers = [services.task_create(user=owner, data={"title": f"m{i}"}) for i in range(6)]
    errors = run_in_threads(
        *[functools.partial(services.task_move, task=task, after=a) for task in movers]
    )
    assert errors == []
    titles = order(owner=owner)
    assert titles[0] == "a" and titles[-1] == "b" and len(titles) == 8
    positions = list(Task.objects.filter(owner=owner).values_list("position", flat=True))
    assert len(set(positions)) == 8


# An unknown anchor is named beside another field's error, as when `after` was looked up
# (review 32e); `""` is no id (review 43c: it was null, first place, with a 200).
@pytest.mark.parametrize("list_value", [str(uuid.uuid4()), "not-a-uuid"], ids=["unknown", "bad"])
def test_an_empty_anchor_is_refused_beside_another_refused_field(api_client, make_task, list_value):
    make_task("a")
    b = make_task("b")
    alone = api_client.post(f"/api/v1/tasks/{b.pk}/move/", {"after": ""}, format="json")
    assert alone.status_code == 400
    assert list(alone.json()["errors"]) == ["after"], alone.json()["errors"]
    answer = api_client.post(
        f"/api/v1/tasks/{b.pk}/move/", {"after": "", "list": list_value}, format="json"
    )
    assert answer.status_code == 400
    assert sorted(answer.json()["errors"]) == ["after", "list"], answer.json()["errors"]
    unknown = api_client.post(
        f"/api/v1/tasks/{b.pk}/move/",
        {"after": str(uuid.uuid4()), "list": list_value},
        format="json",
    )
    assert sorted(unknown.json()["errors"]) == ["after", "list"], unknown.json()["errors"]
    assert [t.title for t in Task.objects.order_by("position")] == ["a", "b"]


def test_a_next_occurrence_placed_last_leaves_room_so_a_move_after_its_original_moves_nothing(
    api_client, make_task
):
    # The copy of a group's last task goes POSITION_GAP after it. Placed right next to it
    # instead, every move between the two spread the group: the copy's version and updated_at
    # moved, so clients re-fetched (ETag) and sync reported a task nobody changed.
    from datetime import date

    b = make_task("B")
    a = make_task("A", due_date=date(2026, 12, 1), recurrence="FREQ=DAILY")
    done = api_client.patch(f"/api/v1/tasks/{a.pk}/", {"completed": True}, format="json")
    assert done.status_code == 200, done.content
    copy_id = done.json()["next_occurrence"]
    before = api_client.get(f"/api/v1/tasks/{copy_id}/").json()
    moved = api_client.post(f"/api/v1/tasks/{b.pk}/move/", {"after": str(a.pk)}, format="json")
    assert moved.status_code == 200, moved.content
    after = api_client.get(f"/api/v1/tasks/{copy_id}/").json()
    assert (after["version"], after["updated_at"]) == (before["version"], before["updated_at"])
    ids = [t["id"] for t in api_client.get("/api/v1/tasks/").json()["results"]]
    assert ids.index(str(a.pk)) < ids.index(str(b.pk)) < ids.index(copy_id)
