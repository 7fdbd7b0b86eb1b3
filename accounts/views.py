from django.contrib.auth import authenticate
from django.db import IntegrityError, transaction
from django.utils.cache import patch_cache_control
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import exceptions, generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from accounts import services
from accounts.mail import send_in_background
from accounts.models import User
from accounts.serializers import (
    EMAIL_TAKEN,
    CurrentPasswordSerializer,
    PasswordChangeSerializer,
    PasswordResetConfirmSerializer,
    PasswordResetSerializer,
    RefreshSerializer,
    RegisteredSerializer,
    RegisterSerializer,
    TokenObtainSerializer,
    TokenPairSerializer,
    UserSerializer,
)
from accounts.services import STAFF_NOT_DELETED
from accounts.tokens import token_pair_for
from todo_project.problems import problem_responses
from todo_project.ratelimit import (
    LoginRateThrottle,
    PasswordCheckRateThrottle,
    RegisterRateThrottle,
    reset_mail_allowed,
)
from todo_project.retry import RetriedWrites
from todo_project.schema import answer_example, delete_with_body

BAD_CREDENTIALS = "Email or password is incorrect."

TAGS = ["accounts"]

USER_EXAMPLE = {
    "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "email": "alice@example.com",
    "display_name": "Alice",
    "timezone": "Europe/Paris",
    "date_joined": "2026-11-20T17:02:13Z",
}
# Placeholders: a real token is a JWT (header.payload.signature) of about 300 characters.
TOKEN_PAIR_EXAMPLE = {
    "access": "<access token: a JWT, 15 minutes>",
    "refresh": "<refresh token: a JWT, 14 days>",
}


class PublicView(generics.GenericAPIView):
    """An endpoint that needs no token (and ignores a stale one a client may still send)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request: Request) -> str:
        # Without authenticators DRF turns a 401 into a 403; sign-in failures are 401s.
        return 'Bearer realm="api"'


# A sign-in or refresh refused is a 401 with the challenge PublicView sends.
CHALLENGE = OpenApiParameter(
    "WWW-Authenticate",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[401],
    description='`Bearer realm="api"`.',
)

# RFC 6749 section 5.1: an answer carrying tokens must never be stored by any cache.
NO_STORE = OpenApiParameter(
    "Cache-Control",
    {"type": "string", "enum": ["no-store"]},
    OpenApiParameter.HEADER,
    response=True,
    description="Every answer of this endpoint, errors included: the answer carries tokens "
    "(RFC 6749 5.1), or its request did; no cache may store it.",
)


class TokenIssuingView(PublicView):
    """An endpoint whose answer carries tokens: none of its answers may be stored."""

    def finalize_response(self, request: Request, response: Response, *args, **kwargs) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        patch_cache_control(response, no_store=True)
        return response


class RegisterView(TokenIssuingView):
    serializer_class = RegisterSerializer
    throttle_classes = [*api_settings.DEFAULT_THROTTLE_CLASSES, RegisterRateThrottle]

    @extend_schema(
        tags=TAGS,
        operation_id="auth_register",
        summary="Create an account",
        responses={201: RegisteredSerializer, **problem_responses(400, 429)},
        parameters=[NO_STORE],
        examples=[
            OpenApiExample(
                "New account",
                value={
                    "email": "alice@example.com",
                    "password": "correct-horse-battery",
                    "display_name": "Alice",
                    "timezone": "Europe/Paris",
                },
                request_only=True,
            ),
            answer_example({"user": USER_EXAMPLE, **TOKEN_PAIR_EXAMPLE}, status_codes=["201"]),
        ],
    )
    def post(self, request: Request) -> Response:
        """Creates an account and signs it in: the answer carries the user and a token pair.

        An email that has an account is a 400 on `email`, said only once every other field is
        valid (a strong password included), and registrations are limited per client IP
        (`RATE_LIMIT_REGISTER`, default 20 an hour, on top of the anonymous limit): the answer
        has to tell a taken email, so asking it for many addresses is made slow."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # One transaction with its first token: a statement cancelled there (a 503 "not
        # carried out") had left the account created, and the retry a 400 (review 37f).
        try:
            with transaction.atomic():
                user = services.user_register(**serializer.validated_data)
                body = {"user": UserSerializer(user).data, **token_pair_for(user)}
        except IntegrityError:  # the same email registered a moment ago by a parallel request
            raise serializers.ValidationError({"email": [EMAIL_TAKEN]}) from None
        return Response(body, status=status.HTTP_201_CREATED)


