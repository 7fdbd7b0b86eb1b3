from accounts.models import User


class RevokingPasswordSave:
    """For Django's password forms: a new password set in the admin ends every token issued
    before, as a password change through the API does; and only the password and the token
    generation are written, the other columns being as this POST read them (a full save would
    undo a change the user committed meanwhile)."""

    def save(self, commit: bool = True) -> User:
        user = super().save(commit=False)
        user.revoke_tokens()
        if commit:
            user.save(update_fields=["password", "token_generation"])
        return user
