import uuid
from datetime import UTC, date, datetime, time

import pytest
from django.db import transaction
from django.db.models import FloatField
from django.db.models.functions import Cast
from django.db.transaction import TransactionManagementError
from django.utils.timezone import now

from tasks import services
from tasks.models import Task
from todo_project.compiled import CompiledQuery, CompiledShapes

OWNER, TASK = uuid.UUID(int=1), uuid.UUID(int=2)


def task_of(user) -> Task:
    return services.task_create(user=user, data={"title": "Write the report"})


def titles_of(owner, task):
    return Task.objects.filter(owner=owner, pk=task).order_by().values_list("id", "title")


@pytest.mark.django_db
def test_rows_are_the_querysets_rows_with_the_values_in_place(user, other_user):
    mine, theirs = task_of(user), task_of(other_user)
    query = CompiledQuery(titles_of, owner=OWNER, task=TASK)

    assert query.rows(owner=user.pk, task=mine.pk) == list(titles_of(user.pk, mine.pk))
    assert query.rows(owner=user.pk, task=mine.pk) == [(mine.pk, mine.title)]
    assert query.rows(owner=user.pk, task=theirs.pk) == []  # someone else's: no row
    assert query.rows(owner=other_user.pk, task=theirs.pk) == [(theirs.pk, theirs.title)]


@pytest.mark.django_db
def test_each_run_is_one_query(user, django_assert_num_queries):
    task = task_of(user)
    query = CompiledQuery(titles_of, owner=OWNER, task=TASK)
    with django_assert_num_queries(2):
        query.rows(owner=user.pk, task=task.pk)
        query.rows(owner=user.pk, task=task.pk)


@pytest.mark.django_db
def test_a_placeholder_the_query_does_not_use_is_refused():
    query = CompiledQuery(lambda owner, task: titles_of(owner, OWNER), owner=OWNER, task=TASK)
    with pytest.raises(ValueError, match="Every placeholder"):
        query.rows(owner=OWNER, task=TASK)


@pytest.mark.django_db
def test_a_column_that_needs_a_converter_is_refused(user):
    # Django converts a float expression's value in Python: raw SQL would skip that.
    query = CompiledQuery(
        lambda owner: Task.objects.filter(owner=owner).values_list(
            "id", Cast("priority", FloatField())
        ),
        owner=OWNER,
    )
    with pytest.raises(ValueError, match="converter"):
        query.rows(owner=user.pk)


@pytest.mark.django_db
def test_pages_are_bound_as_parameters_and_match_the_querysets_slices(user):
    for n in range(5):
        services.task_create(user=user, data={"title": f"Task {n}"})
    query = CompiledQuery(
        lambda owner: Task.objects.filter(owner=owner).order_by("position").values_list("title"),
        owner=OWNER,
    )
    everything = list(Task.objects.filter(owner=user).order_by("position").values_list("title"))
    assert query.rows(owner=user.pk) == everything
    assert query.rows(owner=user.pk, limit=2, offset=0) == everything[0:2]
    assert query.rows(owner=user.pk, limit=2, offset=3) == everything[3:5]
    assert query.rows(owner=user.pk, limit=2, offset=9) == []


@pytest.mark.django_db
def test_a_sliced_query_cannot_be_paged_again(user):
    query = CompiledQuery(titles_of, owner=OWNER, task=TASK)
    sliced = CompiledQuery(lambda owner, task: titles_of(owner, task)[:1], owner=OWNER, task=TASK)
    assert query.rows(owner=user.pk, task=TASK, limit=1) == []
    with pytest.raises(ValueError, match="sliced"):
        sliced.rows(owner=user.pk, task=TASK, limit=1)


@pytest.mark.django_db
def test_an_integer_placeholder_matches_the_backends_typed_integer(user):
    """Django sends integers as psycopg's Int4/Int8; a plain int placeholder still finds its
    slot, and a True elsewhere in the query (a bool, though equal to 1) is not taken for it."""
    low, high = task_of(user), task_of(user)
    Task.objects.filter(pk=high.pk).update(priority=3, completed=True, completed_at=now())
    query = CompiledQuery(
        lambda owner, priority: (
            Task.objects.filter(owner=owner, priority=priority, completed=True)
            .order_by()
            .values_list("id", flat=True)
        ),
        owner=OWNER,
        priority=1,
    )

    assert query.rows(owner=user.pk, priority=3) == [(high.pk,)]
    assert query.rows(owner=user.pk, priority=low.priority) == []


@pytest.mark.django_db(transaction=True)
def test_a_locking_query_runs_only_inside_a_transaction(user):
    task = task_of(user)
    query = CompiledQuery(
        lambda owner, task: titles_of(owner, task).select_for_update(), owner=OWNER, task=TASK
    )
    with transaction.atomic():  # compiled here, where the ORM allows it
        assert query.rows(owner=user.pk, task=task.pk) == [(task.pk, task.title)]
    # Outside, the lock would end with the statement: refused like the ORM refuses it.
    with pytest.raises(TransactionManagementError):
        query.rows(owner=user.pk, task=task.pk)


