"""Each endpoint runs a fixed number of queries, whatever the page size or number of tags."""

from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from conftest import client_for
from tasks import services
from tasks.models import Task

pytestmark = pytest.mark.django_db

# "Today" for the monthly tasks due 2026-12-01 below: a copy is due on the first occurrence after
# the later of the due date and today, so 2027-01-01 only while today is before it.
BEFORE_THEIR_NEXT_DATE = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def seed(owner, n: int):
    home = services.list_create(user=owner, name="Home", color=None, position=None)
    tasks = [
        services.task_create(
            user=owner,
            data={
                "title": f"task {i}",
                "list": home,
                "due_date": date(2999, 1, 1),
                "recurrence": "FREQ=DAILY",
                "tags": [f"tag{j}" for j in range(5 if i == 0 else i % 5 + 1)],
            },
        )
        for i in range(n)
    ]
    services.task_create(user=owner, data={"title": "sub", "parent": tasks[0]})
    other = services.task_create(user=owner, data={"title": "other", "list": home})
    return home, tasks[0], other


REQUESTS = [
    ("get", "/api/v1/tasks/", None),
    # limit=200: a page that ends before its limit runs no COUNT (views.TaskPagination), so
    # both pages are short here, and the queries must not grow with their rows.
    ("get", "/api/v1/tasks/?search=task&tag=tag0&ordering=-due_date&list={home}&limit=200", None),
    ("get", "/api/v1/tasks/?overdue=true&priority=none&parent=none&limit=200", None),
    ("get", "/api/v1/tasks/{task}/", None),
    ("patch", "/api/v1/tasks/{task}/", {"title": "new", "tags": ["a", "b", "tag1"]}),
    ("patch", "/api/v1/tasks/{task}/", {"completed": True}),
    ("put", "/api/v1/tasks/{task}/", {"title": "new", "list": "{home}", "tags": ["x"]}),
    ("post", "/api/v1/tasks/", {"title": "new", "list": "{home}", "tags": ["a", "tag2"]}),
    ("post", "/api/v1/tasks/{task}/move/", {"after": None}),
    ("post", "/api/v1/tasks/{task}/move/", {"after": "{other}", "list": "{home}"}),
    ("delete", "/api/v1/tasks/{task}/", None),
    ("get", "/api/v1/lists/", None),
    ("get", "/api/v1/lists/{home}/", None),
    ("post", "/api/v1/lists/", {"name": "Work"}),
    ("patch", "/api/v1/lists/{home}/", {"name": "House"}),
    ("delete", "/api/v1/lists/{home}/", None),
    ("delete", "/api/v1/lists/{home}/?tasks=delete", None),
    ("get", "/api/v1/tags/", None),
    ("patch", "/api/v1/tags/tag0/", {"name": "tag1"}),
    ("delete", "/api/v1/tags/tag0/", None),
]


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
def test_an_endpoint_runs_the_same_queries_for_1_and_50_tasks(
    make_user, method, path, body, django_assert_max_num_queries
):
    counts = []
    for n in (1, 50):
        owner = make_user()
        home, task, other = seed(owner, n)
        ids = {"home": home.pk, "task": task.pk, "other": other.pk}
        filled = {k: v.format(**ids) if isinstance(v, str) else v for k, v in (body or {}).items()}
        client = client_for(owner)
        with django_assert_max_num_queries(20), CaptureQueriesContext(connection) as captured:
            response = getattr(client, method)(path.format(**ids), filled or None)
        assert response.status_code < 300, response.json()
        counts.append(len(captured))
    print("COUNT", method, path, body and sorted(body), counts[0])
    assert counts[0] == counts[1], counts


