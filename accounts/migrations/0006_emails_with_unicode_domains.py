"""Stores the domains of existing emails in Unicode, as UserManager.normalize_email now does:
`x@xn--exmple-cua.com` becomes `x@exämple.com`, so that its owner still signs in with either
form. An address whose new form another account already has is left as it is (two accounts
of one mailbox from before; support can merge or delete one)."""

from django.db import migrations


def normalize_domains(apps, **which) -> None:
    """The domains of the users `which` filters, as normalize_email stores them now, unless
    another account already has the new form or it is too long for the column. Migration 0007
    uses it too."""
    from accounts.models import unicode_domain

    User = apps.get_model("accounts", "User")
    for user in User.objects.filter(**which).only("pk", "email").iterator():
        local, _, domain = user.email.rpartition("@")
        email = f"{local}@{unicode_domain(domain)}"
        # Mapping may lengthen it (`ß` is `ss`): one the column cannot hold stays as it is.
        fits = len(email) <= User._meta.get_field("email").max_length
        if email != user.email and fits and not User.objects.filter(email=email).exists():
            User.objects.filter(pk=user.pk).update(email=email)


def to_unicode_domains(apps, schema_editor):
    normalize_domains(apps, email__contains="xn--")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_revoked_token_family")]

    operations = [migrations.RunPython(to_unicode_domains, migrations.RunPython.noop)]
