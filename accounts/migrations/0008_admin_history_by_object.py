"""An index on the admin's history (`django_admin_log`) by (content type, object id): deleting an
account redacts the entries about it and its tasks, lists and tags (accounts.services.
_history_redact), found by content type and object id. Django indexes the content type alone,
so each deletion, of any account, read every history entry about any task. Built CONCURRENTLY:
support's actions write history meanwhile. It can run again after an interrupted build
(tasks/concurrent_index.py). No model state: the table is Django's (admin.LogEntry).
"""

from django.db import migrations

from tasks.concurrent_index import build_concurrently


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("accounts", "0007_emails_mapped_as_the_mailer_maps_them"),
        ("admin", "0003_logentry_add_action_flag_choices"),
    ]

    operations = build_concurrently(
        "admin_log_object", "django_admin_log (content_type_id, object_id)"
    )
