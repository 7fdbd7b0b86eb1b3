import functools
import re
import unicodedata
import uuid
from collections.abc import Sequence

from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import connections, models, router
from django.db.models import (
    BooleanField,
    Deferrable,
    Exists,
    F,
    Func,
    IntegerField,
    Lookup,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Collate, Length
from django.db.models.lookups import Exact, LessThanOrEqual

from todo_project.compiled import CompiledQuery
from todo_project.fields import composed, trimmed

LIST_NAME_MAX_LENGTH = 100
TAG_NAME_MAX_LENGTH = 50
MAX_TAGS_PER_TASK = 20
# The cap's one wording: a task's write through the API (services.tags_get_or_create), the
# admin's form, and a bulk add_tags, which goes on to name the tasks.
TOO_MANY_TAGS = f"A task has at most {MAX_TAGS_PER_TASK} tags"


def too_many_tags(count: int) -> str:
    """The error of a task given `count` tags, more than MAX_TAGS_PER_TASK."""
    return f"{TOO_MANY_TAGS} ({count} named)."


# Entries of one request's tag list, spellings of one tag included (the 20 are counted merged).
MAX_TAG_ENTRIES = 100
# Path segments every URL library resolves away: `tags/../` never reaches a tag of that name.
UNADDRESSABLE_TAG_NAMES = frozenset({".", ".."})
# The reason (no URL would reach it) is the code's; an end user reads only the rule.
UNADDRESSABLE_TAG_MESSAGE = 'A tag cannot be named "." or "..".'
# An id in a body or a query that is none of the caller's rows: unknown and someone else's
# alike (nothing leaks), in the body's fields, the services' re-checks and the filters.
NO_SUCH_LIST = "No list with this id."
NO_SUCH_TASK = "No task with this id."
TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 10_000
RECURRENCE_MAX_LENGTH = 500
COLOR_PATTERN = r"^#[0-9A-Fa-f]{6}$"
# Gapped ranks: a move bisects the gap between two neighbours; see services.task_move.
POSITION_GAP = 1024
# The highest position a client may give a list (the schema's maximum).
LIST_POSITION_MAX = 2**62

# Search lexemes are scoped to their owner: each starts with the owner's key, and a search puts
# the searcher's key before each of its words (tasks.filters.prefix_tsquery). The GIN index's
# prefix match then walks that owner's entries only, not every user's. The key has a fixed
# length, so `<key>word` can only match the key's owner's words that start with `word`. Two
# owners sharing a key cost speed, never privacy: every search also filters on owner_id.
SEARCH_OWNER_KEY_LENGTH = 12  # hex digits of the owner's id: 48 random bits of a uuid4


def search_owner_key(owner_id: uuid.UUID) -> str:
    """The owner's key, as the search vector's expression computes it in SQL (TaskSearch)."""
    return owner_id.hex[:SEARCH_OWNER_KEY_LENGTH]


class Priority(models.IntegerChoices):
    """Stored as a rank so that ordering by priority is a plain index scan."""

    NONE = 0, "none"
    LOW = 1, "low"
    MEDIUM = 2, "medium"
    HIGH = 3, "high"


@models.UUIDField.register_lookup
class AnyOf(Lookup):
    """`id__any_of=[...]`: `= ANY(%s)` with the list as one array parameter, so the statement
    is the same for any number of ids (`__in` writes one placeholder per id: a statement of
    its own for each number of ids, for psycopg to parse and PostgreSQL to plan). An array
    expression works too: `id__any_of=ArraySubquery(...)`, computed once before the scan."""

    lookup_name = "any_of"

    def get_prep_lookup(self):
        if hasattr(self.rhs, "resolve_expression"):
            return self.rhs
        return Value(self.rhs, output_field=ArrayField(models.UUIDField()))

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} = ANY({rhs})", [*lhs_params, *rhs_params]


class OwnedQuerySet(models.QuerySet):
    def owned_by(self, user) -> "OwnedQuerySet":
        """The one way to read per-user rows: everything else is someone else's."""
        return self.filter(owner=user)


def loaded_columns(model: type[models.Model]) -> list[str]:
    """The columns an instance is read with, in the order from_db() takes them."""
    return [field.attname for field in model._meta.concrete_fields]


@functools.cache
def _owned_row_query(model: type[models.Model]) -> CompiledQuery:
    columns = loaded_columns(model)
    return CompiledQuery(
        lambda owner, pk: model.objects.owned_by(owner).filter(pk=pk).values_list(*columns),
        owner=uuid.UUID(int=1),
        pk=uuid.UUID(int=2),
    )


