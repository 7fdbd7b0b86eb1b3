"""Task.search_vector leaves the model, not the database: the first of two steps to drop it.

Since 0019/0020 the app searches tasks_tasksearch, and tasks_task's generated column is only
the source its triggers copy. This release's code has no field for it, so nothing reads it: the
ORM deferred it, but Django's base manager still selected it for a forward access
(`subtask.parent`, the admin's next occurrence), up to ~190 kB a task (review 32b).

The column, its generation and the triggers that copy it stay as they are: the release before,
still serving during a rolling deploy, has the field, and each of its base manager's reads
selects the column. The next release computes the vector in the triggers and drops the column.
No SQL, either way.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tasks", "0021_task_search_row_restored_once")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.RemoveField(model_name="task", name="search_vector")]
        )
    ]
