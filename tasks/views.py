"""Lists, tasks and tags endpoints: glue between the request, the serializers and the services.

Every queryset starts from `owned_by(request.user)`; the class attributes are empty querysets,
so a forgotten override leaks nothing. Another user's id is a 404 like an unknown one.
"""

import re
import uuid
from typing import Any

import orjson
from django.db import transaction
from django.db.models import OuterRef, QuerySet
from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response

from tasks import fast_read, services, sync
from tasks.filters import TaskFilter, single_value, single_values
from tasks.models import (
    Tag,
    Task,
    TaskList,
    by_name,
    count_of,
    named,
    owned_instance,
    task_to_write,
)
from tasks.quotas import COMPLETION_ALLOWANCE, MAX_COMPLETED_PER_REQUEST
from tasks.serializers import (
    TASK_BULK_BODY,
    BulkResultSerializer,
    ListDeleteQuerySerializer,
    MissingTasksProblemSerializer,
    TagSerializer,
    TaskBulkSerializer,
    TaskChangesSerializer,
    TaskListSerializer,
    TaskMoveSerializer,
    TaskSerializer,
)
from todo_project.conditional import ConditionalRequestMixin, has_preconditions
from todo_project.idempotency import idempotent, in_answer_transaction
from todo_project.problems import (
    PROBLEM_CONTENT_TYPE,
    ProblemSerializer,
    ValidationProblemSerializer,
)
from todo_project.retry import RetriedWrites, has_given_way
from todo_project.schema import ERROR_DESCRIPTIONS, answer_example

UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
WHOLE_NUMBER = re.compile(r"[0-9]+")
# Larger limits and offsets are served as this one: past any user's tasks, and with a page's end
# still within PostgreSQL's bigint OFFSET/LIMIT.
LARGEST_WHOLE_NUMBER = 10**18


def _problem(description: str, serializer: type = ProblemSerializer) -> OpenApiResponse:
    # The components every module shares (todo_project.schema): one type per problem shape.
    return OpenApiResponse(serializer, description=description)


PROBLEM_400 = _problem(ERROR_DESCRIPTIONS[400], ValidationProblemSerializer)
PROBLEM_401 = _problem(ERROR_DESCRIPTIONS[401])
PROBLEM_404 = _problem(ERROR_DESCRIPTIONS[404])
# A create's 409 is the account's cap too; a task write's a cap only.
NEW_TAGS_PAST_CAP = (
    "New tag names that would take the account past `MAX_TAGS_PER_USER` tags: nothing changed."
)
IDEMPOTENCY_KEY_RUNNING = (
    "Or a request with the same Idempotency-Key is still running: send it again after "
    "`Retry-After`."
)
PROBLEM_409_CREATE = _problem(
    "The account has `MAX_TASKS_PER_USER` tasks (completed ones count): delete some first "
    f"(no `Retry-After`). {NEW_TAGS_PAST_CAP} {IDEMPOTENCY_KEY_RUNNING}"
)
TOO_MANY_COMPLETED = (
    f"tasks than one request completes ({MAX_COMPLETED_PER_REQUEST:,}, open subtasks "
    "included): nothing changed; complete the subtasks first."
)
PROBLEM_409_COMPLETION = _problem(
    "Completing the task would create a next occurrence (of it or of a recurring subtask) "
    f"past the account's allowance (`MAX_TASKS_PER_USER` + {COMPLETION_ALLOWANCE:,}): "
    "nothing changed; delete tasks first. Or it would complete more "
    f"{TOO_MANY_COMPLETED} {NEW_TAGS_PAST_CAP}"
)
PROBLEM_409_LIST_CREATE = _problem(
    "The account has `MAX_LISTS_PER_USER` lists: delete one first (no `Retry-After`). "
    + IDEMPOTENCY_KEY_RUNNING
)
PROBLEM_412 = _problem(ERROR_DESCRIPTIONS[412])
PROBLEM_429 = _problem(ERROR_DESCRIPTIONS[429])
PROBLEM_JSON = PROBLEM_CONTENT_TYPE
COMMON_ERRORS = {(401, PROBLEM_JSON): PROBLEM_401, (429, PROBLEM_JSON): PROBLEM_429}
ONE_ERRORS = {**COMMON_ERRORS, (404, PROBLEM_JSON): PROBLEM_404}
WRITE_ERRORS = {**ONE_ERRORS, (400, PROBLEM_JSON): PROBLEM_400, (412, PROBLEM_JSON): PROBLEM_412}

