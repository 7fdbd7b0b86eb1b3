from datetime import date

import pytest
from rest_framework.exceptions import ValidationError

from tasks import services
from tasks.models import Task

pytestmark = pytest.mark.django_db


def test_a_duplicate_list_name_racing_past_the_serializer_is_still_a_field_error(user):
    services.list_create(user=user, name="Home", color=None, position=None)
    with pytest.raises(ValidationError) as raised:
        services.list_create(user=user, name="HOME", color=None, position=None)
    assert list(raised.value.detail) == ["name"]


def test_the_next_occurrence_fits_between_neighbours_with_no_gap_left(user, make_task):
    daily = make_task("daily", due_date=date(2999, 1, 1), recurrence="FREQ=DAILY")
    neighbour = make_task("neighbour")
    Task.objects.filter(pk=neighbour.pk).update(position=daily.position + 1)

    done = services.task_complete(task=daily, user=user)

    ranked = list(Task.objects.order_by("position").values_list("pk", flat=True))
    assert ranked == [daily.pk, done.next_occurrence_id, neighbour.pk]


def test_an_unknown_bulk_action_is_refused(user):
    with pytest.raises(ValidationError):
        services.tasks_bulk_apply(user=user, action="explode", ids=[])


def test_deleting_a_copy_unlinks_its_previous_occurrence(user, make_task):
    daily = make_task("daily", due_date=date(2999, 1, 1), recurrence="FREQ=DAILY")
    done = services.task_complete(task=daily, user=user)
    services.task_delete(task=done.next_occurrence)
    daily.refresh_from_db()
    assert daily.next_occurrence_id is None and daily.version == done.version + 1
