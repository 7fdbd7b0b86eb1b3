import functools
import uuid
from datetime import date

import pytest
from django.db import connection, transaction
from django.db.models.signals import post_init
from drf_spectacular.generators import SchemaGenerator

from conftest import client_for
from tasks import services
from tasks.models import POSITION_GAP, Priority, Tag, Task, TaskList
from tasks.tests.many_tasks import (
    links_per_tag,
    load_tasks,
    tagged_tasks_under_emptied_statistics,
)
from todo_project.tests.helpers import run_holding_the_first_row, statement_timeout

pytestmark = pytest.mark.django_db


def bulk(client, **body):
    return client.post("/api/v1/tasks/bulk/", body)


def test_bulk_complete_cascades_and_counts_only_changed_tasks(api_client, make_task):
    parent = make_task("parent")
    sub = make_task("sub", parent=parent)
    done = make_task("done", completed=True)
    response = bulk(api_client, action="complete", ids=[str(parent.pk), str(done.pk)])
    assert response.status_code == 200 and response.json() == {"updated": 1}
    parent.refresh_from_db()
    sub.refresh_from_db()
    assert parent.completed and parent.completed_at and parent.version == 2
    assert sub.completed and sub.version == 2
    assert Task.objects.get(pk=done.pk).version == 1


def test_a_bulk_complete_builds_a_task_instance_only_for_a_recurring_task(user):
    # A Task instance for each of 100 completed tasks, and the ORM's statements built for each
    # request, were ~40 % of the completion's CPU: plain tasks are completed as rows.
    plain = [services.task_create(user=user, data={"title": f"t{n}"}) for n in range(3)]
    daily = services.task_create(
        user=user, data={"title": "d", "due_date": date(2999, 1, 1), "recurrence": "FREQ=DAILY"}
    )
    built = []

    def record(instance, **kwargs):
        built.append(instance.pk)

    post_init.connect(record, sender=Task)
    try:
        response = bulk(
            client_for(user), action="complete", ids=[str(daily.pk)] + [str(t.pk) for t in plain]
        )
    finally:
        post_init.disconnect(record, sender=Task)
    assert response.json() == {"updated": 4}
    assert Task.objects.filter(pk__in=[t.pk for t in plain], completed=True).count() == 3
    daily.refresh_from_db()
    # The recurring task and its next occurrence, nothing else.
    assert sorted(built) == sorted([daily.pk, daily.next_occurrence_id])


def test_bulk_complete_creates_next_occurrences(api_client, make_task):
    daily = make_task("daily", due_date=date(2999, 1, 1), recurrence="FREQ=DAILY", tags=["x"])
    bulk(api_client, action="complete", ids=[str(daily.pk)])
    daily.refresh_from_db()
    copy = daily.next_occurrence
    assert copy.due_date == date(2999, 1, 2) and not copy.completed
    assert [t.name for t in copy.tags.all()] == ["x"]
    bulk(api_client, action="reopen", ids=[str(daily.pk)])
    bulk(api_client, action="complete", ids=[str(daily.pk)])
    assert Task.objects.count() == 2  # never a second copy


def test_bulk_complete_gives_each_copy_its_own_originals_tags_and_link(api_client, make_task):
    """The copies' tags and the originals' links are one statement each for all the tasks:
    a pairing mistake would cross them."""
    due = {"due_date": date(2999, 1, 1), "recurrence": "FREQ=DAILY"}
    a = make_task("a", tags=["alpha", "shared"], **due)
    b = make_task("b", tags=["beta"], **due)
    c = make_task("c", **due)  # no tags at all
    bulk(api_client, action="complete", ids=[str(a.pk), str(b.pk), str(c.pk)])
    copies = {}
    for original in (a, b, c):
        original.refresh_from_db()
        copy = original.next_occurrence
        assert copy.title == original.title and copy.due_date == date(2999, 1, 2)
        copies[original.title] = sorted(tag.name for tag in copy.tags.all())
    assert copies == {"a": ["alpha", "shared"], "b": ["beta"], "c": []}