class TokenObtainView(TokenIssuingView):
    serializer_class = TokenObtainSerializer
    throttle_classes = [*api_settings.DEFAULT_THROTTLE_CLASSES, LoginRateThrottle]

    @extend_schema(
        tags=TAGS,
        operation_id="auth_token",
        summary="Sign in",
        responses={
            200: TokenPairSerializer,
            **problem_responses(
                400,
                429,
                described={
                    401: "Wrong email or password, or a deactivated account (the same answer "
                    "for each)."
                },
            ),
        },
        parameters=[NO_STORE, CHALLENGE],
        examples=[
            OpenApiExample(
                "Sign in",
                summary="The account of the register example",
                value={"email": "alice@example.com", "password": "correct-horse-battery"},
                request_only=True,
            ),
            OpenApiExample(
                "Demo account",
                summary="make run's demo account (seed_demo: local servers only)",
                value={"email": "demo@example.com", "password": "demo-password-2026"},
                request_only=True,
            ),
            answer_example(TOKEN_PAIR_EXAMPLE),
        ],
    )
    def post(self, request: Request) -> Response:
        """Trades email and password for an access token (15 min) and a refresh token (14 days).

        Wrong password, unknown email and deactivated account all get the same 401.
        Limited per (email, client IP) by RATE_LIMIT_LOGIN.
        """
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # Django's ModelBackend hashes the password even for an unknown email (so the answer
        # takes as long either way), refuses inactive users, and upgrades an older hash to
        # Argon2 when the password is right.
        user = authenticate(
            request._request,
            email=serializer.validated_data["email"],
            password=serializer.validated_data["password"],
        )
        if user is None:
            raise exceptions.AuthenticationFailed(BAD_CREDENTIALS)
        services.user_signed_in(user=user)
        return Response(token_pair_for(user))


class TokenRefreshView(TokenIssuingView):
    serializer_class = RefreshSerializer

    @extend_schema(
        tags=TAGS,
        operation_id="auth_token_refresh",
        summary="Rotate the refresh token",
        responses={
            200: TokenPairSerializer,
            **problem_responses(
                400,
                429,
                described={401: "The refresh token is invalid, expired, revoked or used already."},
            ),
        },
        parameters=[NO_STORE, CHALLENGE],
        examples=[
            OpenApiExample(
                "Refresh", value={"refresh": TOKEN_PAIR_EXAMPLE["refresh"]}, request_only=True
            ),
            answer_example(TOKEN_PAIR_EXAMPLE),
        ],
    )
    def post(self, request: Request) -> Response:
        """Trades a refresh token for a new pair. The given refresh token is dead afterwards:
        using it again is a 401. Used again more than 30 s after its rotation (plus the clock
        skew allowed between servers, `JWT_CLOCK_SKEW_SECONDS`, 60 s by default), it also ends
        its session: the token that replaced it is refused too (two holders of one token: one
        of them stole it). Within that time (a retry, a second tab) the replacement stays
        valid, and the 401 says so: `"code": "refresh_token_just_rotated"` (read the pair the
        other request got, do not sign out), unless a logout, a password change or a
        deactivation has ended it since; no other 401 has a `code`.

        The new refresh token lasts 14 days (`JWT_REFRESH_LIFETIME_SECONDS`) from now, so a
        session used within each 14 days goes on; where the operator caps a session
        (`JWT_SESSION_MAX_LIFETIME_SECONDS`, off by default), it expires at the cap counted
        from the sign-in (its `auth_time` claim) instead, and so does the access token."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(services.tokens_refresh(refresh=serializer.validated_data["refresh"]))


class LogoutView(generics.GenericAPIView):
    serializer_class = RefreshSerializer
    methods_answering_without_body = {"POST"}  # a 204: problem+json alone is enough

    @extend_schema(
        tags=TAGS,
        operation_id="auth_logout",
        summary="Sign out",
        responses={204: None, **problem_responses(400, 401, 429)},
    )
    def post(self, request: Request) -> Response:
        """Ends this session: the given refresh token, every refresh token rotation made from
        the same sign-in (before or after it), and the calling access token are dead.

        The refresh token may have expired, or been rotated or revoked already: the session ends
        all the same (204). The user's other sessions (other sign-ins) go on. One that is not
        the caller's is a 400 and changes nothing."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.user_logout(
            user=request.user, refresh=serializer.validated_data["refresh"], access=request.auth
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordChecking:
    """A view whose `password_checking_method` checks the caller's password: those requests
    (only those: an OPTIONS must not use up the user's sign-in attempts) count as sign-in
    attempts too (PasswordCheckRateThrottle)."""

    password_checking_method: str

    def get_throttles(self) -> list:
        if self.request.method == self.password_checking_method:
            return [*super().get_throttles(), PasswordCheckRateThrottle()]
        return super().get_throttles()


