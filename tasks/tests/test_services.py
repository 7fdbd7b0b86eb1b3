from datetime import date

import pytest
from django.db.transaction import TransactionManagementError
from rest_framework.exceptions import ValidationError

from tasks import services
from tasks.models import NO_SUCH_TASK, POSITION_GAP, Tag, Task
from tasks.quotas import lock_owner

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
    services.task_delete(owner_id=user.pk, task_id=done.next_occurrence_id)
    daily.refresh_from_db()
    assert daily.next_occurrence_id is None and daily.version == done.version + 1


def test_each_sibling_group_shape_gets_the_rank_after_its_own_last_task(
    user, other_user, make_task, make_list
):
    """The four compiled shapes of the end-of-group query: list or Inbox, parent or none."""
    home = make_list("Home")
    inbox_parent = make_task("inbox parent")
    home_parent = make_task("home parent", list=home)
    groups = [(None, None), (home.pk, None), (None, inbox_parent.pk), (home.pk, home_parent.pk)]
    # Ranks far apart per group, and someone else's task in every group's place: a query that
    # mixed groups or owners up would answer another group's end.
    for offset, (list_id, parent_id) in enumerate(groups, start=1):
        Task.objects.create(
            owner=user, title="last", list_id=list_id, parent_id=parent_id, position=offset * 10**6
        )
        Task.objects.create(owner=other_user, title="theirs", position=offset * 10**7)

    for offset, group in enumerate(groups, start=1):
        assert services._end_position(user.pk, group) == offset * 10**6 + POSITION_GAP
    empty = make_list("Empty")
    assert services._end_position(user.pk, (empty.pk, None)) == POSITION_GAP


@pytest.mark.django_db(transaction=True)
def test_the_owners_lock_is_refused_outside_a_transaction(user):
    with pytest.raises(TransactionManagementError):
        lock_owner(user.pk)


def test_tags_are_found_whatever_the_case_and_created_once(user, other_user):
    theirs = services.tags_get_or_create(user=other_user, names=["Work"])
    first = services.tags_get_or_create(user=user, names=["Work", "home"])
    again = services.tags_get_or_create(user=user, names=["HOME", "work", "New"])

    assert [tag.pk for tag in again[:2]] == [first[1].pk, first[0].pk]
    assert again[1].pk != theirs[0].pk
    assert [tag.name for tag in again] == ["home", "Work", "New"]
    assert Tag.objects.filter(owner=user).count() == 3


def test_moving_after_a_task_deleted_meanwhile_is_a_field_error(user, make_task):
    task, anchor = make_task("task"), make_task("anchor")
    services.task_delete(owner_id=anchor.owner_id, task_id=anchor.pk)
    for after in (anchor, anchor.pk):  # as a caller read it before; an id the API's read not
        with pytest.raises(ValidationError) as raised:
            services.task_move(task=task, after=after)
        # The move's only read of the anchor is under the group lock: gone is unknown, as the
        # serializer's lookup said before (it read the anchor first, then the move again).
        assert raised.value.detail == {"after": [NO_SUCH_TASK]}


def test_the_services_check_a_new_parent_themselves(user, make_task, make_list):
    # What the admin's form (or any caller) checked may be out of date by the write: the
    # services read the parent again, locked, and refuse as the API's serializer does.
    home = make_list("Home")
    parent, other = make_task("Parent", list=home), make_task("Other")
    subtask = make_task("Subtask", parent=parent)
    for task, data, field in [
        (other, {"parent": subtask}, "parent"),  # two levels deep
        (parent, {"parent": other}, "parent"),  # has a subtask
        (other, {"parent": parent, "list": None}, "list"),  # not the parent's list
    ]:
        with pytest.raises(ValidationError) as raised:
            services.task_update(task=task, user=user, data=data)
        assert list(raised.value.detail) == [field]
    with pytest.raises(ValidationError) as raised:
        services.task_create(user=user, data={"title": "x", "parent": subtask})
    assert list(raised.value.detail) == ["parent"]
    # No list given: the task follows its new parent.
    assert services.task_update(task=other, user=user, data={"parent": parent}).list_id == home.pk