def test_bulk_reopen_delete_priority(api_client, make_task):
    a = make_task("a", completed=True)
    b = make_task("b")
    assert bulk(api_client, action="reopen", ids=[str(a.pk), str(b.pk)]).json() == {"updated": 1}
    assert not Task.objects.get(pk=a.pk).completed
    response = bulk(api_client, action="set_priority", ids=[str(a.pk)], priority="high")
    assert response.json() == {"updated": 1}
    assert Task.objects.get(pk=a.pk).priority == Priority.HIGH
    assert bulk(api_client, action="delete", ids=[str(a.pk), str(b.pk)]).json() == {"updated": 2}
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    ("action", "extra", "task_fields"),
    [
        ("set_priority", {"priority": "high"}, {"priority": Priority.HIGH}),
        ("reopen", {}, {}),
        ("complete", {}, {"completed": True}),
        ("remove_tags", {"tags": ["absent"]}, {"tags": ["home"]}),
        ("add_tags", {"tags": ["home"]}, {"tags": ["home"]}),
        ("move", {"list": None}, {}),
    ],
)
def test_a_task_already_in_the_wanted_state_is_left_untouched(
    api_client, make_task, action, extra, task_fields
):
    # Not counted, and neither its version nor its updated_at moves: a client syncing by
    # either would fetch it again for nothing.
    task = make_task("a", **task_fields)
    before = Task.objects.get(pk=task.pk)
    response = bulk(api_client, action=action, ids=[str(task.pk)], **extra)
    assert response.status_code == 200 and response.json() == {"updated": 0}
    after = Task.objects.get(pk=task.pk)
    assert (after.version, after.updated_at) == (before.version, before.updated_at)


def test_bulk_move_appends_to_the_target_in_order(api_client, make_task, make_list):
    home = make_list("Home")
    existing = make_task("existing", list=home)
    a, b = make_task("a"), make_task("b")
    sub = make_task("sub", parent=a)
    response = bulk(api_client, action="move", ids=[str(b.pk), str(a.pk)], list=str(home.pk))
    assert response.json() == {"updated": 2}
    moved = Task.objects.filter(list=home, parent=None).order_by("position")
    assert [t.title for t in moved] == ["existing", "a", "b"]
    assert existing.position < moved[1].position
    assert Task.objects.get(pk=sub.pk).list_id == home.pk

    orphan = bulk(api_client, action="move", ids=[str(sub.pk)], list=None)
    assert orphan.status_code == 400 and list(orphan.json()["errors"]) == ["ids"]

    bulk(api_client, action="move", ids=[str(a.pk)], list=None)
    assert Task.objects.get(pk=sub.pk).list_id is None


def test_a_subtask_already_in_the_target_list_is_left_where_it_is_without_its_parent(
    api_client, make_task, make_list
):
    # Selected in a view across lists (a tag's, a search's) without its parent and sent to
    # the list it is in: it is where the move sends it, as a task already there is (not
    # counted, version kept), not "a subtask moves with its parent" (review 47a).
    home = make_list("Home")
    parent = make_task("parent", list=home)
    sub = make_task("sub", parent=parent)
    elsewhere = make_task("elsewhere")
    before = Task.objects.get(pk=sub.pk)
    response = bulk(
        api_client, action="move", ids=[str(sub.pk), str(elsewhere.pk)], list=str(home.pk)
    )
    assert response.status_code == 200 and response.json() == {"updated": 1}
    after = Task.objects.get(pk=sub.pk)
    assert (after.list_id, after.parent_id, after.position, after.version) == (
        home.pk,
        parent.pk,
        before.position,
        before.version,
    )
    assert Task.objects.get(pk=elsewhere.pk).list_id == home.pk
    # Out of its parent's list it still cannot go alone.
    orphan = bulk(api_client, action="move", ids=[str(sub.pk)], list=None)
    assert orphan.status_code == 400 and list(orphan.json()["errors"]) == ["ids"]