# A write of the signed-in user locks the row and works on it as it is then (services.
# user_update, user_delete), never on the row authentication read: see there. The writes run
# again after a concurrent change (RetriedWrites): deleting the account while another client of
# the user adds tags to its tasks can fail at COMMIT (a tag link committed after the deletion's
# snapshot still points at a deleted task: 23503); run again, it goes through, not a 503.
class MeView(RetriedWrites, PasswordChecking, generics.RetrieveUpdateAPIView):
    serializer_class = UserSerializer
    password_checking_method = "DELETE"
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_object(self) -> User:
        return self.request.user

    def perform_update(self, serializer: UserSerializer) -> None:
        # The answer shows the row as written (the serializer's instance becomes it).
        serializer.instance = services.user_update(
            user=self.request.user, token=self.request.auth, **serializer.validated_data
        )

    @extend_schema(
        tags=TAGS,
        operation_id="auth_me_retrieve",
        summary="Your profile",
        responses={200: UserSerializer, **problem_responses(401, 429)},
        examples=[answer_example(USER_EXAMPLE)],
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        """The signed-in user's profile."""
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=TAGS,
        operation_id="auth_me_partial_update",
        summary="Update your profile",
        responses={200: UserSerializer, **problem_responses(400, 401, 429)},
        examples=[
            OpenApiExample(
                "New time zone", value={"timezone": "America/New_York"}, request_only=True
            ),
            answer_example({**USER_EXAMPLE, "timezone": "America/New_York"}),
        ],
    )
    def patch(self, request: Request, *args, **kwargs) -> Response:
        """Changes `display_name` and/or `timezone` (an IANA name). Other fields are ignored."""
        return super().patch(request, *args, **kwargs)

    @extend_schema(
        tags=TAGS,
        operation_id="auth_me_delete",
        summary="Delete your account",
        request=CurrentPasswordSerializer,
        responses={
            204: None,
            **problem_responses(
                400,
                401,
                429,
                described={403: f"{STAFF_NOT_DELETED} Nothing is deleted."},
            ),
        },
    )
    @delete_with_body
    def delete(self, request: Request) -> Response:
        """Deletes the account and all its data for good (confirm with the password). A staff
        account (the admin's) is refused with a 403: a superuser deactivates it in the admin,
        which keeps its history."""
        serializer = CurrentPasswordSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        services.user_delete(user=request.user, token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordChangeView(PasswordChecking, generics.GenericAPIView):
    serializer_class = PasswordChangeSerializer
    methods_answering_without_body = {"POST"}  # a 204: problem+json alone is enough
    password_checking_method = "POST"

    @extend_schema(
        tags=TAGS,
        operation_id="auth_password_change",
        summary="Change your password",
        responses={204: None, **problem_responses(400, 401, 429)},
    )
    def post(self, request: Request) -> Response:
        """Sets a new password. Every token issued before, this one included, is dead:
        sign in again."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.user_set_password(
            user=request.user,
            password=serializer.validated_data["new_password"],
            token=request.auth,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordResetView(PublicView):
    serializer_class = PasswordResetSerializer
    methods_answering_without_body = {"POST"}  # a 202: problem+json alone is enough

    @extend_schema(
        tags=TAGS,
        operation_id="auth_password_reset",
        summary="Ask for a password reset link",
        responses={
            202: OpenApiResponse(
                description="A well-formed email: a link is mailed if an active account has it."
            ),
            **problem_responses(
                429,
                described={400: "The email is missing or malformed (nothing said about accounts)."},
            ),
        },
    )
    def post(self, request: Request) -> Response:
        """Mails a reset link (FRONTEND_URL/reset-password?uid=…&token=…) if an active account
        has this email. 202 for every well-formed email, whether or not an account has it, so
        the answer never tells whether one exists; 400 for a missing or malformed email (over
        254 characters included), which tells nothing about accounts either. The answer does not
        wait for the mail: a slow or failing mail server changes nothing in it. At most
        `RATE_LIMIT_RESET_MAIL` (default 3 an hour) mails go to one address per client IP, and
        `RATE_LIMIT_RESET_MAIL_ADDRESS` (default 10 an hour) from all IPs; past either the answer
        is the same 202 and nothing is mailed (every link sent stays valid). A link works for
        `PASSWORD_RESET_HOURS` (default 24), and the mail says so."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email = serializer.validated_data["email"]
        # Counted for every address, whether or not it has an account (the same work either way).
        within_limit = reset_mail_allowed(request._request, email)
        user = User.objects.filter(email=email, is_active=True).first()
        if user is not None and user.has_usable_password() and within_limit:
            # Not waited for: waiting for the mail server (or failing with it) would tell
            # that the account exists.
            send_in_background(services.password_reset_email(user=user))
        return Response(status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(PublicView):
    serializer_class = PasswordResetConfirmSerializer
    methods_answering_without_body = {"POST"}  # a 204: problem+json alone is enough

    @extend_schema(
        tags=TAGS,
        operation_id="auth_password_reset_confirm",
        summary="Set a new password from a reset link",
        responses={204: None, **problem_responses(400, 429)},
    )
    def post(self, request: Request) -> Response:
        """Sets the new password with the `uid` and `token` of the mailed link (usable once,
        also by requests at the same moment). Every token issued before is dead."""
        serializer = self.get_serializer(data=request.data)
        with transaction.atomic():  # the user stays locked from the link's check to the save
            serializer.is_valid(raise_exception=True)
            services.user_set_password(
                user=serializer.validated_data["user"],
                password=serializer.validated_data["new_password"],
                locked=True,
            )
        return Response(status=status.HTTP_204_NO_CONTENT)