@pytest.mark.parametrize(("first", "queries"), [(False, 7), (True, 9)])
def test_a_create_writes_its_tags_in_one_insert(
    user, make_list, first, queries, django_assert_num_queries
):
    home = make_list("Home")
    services.tags_get_or_create(user=user, names=["home", "money"])
    if not first:
        services.task_create(user=user, data={"title": "In the Inbox"})
    client = client_for(user)
    body = {"title": "Pay rent", "list": str(home.pk), "tags": ["money", "Home"]}

    # The user, the list; savepoint, the tags, the group lock with the task count (locked:
    # one statement, review 39b), the task with its rank after the group's end and its tags
    # (one statement: a new task has none to read, and its snapshot comes after the group
    # lock), release;
    # the answer is what it wrote, not read back. An owner's first task has no count row
    # to lock: the user locked instead, then the group lock and the count again (the
    # group's end no longer on its own: the INSERT reads it).
    with django_assert_num_queries(queries):
        response = client.post("/api/v1/tasks/", body, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["tags"] == ["home", "money"]
    assert sorted(
        Task.objects.get(pk=response.json()["id"]).tags.values_list("name", flat=True)
    ) == ["home", "money"]


@pytest.mark.parametrize(
    ("method", "path", "body", "queries"),
    [
        # The user; savepoint, the task locked as it is read with its tag names, the named
        # tags, tags.set() (its read, then one DELETE of the three dropped), the task saved,
        # release.
        ("patch", "/api/v1/tasks/{task}/", {"title": "new", "tags": ["tag0", "tag1"]}, 8),
        # The same tags in another order and case: nothing to set.
        ("patch", "/api/v1/tasks/{task}/", {"tags": [f"TAG{i}" for i in range(4, -1, -1)]}, 5),
        # The user; savepoint, the task locked as it is read, the group lock, the anchor (read
        # once, under the lock) with the rank after it and the task saved in the same
        # statement (services._ANCHOR_READ_AND_PLACED), release.
        ("post", "/api/v1/tasks/{task}/move/", {"after": "{other}"}, 6),
        # The user; the task deleted with its subtasks, tags and links, in one statement.
        ("delete", "/api/v1/tasks/{task}/", None, 2),
    ],
)
def test_a_task_write_reads_the_task_once_and_answers_without_reading_it_back(
    user, method, path, body, queries, django_assert_num_queries
):
    home, task, other = seed(user, 1)
    ids = {"home": home.pk, "task": task.pk, "other": other.pk}
    filled = {k: v.format(**ids) if isinstance(v, str) else v for k, v in (body or {}).items()}
    client = client_for(user)
    with django_assert_num_queries(queries), CaptureQueriesContext(connection) as captured:
        response = getattr(client, method)(path.format(**ids), filled or None, format="json")
    assert response.status_code < 300, response.json()
    if body:  # the commit (a savepoint's release, in a test) is the last statement
        assert captured[-1]["sql"].startswith("RELEASE SAVEPOINT")
        assert response.json() == client.get(f"/api/v1/tasks/{task.pk}/").json()


@pytest.mark.parametrize(
    ("tags", "subtask", "queries"),
    [
        # The user; savepoint, the task locked (with its tag names and whether it has open
        # subtasks; the parent of an open subtask locked first, a completion's, by the same
        # statement: models._PARENT_FIRST, a statement of its own before review 40c), the
        # group lock with the owner's task count (one statement, as a create's: two before
        # review 40c), the copy at the rank after the task (read by that statement itself: a
        # query of its own before review 40c) and the task saved with its link to the copy
        # (one statement), release.
        ([], False, 6),
        # The same, the copy's tags written in that statement too.
        (["home"], False, 6),
        # The same as the first, and its open subtask completed.
        ([], True, 7),
    ],
)
def test_completing_a_recurring_task_writes_its_row_once(
    user, tags, subtask, queries, django_assert_num_queries, frozen_now
):
    frozen_now(BEFORE_THEIR_NEXT_DATE)
    task = services.task_create(
        user=user,
        data={
            "title": "Pay rent",
            "due_date": date(2026, 12, 1),
            "recurrence": "FREQ=MONTHLY",
            "tags": tags,
        },
    )
    services.task_create(user=user, data={"title": "After it"})
    if subtask:
        services.task_create(user=user, data={"title": "Find the IBAN", "parent": task})
    services.task_create(user=user, data={"title": "Done", "parent": task, "completed": True})
    client = client_for(user)
    with django_assert_num_queries(queries), CaptureQueriesContext(connection) as captured:
        response = client.patch(f"/api/v1/tasks/{task.pk}/", {"completed": True}, format="json")
    assert response.status_code == 200
    # The task's own UPDATE (every column, as save() writes them) is the copy's statement's:
    # the one UPDATE of the task, and it writes the link.
    (save,) = [query["sql"] for query in captured if 'UPDATE "tasks_task" SET' in query["sql"]]
    assert save.startswith("WITH slot AS (") and "copied AS (INSERT INTO" in save
    assert save.count("UPDATE") == 1 and '"next_occurrence_id" = ' in save
    following = Task.objects.get(pk=response.json()["next_occurrence"])
    assert Task.objects.get(pk=task.pk).next_occurrence_id == following.pk
    assert (following.due_date, following.completed) == (date(2027, 1, 1), False)
    assert sorted(following.tags.values_list("name", flat=True)) == tags
    assert not task.subtasks.filter(completed=False).exists()


def test_a_patch_that_keeps_list_and_parent_does_not_load_the_parent(
    user, django_assert_num_queries
):
    _, parent, _ = seed(user, 1)
    subtask = Task.objects.get(parent=parent)
    client = client_for(user)
    # The user; savepoint, the subtask locked, saved, release.
    with django_assert_num_queries(5), CaptureQueriesContext(connection) as captured:
        response = client.patch(f"/api/v1/tasks/{subtask.pk}/", {"priority": "high"}, "json")
    assert response.status_code == 200 and response.json()["priority"] == "high"
    reads = [query["sql"] for query in captured if query["sql"].startswith("SELECT")]
    assert len(reads) == 2 and not [sql for sql in reads if parent.pk.hex in sql]
    # Naming the list or the parent checks the placement against the parent again.
    response = client.patch(f"/api/v1/tasks/{subtask.pk}/", {"list": None}, "json")
    assert response.status_code == 400 and list(response.json()["errors"]) == ["list"]


@pytest.mark.parametrize(
    ("method", "action", "body", "locked_reads"),
    [
        # The row read once, FOR UPDATE; the answer is what was written, not read back.
        ("patch", "", {"title": "x"}, [True]),
        # The same, then the first rank among the other tasks (it names the task to leave it
        # out).
        ("post", "move/", {"after": None}, [True, False]),
    ],
)
def test_a_write_reads_its_task_once_under_the_lock_it_writes_with(
    user, method, action, body, locked_reads
):
    task = services.task_create(user=user, data={"title": "Pay rent"})
    services.task_create(user=user, data={"title": "Before it"})
    with CaptureQueriesContext(connection) as captured:
        response = getattr(client_for(user), method)(
            f"/api/v1/tasks/{task.pk}/{action}", body, "json"
        )
    assert response.status_code == 200
    reads = [
        q["sql"] for q in captured if q["sql"].startswith("SELECT") and task.pk.hex in q["sql"]
    ]
    assert [sql.endswith("FOR UPDATE") for sql in reads] == locked_reads


@pytest.mark.django_db(transaction=True)  # outside the test's own transaction
def test_a_task_said_to_be_locked_must_be_in_a_transaction(user):
    task = services.task_create(user=user, data={"title": "Pay rent"})
    with pytest.raises(TransactionManagementError):
        services.task_update(task=task, user=user, data={"title": "x"}, locked=True)
    with pytest.raises(TransactionManagementError):
        services.task_move(task=task, after=None, locked=True)


@pytest.mark.parametrize(
    ("method", "path", "body", "queries", "parent_locked"),
    [
        # The user, the parent; savepoint, the parent again under its lock (with whether the
        # task has subtasks), the group lock with the task count (locked), the task at the
        # group's end, release. Taking the parent's list from the parent loaded by the
        # serializer had cost a query of its own; the group lock, one too (review 39b).
        ("post", "/api/v1/tasks/", {"title": "new", "parent": "{task}"}, 7, True),
        # The user; savepoint, the task locked, the parent, whether the task has subtasks, the
        # parent again under its lock, the group locks, the group's end, the task saved, release.
        ("patch", "/api/v1/tasks/{other}/", {"parent": "{task}"}, 10, True),
        # A subtask staying under its parent: the parent's writers lock it before moving it.
        ("put", "/api/v1/tasks/{sub}/", {"title": "new", "parent": "{task}"}, 7, False),
        ("patch", "/api/v1/tasks/{sub}/", {"list": "{home}"}, 6, False),
    ],
)
def test_a_write_giving_a_task_a_parent_reads_the_parent_again_under_a_lock(
    user, method, path, body, queries, parent_locked, django_assert_num_queries
):
    home, task, other = seed(user, 1)
    ids = {"home": home.pk, "task": task.pk, "other": other.pk, "sub": task.subtasks.get().pk}
    filled = {k: v.format(**ids) if isinstance(v, str) else v for k, v in body.items()}
    client = client_for(user)
    with django_assert_num_queries(queries), CaptureQueriesContext(connection) as captured:
        response = getattr(client, method)(path.format(**ids), filled, format="json")
    assert response.status_code < 300, response.json()
    assert response.json()["parent"] == str(task.pk)
    locked = [query["sql"] for query in captured if "FOR KEY SHARE" in query["sql"]]
    assert len(locked) == parent_locked


@pytest.mark.parametrize("per_statement", [1000, 1])
def test_bulk_completed_recurring_tasks_get_their_copies_tags_and_links(
    user, monkeypatch, frozen_now, per_statement
):
    frozen_now(BEFORE_THEIR_NEXT_DATE)
    # One statement for the copies, their tags and the links; past COPIES_PER_STATEMENT the
    # copies go first, in the ORM's batches (PostgreSQL's limit of parameters a statement).
    monkeypatch.setattr(services, "COPIES_PER_STATEMENT", per_statement)
    tasks = [
        services.task_create(
            user=user,
            data={
                "title": f"Pay rent {n}",
                "due_date": date(2026, 12, 1),
                "recurrence": "FREQ=MONTHLY",
                "tags": ["home"] if n else [],
            },
        )
        for n in range(2)
    ]
    ids = [str(task.pk) for task in tasks]
    response = client_for(user).post(
        "/api/v1/tasks/bulk/", {"action": "complete", "ids": ids}, format="json"
    )
    assert response.json() == {"updated": 2}
    for task in tasks:
        task.refresh_from_db()
        copy = task.next_occurrence
        assert (task.completed, copy.completed, copy.due_date) == (True, False, date(2027, 1, 1))
        assert copy.version == 1 and copy.position > task.position
        assert list(copy.tags.values_list("name", flat=True)) == list(
            task.tags.values_list("name", flat=True)
        )


# The fast read, and the viewset's own path (an If-None-Match is the viewset's to answer).
@pytest.mark.parametrize("headers", [{}, {"HTTP_IF_NONE_MATCH": '"x"'}])
def test_a_list_only_ordered_counts_the_users_tasks_from_their_kept_count(user, headers):
    # Another order of all the user's tasks ran a COUNT(*) of them (100,000 for the heavy bench
    # user: 8.7 ms) where the default order reads the count kept per owner.
    services.task_create(user=user, data={"title": "a"})
    client = client_for(user)
    for path in ["/api/v1/tasks/?ordering=-priority&limit=1", "/api/v1/tasks/?limit=1"]:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path, **headers)
        assert response.status_code == 200 and response.json()["count"] == 1
        assert not [q for q in captured if "COUNT(" in q["sql"].upper()], path
