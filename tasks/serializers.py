"""The shapes of lists, tasks and tags on the wire: input checks and output rendering."""

import copy
import uuid
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from tasks import recurrence
from tasks.filters import single_value
from tasks.models import (
    COLOR_PATTERN,
    DESCRIPTION_MAX_LENGTH,
    LIST_NAME_MAX_LENGTH,
    LIST_POSITION_MAX,
    MAX_TAG_ENTRIES,
    NO_SUCH_LIST,
    NO_SUCH_TASK,
    RECURRENCE_MAX_LENGTH,
    TAG_NAME_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Priority,
    Tag,
    Task,
    TaskList,
    name_sort_key,
    named,
    owned_instance,
)
from tasks.services import (
    BULK_ACTIONS,
    HAS_SUBTASKS,
    LIST_NAME_TAKEN,
    MAX_BULK_IDS,
    NOT_PARENTS_LIST,
    PARENT_IS_SUBTASK,
    never_repeats,
    new_tag_name_error,
)
from todo_project.fields import (
    CANONICAL_UUID,
    BoundedListField,
    CanonicalDateField,
    HourMinuteField,
    NameField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictUUIDField,
    VisibleCharField,
    one_of,
)
from todo_project.problems import ProblemSerializer

# RFC 3339 in UTC with Z, whole seconds: exactly the contract's `2026-11-22T09:30:00Z`.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class Timestamp(serializers.DateTimeField):
    """Always rendered in UTC with `Z`, whatever time zone is active."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        super().__init__(format=TIMESTAMP_FORMAT, default_timezone=UTC, **kwargs)


class PriorityField(serializers.ChoiceField):
    """Priority names on the wire (`none` < `low` < `medium` < `high`), ranks in the database."""

    def __init__(self, **kwargs: Any) -> None:
        names = [label for _, label in Priority.choices]
        kwargs.setdefault("error_messages", {"invalid_choice": one_of(names)})
        super().__init__(choices=names, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        return Priority[super().to_internal_value(data).upper()].value

    def to_representation(self, value: int) -> str:
        return Priority(value).label


class OwnedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """An id looked up among the caller's own rows: another user's id is 'does not exist'."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("pk_field", StrictUUIDField())
        self.model = kwargs.pop("model")
        super().__init__(**kwargs)
        # Not DRF's 'Invalid pk "..." - object does not exist.': a list deleted on another
        # device is the commonest error a user meets.
        self.error_messages["does_not_exist"] = (
            NO_SUCH_LIST if self.model is TaskList else NO_SUCH_TASK
        )

    def get_queryset(self):
        return self.model.objects.owned_by(self.context["request"].user)

    def run_validation(self, data: Any = empty):
        # DRF reads "" as null (an HTML form's empty select): here it is no id, as the schema's
        # `uuid` says, not "the Inbox" or "top level": `{"parent": ""}` from a form left unset
        # promoted a subtask with a 200 (review 43c).
        if data == "":
            self.pk_field.fail("invalid")
        return super().run_validation(data)

    def to_internal_value(self, data: Any):
        """DRF's lookup (get_queryset().get(pk=...)), compiled once."""
        pk = self.pk_field.to_internal_value(data)
        row = owned_instance(self.model, self.context["request"].user.pk, pk)
        if row is None:
            self.fail("does_not_exist", pk_value=pk)
        return row


class TagNameField(NameField):
    def __init__(self, **kwargs: Any) -> None:
        # The rules for a name no tag had (services.new_tag_name_error) are the service's and
        # the rename's: a task's `tags` name the tags it carries, whatever they were named.
        super().__init__(min_length=1, max_length=TAG_NAME_MAX_LENGTH, one_line=False, **kwargs)


class CarriedTagNameField(TagNameField):
    """A name of a tag a task carries (or is to): checked as the name it is stored under
    (trimmed, composed), but passed on as sent, spaces around aside. Which tag a name with
    invisible ends is, one stored so before the trimming rule or its trimmed name's, is
    models.tags_named's to say, as for `tag=`."""

    def to_internal_value(self, data: Any) -> str:
        super().to_internal_value(data)
        return data.strip()


