import contextlib
import functools
import unicodedata
import uuid
import zoneinfo
from encodings import idna

from django.contrib.auth.hashers import acheck_password, check_password
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils.crypto import salted_hmac
from django.utils.timezone import now

DISPLAY_NAME_MAX_LENGTH = 100
# RFC 5321's longest usable address, and the users table's column: every email input says so.
EMAIL_MAX_LENGTH = 254


# Files of the tz directory that are no IANA zone but the host's settings: "localtime" (its own
# zone, which available_timezones() lists) and "posixrules" (its default rules).
SERVER_DEPENDENT_TIMEZONES = frozenset({"localtime", "posixrules"})


@functools.cache
def _known_timezones() -> frozenset[str]:
    # available_timezones() walks the tz database on disk (~60 ms): once per process is enough.
    return frozenset(zoneinfo.available_timezones()) - SERVER_DEPENDENT_TIMEZONES


def validate_timezone(value: str) -> None:
    if value not in _known_timezones():
        raise ValidationError(
            f"Unknown time zone {value!r}: use an IANA name such as Europe/Berlin."
        )


def unicode_domain(domain: str) -> str:
    """A domain in the Unicode form of the host its mail goes to: ASCII-encoded labels
    (`xn--…`, punycode) decoded, then each label mapped as Django's mailer maps it (IDNA 2003
    nameprep, `domain.encode("idna")` in sanitize_address): full-width letters made ASCII,
    soft hyphens and joiners dropped, `ß` made `ss`. So two spellings the mailer sends to one
    mailbox are one address. In NFC; a label that does not decode or map stays as it is (the
    email validator has judged the address already)."""
    labels = []
    for label in idna.dots.split(domain):  # as the mailer splits: `。` and `．` are dots too
        if label.startswith("xn--"):
            with contextlib.suppress(UnicodeError, ValueError):
                label = label[4:].encode("ascii").decode("punycode").lower()
        with contextlib.suppress(UnicodeError, ValueError):
            label = idna.ToUnicode(idna.ToASCII(label))
        labels.append(label)
    return unicodedata.normalize("NFC", ".".join(labels))


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    @classmethod
    def normalize_email(cls, email: str | None) -> str:
        """Unique case-insensitively: the whole address is stored lower-cased, and its domain
        in Unicode, so that an internationalised domain and its ASCII form (`x@exämple.com`,
        `x@xn--exmple-cua.com`: one mailbox) are one address."""
        local, at, domain = (email or "").strip().lower().rpartition("@")
        return f"{local}{at}{unicode_domain(domain)}" if at else domain

    def get_by_natural_key(self, username: str) -> "User":
        return self.get(email=self.normalize_email(username))

    def create_user(self, email: str, password: str | None = None, **extra) -> "User":
        if not email:
            raise ValueError("An email address is required.")
        email = self.normalize_email(email)
        if len(email) > EMAIL_MAX_LENGTH:
            # The callers' own checks count the address as typed (createsuperuser's does):
            # its IDNA mapping can lengthen it past the column, a DataError.
            raise ValidationError(
                f"Ensure the email has at most {EMAIL_MAX_LENGTH} characters once its domain "
                f"is mapped (it has {len(email)})."
            )
        user = self.model(email=email, **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra) -> "User":
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person using the service; signs in with an email address."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True, max_length=EMAIL_MAX_LENGTH)
    display_name = models.CharField(max_length=DISPLAY_NAME_MAX_LENGTH, blank=True, default="")
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=now)
    # Carried in every JWT as the `gen` claim; bumping it kills every token issued before, at
    # once (password change or reset, deactivation), checked in the one user lookup per request.
    token_generation = models.PositiveIntegerField(default=0, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(email=Lower("email")), name="user_email_lower_case"
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def check_password(self, raw_password: str) -> bool:
        """Django's, but a hash upgrade (a password right, its hash of an older hasher or
        cost) is written only over the hash that was checked, by one conditional UPDATE.

        Django's saves the new hash over whatever the row holds: a sign-in (or a password
        check) that read the row just before a password change committed set the old password
        back, and a row deleted meanwhile was a DatabaseError.
        """
        return check_password(raw_password, self.password, self._upgrade_hash)

    async def acheck_password(self, raw_password: str) -> bool:
        """check_password(), async."""

        async def upgrade(raw_password: str) -> None:
            checked = self.password
            self._set_upgraded(raw_password)
            await User.objects.filter(pk=self.pk, password=checked).aupdate(password=self.password)

        return await acheck_password(raw_password, self.password, upgrade)

    def _upgrade_hash(self, raw_password: str) -> None:
        checked = self.password
        self._set_upgraded(raw_password)
        User.objects.filter(pk=self.pk, password=checked).update(password=self.password)

    def _set_upgraded(self, raw_password: str) -> None:
        self.set_password(raw_password)
        self._password = None  # an upgraded hash is no password change, as in Django's

    def revoke_tokens(self) -> None:
        """Makes every refresh and access token issued so far invalid (saved by the caller, with
        `token_generation` among its update_fields).

        Counted up in the database, not from the value this instance read: two revocations at
        once (a password change and a deactivation) must each end the tokens issued between
        them, and a stale instance must not write an older generation back.
        """
        self.token_generation = models.F("token_generation") + 1

    def _get_session_auth_hash(self, secret: str | None = None) -> str:
        """Django's HMAC of the password, which ends a user's admin sessions when it changes,
        with the token generation in it: whatever ends someone's tokens (sign out everywhere,
        a new email) ends their admin sessions too, as a new password does. A lost laptop's
        admin session outlived "sign out everywhere" by up to two weeks (SESSION_COOKIE_AGE)."""
        generation = self.token_generation
        if isinstance(generation, models.expressions.Combinable):
            # revoke_tokens() saved as F() + 1: the stored value, without dropping the F() from
            # an instance that may not be saved yet.
            generation = User.objects.values_list("token_generation", flat=True).get(pk=self.pk)
        return salted_hmac(
            "accounts.User.session_auth_hash",
            f"{self.password}:{generation}",
            secret=secret,
            algorithm="sha256",
        ).hexdigest()

    def get_session_auth_fallback_hash(self):
        yield from super().get_session_auth_fallback_hash()
        if self.token_generation == 0:
            # A session from before the generation was in the hash (2026-12-03) stays signed
            # in, and Django moves it to the new hash; once tokens were ended, it cannot.
            yield AbstractBaseUser._get_session_auth_hash(self)

    def clean(self) -> None:
        # Not AbstractBaseUser.clean(): its NFKC ran after the form's length check (63 "ﬀ" in a
        # label are 126 letters once NFKC'd: past the column, a 500) and stored, from the admin
        # only, an address the API stores as it is.
        self.email = UserManager.normalize_email(self.email)


class RevokedTokenFamily(models.Model):
    """A session ended: every refresh token of this family (the one issued at sign-in and all
    that rotation made from it, `fam` claim) is refused. Kept until the last of them would have
    expired: the revocation time plus the refresh lifetime."""

    family = models.CharField(primary_key=True, max_length=64)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.family


class DeniedAccessToken(models.Model):
    """An access token refused before it expires (logout ends the calling one), by its `jti`.

    In PostgreSQL rather than the cache: authentication reads it in the same query as the user
    (no extra round trip), and it holds when Redis is down. Rows are deleted once expired.
    """

    jti = models.CharField(primary_key=True, max_length=255)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.jti