def owned_instance(model: type[models.Model], owner_id: uuid.UUID, pk: uuid.UUID):
    """`model.objects.owned_by(owner).get(pk=pk)`, or None.

    The lookup of a row a write names without changing it in place (the list, parent or anchor
    of its body, the task a DELETE removes), in SQL compiled once per process: built by the
    ORM, each cost ~2 ms of CPU. The task a write changes is read by task_to_write(), locked.
    """
    rows = _owned_row_query(model).rows(owner=owner_id, pk=pk)
    if not rows:
        return None
    return model.from_db(router.db_for_read(model), loaded_columns(model), rows[0])


def tag_names_of_task() -> ArraySubquery:
    """The names of the outer query's task's tags, as an array (in no particular order).

    The task's links by their task_id, each link's name by the tag's key: no join. Joined to
    tasks_tag, the links could be read in tag_id order (a merge join's reason) off their tag_id
    index, task_id as a filter: with the statistics of an emptied table (one row, to the planner)
    every link of the task's tag was read, 20,000 for one task (review 38a). The links' other
    indexes all lead with task_id. A name per link by its key: with tasks_tag in a few pages
    that may be a seq scan of them, each, bounded by the task's 20 tags at most; a page of
    tasks keeps a join instead (fast_read.page_columns)."""
    name = Tag.objects.filter(pk=OuterRef("tag_id")).order_by().values("name")
    links = Task.tags.through.objects.filter(task_id=OuterRef("pk"))
    return ArraySubquery(links.order_by().values(name=Subquery(name)))


# The parent of an open subtask, locked FOR KEY SHARE: taken before the subtask by a write that
# completes it (task_to_write's `completing`). A recurring subtask's completion inserts its next
# occurrence under the parent, whose foreign key takes that lock at the COMMIT, after the
# subtask's; a write completing the parent meanwhile holds the parent FOR UPDATE and waits for
# the subtask (services._cascade_completion): a deadlock every time (1 s, run again). Taken
# first, it is the order of every other writer: the parent, then its subtasks (ROW_LOCK_ORDER).
# It is the one-time filter of the task's own locking read (_task_to_write_query): an InitPlan,
# which PostgreSQL runs before it reads, then locks, the task (a plan test); it had been a
# statement of its own, a round trip before every completion's read, a top-level task's too
# (review 40c). `{open}`: the parent of an open subtask only (a completion), or of any subtask
# (`parent_first`). The task's read waits for the parent with a snapshot taken before: a writer
# of the parent that wrote the subtask meanwhile moved its version, and the read runs again
# (`changed_meanwhile`), as after a wait for the task's own lock.
_PARENT_FIRST = (
    "(SELECT count(*) >= 0 FROM (SELECT FROM tasks_task p WHERE p.id = ("
    "SELECT s.parent_id FROM tasks_task s WHERE s.owner_id = %s AND s.id = %s{open}"
    ") FOR KEY SHARE OF p) AS parent_first)"
)
_PARENT_OF = {"open": " AND NOT s.completed", "any": ""}


@functools.cache
def _task_to_write_query(parent: str | None = None) -> CompiledQuery:
    """The locking read of task_to_write(); `parent`: its parent locked first, of an open
    subtask ("open") or of any subtask ("any"), by the same statement (_PARENT_FIRST)."""
    columns = loaded_columns(Task)
    open_subtasks = Task.objects.filter(parent=OuterRef("pk"), completed=False)
    # The version as of the statement's start, as the two subqueries see the task.
    version_seen = Task.objects.filter(pk=OuterRef("pk")).values("version")

    def build(owner, pk):
        tasks = Task.objects.select_for_update().owned_by(owner).filter(pk=pk)
        if parent is not None:
            tasks = tasks.filter(
                RawSQL(
                    _PARENT_FIRST.format(open=_PARENT_OF[parent]),
                    [owner, pk],
                    output_field=BooleanField(),
                )
            )
        return tasks.annotate(
            tag_names=tag_names_of_task(),
            has_open_subtasks=Exists(open_subtasks),
            changed_meanwhile=~Exact(Subquery(version_seen), F("version")),
        ).values_list(*columns, "tag_names", "has_open_subtasks", "changed_meanwhile")

    return CompiledQuery(build, owner=uuid.UUID(int=1), pk=uuid.UUID(int=2))


