import uuid

import pytest
from django.db import transaction
from django.db.models import FloatField
from django.db.models.functions import Cast
from django.db.transaction import TransactionManagementError
from django.utils.timezone import now

from tasks import services
from tasks.models import Task
from todo_project.compiled import CompiledQuery

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
