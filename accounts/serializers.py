from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from rest_framework import serializers

from accounts.models import (
    DISPLAY_NAME_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    User,
    UserManager,
    validate_timezone,
)
from accounts.tokens import reset_link_tokens
from todo_project.fields import (
    MAX_LENGTH_MESSAGE,
    OneLineCharField,
    StrictCharField,
    at_most_characters,
)

EMAIL_TAKEN = "An account with this email address already exists."
WRONG_PASSWORD = "The password is not correct."
INVALID_RESET_LINK = "The reset link is invalid or has expired."


class PasswordField(StrictCharField):
    """Write-only, and never trimmed: spaces are part of a password."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 4096)  # hashing megabytes of "password" costs CPU
        super().__init__(
            write_only=True, trim_whitespace=False, style={"input_type": "password"}, **kwargs
        )


def _check_password_rules(password: str, user: User, field: str) -> None:
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise serializers.ValidationError({field: list(exc.messages)}) from None


DISPLAY_NAME_HELP = (
    f"At most {DISPLAY_NAME_MAX_LENGTH} characters, surrounding whitespace not counted. One "
    "line: no line breaks, tabs or other control characters."
)


class UserSerializer(serializers.ModelSerializer):
    # Text fields take only strings: `{"display_name": 0}` is a 400, not "0".
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
    }

    display_name = OneLineCharField(
        max_length=DISPLAY_NAME_MAX_LENGTH,
        required=False,
        allow_blank=True,
        help_text=DISPLAY_NAME_HELP,
    )

    class Meta:
        model = User
        fields = ["id", "email", "display_name", "timezone", "date_joined"]
        read_only_fields = ["id", "email", "date_joined"]
        # As at register: the schema's maxLength bounds what is sent, untrimmed.
        extra_kwargs = {"timezone": {"trim_whitespace": False}}

    def update(self, instance: User, validated_data: dict) -> User:
        # ModelSerializer's saves the instance whole: the row as it was read, written back over
        # any change made since (and re-created if deleted since). MeView writes through
        # services.user_update instead.
        raise NotImplementedError("Write a user through accounts.services.user_update.")


class RegisterSerializer(serializers.Serializer):
    email = serializers.EmailField(
        max_length=EMAIL_MAX_LENGTH, error_messages={"max_length": MAX_LENGTH_MESSAGE}
    )
    password = PasswordField()
    display_name = OneLineCharField(
        max_length=DISPLAY_NAME_MAX_LENGTH,
        required=False,
        allow_blank=True,
        default="",
        help_text=DISPLAY_NAME_HELP,
    )
    # Not trimmed: no IANA name has a space, and the schema's maxLength bounds what is sent.
    timezone = StrictCharField(
        max_length=64,
        required=False,
        default="UTC",
        trim_whitespace=False,
        validators=[validate_timezone],
    )

    def validate_email(self, value: str) -> str:
        email = UserManager.normalize_email(value)
        # Normalizing may lengthen it (`İ` lower-cased is two characters, punycode decoded
        # grows): the column's limit holds for the address as stored.
        if len(email) > EMAIL_MAX_LENGTH:
            raise serializers.ValidationError(
                f"{at_most_characters(EMAIL_MAX_LENGTH)[:-1]} (as stored: lower-cased, its "
                "domain in Unicode)."
            )
        return email

    def validate(self, attrs: dict) -> dict:
        candidate = User(email=attrs["email"], display_name=attrs["display_name"])
        _check_password_rules(attrs["password"], candidate, "password")
        # Last, once all the rest is valid: a probe for accounts has to bring a password that
        # passes the rules, and one for a free address creates that account.
        if User.objects.filter(email=attrs["email"]).exists():
            raise serializers.ValidationError({"email": [EMAIL_TAKEN]})
        return attrs


class TokenObtainSerializer(serializers.Serializer):
    # A CharField, not an EmailField: a malformed address gets the same 401 as a wrong one.
    email = StrictCharField(max_length=EMAIL_MAX_LENGTH)
    password = PasswordField()


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField(read_only=True)
    refresh = serializers.CharField(read_only=True)


class RegisteredSerializer(TokenPairSerializer):
    user = UserSerializer(read_only=True)


class RefreshSerializer(serializers.Serializer):
    refresh = StrictCharField(max_length=4096)


class CurrentPasswordSerializer(serializers.Serializer):
    password = PasswordField()

    def validate_password(self, value: str) -> str:
        if not self.context["request"].user.check_password(value):
            raise serializers.ValidationError(WRONG_PASSWORD)
        return value


class PasswordChangeSerializer(serializers.Serializer):
    current_password = PasswordField()
    new_password = PasswordField()

    def validate_current_password(self, value: str) -> str:
        if not self.context["request"].user.check_password(value):
            raise serializers.ValidationError(WRONG_PASSWORD)
        return value

    def validate(self, attrs: dict) -> dict:
        _check_password_rules(attrs["new_password"], self.context["request"].user, "new_password")
        return attrs


class PasswordResetSerializer(serializers.Serializer):
    email = serializers.EmailField(
        max_length=EMAIL_MAX_LENGTH, error_messages={"max_length": MAX_LENGTH_MESSAGE}
    )

    def validate_email(self, value: str) -> str:
        return UserManager.normalize_email(value)


class PasswordResetConfirmSerializer(serializers.Serializer):
    uid = StrictCharField(max_length=64)
    token = StrictCharField(max_length=128)
    new_password = PasswordField()

    def validate(self, attrs: dict) -> dict:
        user = self._user_of(attrs["uid"])
        if user is None or not reset_link_tokens.check_token(user, attrs["token"]):
            raise serializers.ValidationError({"token": [INVALID_RESET_LINK]})
        _check_password_rules(attrs["new_password"], user, "new_password")
        attrs["user"] = user
        return attrs

    @staticmethod
    def _user_of(uid: str) -> User | None:
        try:
            pk = force_str(urlsafe_base64_decode(uid))
            # Locked until the commit (the view is one transaction): of two requests with one
            # link, the second reads the password the first set, and the link no longer checks.
            return User.objects.select_for_update().filter(pk=pk, is_active=True).first()
        except (ValueError, TypeError, DjangoValidationError, UnicodeDecodeError):
            return None