COMPLETING = (
    "Setting `completed` to true completes the open subtasks too and, for a recurring task, "
    "creates the next occurrence: its id is in `next_occurrence`. That copy is a new task: "
    f"completions may take an account up to {COMPLETION_ALLOWANCE:,} tasks past `MAX_TASKS_PER_USER`; beyond, "
    "a completion that would make one is a 409 and changes nothing. One request completes "
    f"at most {MAX_COMPLETED_PER_REQUEST:,} tasks, its open subtasks included: a parent with "
    "more open subtasks is a 409 too, until some are completed."
)

TASK_EXAMPLE = {
    "id": "0b6f8c1e-4a1d-4c8e-9a4f-2f4f6b1f7c11",
    "title": "Pay rent",
    "description": "",
    "completed": False,
    "completed_at": None,
    "priority": "high",
    "due_date": "2026-12-01",
    "due_time": "09:00",
    "list": None,
    "tags": ["home", "money"],
    "parent": None,
    "position": 3072,
    "recurrence": "FREQ=MONTHLY;BYMONTHDAY=1",
    "next_occurrence": None,
    "created_at": "2026-11-22T09:30:00Z",
    "updated_at": "2026-11-22T09:30:00Z",
    "version": 4,
}
# As a create answers it: version 1, never changed.
TASK_CREATED_EXAMPLE = {**TASK_EXAMPLE, "updated_at": TASK_EXAMPLE["created_at"], "version": 1}
TASK_LIST_EXAMPLE = {
    "id": "5a0c1e3b-8d1f-4f5e-9d6a-3b2c1a0f9e88",
    "name": "Groceries",
    "color": "#2E7D32",
    "position": 2048,
    "task_count": 7,
    "open_task_count": 5,
    "created_at": "2026-11-20T17:04:51Z",
    "updated_at": "2026-11-22T08:15:02Z",
}


class TaskPagination(LimitOffsetPagination):
    """limit (1..; above 200 served as 200, default 50) and offset (0..); else a 400."""

    default_limit = 50
    max_limit = 200

    def _whole_number(self, request: Request, name: str, default: int, minimum: int) -> int:
        # A DRF request's query_params, or the fast list's request. Empty: the same 400 as
        # any parameter's (on the list, one given twice is TaskFilter's to report first).
        raw = single_value(request.GET, name)
        if raw is None:
            return default
        if WHOLE_NUMBER.fullmatch(raw):
            digits = raw.lstrip("0")
            number = LARGEST_WHOLE_NUMBER if len(digits) > 18 else int(digits or "0")
            if number >= minimum:
                return number
        raise ValidationError({name: [f"Must be a whole number of at least {minimum}."]})

    def get_limit(self, request: Request) -> int:
        limit = self._whole_number(request, self.limit_query_param, self.default_limit, 1)
        return min(limit, self.max_limit)

    def get_offset(self, request: Request) -> int:
        return self._whole_number(request, self.offset_query_param, 0, 0)

    def paginate_queryset(self, queryset, request: Request, view=None) -> list:
        """DRF's, with the page read first: a page that ends before `limit` tells the count
        (offset + its length), so a filtered list that fits one page runs no COUNT(*)."""
        self.request = request
        self.limit, self.offset = self.get_limit(request), self.get_offset(request)
        page = list(queryset[self.offset : self.offset + self.limit])
        if len(page) < self.limit and (page or self.offset == 0):
            self.count = self.offset + len(page)
        else:  # a full page, or an empty one past the first: only a count can tell
            self.count = self.get_count(queryset)
        self.display_page_controls = self.count > self.limit and self.template is not None
        return page

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        # DRF's, with this API's links, and `next`/`previous` always there (null at an end).
        page = super().get_paginated_response_schema(schema)
        page["required"] = ["count", "next", "previous", "results"]
        links = page["properties"]
        # The third page: the first page's link has no `offset` (DRF leaves it out at 0).
        links["next"]["example"] = "https://todo.example.com/api/v1/tasks/?limit=50&offset=150"
        links["previous"]["example"] = "https://todo.example.com/api/v1/tasks/?limit=50&offset=50"
        return page

    def get_schema_operation_parameters(self, view) -> list[dict[str, Any]]:
        return [
            {
                "name": "limit",
                "required": False,
                "in": "query",
                "description": "Page size: default 50; above 200 is served as 200.",
                "schema": {"type": "integer", "minimum": 1, "default": 50},
            },
            {
                "name": "offset",
                "required": False,
                "in": "query",
                "description": "How many results to skip (past the end: an empty page).",
                "schema": {"type": "integer", "minimum": 0, "default": 0},
            },
        ]