def matching(owner, *, completed=None, due_after=None, at=None, since=None, title=None, ids=()):
    """A queryset whose SQL depends on some values (as the filtered list's does)."""
    tasks = Task.objects.filter(owner=owner)
    if completed is not None:
        tasks = tasks.filter(completed=completed)
    if due_after is not None:
        tasks = tasks.filter(due_date__gte=due_after)
    if at is not None:
        tasks = tasks.filter(due_time__lte=at)
    if since is not None:
        tasks = tasks.filter(updated_at__gte=since)
    if title is not None:
        tasks = tasks.filter(title=title)
    if ids:
        tasks = tasks.filter(tags__pk__in=ids)
    return tasks.order_by("title").values_list("title")


@pytest.fixture
def spread(user, other_user):
    made = {}
    for owner in (user, other_user):
        for title, data in {
            "Pay rent": {"due_date": date(2026, 12, 1), "due_time": time(9, 0)},
            "Pay tax": {"due_date": date(2027, 4, 1), "due_time": time(18, 0)},
            "Call mum": {"completed": True},
        }.items():
            made[owner.pk, title] = services.task_create(
                user=owner,
                data={"title": title, **data, "tags": ["home"] if "rent" in title else []},
            )
    return made


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("values", "titles"),
    [
        ({}, ["Call mum", "Pay rent", "Pay tax"]),
        ({"completed": True}, ["Call mum"]),
        ({"completed": False, "title": "Pay tax"}, ["Pay tax"]),
        ({"due_after": date(2027, 1, 1)}, ["Pay tax"]),
        ({"at": time(10, 0), "title": "Pay rent"}, ["Pay rent"]),
        ({"since": datetime(2000, 1, 1, tzinfo=UTC), "completed": False}, ["Pay rent", "Pay tax"]),
        ({"since": datetime(2999, 1, 1, tzinfo=UTC)}, []),
        ({"ids": []}, ["Call mum", "Pay rent", "Pay tax"]),
    ],
)
def test_shaped_rows_are_the_querysets_rows(user, other_user, spread, values, titles):
    query = CompiledShapes(matching)
    for owner in (user, other_user):
        assert query.rows(owner=owner.pk, **values) == [(title,) for title in titles]
        assert query.rows(owner=owner.pk, **values) == list(matching(owner.pk, **values))


@pytest.mark.django_db
def test_a_list_of_ids_is_a_list_of_values(user, spread):
    query = CompiledShapes(matching)
    home = list(user.tags.values_list("pk", flat=True))
    unknown = -5  # a value no placeholder equals in the compiled SQL

    assert query.rows(owner=user.pk, ids=home) == [("Pay rent",)]
    assert query.rows(owner=user.pk, ids=[unknown]) == []
    assert query.rows(owner=user.pk, ids=[unknown, *home]) == [("Pay rent",)]
    # Lengths 1 and 2: two shapes, whatever the ids.
    assert query.cache_info().currsize == 2


@pytest.mark.django_db
def test_each_shape_compiles_once_and_values_do_not_make_shapes(user, spread):
    query = CompiledShapes(matching)
    for title in ("Pay rent", "Pay tax", "x"):
        for day in (date(2026, 1, 1), date(2027, 1, 1)):
            rows = query.rows(owner=user.pk, title=title, due_after=day, completed=False)
            assert rows == list(matching(user.pk, title=title, due_after=day, completed=False))
    query.rows(owner=user.pk, title="Pay rent", due_after=date(2026, 1, 1), completed=True)
    assert query.rows(owner=user.pk, title="Pay tax") == [("Pay tax",)]

    info = query.cache_info()
    assert (info.misses, info.currsize) == (3, 3)  # completed=False, completed=True, neither


@pytest.mark.django_db
def test_only_the_most_recent_shapes_stay_compiled(user, spread):
    query = CompiledShapes(matching, max_shapes=2)
    for shape in ({"completed": True}, {"completed": False}, {}, {"completed": True}):
        assert query.rows(owner=user.pk, **shape) == list(matching(user.pk, **shape))
    info = query.cache_info()
    assert (info.misses, info.currsize) == (4, 2)


def test_a_value_without_a_placeholder_is_refused():
    query = CompiledShapes(matching)
    with pytest.raises(TypeError, match="no placeholder for a float"):
        query.statement(owner=OWNER, title=1.5)
    with pytest.raises(TypeError, match="no placeholder for a bool"):
        query.statement(owner=OWNER, ids=[True])


def test_the_statement_has_the_values_in_place():
    query = CompiledShapes(matching)
    day = date(2030, 5, 6)
    _, sql, params = query.statement(owner=OWNER, due_after=day, completed=True, limit=5)
    assert sql.endswith("LIMIT %s OFFSET %s")
    assert sorted(map(str, params)) == sorted(map(str, [OWNER, day, 5, 0]))


def test_a_value_the_orm_rewrites_cannot_be_a_placeholder():
    # `startswith` sends `value%`: the placeholder is not among the parameters as it was given,
    # so the SQL could not take the real value in its place. Refused when compiling.
    query = CompiledShapes(lambda owner, prefix: matching(owner).filter(title__startswith=prefix))
    with pytest.raises(ValueError, match="Every placeholder must appear"):
        query.statement(owner=OWNER, prefix="Pay")
