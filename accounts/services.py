"""Account operations shared by the API, the admin and management commands."""

from datetime import timedelta

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.mail import EmailMessage
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework import exceptions, serializers
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.authentication import INVALID_TOKEN, holder_claims, token_holders
from accounts.models import User
from accounts.tokens import (
    RefreshToken,
    access_token_deny,
    family_revoke,
    family_revoked_sql,
    past_session_cap,
    reset_link_tokens,
    token_generation_of,
    token_pair_for,
)
from tasks.models import Tag, Task, TaskList
from tasks.services import owned_data_delete

INVALID_REFRESH = "The refresh token is invalid, expired or revoked."
# How long after its rotation a refresh token used again is taken for the same client (tabs
# refreshing at once, a retry) rather than a second holder: Okta's default grace period.
REFRESH_REUSE_GRACE = timedelta(seconds=30)
STAFF_NOT_DELETED = (
    "A staff account, or one that has acted in the admin, is not deleted: a superuser "
    "deactivates it in the admin, which keeps its admin history (the record of what it did)."
)
# What a deleted account's entries in the admin's history say instead of its email, names,
# titles and the values a change message quoted: who did what, when, to which kind of object
# (and its id) stays.
REDACTED_REPR = "(a deleted account's)"
REDACTED_MESSAGE = "Details removed: the account was deleted."