def test_a_bulk_move_is_one_statement_of_one_size_whatever_the_number_of_tasks(
    api_client, make_task, make_list
):
    # bulk_update wrote a CASE per task and column: a statement growing with the ids, 2,000
    # expressions built in Python for 500 tasks (~0.9 s of the worker's CPU).
    home, work = make_list("Home"), make_list("Work")
    tasks = [make_task(f"t{n}") for n in range(12)]
    statements, sent = {}, []

    def record(run, sql, *args):
        sent.append(sql)  # as sent, its parameters apart
        return run(sql, *args)

    for target, moved in [(home, tasks[:2]), (work, tasks[2:])]:
        sent.clear()
        with connection.execute_wrapper(record):
            bulk(api_client, action="move", ids=[str(t.pk) for t in moved], list=str(target.pk))
        statements[len(moved)] = [s for s in sent if s.startswith("UPDATE tasks_task SET list_id")]
    assert len(statements[2]) == 1 and statements[2] == statements[10], statements
    moved = Task.objects.filter(list=work).order_by("position")
    assert [t.title for t in moved] == [f"t{n}" for n in range(2, 12)]
    assert {t.version for t in moved} == {2}
    assert len({t.position for t in moved}) == 10


def test_a_bulk_move_leaves_the_tasks_already_in_the_target_where_they_are(
    api_client, make_task, make_list
):
    home = make_list("Home")
    first, last = make_task("first", list=home), make_task("last", list=home)
    sub = make_task("sub", parent=first)
    inbox = make_task("inbox")
    before = {t.pk: (t.position, t.version) for t in Task.objects.filter(list=home)}

    ids = [str(t.pk) for t in (last, first, sub, inbox)]
    response = bulk(api_client, action="move", ids=ids, list=str(home.pk))

    assert response.json() == {"updated": 1}  # the Inbox task alone changed
    for task in Task.objects.filter(pk__in=before):
        assert (task.position, task.version) == before[task.pk], task.title
    titles = Task.objects.filter(list=home, parent=None).order_by("position")
    assert [t.title for t in titles] == ["first", "last", "inbox"]


def test_counts_in_bulk_errors_agree_in_number(api_client, make_task):
    task = make_task("x")
    empty = api_client.post("/api/v1/tasks/bulk/", {"action": "complete", "ids": []})
    assert empty.json()["errors"] == {"ids": ["At least 1 item."]}  # not "1 elements"
    body = {"action": "complete", "ids": [str(task.pk), str(uuid.uuid4())]}
    missing = api_client.post("/api/v1/tasks/bulk/", body)
    assert missing.status_code == 404
    assert missing.json()["detail"] == "1 of the given ids is not among your tasks."


def test_an_unknown_action_names_the_actions(api_client, make_task):
    task = make_task("x")
    body = {"action": "archive", "ids": [str(task.pk)]}
    response = api_client.post("/api/v1/tasks/bulk/", body)
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "action": [
            "Must be one of: complete, reopen, delete, move, set_priority, add_tags, remove_tags."
        ]
    }


def test_bulk_tags(api_client, make_task, user):
    a = make_task("a", tags=["home"])
    b = make_task("b")
    added = bulk(api_client, action="add_tags", ids=[str(a.pk), str(b.pk)], tags=["HOME", "new"])
    assert added.json() == {"updated": 2}
    assert sorted(Tag.objects.owned_by(user).values_list("name", flat=True)) == ["home", "new"]
    assert sorted(t.name for t in Task.objects.get(pk=b.pk).tags.all()) == ["home", "new"]
    again = bulk(api_client, action="add_tags", ids=[str(a.pk)], tags=["new"])
    assert again.json() == {"updated": 0}
    removed = bulk(api_client, action="remove_tags", ids=[str(a.pk)], tags=["home", "ghost"])
    assert removed.json() == {"updated": 1}
    assert [t.name for t in Task.objects.get(pk=a.pk).tags.all()] == ["new"]
    assert not Tag.objects.filter(name="ghost").exists()


