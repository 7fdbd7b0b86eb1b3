from django import forms
from django.db import transaction
from django.http import Http404

from accounts.models import User, UserManager


class NormalizedEmailField(forms.EmailField):
    """An email as the users table stores it (lower-case, no surrounding spaces), so that
    "Alice@Example.com " against "alice@example.com" is no change: not one that revokes the
    tokens, mails a notice and fills the history with "from x to x"."""

    def to_python(self, value) -> str:
        return UserManager.normalize_email(super().to_python(value))


class RevokingPasswordSave:
    """For Django's password forms: a new password set in the admin ends every token issued
    before, as a password change through the API does; and only the password and the token
    generation are written, the other columns being as this POST read them (a full save would
    undo a change the user committed meanwhile). An account deleted since the page read it is
    a 404, as Django's password page answers for one deleted before: not a 500, not revived."""

    def save(self, commit: bool = True) -> User:
        user = super().save(commit=False)
        user.revoke_tokens()
        if commit:
            with transaction.atomic():
                if not User.objects.select_for_update().filter(pk=user.pk).exists():
                    raise Http404(f"The user {user.pk} no longer exists. Perhaps it was deleted?")
                user.save(update_fields=["password", "token_generation"])
        return user