class TagNamesField(BoundedListField):
    """Tag names. Names of one tag are merged by services.tags_get_or_create, which
    also holds a task to MAX_TAGS_PER_TASK distinct tags: which names are one is the unique
    index's key to say (models.NameKey), not Python's str.lower(). Here only a bound on the
    entries, spellings of one tag included."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=CarriedTagNameField(), max_length=MAX_TAG_ENTRIES, **kwargs)

    def to_representation(self, value: Any) -> list[str]:
        return sorted((tag.name for tag in value.all()), key=name_sort_key)


# --- Lists ------------------------------------------------------------------------------------


class TaskListSerializer(serializers.ModelSerializer):
    name = NameField(min_length=1, max_length=LIST_NAME_MAX_LENGTH)
    color = StrictCharField(
        allow_null=True,
        required=False,
        default=None,
        # The schema's pattern is for the value sent: " #2E7D32" is not one (it was trimmed).
        trim_whitespace=False,
        # Python's `$` matches before a final "\n" too; `\Z` does not (the schema shows `$`).
        validators=[
            RegexValidator(COLOR_PATTERN.removesuffix("$") + r"\Z", "Use #RRGGBB or null.")
        ],
        help_text="`#RRGGBB` or null.",
    )
    position = StrictIntegerField(
        min_value=0,
        max_value=LIST_POSITION_MAX,
        required=False,
        help_text="Lists are ordered by position; a new list goes to the end unless given.",
    )
    task_count = serializers.IntegerField(read_only=True, help_text="Tasks and subtasks.")
    open_task_count = serializers.IntegerField(read_only=True, help_text="Not completed.")
    created_at = Timestamp()
    updated_at = Timestamp()

    class Meta:
        model = TaskList
        fields = [
            "id",
            "name",
            "color",
            "position",
            "task_count",
            "open_task_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id"]

    def validate_name(self, value: str) -> str:
        if self.instance is not None and value == self.instance.name:
            # Unchanged: a name stored before it was composed (fields.composed) may look like
            # another list's, as migration tasks.0015 left it.
            return value
        others = TaskList.objects.owned_by(self.context["request"].user)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.filter(named(value)).exists():  # the unique index's key, not iexact's UPPER()
            raise serializers.ValidationError(LIST_NAME_TAKEN)
        return value


class ListDeleteQuerySerializer(serializers.Serializer):
    tasks = serializers.ChoiceField(
        choices=["inbox", "delete"],
        error_messages={"invalid_choice": one_of(["inbox", "delete"])},
        default="inbox",
        help_text="`inbox` (default): the list's tasks move to the Inbox; `delete`: they go too.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # DRF reads a blank query value as "not given" (the default); like the task filters,
        # `?tasks=` is a mistake to report, never a silent `inbox`. And a QueryDict answers the
        # last of repeated values: `?tasks=inbox&tasks=delete` would delete the tasks on a guess.
        single_value(self.initial_data, "tasks")
        return attrs


# --- Tasks ------------------------------------------------------------------------------------


# A ModelSerializer's fields built from the model once per class, not per instance.
# ModelSerializer introspects the model and builds every field again for each instance (~1 ms of
# CPU a task write). The fields depend on the class alone (ids are scoped to the caller at
# lookup: OwnedPrimaryKeyRelatedField), so each instance gets shallow copies of the class's, and
# bind() gives each copy its own name and parent. A deep copy, DRF's way with declared fields,
# rebuilt every field and cost ~0.25 ms a write; what the copies share (validators, choices,
# error messages, the tags' child field, immutable defaults) no request changes
# (tests/test_serializer_fields.py). (No docstring: drf-spectacular would make it the
# description of every serializer that has none of its own.)
class BuiltOnceFields:
    def get_fields(self) -> dict[str, serializers.Field]:
        cls = type(self)
        if "_built_fields" not in cls.__dict__:
            cls._built_fields = super().get_fields()
        return {name: copy.copy(field) for name, field in cls._built_fields.items()}

    # ModelSerializer derives its unique-together validators from the same fields and the
    # model, again for each instance (~0.1 ms a task write): once per class too. None of them
    # keeps state of a request (a validator gets the serializer as an argument).
    def get_validators(self) -> list:
        cls = type(self)
        if "_built_validators" not in cls.__dict__:
            cls._built_validators = super().get_validators()
        return list(cls._built_validators)


# The class, not an instance, carries the annotation: a serializer's declared fields are
# rebuilt from their arguments (deep copies), which drops what was set on an instance.
@extend_schema_field(OpenApiTypes.INT64)
class BigIntegerField(serializers.IntegerField):
    """A bigint column's value. Without bounds (a read-only one has none) drf-spectacular
    wrote a plain `integer`, which Java and Kotlin generators type as 32 bits."""


# Clearing the due date of a task that keeps a due time or a recurrence (not in the request):
# refused under `due_date`, the field the request sent (a form that sent only the date has no
# control for the others), saying the way out.
CLEARED_DATE_HAS_TIME = (
    "This task has a due time, which needs a due date: clear the due time too "
    "(due_time: null in the same request), or keep a date."
)
CLEARED_DATE_REPEATS = (
    "This task repeats, which needs a due date: remove the recurrence too "
    "(recurrence: null in the same request), or keep a date."
)


def needing_a_date(field: str, attrs: dict[str, Any]) -> str:
    """Where the error of a `field` (due_time, recurrence) without a due date goes: under the
    field when the request sent it, else under the due date the request cleared."""
    return field if field in attrs else "due_date"


class TaskSerializer(BuiltOnceFields, serializers.ModelSerializer):
    title = VisibleCharField(
        max_length=TITLE_MAX_LENGTH,
        help_text="1–200 characters after trimming, on one line (no line breaks, tabs or other "
        "control characters); one that shows nothing (only zero-width or other invisible "
        "characters) is blank.",
    )
    description = StrictCharField(
        max_length=DESCRIPTION_MAX_LENGTH,
        allow_blank=True,
        trim_whitespace=False,
        required=False,
        default="",
    )
    completed = StrictBooleanField(required=False, default=False)
    completed_at = Timestamp(
        allow_null=True, help_text="Set by the server when the task is completed."
    )
    priority = PriorityField(required=False, help_text="Default `none`.")
    due_date = CanonicalDateField(
        allow_null=True,
        required=False,
        default=None,
        input_formats=["%Y-%m-%d"],
        help_text="`YYYY-MM-DD`, in the user's time zone. Clearing it (null) on a task with a "
        "`due_time` or a `recurrence` is a 400 under `due_date` unless the request clears "
        "those too.",
    )
    due_time = HourMinuteField(
        allow_null=True,
        required=False,
        default=None,
        help_text="`HH:MM`, wall-clock in the user's time zone; needs `due_date`.",
    )
    tags = TagNamesField(
        required=False,
        default=list,
        help_text="Tag names (1–50 characters, case-insensitive: spellings of one tag count "
        "once; at most 20 tags, in at most 100 entries); new names create "
        'tags (but not "." or "..", which a tag\'s URL could not name, nor one with a line '
        "break, tab or other control character); names are composed (NFC), so a name "
        "spelled with combining accents is the tag of its precomposed spelling.",
    )
    # Declared after `tags`, whose default is the builtin `list`.
    list = OwnedPrimaryKeyRelatedField(
        model=TaskList,
        allow_null=True,
        required=False,
        help_text="One of your lists, or null for the Inbox. A subtask is in its parent's list.",
    )
    parent = OwnedPrimaryKeyRelatedField(
        model=Task,
        allow_null=True,
        required=False,
        default=None,
        help_text="Another of your top-level tasks (one level deep).",
    )
    recurrence = StrictCharField(
        allow_null=True,
        required=False,
        default=None,
        max_length=RECURRENCE_MAX_LENGTH,
        help_text="RFC 5545 RRULE (FREQ, INTERVAL, BYDAY, BYMONTHDAY, BYMONTH, COUNT, UNTIL) "
        f"or null; needs `due_date`. INTERVAL is at most {recurrence.MAX_INTERVAL:,} and COUNT "
        f"at most {recurrence.MAX_COUNT:,} (RFC 5545 has no bound). UNTIL is inclusive. A date (`YYYYMMDD`) is the last due "
        "date. A UTC date-time (`YYYYMMDDTHHMMSSZ`) is the latest `due_date` at `due_time` in "
        "the user's time zone (a time the clocks skip or repeat takes the offset before the "
        "change); without `due_time`, the last due date is UNTIL's date in the user's time zone. "
        "A rule with no date at all after the due date where its series starts (every 4 years "
        "on 29 February from a year that is no leap year) is a 400. A rule whose COUNT or UNTIL "
        "ends the series at or before this task (`COUNT=1`, an UNTIL before `due_date`) is "
        "taken: completing the task then makes no copy. The series starts at its "
        "first task's due date, which COUNT counts from: the same rule sent again (in any order "
        "or spelling of its parts) or a change of COUNT or UNTIL alone keeps it; another rule "
        "starts a new series at this task's due date.",
    )
    next_occurrence = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text="Always present: the id of the next task of the series, created when this "
        "recurring task was first completed, for as long as that task exists (reopened, this "
        "task keeps it: completing it again makes no second copy); null otherwise.",
    )
    # Ranks move out by 1,024 at the ends of a group and never come back, past 2^31 in time.
    position = BigIntegerField(
        read_only=True,
        help_text="Rank inside (list, parent), ascending; change it with move/. A move or new"
        " occurrence next to it may shift it, keeping the order: a change like any other"
        " (version and updated_at move too).",
    )
    created_at = Timestamp()
    updated_at = Timestamp()

    class Meta:
        model = Task
        fields = [
            "id",
            "title",
            "description",
            "completed",
            "completed_at",
            "priority",
            "due_date",
            "due_time",
            "list",
            "tags",
            "parent",
            "position",
            "recurrence",
            "next_occurrence",
            "created_at",
            "updated_at",
            "version",
        ]
        read_only_fields = ["id", "version"]
        extra_kwargs = {
            "version": {"help_text": "Starts at 1 and grows by one on every change."},
        }

    def validate_recurrence(self, value: str | None) -> str | None:
        if value is None:
            return None
        # An unchanged rule of a task is taken as stored, even one from before a newer rule.
        return recurrence.validate_rule(value, stored=getattr(self.instance, "recurrence", None))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        task: Task | None = self.instance

        def final(field: str) -> Any:
            if field in attrs:
                return attrs[field]
            return getattr(task, field) if task is not None else None

        errors: dict[str, list[str]] = {}
        due_date = final("due_date")
        if final("due_time") is not None and due_date is None:
            errors[needing_a_date("due_time", attrs)] = [
                CLEARED_DATE_HAS_TIME if "due_time" not in attrs else "A due time needs a due date."
            ]
        rule = final("recurrence")
        if rule is not None and due_date is None:
            errors.setdefault(needing_a_date("recurrence", attrs), []).append(
                CLEARED_DATE_REPEATS
                if "recurrence" not in attrs
                else "A recurring task needs a due date."
            )
        elif never := never_repeats(task, attrs):
            # Under the rule when the request sent one, else under the due date it moved.
            errors[needing_a_date("recurrence", attrs)] = [never]

        if not self.partial:
            attrs.setdefault("priority", Priority.NONE)  # PUT replaces: the default again
        # A PATCH that leaves both list and parent alone keeps a placement that was checked
        # when it was made: no need to load the parent (a query) to check it again.
        keeps_placement = self.partial and "list" not in attrs and "parent" not in attrs
        parent: Task | None = None if keeps_placement else final("parent")
        if "list" not in attrs and parent is None and not self.partial:
            attrs["list"] = None  # PUT replaces: no list given is the Inbox
        # A subtask given no list goes to its parent's: the services read the parent again under
        # a lock and check these rules once more, as this `parent` may be out of date by then.
        if parent is not None:
            if task is not None and parent.pk == task.pk:
                errors["parent"] = ["A task cannot be its own parent."]
            elif parent.parent_id is not None:
                errors["parent"] = [PARENT_IS_SUBTASK]
            elif task is not None and "parent" in attrs and task.subtasks.exists():
                errors["parent"] = [HAS_SUBTASKS]
            elif "list" in attrs and getattr(attrs["list"], "pk", None) != parent.list_id:
                errors["list"] = [NOT_PARENTS_LIST]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class OwnedIdField(OwnedPrimaryKeyRelatedField):
    """The id of one of the caller's rows, checked for its form only: the write reads the row
    itself, in a statement it runs anyway. Same schema as OwnedPrimaryKeyRelatedField."""

    def to_internal_value(self, data: Any) -> uuid.UUID:
        return self.pk_field.to_internal_value(data)

    def looked_up(self, data: Any):
        """OwnedPrimaryKeyRelatedField's value (a statement; a 400 if unknown): for an error
        path that must name an unknown id as the field did when it looked it up."""
        return super().to_internal_value(data)


class TaskMoveSerializer(BuiltOnceFields, serializers.Serializer):
    # Read by the move under its group lock (services._place_after): a lookup here too cost a
    # statement. An unknown anchor is still named with the other fields' errors: below.
    after = OwnedIdField(
        model=Task,
        allow_null=True,
        help_text="The task to place this one right after (same list and parent), or null for "
        "first.",
    )
    list = OwnedPrimaryKeyRelatedField(
        model=TaskList,
        allow_null=True,
        required=False,
        help_text="Move into this list (null: the Inbox). Left out: the task's own list.",
    )

    @staticmethod
    def plain_anchor(data: Any) -> dict[str, Any] | None:
        """The validated_data of the commonest body, `{"after": "<id>"}` and nothing else (a
        reorder), without an instance and its fields (~60 µs of a move's CPU); None for any
        other body, for the serializer to validate. The same value the fields make of it:
        `after` is only checked for its form (OwnedIdField, StrictUUIDField), `list` absent."""
        if type(data) is dict and len(data) == 1:
            after = data.get("after")
            if type(after) is str and CANONICAL_UUID.fullmatch(after):
                return {"after": uuid.UUID(hex=after)}
        return None

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as refused:
            # Another field is refused: an unknown anchor is named too, first (field order), as
            # when `after` was looked up here. Only on this path: a valid body reads it once.
            anchor = data.get("after") if isinstance(data, Mapping) else None
            if anchor is not None and "after" not in refused.detail:
                try:
                    self.fields["after"].looked_up(anchor)
                except serializers.ValidationError as unknown:
                    refused.detail = {"after": unknown.detail, **refused.detail}
            raise


class TaskBulkSerializer(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=BULK_ACTIONS, error_messages={"invalid_choice": one_of(BULK_ACTIONS)}
    )
    ids = BoundedListField(
        child=StrictUUIDField(),
        min_length=1,
        max_length=MAX_BULK_IDS,
        help_text="Ids of your tasks (at most 500).",
    )
    list = OwnedPrimaryKeyRelatedField(
        model=TaskList,
        allow_null=True,
        required=False,
        help_text="For `move`: the target list, null for the Inbox (tasks go to the end).",
    )
    priority = PriorityField(required=False, help_text="For `set_priority`.")
    tags = TagNamesField(required=False, help_text="For `add_tags` and `remove_tags`.")

    # The parameter each action needs.
    NEEDS = {"move": "list", "set_priority": "priority", "add_tags": "tags", "remove_tags": "tags"}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        action = attrs["action"]
        needed = self.NEEDS.get(action)
        if needed and needed not in attrs:
            raise serializers.ValidationError({needed: [f"Required for the action {action}."]})
        if needed == "tags" and not attrs["tags"]:
            raise serializers.ValidationError({"tags": ["Name at least one tag."]})
        return attrs


class BulkResultSerializer(serializers.Serializer):
    updated = serializers.IntegerField(
        help_text="How many of the given tasks the action changed (tasks already in the "
        "wanted state are left as they are)."
    )


class DeletedTaskSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True, help_text="The deleted task's id.")
    deleted_at = Timestamp(help_text="When it was deleted (with its parent, list or itself).")


class TaskChangesSerializer(serializers.Serializer):
    """The answer of `tasks/changes/` (documentation only: tasks.sync renders it)."""

    changed = TaskSerializer(
        many=True,
        read_only=True,
        help_text="Tasks created or changed after the cursor, as they are now, in the order "
        "of their `updated_at` (then id).",
    )
    deleted = DeletedTaskSerializer(
        many=True,
        read_only=True,
        help_text="Tasks deleted after the cursor (subtasks deleted with their parent and "
        "tasks deleted with their list included): drop them.",
    )
    cursor = serializers.CharField(
        read_only=True,
        help_text="Opaque. Pass it as `cursor` to get what follows: at once while `has_more`, "
        "else at the next sync.",
    )
    has_more = serializers.BooleanField(
        read_only=True, help_text="More changes follow: ask again now with `cursor`."
    )


# --- Tags -------------------------------------------------------------------------------------


class TagSerializer(serializers.ModelSerializer):
    name = TagNameField(
        help_text='1–50 characters; unique per user, case-insensitively; not "." or "..", '
        "and on one line (no line breaks, tabs or other control characters)."
    )
    task_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Tag
        fields = ["name", "task_count"]

    def validate_name(self, value: str) -> str:
        # The rules are for names no tag has: this tag's own, or another's (a merge into a tag
        # named before them), may stay, as on tasks.
        error = new_tag_name_error(value)
        if error and value != self.instance.name and not self._taken(value):
            raise serializers.ValidationError(error)
        return value

    def _taken(self, name: str) -> bool:
        """Whether another of the owner's tags has this name (a merge). This tag's own name
        in another case is a new spelling, which the rules are for."""
        tags = Tag.objects.filter(named(name), owner_id=self.instance.owner_id)
        return tags.exclude(pk=self.instance.pk).exists()


# --- Errors (documentation only) ----------------------------------------------------------


def _bulk_body(name: str, needed: str | None) -> type:
    """The body of `tasks/bulk/` for the actions that need `needed` (None: no parameter), that
    parameter required: one variant of the documented oneOf, from TaskBulkSerializer's fields."""

    def field(name: str, **overrides: Any) -> serializers.Field:
        declared = TaskBulkSerializer._declared_fields[name]
        # Made again from its arguments (copied: a bound `child=` may not be given again).
        return type(declared)(**{**copy.deepcopy(declared._kwargs), **overrides})

    actions = [a for a in BULK_ACTIONS if TaskBulkSerializer.NEEDS.get(a) == needed]
    attrs = {"action": serializers.ChoiceField(choices=actions), "ids": field("ids")}
    if needed:
        attrs[needed] = field(
            needed, required=True, **({"min_length": 1} if needed == "tags" else {})
        )
    return type(name, (serializers.Serializer,), attrs)


_BULK_BODIES = {
    needed: _bulk_body(name, needed)
    for needed, name in [
        (None, "BulkStateSerializer"),
        ("list", "BulkMoveSerializer"),
        ("priority", "BulkSetPrioritySerializer"),
        ("tags", "BulkTagsSerializer"),
    ]
}
# A oneOf keyed on `action`, so that a generated client knows the parameter each action needs.
TASK_BULK_BODY = PolymorphicProxySerializer(
    component_name="TaskBulk",
    serializers={a: _BULK_BODIES[TaskBulkSerializer.NEEDS.get(a)] for a in BULK_ACTIONS},
    resource_type_field_name="action",
)


class MissingTasksProblemSerializer(ProblemSerializer):
    """The 404 of `tasks/bulk/`: a problem that names the ids that are not among your tasks."""

    missing_ids = serializers.ListField(
        child=serializers.UUIDField(),
        help_text="The ids of the request that are not among your tasks.",
    )
