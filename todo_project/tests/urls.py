"""A few views that exist only for the platform tests: they exercise the shared machinery
(parsing, errors, auth) without depending on any app's endpoints."""

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


urlpatterns = [
    path("api/v1/test/echo/", EchoView.as_view()),
    path("api/v1/test/private/", PrivateView.as_view()),
    path("api/v1/test/boom/", BoomView.as_view()),
    path("", include("todo_project.urls")),
]