def test_bulk_add_tags_never_gives_a_task_more_than_20_tags(api_client, make_task, user):
    two = make_task("two", tags=["a", "b"])
    bare = make_task("bare")
    names = [f"new {n}" for n in range(19)]
    ids = [str(bare.pk), str(two.pk)]

    response = bulk(api_client, action="add_tags", ids=ids, tags=names)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    (message,) = response.json()["errors"]["tags"]
    assert "at most 20 tags" in message and str(two.pk) in message and str(bare.pk) not in message
    # All or nothing: no link, no new tag, no version moved.
    assert sorted(Tag.objects.owned_by(user).values_list("name", flat=True)) == ["a", "b"]
    assert sorted(Task.objects.values_list("title", "version")) == [("bare", 1), ("two", 1)]
    assert Task.tags.through.objects.filter(task_id=bare.pk).count() == 0

    # A tag the task has already does not count twice: 20 exactly is fine.
    response = bulk(api_client, action="add_tags", ids=ids, tags=["A", "b", *names[:18]])
    assert response.json() == {"updated": 2}
    assert Task.objects.get(pk=two.pk).tags.count() == 20
    assert Task.objects.get(pk=bare.pk).tags.count() == 20


def test_an_unknown_or_foreign_id_changes_nothing_and_is_named(api_client, make_task, other_user):
    mine = make_task("mine")
    theirs = make_task("theirs", owner=other_user)
    unknown = uuid.uuid4()
    response = bulk(api_client, action="complete", ids=[str(mine.pk), str(theirs.pk), str(unknown)])
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["missing_ids"] == [str(theirs.pk), str(unknown)]
    assert not Task.objects.filter(completed=True).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "explode", "ids": [str(uuid.uuid4())]}, "action"),
        ({"action": "complete", "ids": []}, "ids"),
        ({"action": "complete", "ids": ["nope"]}, "ids"),
        # Numbers and booleans were read as UUID(int=...): a 404 naming 00000000-...-0001.
        ({"action": "complete", "ids": [1]}, "ids"),
        ({"action": "complete", "ids": [True]}, "ids"),
        ({"action": "complete", "ids": [uuid.uuid4().hex]}, "ids"),
        ({"action": "complete", "ids": [f"{{{uuid.uuid4()}}}"]}, "ids"),
        ({"action": "complete", "ids": [uuid.uuid4().urn]}, "ids"),
        ({"action": "move", "ids": [str(uuid.uuid4())], "list": 5}, "list"),
        ({"action": "complete", "ids": [str(uuid.uuid4()) for _ in range(501)]}, "ids"),
        ({"action": "set_priority", "ids": [str(uuid.uuid4())]}, "priority"),
        ({"action": "set_priority", "ids": [str(uuid.uuid4())], "priority": "max"}, "priority"),
        ({"action": "move", "ids": [str(uuid.uuid4())]}, "list"),
        ({"action": "move", "ids": [str(uuid.uuid4())], "list": str(uuid.uuid4())}, "list"),
        ({"action": "add_tags", "ids": [str(uuid.uuid4())], "tags": []}, "tags"),
    ],
)
def test_invalid_bulk_bodies_are_a_400(api_client, body, field):
    response = api_client.post("/api/v1/tasks/bulk/", body)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]


