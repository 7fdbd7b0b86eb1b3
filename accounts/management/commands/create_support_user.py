"""manage.py create_support_user EMAIL: a staff account in the Support group, for scripts.

Prints the generated password once, alone on stdout (`PASSWORD=$(manage.py ...)` works); the
rest goes to stderr. Exits non-zero, changing nothing, when the email is taken or invalid.
"""

import secrets

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from accounts.models import EMAIL_MAX_LENGTH, User, UserManager
from todo_project.commands import ensure_migrated

SUPPORT_GROUP = "Support"  # created by accounts/migrations/0003_support_group.py
PASSWORD_BYTES = 18  # 24 URL-safe characters: 144 bits


class Command(BaseCommand):
    help = "Create a support user (staff, in the Support group) and print its generated password."

    def add_arguments(self, parser) -> None:
        parser.add_argument("email", help="the support agent's email address")

    def handle(self, *args, email: str, **options) -> None:
        ensure_migrated()
        email = UserManager.normalize_email(email)
        # The column's size, which validate_email (up to 320) does not check: a longer address
        # would end in a DataError at the insert.
        if len(email) > EMAIL_MAX_LENGTH:
            raise CommandError(
                f"The email address has {len(email)} characters; at most {EMAIL_MAX_LENGTH} "
                "are allowed."
            )
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{email!r} is not a valid email address.") from None
        if User.objects.filter(email=email).exists():
            raise CommandError(f"A user with the email {email} already exists; nothing changed.")
        group = Group.objects.filter(name=SUPPORT_GROUP).first()
        if group is None:
            raise CommandError(f"The {SUPPORT_GROUP} group is missing: run `manage.py migrate`.")

        password = secrets.token_urlsafe(PASSWORD_BYTES)
        try:
            with transaction.atomic():
                user = User.objects.create_user(email=email, password=password, is_staff=True)
                user.groups.add(group)
        except IntegrityError:  # created by someone else between the check and the insert
            raise CommandError(
                f"A user with the email {email} already exists; nothing changed."
            ) from None
        self.stderr.write(f"Created support user {email}. Its password, shown only this once:")
        self.stdout.write(password)