def task_to_write(
    owner_id: uuid.UUID, pk: uuid.UUID, *, completing: bool = False, parent_first: bool = False
) -> "Task | None":
    """The owner's task a write names, locked FOR UPDATE, or None; with what the write's answer
    and a completion need besides its row, in the same statement: `tag_names` and
    `has_open_subtasks` (each had been a query of its own). `completing`: the write may complete
    it, so an open subtask's parent is locked first (_PARENT_FIRST, in the same statement). A
    subtask given another parent between the two statements is rare: its completion then
    takes the new parent's lock at the COMMIT, as before. `parent_first`: a subtask's parent,
    open or not, is locked first all the same: a write running again after it gave way
    (tasks.views.CompiledLookupForWrites.get_object).

    Those two are as of the statement's start, while the row is the one the lock waited for.
    When a write committed meanwhile (a bulk add_tags, a tag rename), its version tells, and
    the statement runs again, now seeing that write whole: else the answer would pair the new
    version with the tags of before, one ETag for two representations. A subtask created while
    this waits is not seen, as if it had been created just after."""
    query = _task_to_write_query("any" if parent_first else "open" if completing else None)
    rows = query.rows(owner=owner_id, pk=pk)
    if rows and rows[0][-1]:
        rows = query.rows(owner=owner_id, pk=pk)  # the lock is held now: no wait, no change
    if not rows:
        return None
    *row, tag_names, has_open_subtasks, _ = rows[0]
    task = Task.from_db(router.db_for_read(Task), loaded_columns(Task), row)
    task.tag_names, task.has_open_subtasks = tag_names, has_open_subtasks
    return task


@functools.cache
def _task_row_sql() -> tuple[str, list[models.Field], str, str]:
    """(alias, the written fields, a row's VALUES placeholders, the UPDATE of all of them)."""
    alias = router.db_for_write(Task)
    quote = connections[alias].ops.quote_name
    fields = Task._meta.concrete_fields
    others = [field for field in fields if not field.primary_key]
    update = (
        f"UPDATE {quote(Task._meta.db_table)} SET "
        + ", ".join(f"{quote(field.column)} = %s" for field in others)
        + f" WHERE {quote(Task._meta.pk.column)} = %s"
    )
    return alias, fields, f"({', '.join(['%s'] * len(fields))})", update


def task_insert_sql(tasks: Sequence["Task"]) -> tuple[str, list]:
    """(SQL, parameters): the INSERT of these new tasks, as `Task.objects.bulk_create(tasks)`
    or `task.save()` would write them (the same columns, values and `auto_now` stamps), for the
    caller to run, alone or with more in one statement. The ORM built and compiled that INSERT
    again for every write: ~0.2 ms of CPU each (bench/README.md). No signals: Task has no
    receivers."""
    alias, fields, row, _ = _task_row_sql()
    params = [value for task in tasks for value in _insert_params(task, alias, fields)]
    return f"{_insert_head(alias, fields)} VALUES {', '.join([row] * len(tasks))}", params


def task_insert_ranked_by(task: "Task", rank: str, rank_params: list) -> tuple[str, str, list]:
    """The INSERT of one new task whose rank (`position`) an SQL expression gives: (the
    statement's head, `INSERT INTO ... (columns)`; the row's values, that expression in the
    rank's place; the parameters), for the caller to end in `VALUES (...)` or `SELECT ...
    FROM`. Built from the fields, never from task_insert_sql's text."""
    alias, fields, _, _ = _task_row_sql()
    params = _insert_params(task, alias, fields)
    index = next(n for n, field in enumerate(fields) if field.name == "position")
    values = ["%s"] * len(fields)
    values[index] = rank
    return (
        _insert_head(alias, fields),
        ", ".join(values),
        [*params[:index], *rank_params, *params[index + 1 :]],
    )


def _insert_head(alias: str, fields: Sequence[models.Field]) -> str:
    quote = connections[alias].ops.quote_name
    return (
        f"INSERT INTO {quote(Task._meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"
    )


def _insert_params(task: "Task", alias: str, fields: Sequence[models.Field]) -> list:
    connection = connections[alias]
    params = [field.get_db_prep_save(field.pre_save(task, True), connection) for field in fields]
    task._state.adding, task._state.db = False, alias
    return params


