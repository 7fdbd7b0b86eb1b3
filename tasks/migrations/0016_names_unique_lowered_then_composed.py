"""The names of lists and tags are unique per owner by NORMALIZE(LOWER(name), NFC)
(tasks.models.NameKey), no longer by LOWER(name): lower case may compose further ("J" + U+030C
lowers to "j" + U+030C, which composes to "ǰ"), so "J̌OB" and "ǰob" were two tags.

First, the names the new key makes one: of an owner's rows of one key, the oldest keeps its
name. The other tags are merged into it, as 0015 merged. The other lists are renamed, " (2)"
(or the first number free) after the name, cut to fit, their versions raised: a unique index
cannot hold both, and moving tasks between lists is the user's call. Two names can meet only
if one is beyond ASCII (octet_length > char_length): LOWER() of an ASCII name is the key
itself. Only their owners' names are read, in one statement a table; each set is resolved in
a transaction of its own, locked as the API locks, giving way to a write in its way (0015's
in_a_transaction_giving_way).

Then, for each table, the unique index on the new key is built CONCURRENTLY under a name of its
own while the table takes writes, the LOWER() one is dropped CONCURRENTLY, and the new one takes
its name: the unique violations the services map keep their names. Each step can run again
after an interrupted run (a write meeting a name the scan had resolved, from a worker not yet
deployed, fails the build: the next `migrate` resolves it and builds again).
"""

import importlib

from django.db import migrations
from django.db.models import F, UniqueConstraint
from django.utils import timezone

import tasks.models
from tasks.concurrent_index import build_concurrently, drop_concurrently
from tasks.models import NAME_KEY

composed_names = importlib.import_module("tasks.migrations.0015_names_composed")

_LIST_NAME_MAX_LENGTH = 100
# Of the tags `%s`, the ones whose key is still `%s`, the oldest first.
_TAGS_OF_THE_KEY = (
    f"SELECT id FROM tasks_tag WHERE id = ANY(%s) AND {NAME_KEY % 'name'} = %s ORDER BY id"
)
# The name of list `%s`, locked, if another of its owner's lists still shares its key.
_LIST_STILL_SHARING_ITS_KEY = (
    "SELECT name FROM tasks_tasklist it WHERE id = %s AND EXISTS (SELECT 1 FROM "
    "tasks_tasklist other WHERE other.owner_id = it.owner_id AND other.id <> it.id AND "
    f"{NAME_KEY % 'other.name'} = {NAME_KEY % 'it.name'}) FOR UPDATE OF it"
)
_LIST_OF_KEY = (
    f"SELECT 1 FROM tasks_tasklist WHERE owner_id = %s AND {NAME_KEY % 'name'} = {NAME_KEY % '%s'}"
)


def _sharing_a_key(connection, table: str, oldest_first: str) -> list[tuple]:
    """Each set of an owner's rows whose names share a key: the owner's id, the key and the
    rows' ids, the oldest first. One statement, over the owners of a name beyond ASCII only."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT owner_id, {NAME_KEY % 'name'}, array_agg(id ORDER BY {oldest_first}) "
            f"FROM {table} WHERE owner_id IN (SELECT owner_id FROM {table} "
            "WHERE octet_length(name) <> char_length(name)) "
            f"GROUP BY owner_id, {NAME_KEY % 'name'} HAVING count(*) > 1"
        )
        return cursor.fetchall()


def _free_list_name(cursor, owner_id, name: str) -> str:
    number = 2
    while True:
        suffix = f" ({number})"
        candidate = name[: _LIST_NAME_MAX_LENGTH - len(suffix)].rstrip() + suffix
        cursor.execute(_LIST_OF_KEY, [owner_id, candidate])
        if cursor.fetchone() is None:
            return candidate
        number += 1


def _merge_tags_of_the_key(cursor, tag_ids: list[int], key: str) -> None:
    """Tags `tag_ids` (the oldest first) that were of `key`: those still of it once locked
    merged into the oldest of them (a worker not yet deployed may have renamed or deleted one,
    the oldest too, since the sets were read)."""
    kept, *others = tag_ids
    composed_names.lock_tags(cursor, others, kept)
    cursor.execute(_TAGS_OF_THE_KEY, [tag_ids, key])
    if len(still := [pk for (pk,) in cursor.fetchall()]) > 1:
        composed_names.merge_tags(cursor, still[1:], still[0], timezone.now())


def _rename_list_sharing_its_key(cursor, list_id: int, owner_id) -> None:
    """List `list_id` renamed if, once locked, another of its owner's lists still shares its
    key. Its new name is of no other list: it makes no set of its own."""
    cursor.execute(_LIST_STILL_SHARING_ITS_KEY, [list_id])
    if (row := cursor.fetchone()) is not None:
        cursor.execute(
            "UPDATE tasks_tasklist SET name = %s, version = version + 1, updated_at = %s "
            "WHERE id = %s",
            [_free_list_name(cursor, owner_id, row[0]), timezone.now(), list_id],
        )


def resolve_names_of_one_key(apps, schema_editor) -> None:
    """One transaction a tag set or a list, so its locks are held no longer than its merge or
    rename, giving way to the API's writes as 0015 does; an interrupted run leaves the ones
    done and the rest, as the next run finds them. Each stamps what it changes when it writes
    it, as 0015 does."""
    connection = schema_editor.connection
    for _owner_id, key, tag_ids in _sharing_a_key(connection, "tasks_tag", "id"):
        composed_names.in_a_transaction_giving_way(
            connection, _merge_tags_of_the_key, tag_ids, key
        )
    lists = _sharing_a_key(connection, "tasks_tasklist", "created_at, id")
    for owner_id, _key, (_kept, *others) in lists:
        for list_id in others:
            composed_names.in_a_transaction_giving_way(
                connection, _rename_list_sharing_its_key, list_id, owner_id
            )


def _rekeyed(model: str, table: str, index: str) -> migrations.SeparateDatabaseAndState:
    building = f"{index}_new"
    return migrations.SeparateDatabaseAndState(
        state_operations=[
            migrations.RemoveConstraint(model_name=model, name=index),
            migrations.AddConstraint(
                model_name=model,
                constraint=UniqueConstraint(
                    F("owner"), tasks.models.NameKey("name"), name=index
                ),
            ),
        ],
        database_operations=[
            *build_concurrently(building, f"{table} (owner_id, ({NAME_KEY % 'name'}))", unique=True),
            *drop_concurrently(index, f"{table} (owner_id, (LOWER(name)))", unique=True),
            migrations.RunSQL(
                f"ALTER INDEX IF EXISTS {building} RENAME TO {index}",
                # Not when an interrupted reverse left both: the old index built again, the
                # new one not yet dropped.
                reverse_sql=(
                    f"DO $$ BEGIN IF to_regclass('{building}') IS NULL THEN "
                    f"ALTER INDEX IF EXISTS {index} RENAME TO {building}; END IF; END $$"
                ),
            ),
        ],
    )


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run in a transaction.
    atomic = False

    dependencies = [
        ("tasks", "0015_names_composed"),
    ]

    operations = [
        migrations.RunPython(resolve_names_of_one_key, migrations.RunPython.noop),
        _rekeyed("tasklist", "tasks_tasklist", "tasklist_name_unique_per_owner"),
        _rekeyed("tag", "tasks_tag", "tag_name_unique_per_owner"),
    ]
