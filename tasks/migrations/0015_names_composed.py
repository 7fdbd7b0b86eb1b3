"""Stores the names of existing lists and tags composed (NFC), as the API and the admin now
store new ones (todo_project.fields.composed): "Cafe" + U+0301 and "Café" are one name.

A tag whose composed name another of its owner's tags has is merged into that one, as a rename
into a taken name merges (services.tag_rename): its tasks carry the other, and their versions
grow, as those of every task whose tag changes its name (a client syncing by `updated_since`
sees the new name). A list whose composed name another of its owner's lists has stays as it is
(two lists that look the same from before; merging their tasks is the user's choice to make).

Names are compared by Python's unicodedata, as the API composes them. Only names beyond ASCII
are read (octet_length > char_length): none in most databases.
"""

import unicodedata

from django.db import migrations
from django.utils import timezone

_BEYOND_ASCII = (
    "SELECT id, owner_id, name FROM {table} "
    "WHERE octet_length(name) <> char_length(name) ORDER BY owner_id, id"
)
# Composing can lengthen a name (U+0958 is two code points composed): one the column cannot
# hold stays as it is.
_MAX_LENGTH = {"tasks_tag": 50, "tasks_tasklist": 100}
_NAMED = "SELECT id FROM {table} WHERE owner_id = %s AND LOWER(name) = LOWER(%s) AND id <> %s"


def _not_composed(cursor, table: str):
    """Each of the table's rows whose name is not composed: its id, its composed name, and the
    id of the owner's other row of that name, or None. Asked row by row, after the rows before
    it were written: two spellings of one name neither of which is composed become one."""
    cursor.execute(_BEYOND_ASCII.format(table=table))
    for pk, owner_id, name in cursor.fetchall():
        composed = unicodedata.normalize("NFC", name)
        if composed != name and len(composed) <= _MAX_LENGTH[table]:
            cursor.execute(_NAMED.format(table=table), [owner_id, composed, pk])
            taken = cursor.fetchone()
            yield pk, composed, None if taken is None else taken[0]


def bump_tasks_of(cursor, tag_ids: list[int], now) -> None:
    """A tag changing its name changes its tasks: their versions grow, once."""
    cursor.execute(
        "UPDATE tasks_task SET version = version + 1, updated_at = %s WHERE id IN "
        "(SELECT task_id FROM tasks_task_tags WHERE tag_id = ANY(%s))",
        [now, tag_ids],
    )


def lock_tags(cursor, tag_ids: list[int], into_id: int) -> None:
    """Locks tags to merge into `into_id` as the API locks a tag to rename (services.TAG_LOCKS):
    their tasks first, then the tags and `into_id` FOR UPDATE in id order, so that no write
    links one of them meanwhile (a link committed between a merge's copy of the links and
    their delete was lost) and a task write does not deadlock with it (migration 0016 too).
    TAG_LOCKS' rare other order still can (a task linked between the two statements, written
    again at once): PostgreSQL then ends one of the two, and if it is the migration, the next
    `migrate` runs it again."""
    cursor.execute(
        "SELECT count(*) FROM (SELECT t.id FROM tasks_task t JOIN tasks_task_tags link "
        "ON link.task_id = t.id WHERE link.tag_id = ANY(%s) "
        "ORDER BY t.parent_id NULLS FIRST, t.id FOR NO KEY UPDATE OF t) AS locked",
        [tag_ids],
    )
    cursor.execute(
        "SELECT count(*) FROM (SELECT id FROM tasks_tag WHERE id = ANY(%s) ORDER BY id "
        "FOR UPDATE) AS locked",
        [[*tag_ids, into_id]],
    )


def merge_tags(cursor, tag_ids: list[int], into_id: int, now) -> None:
    """Tags `tag_ids`, locked (lock_tags), merged into `into_id`, as a rename into a taken name
    merges: their tasks carry the other, their versions grown (migration 0016 too)."""
    bump_tasks_of(cursor, tag_ids, now)
    cursor.execute(
        "INSERT INTO tasks_task_tags (task_id, tag_id) SELECT DISTINCT task_id, %s "
        "FROM tasks_task_tags WHERE tag_id = ANY(%s) ON CONFLICT DO NOTHING",
        [into_id, tag_ids],
    )
    cursor.execute("DELETE FROM tasks_task_tags WHERE tag_id = ANY(%s)", [tag_ids])
    cursor.execute("DELETE FROM tasks_tag WHERE id = ANY(%s)", [tag_ids])


def compose_names(apps, schema_editor) -> None:
    now = timezone.now()
    with schema_editor.connection.cursor() as cursor:
        for tag_id, name, other_id in _not_composed(cursor, "tasks_tag"):
            if other_id is not None:
                lock_tags(cursor, [tag_id], other_id)
                merge_tags(cursor, [tag_id], other_id, now)
                continue
            bump_tasks_of(cursor, [tag_id], now)
            cursor.execute("UPDATE tasks_tag SET name = %s WHERE id = %s", [name, tag_id])
        for list_id, name, other_id in _not_composed(cursor, "tasks_tasklist"):
            if other_id is None:
                cursor.execute(
                    "UPDATE tasks_tasklist SET name = %s, version = version + 1, "
                    "updated_at = %s WHERE id = %s",
                    [name, now, list_id],
                )


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0014_titles_sort_accents_aside"),
    ]

    operations = [migrations.RunPython(compose_names, migrations.RunPython.noop)]
