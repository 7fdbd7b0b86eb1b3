"""A few views that exist only for the platform tests: they exercise the shared machinery
(parsing, errors, auth) without depending on any app's endpoints."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import include, path
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


class EchoSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=10)


class EchoView(APIView):
    permission_classes = [AllowAny]

    def post(self, request):
        serializer = EchoSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data, status=201)


class PrivateView(APIView):
    def get(self, request):
        return Response({"user": str(request.user.pk)})


class BoomView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("secret internals")


def plain_view_raising_404(request):
    raise Http404("no such thing")


class DjangoPermissionDeniedView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise PermissionDenied


urlpatterns = [
    path("api/v1/test/echo/", EchoView.as_view()),
    path("api/v1/test/private/", PrivateView.as_view()),
    path("api/v1/test/boom/", BoomView.as_view()),
    path("api/v1/test/plain-404/", plain_view_raising_404),
    path("api/v1/test/django-403/", DjangoPermissionDeniedView.as_view()),
    path("", include("todo_project.urls")),
]
