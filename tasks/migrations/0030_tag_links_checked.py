"""The tag links written before 0029's triggers: each must join a task and a tag of one owner.

Run after 0029 commits, without a lock (the triggers check every link written since): it reads
every link (0.54 s for the benchmark's 1.3M). A link across owners can only come from raw SQL or
a bug; the API and the admin never wrote one. If there are any, `migrate` stops here and names
how many, and fast_read's tag count would be wrong for their tags: find them with the query
below, then delete them (each shows one owner another's tag name) and run `migrate` again.
Reverse: nothing to undo.
"""

from django.db import migrations

CROSSING = """
SELECT count(*) FROM tasks_task_tags link
JOIN tasks_task task ON task.id = link.task_id
JOIN tasks_tag tag ON tag.id = link.tag_id
WHERE task.owner_id <> tag.owner_id
"""


def check_links(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(CROSSING)
        (crossing,) = cursor.fetchone()
    if crossing:
        raise RuntimeError(
            f"{crossing} tag link(s) join a task to a tag of another owner: find them with"
            f" {' '.join(CROSSING.replace('count(*)', 'link.*').split())}, delete them and"
            " run migrate again (tasks/migrations/0030_tag_links_checked.py)."
        )


class Migration(migrations.Migration):
    atomic = False  # no lock held while it reads every link

    dependencies = [
        ("tasks", "0029_tag_links_keep_one_owner"),
    ]

    operations = [
        migrations.RunPython(check_links, migrations.RunPython.noop),
    ]
