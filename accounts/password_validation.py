"""Password rules Django's validators leave out (settings.AUTH_PASSWORD_VALIDATORS)."""

from django.core.exceptions import ValidationError


class NotOnlyWhitespaceValidator:
    """Ten spaces pass the length rule and are in no list of common passwords; they are still
    no password anyone means to choose (passwords are never trimmed, so it would stick)."""

    def validate(self, password: str, user=None) -> None:
        if password.strip() == "":
            raise ValidationError(
                "This password is only spaces or other blank characters.",
                code="password_only_whitespace",
            )

    def get_help_text(self) -> str:
        return "Your password cannot be only spaces or other blank characters."
