"""Stores the domains of existing emails in Unicode, as UserManager.normalize_email now does:
`x@xn--exmple-cua.com` becomes `x@exämple.com`, so that its owner still signs in with either
form. An address whose new form another account already has is left as it is (two accounts
of one mailbox from before; support can merge or delete one)."""

from django.db import migrations


def to_unicode_domains(apps, schema_editor):
    from accounts.models import unicode_domain

    User = apps.get_model("accounts", "User")
    for user in User.objects.filter(email__contains="xn--").only("pk", "email").iterator():
        local, _, domain = user.email.rpartition("@")
        email = f"{local}@{unicode_domain(domain)}"
        if email != user.email and not User.objects.filter(email=email).exists():
            User.objects.filter(pk=user.pk).update(email=email)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_revoked_token_family")]

    operations = [migrations.RunPython(to_unicode_domains, migrations.RunPython.noop)]