def task_update_sql(task: "Task") -> tuple[str, list]:
    """(SQL, parameters): the UPDATE that `task.save()` of a task read from the database would
    run (every column written, `updated_at` stamped), built once per process (see task_insert_sql)."""
    alias, fields, _, update = _task_row_sql()
    connection = connections[alias]
    params = [
        field.get_db_prep_save(field.pre_save(task, False), connection)
        for field in fields
        if not field.primary_key
    ]
    return update, [*params, task.pk]


def task_save(task: "Task") -> None:
    """`task.save()` of a task read from the database: task_update_sql() run."""
    with connections[router.db_for_write(Task)].cursor() as cursor:
        cursor.execute(*task_update_sql(task))
        if cursor.rowcount != 1:  # the ORM's save() would have inserted it
            raise Task.DoesNotExist("The task to save is not in the database.")


# The key a list's or a tag's name is unique by, per owner: lower case by PostgreSQL's LOWER()
# (tags_named says why not Python's), then composed (NFC) again. Names are stored composed
# (fields.composed), but lower case may compose further where a letter has no composed capital:
# "J" + U+030C lowers to "j" + U+030C, which composes to "ǰ" (U+01F0), so LOWER() alone made
# "J̌OB" and "ǰob" two names. NORMALIZE() is immutable, as an index needs (migration 0016).
NAME_KEY = "NORMALIZE(LOWER(%s), NFC)"


class NameKey(Func):
    """NAME_KEY of an expression."""

    template = NAME_KEY % "%(expressions)s"
    output_field = TextField()


class TaskList(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="task_lists"
    )
    name = models.CharField(max_length=LIST_NAME_MAX_LENGTH)
    color = models.CharField(max_length=7, null=True, blank=True)
    position = models.BigIntegerField(default=0)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                F("owner"), NameKey("name"), name="tasklist_name_unique_per_owner"
            ),
            models.CheckConstraint(condition=Q(name__regex=r"\S"), name="tasklist_name_not_blank"),
            models.CheckConstraint(
                condition=Q(color__isnull=True) | Q(color__regex=COLOR_PATTERN),
                name="tasklist_color_hex",
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="tasklist_version_positive"),
        ]
        indexes = [models.Index(fields=["owner", "position"], name="tasklist_owner_position")]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tags"
    )
    name = models.CharField(max_length=TAG_NAME_MAX_LENGTH)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(F("owner"), NameKey("name"), name="tag_name_unique_per_owner"),
            models.CheckConstraint(condition=Q(name__regex=r"\S"), name="tag_name_not_blank"),
        ]

    def __str__(self) -> str:
        return self.name


class SortKey(Func):
    """The order of titles and tag names: case and accents aside, so "Émile" sorts with
    "emile", between "apple" and "zeta", not after "z" as bytes have it (the database's C
    collation; ICU is not in the embedded PostgreSQL). `text_sort_key`, migration 0014: lower
    case, the accents off as a search folds them (0013); an SQL function PostgreSQL inlines,
    so its cost is that of the built-in functions, and an index on it serves an ORDER BY.

    Compared in code point order (COLLATE "C") whatever the database's collation, as Python
    compares name_sort_key: under en_US.UTF-8 (the postgres image's) "#work" and "home",
    "re-do" and "read", "Øl" and "pasta" came out the other way round."""

    function = "text_sort_key"
    template = '%(function)s(%(expressions)s) COLLATE "C"'
    output_field = TextField()


def by_name(field: str) -> list:
    """The ORDER BY of titles and tag names: SortKey, then the name itself in code points."""
    return [SortKey(field), Collate(F(field), "C")]


# Unicode's Combining Diacritical Marks blocks (Latin, Greek and Cyrillic accents), which
# SortKey and a search fold away (migration 0013).
_COMBINING_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def name_sort_key(name: str) -> tuple[str, str]:
    """SortKey in Python, for names sorted after they are read (a task's `tags`); the name
    itself breaks ties, as in SQL. Lower case a character at a time, as PostgreSQL's lower():
    str.lower() makes a word's last 'Σ' a final 'ς', PostgreSQL a 'σ'."""
    bare = _COMBINING_MARKS.sub("", unicodedata.normalize("NFD", name))
    return "".join(char.lower() for char in unicodedata.normalize("NFC", bare)), name


def named(name: str) -> Exact:
    """The filter for the row (a tag, a list) of this name, by the unique index's key (NameKey).
    Not Django's `name__iexact`, which compares UPPER(): it disagrees with LOWER() on some names
    (UPPER makes 'ς' and 'σ' one, LOWER keeps them apart; LOWER makes 'İ' and 'i' one).
    The name is composed first, as names are stored (fields.composed): the key of a name is not
    always its composed form's ('I' + U+0307 lowers to 'i' + U+0307, 'İ' to 'i')."""
    return Exact(NameKey("name"), NameKey(Value(composed(name))))