def password_reset_link(*, user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = reset_link_tokens.make_token(user)
    return f"{settings.FRONTEND_URL}/reset-password?uid={uid}&token={token}"


def _hours(seconds: int) -> str:
    hours = seconds // 3600
    return "1 hour" if hours == 1 else f"{hours} hours"


def password_reset_email(*, user: User, by_support: bool = False) -> EmailMessage:
    """The mail with a link to the frontend's reset page (Django's reset token inside). Sent
    by support (the admin's action), it says so: "someone (hopefully you)" read as a stranger's
    request to a user who had just called support."""
    asked = (
        "Our support team sent you this link to reset the password of your Todo account."
        if by_support
        else "Someone (hopefully you) asked to reset the password of your Todo account."
    )
    return EmailMessage(
        subject="Reset your Todo password",
        body=(
            f"{asked}\n\n"
            f"Choose a new password here: {password_reset_link(user=user)}\n"
            f"The link works once, within {_hours(settings.PASSWORD_RESET_TIMEOUT)}.\n\n"
            "If you did not ask for it, ignore this email: your password stays as it is."
        ),
        to=[user.email],
    )


def user_send_password_reset(*, user: User) -> None:
    """Mails the user a reset link from support, now: a failure raises, so support sees it in
    the admin. The API's own reset does not wait for the mail (accounts.mail)."""
    password_reset_email(user=user, by_support=True).send()


def email_changed_notice(*, user: User, old_email: str) -> EmailMessage:
    """The mail telling the previous address that the account's sign-in address changed: the
    one place its owner hears of it if the change was not theirs."""
    return EmailMessage(
        subject="The email address of your Todo account was changed",
        body=(
            f"The sign-in address of your Todo account was changed from {old_email} to "
            f"{user.email} by our support team, and every session was signed out.\n\n"
            "If you did not ask for this, reply to this email so that we can help."
        ),
        to=[old_email],
    )


def user_deactivate(*, user: User) -> None:
    """Locks the account: the authentication layer refuses every token of an inactive user.

    The tokens are revoked too, so reactivating the account later does not revive them. One
    UPDATE of those two columns by id, whatever else `user` read: nothing it holds is written
    back over a change made since, and an account deleted meanwhile (User.DoesNotExist) is not
    re-created.
    """
    user.is_active = False
    user.revoke_tokens()  # on the instance too: a later save of it never writes an older one
    _update_row(user, is_active=False, token_generation=user.token_generation)


def user_sign_out_everywhere(*, user: User) -> None:
    """Ends every session of the user (all refresh and access tokens) and nothing else: a lost
    phone, a shared computer. The password and the account stay as they are. As
    user_deactivate: one UPDATE of the one column; a deleted account is User.DoesNotExist."""
    user.revoke_tokens()
    _update_row(user, token_generation=user.token_generation)


def user_signed_in(*, user: User) -> None:
    """Records a password sign-in as `last_login`, the admin's "last sign-in" (Django's login()
    does it for sessions; the API issues tokens instead, and it stayed empty). One UPDATE of
    that column by id: nothing else of `user` is written back."""
    user.last_login = timezone.now()
    User.objects.filter(pk=user.pk).update(last_login=user.last_login)


def _update_row(user: User, **values) -> None:
    if not User.objects.filter(pk=user.pk).update(**values):
        raise User.DoesNotExist(f"The account {user.pk} no longer exists.")


def _locked(user: User, token: Token | None) -> User | None:
    """The user's row as it is now, locked until the transaction ends; None if it is gone.

    With the request's access token `token`, only while that token still holds (as
    authentication would judge it now: token_holders): a write that waited for a concurrent
    password change, reset, deactivation, sign-out everywhere or deletion of the account is
    refused, as the same request sent a moment later would be. FOR NO KEY UPDATE: it queues
    behind (and holds off) the other writes of the row, but not the key-share locks that
    inserting the user's tasks or tokens takes on it.
    """
    rows = (
        User.objects.filter(pk=user.pk) if token is None else token_holders(**holder_claims(token))
    )
    return rows.select_for_update(no_key=True).first()


def _locked_caller(user: User, token: Token | None) -> User:
    """_locked(), for a write the user asked for: the 401 a request of a deleted, deactivated or
    signed-out user gets when the row no longer holds."""
    row = _locked(user, token)
    if row is None:
        if token is None:  # a caller of our own (the shell, the tests), not a request
            raise User.DoesNotExist(f"The account {user.pk} no longer exists.")
        raise exceptions.AuthenticationFailed(INVALID_TOKEN, "invalid_token")
    return row


@transaction.atomic
def user_update(*, user: User, token: Token | None = None, **changes) -> User:
    """Changes profile fields (display_name, timezone) and returns the user as it now is.

    The row is read again under its lock and only the changed columns are written: `user` is
    the row as the request's authentication read it, and saving it whole wrote back its stale
    password, token generation and activity over a password change, deactivation or other
    PATCH committed meanwhile, and re-created an account deleted meanwhile (Django's save
    INSERTs when its UPDATE matches no row). `token`: as for _locked().
    """
    current = _locked_caller(user, token)
    fields = [name for name, value in changes.items() if getattr(current, name) != value]
    for name in fields:
        setattr(current, name, changes[name])
    if fields:
        current.save(update_fields=fields)
    return current


def user_register(
    *, email: str, password: str, display_name: str = "", timezone: str = "UTC"
) -> User:
    """Creates the account; a taken email (in any letter case) is an IntegrityError. One
    INSERT: the caller's transaction holds it with the account's first token (RegisterView)."""
    return User.objects.create_user(
        email=email, password=password, display_name=display_name, timezone=timezone
    )


def user_set_password(
    *, user: User, password: str, token: Token | None = None, locked: bool = False
) -> None:
    """Sets a new password and ends every session (all refresh and access tokens) at once.

    Only the password and the token generation are written. `locked`: `user` was read under
    its lock in the caller's transaction (the reset confirm's); else the row is read again and
    locked here, refused as in _locked_caller() (`token`: the request's access token) when the
    account was deleted, or that token revoked, since the request read it.
    """
    if not locked:
        with transaction.atomic():
            current = _locked_caller(user, token)
            user_set_password(user=current, password=password, locked=True)
        return
    user.set_password(password)
    user.revoke_tokens()
    user.save(update_fields=["password", "token_generation"])


@transaction.atomic
def user_delete(*, user: User, token: Token | None = None) -> None:
    """Deletes the account and everything it owns, in one transaction.

    The row is locked first, so a write of the user's own waiting for it finds it gone (and
    does not re-create it); with the request's access token `token`, a 401 if that token was
    revoked since the request read the user (_locked_caller). Without one (the admin), an
    account deleted meanwhile is nothing left to do. `user` itself is left as it was (its pk
    too): a request run again after a concurrent change deletes the same account.

    A staff or superuser account is refused (a 403, nothing deleted): it is deactivated
    instead. The admin's history entries about the account and what it owns are kept, their
    content redacted (_history_redact).

    Its recorded refresh tokens go too (simplejwt would keep them with `user = NULL`); any
    token still held by a client then fails the user lookup with 401. Tokens, tasks, tags and
    lists go in SQL statements by owner: the ORM's cascade selects the rows and names each one
    in a parameter, which fails past PostgreSQL's 65,535 (an account may hold 100,000 tasks).
    """
    if token is None:
        current = _locked(user, None)
        if current is None:
            return
    else:
        current = _locked_caller(user, token)
    if keeps_admin_history(current):
        raise exceptions.PermissionDenied(STAFF_NOT_DELETED, "staff_account")
    _history_redact(owner_id=current.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM token_blacklist_blacklistedtoken WHERE token_id IN"
            " (SELECT id FROM token_blacklist_outstandingtoken WHERE user_id = %s)",
            [current.pk],
        )
        cursor.execute(
            "DELETE FROM token_blacklist_outstandingtoken WHERE user_id = %s", [current.pk]
        )
    owned_data_delete(owner_id=current.pk)
    current.delete()


def keeps_admin_history(user: User) -> bool:
    """Whether the account is never deleted, only deactivated: Django's cascade would take its
    admin history (LogEntry.user) with it, the record of what that person did. Staff, and a
    former agent whose staff status was cleared (unticked rather than deactivated), whose
    entries are still there. The admin refuses the same (UserAdmin.has_delete_permission)."""
    return user.is_staff or user.is_superuser or LogEntry.objects.filter(user_id=user.pk).exists()


def _history_redact(*, owner_id) -> None:
    """Rewrites the admin's history entries about the account and its tasks (those deleted
    within DELETIONS_KEPT too, whose ids are still kept), lists and tags: their `object_repr`
    (the email, a title, a name) and change message (old and new values: HistoryWithOldValues)
    become REDACTED_*. Who did it, when, the action and the object's type and id stay, and so
    does every entry about anyone else.

    One UPDATE, the entries found through the index on (content type, object id) (migration
    accounts.0008) from the owner's rows read in subqueries: no list of ids in parameters (an
    account may hold 100,000 tasks), and no scan of the whole history for a small account."""
    types = ContentType.objects.get_for_models(User, Task, TaskList, Tag, for_concrete_models=False)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE django_admin_log SET object_repr = %s, change_message = %s"
            " WHERE (content_type_id, object_id) IN ("
            " SELECT %s, %s"
            " UNION ALL SELECT %s, id::text FROM tasks_task WHERE owner_id = %s"
            " UNION ALL SELECT %s, id::text FROM tasks_deletedtask WHERE owner_id = %s"
            " UNION ALL SELECT %s, id::text FROM tasks_tasklist WHERE owner_id = %s"
            " UNION ALL SELECT %s, id::text FROM tasks_tag WHERE owner_id = %s)",
            [
                REDACTED_REPR,
                REDACTED_MESSAGE,
                types[User].pk,
                str(owner_id),
                types[Task].pk,
                owner_id,
                types[Task].pk,
                owner_id,
                types[TaskList].pk,
                owner_id,
                types[Tag].pk,
                owner_id,
            ],
        )


