"""Stores the domains of existing emails as UserManager.normalize_email now does: mapped as
Django's mailer maps them (IDNA 2003 nameprep), so that `x@ｅｘａｍｐｌｅ.com` (full-width) or a
domain with a soft hyphen becomes `x@example.com`, the mailbox its reset mails already went to.
Only non-ASCII or `xn--` domains can change. An address whose new form another account already
has is left as it is (two accounts of one mailbox from before; support can merge or delete one),
as migration 0006 did."""

import importlib

from django.db import migrations

normalize_domains = importlib.import_module(
    "accounts.migrations.0006_emails_with_unicode_domains"
).normalize_domains


def to_mapped_domains(apps, schema_editor):
    normalize_domains(apps, email__regex=r"[^\x01-\x7f]|xn--")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0006_emails_with_unicode_domains")]

    operations = [migrations.RunPython(to_mapped_domains, migrations.RunPython.noop)]
