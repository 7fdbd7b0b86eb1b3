"""Account operations shared by the API, the admin and management commands."""

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import User


def password_reset_link(*, user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return f"{settings.FRONTEND_URL}/reset-password?uid={uid}&token={token}"


def user_send_password_reset(*, user: User) -> None:
    """Mails the user a link to the frontend's reset page (Django's reset token inside)."""
    send_mail(
        subject="Reset your Todo password",
        message=(
            "Someone (hopefully you) asked to reset the password of your Todo account.\n\n"
            f"Choose a new password here: {password_reset_link(user=user)}\n\n"
            "If it was not you, ignore this email: your password stays as it is."
        ),
        from_email=None,
        recipient_list=[user.email],
    )


def user_deactivate(*, user: User) -> None:
    """Locks the account: the authentication layer refuses every token of an inactive user."""
    user.is_active = False
    user.save(update_fields=["is_active"])