def tags_named(
    owner_id: uuid.UUID, names: Sequence[str], *, to_link: bool = False
) -> list[tuple[str, Tag | None]]:
    """For each of `names`, in order: its key (NameKey) and the owner's tag of that key, or
    None. One statement for any number of names, on the (owner, NameKey(name)) unique index.
    Names are looked for as they are stored: composed, as named() says, and trimmed
    (fields.trimmed), unless a tag has the name as given, ends and all: one stored before the
    trimming rule, sent back unchanged (README.md, "Names are stored composed"), is that tag
    and not the one of its trimmed name. The one place this rule is kept for tag names: a
    task's `tags` (services.tags_get_or_create), `tag=` and the bulk tag actions. When none
    is found, the key is the trimmed name's (the name a new tag takes).

    The key is PostgreSQL's, the unique index's, never Python's str.lower(): they differ ('İ' is
    'i' to PostgreSQL but 'i̇', two code points, to Python; 'ΟΔΟΣ' is 'οδοσ' to PostgreSQL but
    'οδος' to Python), so names are compared by this key alone. The ORM's `__in` wrote one
    placeholder per name and took ~2 ms of CPU to build a query (each tagged write, each list
    filtered by tag).

    `to_link`: the caller links the tags found to tasks, and answers with their names. They are
    read under FOR KEY SHARE, in the order of their ids (services.TAG_LOCKS), which waits for a
    rename or delete of one of them to commit, then reads the name it left (a tag renamed away
    from its name, or deleted, is not found). Read without it, the name in the answer could be
    the one a rename was replacing while it committed: a task shown under the new name at the
    version that answered the old one (a stale ETag)."""
    alias = router.db_for_write(Tag) if to_link else router.db_for_read(Tag)
    if to_link:
        # FOR KEY SHARE cannot lock the nullable side of an outer join: the tags are locked in
        # a subquery of their own, whose ORDER BY is below the locking, so it locks in id order.
        sql = (
            f"WITH wanted AS (SELECT {NAME_KEY % 'name'} AS key, n FROM unnest(%s::text[]) "
            "WITH ORDINALITY AS given(name, n)) "
            "SELECT wanted.key, tag.id, tag.name FROM wanted LEFT JOIN ("
            f"SELECT id, name, {NAME_KEY % 'name'} AS key FROM tasks_tag "
            f"WHERE owner_id = %s AND {NAME_KEY % 'name'} IN (SELECT key FROM wanted) "
            "ORDER BY id FOR KEY SHARE"
            ") AS tag ON tag.key = wanted.key ORDER BY wanted.n"
        )
    else:
        sql = (
            f"SELECT {NAME_KEY % 'wanted.name'}, tag.id, tag.name "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS wanted(name, n) "
            "LEFT JOIN tasks_tag tag "
            f"ON tag.owner_id = %s AND {NAME_KEY % 'tag.name'} = {NAME_KEY % 'wanted.name'} "
            "ORDER BY wanted.n"
        )
    given = [composed(name) for name in names]
    stored = [composed(trimmed(name)) for name in names]
    spellings = list(dict.fromkeys(given + stored))  # the same as `given` but for odd ends
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, [spellings, owner_id])
        rows = cursor.fetchall()
    columns = ["id", "owner_id", "name"]
    found = {
        spelling: (key, None if pk is None else Tag.from_db(alias, columns, (pk, owner_id, name)))
        for spelling, (key, pk, name) in zip(spellings, rows, strict=True)
    }
    return [
        found[as_given] if found[as_given][1] is not None else found[as_stored]
        for as_given, as_stored in zip(given, stored, strict=True)
    ]


# True of every task (task_version_positive), stated by the admin's task pages alone: the
# condition of the one index that does not lead with the owner (Task.Meta.indexes).
ADMIN_ONLY = Q(version__gte=1)