@pytest.mark.parametrize(
    ("action", "extra"),
    [
        ("complete", {}),
        ("reopen", {}),
        ("delete", {}),
        ("move", {"list": None}),
        ("set_priority", {"priority": "low"}),
        ("add_tags", {"tags": ["a", "b"]}),
        ("remove_tags", {"tags": ["a"]}),
    ],
)
def test_bulk_runs_a_constant_number_of_queries(
    make_user, action, extra, django_assert_max_num_queries
):
    def run(n: int) -> int:
        owner = make_user()
        # In a list, so that a move to the Inbox moves them all.
        home = TaskList.objects.create(owner=owner, name="Home", position=POSITION_GAP)
        made = [
            services.task_create(
                user=owner,
                data={
                    "title": f"t{i}",
                    "due_date": date(2999, 1, 1),
                    "recurrence": "FREQ=DAILY",
                    "tags": ["a"],
                    "list": home,
                },
            )
            for i in range(n)
        ]
        for task in made[: max(1, n // 2)]:
            services.task_create(user=owner, data={"title": "sub", "parent": task})
        ids = [str(task.pk) for task in made]
        with django_assert_max_num_queries(20) as captured:
            response = bulk(client_for(owner), action=action, ids=ids, **extra)
        assert response.status_code == 200, response.json()
        return len(captured)

    assert run(1) == run(100)


def test_an_id_in_capitals_is_the_same_id(api_client, make_task):
    task = make_task("a")
    response = bulk(api_client, action="complete", ids=[str(task.pk).upper()])
    assert response.status_code == 200
    assert Task.objects.get(pk=task.pk).completed


@pytest.mark.parametrize("action", services.BULK_ACTIONS)
def test_the_schema_requires_of_each_action_what_the_server_requires(api_client, action):
    # The body was one object with every parameter optional: a generated client sent `move`
    # without `list` and learned of it from a 400.
    components = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    body = components["TaskBulkRequest"]
    assert set(body["discriminator"]["mapping"]) == set(services.BULK_ACTIONS)
    variant = components[body["discriminator"]["mapping"][action].rsplit("/", 1)[1]]
    assert action in components[variant["properties"]["action"]["$ref"].rsplit("/", 1)[1]]["enum"]

    response = bulk(api_client, action=action, ids=[str(uuid.uuid4())])

    missing = set(response.json().get("errors", {})) if response.status_code == 400 else set()
    assert set(variant["required"]) == {"action", "ids"} | missing


@pytest.mark.django_db(transaction=True)
def test_a_bulk_action_locks_a_parent_before_its_subtask_whose_id_comes_first(user):
    """A write to the parent locks it, then its subtasks (a list change moves them along). In id
    order, a bulk action on both held the subtask while it waited for the parent: a deadlock."""
    parent = Task.objects.create(id=uuid.UUID(int=2), owner=user, title="P", position=1)
    subtask = Task.objects.create(
        id=uuid.UUID(int=1), owner=user, title="S", parent=parent, position=1
    )
    bulk = functools.partial(
        services.tasks_bulk_apply,
        user=user,
        action="set_priority",
        ids=[subtask.pk, parent.pk],
        priority=Priority.HIGH,
    )

    # The parent held, as its own write would hold it.
    assert run_holding_the_first_row(bulk, held=parent.pk, free=subtask.pk) == 2


def test_a_bulk_complete_locks_its_tasks_off_the_primary_key_on_a_big_account(user, other_user):
    # Locking the named tasks with the parents of their recurring subtasks as `id = ANY(ids) OR
    # id IN (SELECT parent_id ...)` read every task of the owner (no index serves the OR): 14 ms
    # for 100 ids of 100,000 tasks, where the same ids' reopen took 0.36 ms.
    load_tasks((user.pk, f"t{i}", "", (i + 1) * POSITION_GAP) for i in range(30_000))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tasks_task")
    ids = [str(pk) for pk in Task.objects.filter(owner=user).values_list("id", flat=True)[:10]]
    locking = []

    def record(run, sql, params, many, context):
        if "FOR UPDATE" in sql and not locking:
            locking.append((sql, params))
        return run(sql, params, many, context)

    with connection.execute_wrapper(record):
        assert bulk(client_for(user), action="complete", ids=ids).json() == {"updated": 10}
    sql, params = locking[0]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    index_scans = [line for line in plan.splitlines() if "Index Scan" in line]
    assert "Seq Scan" not in plan and len(index_scans) == 2, plan  # the named, their parents
    assert all("tasks_task_pkey" in line for line in index_scans), plan


def test_a_bulk_move_counts_the_named_subtasks_that_went_with_their_parent(
    api_client, make_task, make_list
):
    """Unpinned until review 31a (its mutant _bulk_move's `len(moving) + sum(t.parent_id in moved_ids ...)` made
    `len(moving)`): `updated` is "how many of the given tasks the action changed" (the
    schema); a subtask named with its parent moves to the new list too and is counted."""
    home = make_list("Home")
    parent = make_task("parent")
    sub = make_task("sub", parent=parent)
    make_task("other sub", parent=parent)  # moves along, but not named: not counted
    response = api_client.post(
        "/api/v1/tasks/bulk/",
        {"action": "move", "ids": [str(parent.pk), str(sub.pk)], "list": str(home.pk)},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json() == {"updated": 2}
    moved = api_client.get(f"/api/v1/tasks/{sub.pk}/").json()
    assert moved["list"] == str(home.pk) and moved["version"] == 2


def test_a_bulk_complete_builds_no_task_instance_for_a_plain_subtask(user):
    # The cascade built one for each subtask it completed, up to 999 a request (review 32e).
    parent = services.task_create(user=user, data={"title": "p"})
    for n in range(3):
        services.task_create(user=user, data={"title": f"s{n}", "parent": parent})
    built = []

    def record(instance, **kwargs):
        built.append(instance.pk)

    post_init.connect(record, sender=Task)
    try:
        answer = client_for(user).post(
            "/api/v1/tasks/bulk/", {"action": "complete", "ids": [str(parent.pk)]}, format="json"
        )
    finally:
        post_init.disconnect(record, sender=Task)
    assert answer.json() == {"updated": 1}
    assert Task.objects.filter(parent=parent, completed=True).count() == 3
    assert built == []


@pytest.mark.django_db(transaction=True)
def test_a_bulk_delete_after_the_tables_were_analyzed_empty_reads_each_once(user, api_client):
    # As a list's delete (test_lists_api): 500 ids joined against the whole table each,
    # past 20 s for 110,000 tasks; one array of ids a statement now.
    tag = Tag.objects.create(owner=user, name="t")
    tagged_tasks_under_emptied_statistics(user.pk, tag.pk, 20_000)
    ids = list(
        Task.objects.filter(owner=user).values_list("pk", flat=True)[: services.MAX_BULK_IDS]
    )
    with statement_timeout(connection, "2s"):  # each takes ~0.05 s
        response = api_client.post(
            "/api/v1/tasks/bulk/", {"action": "delete", "ids": [str(i) for i in ids]}, format="json"
        )
    assert response.status_code == 200, response.content
    assert Task.objects.filter(owner=user).count() == 20_000 - len(ids)
    assert links_per_tag() == {tag.pk: 20_000 - len(ids)}


@pytest.mark.django_db(transaction=True)
def test_a_delete_plans_its_arrays_of_ids_for_their_length_to_the_end_of_its_transaction(user):
    # A generic plan of a prepared statement knows no array's length (see test_tags_api's
    # repeated renames): the statements after the delete's first one are planned each time.
    task = Task.objects.create(owner=user, title="t", position=POSITION_GAP)
    with transaction.atomic():
        services.lock_tasks_to_delete(user.pk, "ids", ids=[task.pk])
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('plan_cache_mode')")
            assert cursor.fetchone() == ("force_custom_plan",)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('plan_cache_mode')")
        assert cursor.fetchone() == ("auto",)