class ChangesPagination(TaskPagination):
    """The `limit` of tasks/changes/: a sync wants large pages."""

    default_limit = sync.DEFAULT_LIMIT
    max_limit = sync.MAX_LIMIT


class OptionsOfYoursOnly:
    """OPTIONS of one object is a 404 for an id that is not the caller's, as every other method
    is (DRF describes the endpoint whatever the id, leaving out only the write actions)."""

    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if (self.lookup_url_kwarg or self.lookup_field) in kwargs:
            self.get_object()
        return super().options(request, *args, **kwargs)


@extend_schema_view(
    list=extend_schema(
        summary="Your lists, by position",
        responses={200: TaskListSerializer, **COMMON_ERRORS},
        examples=[answer_example(TASK_LIST_EXAMPLE)],
    ),
    create=extend_schema(
        summary="Create a list (at the end unless `position` is given)",
        responses={
            201: TaskListSerializer,
            (400, PROBLEM_JSON): PROBLEM_400,
            **COMMON_ERRORS,
            (409, PROBLEM_JSON): PROBLEM_409_LIST_CREATE,
        },
        examples=[
            OpenApiExample(
                "New list", value={"name": "Groceries", "color": "#2E7D32"}, request_only=True
            ),
            answer_example(
                {
                    **TASK_LIST_EXAMPLE,
                    "task_count": 0,
                    "open_task_count": 0,
                    "updated_at": TASK_LIST_EXAMPLE["created_at"],
                },
                status_codes=["201"],
            ),
        ],
    ),
    retrieve=extend_schema(
        summary="One list",
        responses={200: TaskListSerializer, **ONE_ERRORS},
        examples=[answer_example(TASK_LIST_EXAMPLE)],
    ),
    partial_update=extend_schema(
        summary="Change a list's name, color or position",
        responses={200: TaskListSerializer, **WRITE_ERRORS},
        examples=[
            OpenApiExample("Rename", value={"name": "Weekly groceries"}, request_only=True),
            answer_example(
                {
                    **TASK_LIST_EXAMPLE,
                    "name": "Weekly groceries",
                    "updated_at": "2026-11-22T10:12:45Z",
                }
            ),
        ],
    ),
    destroy=extend_schema(
        summary="Delete a list; its tasks go to the Inbox unless `?tasks=delete`",
        parameters=[ListDeleteQuerySerializer],
        responses={
            204: None,
            (400, PROBLEM_JSON): PROBLEM_400,
            **ONE_ERRORS,
            (412, PROBLEM_JSON): PROBLEM_412,
        },
    ),
)
class TaskListViewSet(
    RetriedWrites,
    OptionsOfYoursOnly,
    ConditionalRequestMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your task lists, ordered by position, with their task counts."""

    queryset = TaskList.objects.none()
    serializer_class = TaskListSerializer
    pagination_class = None
    filter_backends: list = []
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = UUID_PATTERN
    # The counts change with the list's tasks, not its version (If-Match compares the version).
    etag_derived_fields = ("task_count", "open_task_count")
    # If-Match locks the list FOR NO KEY UPDATE: the foreign-key checks of writes into the list
    # do not wait for it (a conditional DELETE deadlocked with them: ConditionalRequestMixin).
    no_key_lock = True

    def get_queryset(self) -> QuerySet:
        # Counted per list by correlated subqueries, from an index alone (models.count_of):
        # a JOIN and GROUP BY read every task of the owner from the table (272 ms for the
        # heavy user's 100,000; 22 ms now).
        tasks = Task.objects.filter(list=OuterRef("pk"))
        return (
            TaskList.objects.owned_by(self.request.user)
            .annotate(
                task_count=count_of(tasks),
                open_task_count=count_of(tasks.filter(completed=False)),
            )
            .order_by("position", "id")
        )

    def _respond(self, task_list: TaskList, code: int = status.HTTP_200_OK) -> Response:
        annotated = self.get_queryset().get(pk=task_list.pk)
        return Response(self.get_serializer(annotated).data, status=code)

    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # The answer read in the create's transaction: read after its commit, a statement
        # cancelled there (a 503 "not carried out") left the list created (review 37f).
        # No savepoints inside: any error goes out of this transaction, which is rolled back
        # whole; nor one of its own in an idempotent request's (review 41d).
        with transaction.atomic(savepoint=not in_answer_transaction()):
            task_list = services.list_create(
                user=request.user,
                name=data["name"],
                color=data.get("color"),
                position=data.get("position"),
                savepoint=False,
            )
            self.written_version = task_list.version  # for the ETag: the body has no version
            return self._respond(task_list, status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        task_list = self.get_object()
        serializer = self.get_serializer(task_list, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        # The answer and its version are read under the row lock too: a DELETE or another
        # PATCH cannot slip in before them.
        with transaction.atomic():
            updated = services.list_update(task_list=task_list, data=serializer.validated_data)
            self.written_version = updated.version
            return self._respond(updated)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        query = ListDeleteQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        self.delete_tasks = query.validated_data["tasks"] == "delete"
        deleted = services.list_delete(
            user=request.user,
            task_list=self.get_object(),
            delete_tasks=self.delete_tasks,
            tasks_locked=has_preconditions(request),  # by locked_version, before the list's row
        )
        if not deleted:  # by a concurrent request, after the read: as a task's DELETE says
            raise Http404
        return Response(status=status.HTTP_204_NO_CONTENT)

    def locked_version(self, instance: TaskList) -> int | None:
        if self.request.method == "DELETE":
            # The tasks before the list's row, as list_delete and the account's deletion take
            # them: the row first deadlocked with them, 1 s (review 35a).
            services.lock_list_tasks(
                user=self.request.user, task_list=instance, delete_tasks=self.delete_tasks
            )
        return super().locked_version(instance)


class CompiledLookupForWrites:
    """get_object() of a task write: the caller's task by id in SQL compiled once; anyone
    else's id is the same 404 as an unknown one. Reads keep DRF's lookup, whose queryset
    prefetches what the serializer renders. Goes after ConditionalRequestMixin, which locks
    and compares the row this returns."""

    # Set by a write that reads its task inside its transaction, to change it: read locked,
    # with what its answer needs (task_to_write).
    lock_on_read = False
    # Set by a write that may complete its task: an open subtask's parent is locked first
    # (task_to_write's `completing`).
    completing = False

    def get_object(self) -> Task:
        if self.request.method in permissions.SAFE_METHODS:
            return super().get_object()
        pk = self.task_id()
        if self.lock_on_read:
            # Running again after it gave way (todo_project.retry.GIVE_WAYS), a subtask's write
            # locks the parent first, as ROW_LOCK_ORDER does: a move whose spread moved the
            # subtask locks it after the subtask (services._lock_parent_after_spread), NOWAIT,
            # giving way to its writers; out of give-ways it waited there, holding the
            # subtask, for a writer that held the parent and wanted the subtask: a deadlock,
            # 1 s, a 503 after three (review 38g). One statement more, on a re-run only.
            instance = task_to_write(
                self.request.user.pk,
                pk,
                completing=self.completing,
                parent_first=has_given_way.get(),
            )
        else:
            instance = owned_instance(Task, self.request.user.pk, pk)
        if instance is None:
            raise Http404
        self.check_object_permissions(self.request, instance)
        return instance

    def task_id(self) -> uuid.UUID:
        return uuid.UUID(self.kwargs[self.lookup_url_kwarg or self.lookup_field])  # a URL UUID


@extend_schema_view(
    list=extend_schema(
        summary="Your tasks: filtered, searched, ordered and paginated",
        description="An invalid value of a parameter is a 400 problem naming it in `errors`. "
        "Every parameter but `tag` (repeatable: tasks with all of them) takes one value: one "
        "given more than once (`completed=true&completed=false`, `limit=5&limit=10`, even "
        "with the same value) is a 400 too, never its last value silently. Unknown parameters "
        "are ignored.",
        responses={
            200: TaskSerializer(many=True),
            (400, PROBLEM_JSON): PROBLEM_400,
            **COMMON_ERRORS,
        },
        examples=[answer_example(TASK_EXAMPLE, "A page")],
    ),
    create=extend_schema(
        summary="Create a task (at the end of its list, or of its parent's subtasks)",
        responses={
            201: TaskSerializer,
            (400, PROBLEM_JSON): PROBLEM_400,
            **COMMON_ERRORS,
            (409, PROBLEM_JSON): PROBLEM_409_CREATE,
        },
        examples=[
            OpenApiExample(
                "New task",
                value={
                    "title": "Pay rent",
                    "priority": "high",
                    "due_date": "2026-12-01",
                    "due_time": "09:00",
                    "tags": ["home", "money"],
                    "recurrence": "FREQ=MONTHLY;BYMONTHDAY=1",
                },
                request_only=True,
            ),
            answer_example(TASK_CREATED_EXAMPLE, "Task", status_codes=["201"]),
            OpenApiExample(
                "Invalid task",
                value={
                    "type": "about:blank",
                    "title": "Validation failed",
                    "status": 400,
                    "detail": "One or more fields are invalid.",
                    "instance": "/api/v1/tasks/",
                    "request_id": "5f0c8a4e1b2d4c3f9e8d7c6b5a4f3e2d",
                    "errors": {"due_time": ["A due time needs a due date."]},
                },
                response_only=True,
                status_codes=["400"],
                media_type=PROBLEM_JSON,
            ),
        ],
    ),
    retrieve=extend_schema(
        summary="One task",
        responses={200: TaskSerializer, **ONE_ERRORS},
        examples=[answer_example(TASK_EXAMPLE)],
    ),
    update=extend_schema(
        summary="Replace a task (fields left out get their defaults)",
        description='Left out, `description` is `""`, `completed` false, `priority` `none`, '
        "`tags` `[]`, and `due_date`, `due_time`, `recurrence`, `parent` and `list` null: the "
        "task moves to the Inbox (a subtask, its `parent` sent, stays in its parent's list) and "
        "a subtask left without `parent` becomes a task of its own. Send what the task has to "
        "keep it, or PATCH what changes. " + COMPLETING,
        responses={
            200: TaskSerializer,
            **WRITE_ERRORS,
            (409, PROBLEM_JSON): PROBLEM_409_COMPLETION,
        },
        examples=[
            OpenApiExample(
                "Whole task",
                value={"title": "Pay rent", "priority": "medium", "tags": ["home"]},
                request_only=True,
            ),
            answer_example(
                {
                    **TASK_EXAMPLE,
                    "priority": "medium",
                    "due_date": None,
                    "due_time": None,
                    "tags": ["home"],
                    "recurrence": None,
                    "updated_at": "2026-11-22T10:01:40Z",
                    "version": 5,
                }
            ),
        ],
    ),
    partial_update=extend_schema(
        summary="Change some fields of a task (explicit null clears a nullable field)",
        description=COMPLETING,
        responses={
            200: TaskSerializer,
            **WRITE_ERRORS,
            (409, PROBLEM_JSON): PROBLEM_409_COMPLETION,
        },
        examples=[
            OpenApiExample("Complete", value={"completed": True}, request_only=True),
            OpenApiExample(
                "Completed recurring task",
                value={
                    **TASK_EXAMPLE,
                    "completed": True,
                    "completed_at": "2026-11-30T18:02:11Z",
                    "updated_at": "2026-11-30T18:02:11Z",
                    "version": 5,
                    "next_occurrence": "8d1f5a0c-1e3b-4f5e-9d6a-3b2c1a0f9e88",
                },
                response_only=True,
            ),
        ],
    ),
    destroy=extend_schema(
        summary="Delete a task and its subtasks",
        responses={204: None, **ONE_ERRORS, (412, PROBLEM_JSON): PROBLEM_412},
    ),
)
class TaskViewSet(
    RetriedWrites,
    OptionsOfYoursOnly,
    ConditionalRequestMixin,
    CompiledLookupForWrites,
    viewsets.ModelViewSet,
):
    """Your tasks and subtasks: CRUD, filters, search, ordering, moves and bulk actions."""

    queryset = Task.objects.none()
    serializer_class = TaskSerializer
    filterset_class = TaskFilter
    pagination_class = TaskPagination
    lookup_value_regex = UUID_PATTERN
    conditional_post_actions = frozenset({"move"})

    def get_queryset(self) -> QuerySet:
        return Task.objects.owned_by(self.request.user).prefetch_related("tags")

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        if self.action != "list":
            return queryset  # filters and ordering are for the list only
        return super().filter_queryset(queryset)

    # The hot read path renders rows without the per-object serializer: the same bytes, a
    # fraction of the time (tasks/fast_read.py, bench/README.md).
    def list(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        return fast_read.list_response(self, request)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        return fast_read.retrieve_response(self, request)

    def _answer(self, task: Task, code: int = status.HTTP_200_OK) -> Response:
        """What TaskSerializer(task).data would say of the task as this write saved it."""
        return fast_read.WrittenTaskResponse(task, code)

    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.perform_create(serializer)
        return self._answer(serializer.instance, status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        # One transaction from the read to the write, the row locked as it is read: the body is
        # validated against the row the service then writes, without reading it again.
        with transaction.atomic():
            self.lock_on_read = True
            self.completing = (
                isinstance(request.data, dict) and request.data.get("completed") is True
            )
            serializer = self.get_serializer(self.get_object(), data=request.data, partial=partial)
            serializer.is_valid(raise_exception=True)
            self.perform_update(serializer)
        return self._answer(serializer.instance)

    def perform_create(self, serializer: TaskSerializer) -> None:
        serializer.instance = services.task_create(
            user=self.request.user,
            data=dict(serializer.validated_data),
            savepoint=not in_answer_transaction(),
        )

    def perform_update(self, serializer: TaskSerializer) -> None:
        serializer.instance = services.task_update(
            task=serializer.instance,
            user=self.request.user,
            data=serializer.validated_data,
            locked=self.lock_on_read,
        )

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if has_preconditions(request):
            # Compared under the row's lock first (ConditionalRequestMixin), then deleted.
            return super().destroy(request, *args, **kwargs)
        # Last writer wins: the delete is the lookup, one statement (a 404 when nothing went).
        if not services.task_delete(owner_id=request.user.pk, task_id=self.task_id()):
            raise Http404
        return Response(status=status.HTTP_204_NO_CONTENT)

    def locked_version(self, instance: Task) -> int | None:
        if self.request.method == "DELETE":
            # With the subtasks and the previous occurrence the delete locks, in its order.
            locked = services.lock_tasks_to_delete(instance.owner_id, "ids", ids=[instance.pk])
            return locked.get(instance.pk)
        return super().locked_version(instance)

    def perform_destroy(self, instance: Task) -> None:
        services.task_delete(owner_id=instance.owner_id, task_id=instance.pk)

    @extend_schema(
        operation_id="tasks_move",
        summary="Move a task: right after another, or first; optionally into another list",
        description="A move to the place the task has already changes nothing: the answer keeps "
        "its `version`, ETag and `updated_at`.",
        request=TaskMoveSerializer,
        responses={200: TaskSerializer, **WRITE_ERRORS},
        examples=[
            OpenApiExample(
                "After another task",
                value={"after": "0b6f8c1e-4a1d-4c8e-9a4f-2f4f6b1f7c11"},
                request_only=True,
            ),
            OpenApiExample(
                "First in another list",
                value={"after": None, "list": TASK_LIST_EXAMPLE["id"]},
                request_only=True,
            ),
            answer_example(
                {
                    **TASK_EXAMPLE,
                    "list": TASK_LIST_EXAMPLE["id"],
                    "position": 1024,
                    "updated_at": "2026-11-22T10:01:40Z",
                    "version": 5,
                },
                "Moved",
            ),
        ],
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def move(self, request: Request, pk: str | None = None) -> Response:
        """Reorders a task inside its list (and parent), or moves it into another list."""
        # As in update(): the row locked as it is read, read once; no savepoint of its own in an
        # idempotent request's transaction (review 41d).
        with transaction.atomic(savepoint=not in_answer_transaction()):
            self.lock_on_read = True
            task = self.get_object()
            data = TaskMoveSerializer.plain_anchor(request.data)
            if data is None:  # anything but {"after": "<id>"}: validated by the serializer
                serializer = TaskMoveSerializer(
                    data=request.data, context=self.get_serializer_context()
                )
                serializer.is_valid(raise_exception=True)
                data = serializer.validated_data
            task = services.task_move(
                task=task,
                after=data["after"],
                list_=data.get("list", services.UNCHANGED),
                locked=True,
            )
        return self._answer(task)

    @extend_schema(
        operation_id="tasks_bulk",
        summary="Apply one action to up to 500 tasks, all or nothing",
        description="If any id is unknown or not yours, nothing changes and the answer is a "
        "404 problem whose `missing_ids` lists them. `add_tags` that would give a task more "
        "than 20 tags is a 400 naming those tasks under `errors.tags`; nothing changes.",
        request=TASK_BULK_BODY,
        responses={
            200: BulkResultSerializer,
            (400, PROBLEM_JSON): PROBLEM_400,
            (404, PROBLEM_JSON): _problem(
                "Some ids are not among your tasks: `missing_ids` names them.",
                MissingTasksProblemSerializer,
            ),
            **COMMON_ERRORS,
            (409, PROBLEM_JSON): _problem(
                "A `complete` whose next occurrences would take the account past its allowance "
                f"(`MAX_TASKS_PER_USER` + {COMPLETION_ALLOWANCE:,}): nothing changed; delete "
                f"tasks first. A `complete` of more {TOO_MANY_COMPLETED} "
                "An `add_tags` whose new names would take it past "
                f"`MAX_TAGS_PER_USER` tags: nothing changed. {IDEMPOTENCY_KEY_RUNNING}"
            ),
        },
        examples=[
            OpenApiExample(
                "Complete two tasks",
                value={
                    "action": "complete",
                    "ids": [
                        "0b6f8c1e-4a1d-4c8e-9a4f-2f4f6b1f7c11",
                        "8d1f5a0c-1e3b-4f5e-9d6a-3b2c1a0f9e88",
                    ],
                },
                request_only=True,
            ),
            OpenApiExample(
                "Tag tasks",
                value={
                    "action": "add_tags",
                    "ids": ["0b6f8c1e-4a1d-4c8e-9a4f-2f4f6b1f7c11"],
                    "tags": ["urgent"],
                },
                request_only=True,
            ),
            OpenApiExample("Result", value={"updated": 2}, response_only=True),
            OpenApiExample(
                "Missing ids",
                value={
                    "type": "about:blank",
                    "title": "Not found",
                    "status": 404,
                    "detail": "1 of the given ids is not among your tasks.",
                    "instance": "/api/v1/tasks/bulk/",
                    "request_id": "5f0c8a4e1b2d4c3f9e8d7c6b5a4f3e2d",
                    "missing_ids": ["8d1f5a0c-1e3b-4f5e-9d6a-3b2c1a0f9e88"],
                },
                response_only=True,
                status_codes=["404"],
                media_type=PROBLEM_JSON,
            ),
        ],
    )
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    @idempotent
    def bulk(self, request: Request) -> Response:
        """Completes, reopens, deletes, moves, re-prioritises or (un)tags many tasks at once."""
        serializer = TaskBulkSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        params = dict(serializer.validated_data)
        updated = services.tasks_bulk_apply(
            user=request.user,
            action=params.pop("action"),
            ids=params.pop("ids"),
            savepoint=not in_answer_transaction(),
            **params,
        )
        return Response({"updated": updated})

    @extend_schema(
        operation_id="tasks_changes",
        summary="What changed in your tasks since a cursor, deletions included (for sync)",
        description="The exact way to keep a copy of your tasks, where paging the list with "
        "`updated_since` can miss a task written meanwhile and never shows deletions. Call it "
        "without `cursor` for everything; apply `changed` (by id: a task you have at the same "
        "`version` is no news) and drop `deleted`; while `has_more`, call again at once with "
        "the answer's `cursor`; keep the last `cursor` for the next sync. Changes come in one "
        "order and each page resumes after the last change it sent: a task written while you "
        "page comes again later, nothing shifts. A sync's last `cursor` starts the next one "
        f"{sync.COMMIT_LAG.seconds // 60} minutes before that sync began (a write is stamped "
        "when it starts and seen when it commits), so the next sync sends those minutes again. "
        f"Deleted ids are kept {sync.DELETIONS_KEPT.days} days: a `cursor` whose sync began "
        "before that is a 410; sync from the start, then once more from its cursor, and drop "
        "the tasks that neither sent. Lists and tags are small: fetch them whole.",
        parameters=[
            OpenApiParameter(
                "cursor",
                OpenApiTypes.STR,
                description="The `cursor` of an earlier answer; none: from the start.",
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "default": sync.DEFAULT_LIMIT},
                description=f"Changes per answer (default {sync.DEFAULT_LIMIT}; above "
                f"{sync.MAX_LIMIT} served as {sync.MAX_LIMIT}).",
            ),
        ],
        responses={
            200: TaskChangesSerializer,
            (400, PROBLEM_JSON): PROBLEM_400,
            (410, PROBLEM_JSON): _problem(sync.CursorExpired.default_detail),
            **COMMON_ERRORS,
        },
        examples=[
            answer_example(
                {
                    "changed": [TASK_EXAMPLE],
                    "deleted": [
                        {
                            "id": "c3e1a9d2-6b4f-4e8a-9f1d-2a7b5c3e8d10",
                            "deleted_at": "2026-11-22T09:41:07Z",
                        }
                    ],
                    "cursor": "NjM5MzA5MzcyNjcwMDAwMDAuYzNlMWE5ZDI2YjRmNGU4YTlmMWQyYTdiNWMzZThkMTAuNjM5MzA5"
                    "MzY5NjkwMDAwMDAuNjM5MzA5MzcyNjkwMDAwMDA",
                    "has_more": False,
                }
            )
        ],
    )
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def changes(self, request: Request) -> Response:
        cursor, _ = single_values(request.query_params, "cursor", "limit")  # both named at once
        cursor = None if cursor is None else sync.Cursor.decode(cursor)
        limit = ChangesPagination().get_limit(request)
        page = sync.changes_page(owner_id=request.user.pk, cursor=cursor, limit=limit)
        # Rendered as the task list renders them (whole seconds, `Z`), once: DRF renders again
        # only for another Accept (`indent=`).
        body = fast_read.render(page)
        if fast_read.plain_json_accepted(request):
            return HttpResponse(body, content_type="application/json")
        return Response(orjson.loads(body))


TAG_NAME_PARAMETER = OpenApiParameter(
    "name",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The tag's name, URL-encoded (any case).",
)


@extend_schema_view(
    list=extend_schema(
        summary="Your tags with their task counts, by name (not paginated)",
        responses={200: TagSerializer(many=True), **COMMON_ERRORS},
        examples=[answer_example({"name": "home", "task_count": 12})],
    ),
    partial_update=extend_schema(
        summary="Rename a tag (into an existing tag of that name: the two merge)",
        description=(
            "A name another of your tags has (matched case-insensitively, composed) merges this "
            "tag into that one, which keeps its own spelling: the answer is the tag merged into "
            '(renaming `a` to `B` when `b` exists answers `"name": "b"`; to respell `b`, rename '
            "`b` itself)."
        ),
        parameters=[TAG_NAME_PARAMETER],
        responses={200: TagSerializer, (400, PROBLEM_JSON): PROBLEM_400, **ONE_ERRORS},
        examples=[
            OpenApiExample("Rename", value={"name": "errands"}, request_only=True),
            answer_example({"name": "errands", "task_count": 4}),
        ],
    ),
    destroy=extend_schema(
        summary="Delete a tag: it disappears from every task",
        parameters=[TAG_NAME_PARAMETER],
        responses={204: None, **ONE_ERRORS},
    ),
)
class TagViewSet(
    RetriedWrites,
    OptionsOfYoursOnly,
    mixins.ListModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your tags: names on tasks, case-insensitive, created when a task first uses them."""

    queryset = Tag.objects.none()
    serializer_class = TagSerializer
    pagination_class = None
    filter_backends: list = []
    lookup_field = "name"
    # Any name, spaces, slashes and non-ASCII included (percent-encoded in the URL).
    lookup_value_regex = ".+"
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet:
        # From the links' tag_id index alone (models.count_of): COUNT(task_id) of a JOIN read
        # every link from the table (223 ms for the heavy user's 120,000; 50 ms now).
        links = Task.tags.through.objects.filter(tag=OuterRef("pk"))
        return (
            Tag.objects.owned_by(self.request.user)
            .annotate(task_count=count_of(links))
            .order_by(*by_name("name"))
        )

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Not paginated, up to MAX_TAGS_PER_USER rows: read as plain values, not instances
        # through TagSerializer (10,000 tags: see README.md, "Caps"). Same fields, same JSON.
        rows = self.get_queryset().values_list("name", "task_count")
        return Response([{"name": name, "task_count": count} for name, count in rows])

    def get_object(self) -> Tag:
        name = self.kwargs["name"]
        # A NUL byte cannot be in a tag (nor be sent to PostgreSQL): no such tag.
        tag = None if "\x00" in name else self.get_queryset().filter(named(name)).first()
        if tag is None:
            raise NotFound(services.TAG_NOT_FOUND)
        return tag

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        tag = self.get_object()
        # A PATCH as the schema has it: a body without `name` changes nothing (it was a 400),
        # nor writes anything (a rename of the same name would undo one made meanwhile).
        serializer = self.get_serializer(tag, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        if "name" not in serializer.validated_data:
            return Response(self.get_serializer(tag).data)
        name = serializer.validated_data["name"]
        # The answer is read under the tag's row lock too: a DELETE cannot slip in before it.
        with transaction.atomic():
            renamed = services.tag_rename(user=request.user, tag=tag, name=name)
            return Response(self.get_serializer(self.get_queryset().get(pk=renamed.pk)).data)

    def perform_destroy(self, instance: Tag) -> None:
        services.tag_delete(user=self.request.user, tag=instance)