class Task(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tasks"
    )
    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    description = models.TextField(blank=True, default="")
    completed = models.BooleanField(default=False)
    completed_at = models.DateTimeField(null=True, blank=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NONE)
    # Wall-clock values in the owner's time zone, as the client sent them.
    due_date = models.DateField(null=True, blank=True)
    due_time = models.TimeField(null=True, blank=True)
    # Deleting a list moves its tasks to the Inbox (services decide when to delete them instead).
    list = models.ForeignKey(
        TaskList,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tasks",
        db_index=False,  # task_list_completed serves it
    )
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="subtasks"
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="tasks")
    # Rank inside (owner, list, parent): gapped integers, see services.task_move.
    position = models.BigIntegerField(default=0)
    recurrence = models.CharField(max_length=RECURRENCE_MAX_LENGTH, null=True, blank=True)
    # Due date of the first task of a recurring series: COUNT is counted from there.
    recurrence_start = models.DateField(null=True, blank=True)
    # The copy made when this recurring task was completed; set once, so never a second copy.
    next_occurrence = models.OneToOneField(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="previous_occurrence",
    )
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OwnedQuerySet.as_manager()

    # Not columns: known for a task read by task_to_write() or written by the services (None:
    # not known). A write answers with `tag_names` instead of reading the task back, and a
    # completion skips the query for open subtasks when `has_open_subtasks` is False.
    tag_names: "list[str] | None" = None  # quoted: `list` is a field of this class
    has_open_subtasks: bool | None = None

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(title__regex=r"\S"), name="task_title_not_blank"),
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("description"), DESCRIPTION_MAX_LENGTH),
                name="task_description_max_length",
            ),
            models.CheckConstraint(
                condition=Q(priority__gte=Priority.NONE, priority__lte=Priority.HIGH),
                name="task_priority_valid",
            ),
            models.CheckConstraint(
                condition=Q(due_time__isnull=True) | Q(due_date__isnull=False),
                name="task_due_time_needs_due_date",
            ),
            models.CheckConstraint(
                condition=Q(recurrence__isnull=True) | Q(due_date__isnull=False),
                name="task_recurrence_needs_due_date",
            ),
            models.CheckConstraint(
                condition=Q(completed=True, completed_at__isnull=False)
                | Q(completed=False, completed_at__isnull=True),
                name="task_completed_at_matches_completed",
            ),
            models.CheckConstraint(condition=~Q(parent=F("id")), name="task_not_own_parent"),
            # The order inside (list, parent) is total: no two siblings share a rank. Checked
            # at the end of each statement, so one UPDATE can renumber a whole sibling group.
            models.UniqueConstraint(
                fields=["owner", "list", "parent", "position"],
                nulls_distinct=False,
                deferrable=Deferrable.IMMEDIATE,
                name="task_position_unique_in_group",
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="task_version_positive"),
        ]
        # Every index but one leads with the owner: each API query is scoped to one user. The
        # search index is on TaskSearch: a GIN index here took every lexeme of a task's vector
        # again with each row version, i.e. with every bump of its version (review 32b).
        indexes = [
            # (owner, list, parent, position) is served by task_position_unique_in_group.
            models.Index(fields=["owner", "position", "id"], name="task_owner_position"),
            # With the id that breaks ties: the tasks without a due date are one group, and
            # without it each page reaching them sorted the whole group (the heavy user's
            # 40,000: 20-39 ms a `has_due=false&ordering=due_date` page; migration 0025).
            models.Index(fields=["owner", "due_date", "due_time", "id"], name="task_owner_due_id"),
            # `-due_date` keeps the tasks without a due date last (tasks.filters.order_tasks):
            # task_owner_due_id read backward has them first, so each such page sorted all of
            # the owner's tasks (the heavy user's 100,000: 24-47 ms, 111 ms at offset 50,000).
            models.Index(
                F("owner"),
                F("due_date").desc(nulls_last=True),
                F("due_time").desc(nulls_last=True),
                F("id").desc(),
                name="task_owner_due_desc",
            ),
            # With the id that breaks ties: a priority has thousands of tasks on a big account,
            # and without it each page sorted a whole priority (50,000 tasks: 85-140 ms).
            models.Index(fields=["owner", "priority", "id"], name="task_owner_priority_id"),
            # With the id: a `created_at` page sorted each group of equal created_at, and a
            # deep page (fast_read.DEFERRED_FROM) could not read the ids it skips off the index
            # alone (the heavy user's offset 20,000: 15.8 -> 2-3 ms; migration 0028).
            models.Index(fields=["owner", "created_at", "id"], name="task_owner_created_id"),
            # With the id: the changes feed's order (sync.py), (updated_at, id) of one owner.
            models.Index(fields=["owner", "updated_at", "id"], name="task_owner_updated_id"),
            # The one index that does not lead with the owner: the admin's task changelist
            # (support's landing page, all users' tasks, newest change first) reads its page
            # off it instead of sorting the whole table (~1 s for 1.1M tasks). Partial on a
            # condition true of every task (task_version_positive) that only the admin's
            # pages state (tasks.admin paginator): PostgreSQL uses a partial index only
            # for a query that implies its condition, so no caller's statement can walk every
            # owner's rows on it. A sync page, a poll of the list by `updated_at` and the bulk
            # statements of services.py did, whenever the caller's share of the table made
            # their own rows look plentiful (5-16 ms reading 20,000 other accounts' changes
            # for 30 of the caller's; reviews 36f, 41c; migration 0027).
            models.Index(
                fields=["updated_at", "id"], name="task_admin_updated", condition=ADMIN_ONLY
            ),
            models.Index(fields=["owner", "completed", "due_date"], name="task_owner_open_due"),
            models.Index(F("owner"), SortKey("title"), name="task_owner_title_key"),
            # A list's task counts (and its foreign key): counted from the index alone. A list
            # has one owner, so this one need not lead with it. With the foreign key's own
            # (list) index, the open count read every task of the list from the table: 272 ms
            # for the heavy user's 20 lists, 22 ms now (migration 0008, bench/README.md).
            models.Index(fields=["list", "completed"], name="task_list_completed"),
        ]

    def __str__(self) -> str:
        return self.title

    def mark_completed(self, now) -> None:
        self.completed = True
        self.completed_at = now

    def mark_open(self) -> None:
        self.completed = False
        self.completed_at = None

    @property
    def sibling_group(self) -> tuple:
        """The (list, parent) inside which `position` ranks this task."""
        return (self.list_id, self.parent_id)