def tokens_refresh(*, refresh: str) -> dict[str, str]:
    """Trades a refresh token for a new pair of the same session (family); the given one is
    blacklisted on the way.

    Unlike simplejwt's serializer, a refresh token is used at most once even under concurrent
    requests: blacklisting is an INSERT on a unique column, so of two requests racing with the
    same token the second waits for the first to commit and then fails. A refresh token used
    again well after its rotation means two holders (a stolen copy): the whole session ends, so
    that whichever of them holds the newer token cannot go on (RFC 9700 4.14.2;
    _end_session_if_reused). A deleted, inactive or revoked user gets a 401, never a 500.
    """
    try:
        token = RefreshToken(refresh)
    except TokenError:
        if _end_session_if_reused(refresh):
            raise RefreshTokenJustRotated() from None
        raise exceptions.AuthenticationFailed(INVALID_REFRESH) from None
    user = _live_user_of(token)
    if past_session_cap(token):
        raise exceptions.AuthenticationFailed(INVALID_REFRESH)
    try:
        with transaction.atomic():
            BlacklistedToken.objects.create(token=_outstanding(token, user))
            return token_pair_for(user, token)
    except IntegrityError:  # a concurrent request with the same token won
        raise RefreshTokenJustRotated() from None


class RefreshTokenJustRotated(exceptions.AuthenticationFailed):
    """A refresh token used again within the reuse grace of its rotation: most likely the same
    client twice (a second tab, a retry). A 401 like any refused token, but told apart by its
    `code`, so that a client reads the pair the other request stored rather than signing the
    user out (review 35e)."""

    default_detail = (
        "The refresh token was traded a moment ago by another request (a second tab, a retry): "
        "use the pair that request got."
    )
    problem_fields = {"code": "refresh_token_just_rotated"}