class TaskSearch(models.Model):
    """A task's search vector, in a table of its own with the search index.

    No task UPDATE is a HOT update (`updated_at` is indexed), so with the GIN index on
    tasks_task every row version re-inserted every lexeme of the task's unchanged vector: a tag
    rename over 500 tasks with 10,000-character descriptions took 11.2 s and 2.36 GB of WAL,
    31 ms and 3.6 MB without the index (review 32b). Here a row is written only when a task is
    created or its searchable text (title, description) or owner changes, and (a small HOT
    update: no index of this table holds them) when its `completed` or `priority` changes.

    Written only by PostgreSQL triggers on tasks_task (migration 0019), so every writer keeps it
    in step: the services, the admin, raw SQL, COPY. The vector is what the SQL function
    `task_search_vector(title, description, owner_id)` gives (migration 0023; until then a
    generated column of tasks_task, which the triggers copied). A task's row goes with the task
    (its foreign key is ON DELETE CASCADE in the database; Django leaves it to it). `owner` is
    the task's, so that a search alone counts its matches here, without tasks_task.

    `completed` and `priority` are the task's too, unindexed, so that a search combined with
    them is counted (and, for few matches, its task ids listed) here alone: joined to
    tasks_task, the heavy user's `completed=false&search=meeting` (8,340 of 100,000 tasks)
    counted in 26-63 ms instead of main's 5.6 (bench/README.md, 2026-12-05). The table's fillfactor
    is 50 (migration 0019) so that their UPDATE finds room on its page and stays HOT: a row
    version off the page would insert every lexeme of the vector into the GIN index again,
    the very cost this table exists to avoid.
    """

    task = models.OneToOneField(
        Task,
        primary_key=True,
        # The foreign key is PostgreSQL's, ON DELETE CASCADE (migration 0019; Django 5.2 has
        # no db_on_delete): Django's cascades, the services' raw DELETE and account deletion
        # leave the row to it, so none deletes it twice, and no delete leaves one behind.
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,  # the task's own key holds the user; the row goes with the task
        db_index=False,  # read only with the search index, filtered
        related_name="+",
    )
    completed = models.BooleanField()
    priority = models.PositiveSmallIntegerField(choices=Priority.choices)
    # The words of title and description, each prefixed by the owner's key (search_owner_key):
    # `task_search_vector(title, description, owner_id)` (migration 0023), that is
    # `task_search_lexemes(to_tsvector('simple', title || ' ' || description), key)`, immutable
    # SQL functions (migrations 0004, 0010, 0013). It keeps positions and cuts lexemes
    # at 255 characters, so key + lexeme stays under PostgreSQL's 2,047-byte limit (a
    # 2,040-character word would otherwise fail the INSERT); a searched word is shorter
    # (tasks.filters.SEARCH_MAX_LENGTH), so a cut changes no result. A word with ASCII
    # punctuation inside (an email, a URL, a path) also gets the rest of it after each run of
    # punctuation (at most 16): `example.com` and `com` for `anna@example.com`, so a prefix
    # search finds its parts. Accents are folded (0013).
    search_vector = SearchVectorField()

    class Meta:
        indexes = [
            # Full-text search. GIN cannot lead with the owner (no btree_gin in the embedded
            # PostgreSQL), so the lexemes carry the owner's key instead (see search_owner_key):
            # a prefix search reads its owner's entries, not every user's matches.
            # A small pending list: inserts (creates, recurring copies) queue their entries and
            # merge them in sorted batches. Small, because every search also scans it: with the
            # default 4 MB, a search list took 13 -> 23-26 ms after 10,000 updated tasks, and
            # the write that filled it paid a 0.2-0.5 s merge; 256 kB costs a search ~0.05 ms
            # and the merging write ~30 ms. Migrations 0006, 0009 (then on tasks_task), 0019,
            # bench/README.md.
            GinIndex(
                fields=["search_vector"],
                # Not `task_search`, the name of the index it replaces on tasks_task: index names
                # are the schema's, and migration 0019 builds this one before dropping that.
                name="tasksearch_vector",
                fastupdate=True,
                gin_pending_list_limit=256,  # kB
            ),
        ]

    def __str__(self) -> str:
        return str(self.task_id)


class OwnerTaskCount(models.Model):
    """How many tasks an owner has: the `count` of their unfiltered task list, in one lookup.

    Written only by PostgreSQL triggers on tasks_task (migration 0005), so every writer keeps
    it exact: the services, the admin, cascades, raw SQL, COPY. A row exists only while its
    owner has tasks (none: zero), so a deleted user leaves nothing behind. No foreign key: the
    row lives only as long as tasks whose own foreign key already holds the user.
    """

    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        primary_key=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        # For a join from the user (tasks.fast_read's list); not a field anyone writes.
        related_name="owner_task_count",
    )
    tasks = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.owner_id}: {self.tasks}"

    @classmethod
    def of(cls, owner_id: uuid.UUID) -> int:
        """How many tasks the owner has (read on every default list: compiled SQL)."""
        rows = _OWNER_TASK_COUNT.rows(owner=owner_id)
        return rows[0][0] if rows else 0


_OWNER_TASK_COUNT = CompiledQuery(
    lambda owner: OwnerTaskCount.objects.filter(owner=owner).values_list("tasks"),
    owner=uuid.UUID(int=1),
)


class DeletedTask(models.Model):
    """A deleted task's id and when it went: how `tasks/changes/` tells a syncing client that a
    task it has is gone. Written by the one statement that deletes tasks (services._DELETE_TASKS)
    for each task and subtask it deletes; kept DELETIONS_KEPT, then purged
    (`manage.py purge_deleted_tasks`)."""

    id = models.UUIDField(primary_key=True)  # the task's: a task id is never used again
    owner = models.ForeignKey(  # indexed first in deleted_task_changes
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # Stamped as `updated_at` is, when the deleting write starts: the changes' order.
    deleted_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["owner", "deleted_at", "id"], name="deleted_task_changes"),
            models.Index(fields=["deleted_at"], name="deleted_task_purge"),
        ]

    def __str__(self) -> str:
        return str(self.id)


class IdempotencyRecord(models.Model):
    """The first answer to a creating POST sent with an `Idempotency-Key`, kept for replays.

    `response_status` is null while the first request is still running (a retry then gets a
    409). See todo_project/idempotency.py.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idempotency_records"
    )
    key = models.CharField(max_length=255)
    # sha256 of method, path and body: the same key with another request is a 422.
    fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "key"], name="idempotency_key_unique_per_owner"
            )
        ]
        indexes = [models.Index(fields=["expires_at"], name="idempotency_expires")]

    def __str__(self) -> str:
        return self.key


def count_of(queryset: QuerySet) -> Subquery:
    """COUNT(*) of `queryset` per row, as a correlated subquery: computed only for the rows
    asked for, and from an index alone when one has the filtered columns (COUNT(pk) would
    read the table for the pk). A Func, not the Count aggregate, so that no GROUP BY is added:
    no rows still count 0."""
    counted = (
        queryset.order_by()
        .annotate(n=Func(template="COUNT(*)", output_field=IntegerField()))
        .values("n")
    )
    return Subquery(counted, output_field=IntegerField())