def _end_session_if_reused(raw: str) -> bool:
    """Revokes the family of a refresh token we signed that is unexpired and was blacklisted
    more than REFRESH_REUSE_GRACE ago: one used again well after its rotation. Within the
    grace, a reuse is most likely the same client twice (two tabs refreshing at once, a retry):
    a 401, and the session goes on with the token the first request got. Anything else refused
    (forged, expired) revokes nothing. Whether it was a reuse within the grace."""
    try:
        token = RefreshToken.signed(raw)
        token.check_exp()
    except TokenError:
        return False
    rotated = (
        BlacklistedToken.objects.filter(token__jti=token[api_settings.JTI_CLAIM])
        .annotate(ended=family_revoked_sql(token))
        .values_list("blacklisted_at", "ended")
        .first()
    )
    if rotated is None or rotated[1]:  # refused otherwise, or its session ended (a logout)
        return False
    rotated_at = rotated[0]
    # blacklisted_at is the clock of the replica that rotated the token: allow for the
    # replicas' skew (LEEWAY) too, or a two-tab race ended the session (review 35e).
    if rotated_at < timezone.now() - REFRESH_REUSE_GRACE - api_settings.LEEWAY:
        family_revoke(token)
        return False
    # "Use the pair the other request got" only while that pair can work: not once the user's
    # tokens were all revoked since (a password change, a deactivation; review 36i).
    return User.objects.filter(
        pk=token[api_settings.USER_ID_CLAIM],
        is_active=True,
        token_generation=token_generation_of(token),
    ).exists()


def user_logout(*, user: User, refresh: str, access: Token) -> None:
    """Ends one session: revokes the family of its refresh token (that one and any that
    rotation made from it or it from), blacklists the token and denies the calling access
    token.

    The refresh token may be unusable already (expired, or rotated or revoked since): the
    session ends all the same. One we did not sign, or not the caller's, is a 400 and changes
    nothing: the caller is signed in, only this input is wrong.
    """
    try:
        token = RefreshToken.signed(refresh)
    except TokenError:
        token = None
    if token is None or token.get(api_settings.USER_ID_CLAIM) != str(user.pk):
        raise serializers.ValidationError({"refresh": [INVALID_REFRESH]})
    family_revoke(token)
    BlacklistedToken.objects.get_or_create(token=_outstanding(token, user))
    access_token_deny(access)


def _live_user_of(token: Token) -> User:
    """The user of a refresh token that may still be used: active, same token generation, its
    session not ended (read with the user, one query)."""
    user = (
        User.objects.filter(pk=token.get(api_settings.USER_ID_CLAIM))
        .annotate(session_ended=family_revoked_sql(token))
        .first()
    )
    if (
        user is None
        or not user.is_active
        or token_generation_of(token) != user.token_generation
        or user.session_ended
    ):
        raise exceptions.AuthenticationFailed(INVALID_REFRESH)
    return user


def _outstanding(token: Token, user: User) -> OutstandingToken:
    outstanding, _ = OutstandingToken.objects.get_or_create(
        jti=token[api_settings.JTI_CLAIM],
        defaults={
            "user": user,
            "token": str(token),
            "created_at": datetime_from_epoch(token["iat"]),
            "expires_at": datetime_from_epoch(token["exp"]),
        },
    )
    return outstanding
