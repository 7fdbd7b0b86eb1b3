"""Test-only endpoints for the hardening machinery (ETags, Idempotency-Key), on TaskList rows
so they work before any app's own viewsets adopt the mixins."""

import threading

from django.urls import include, path
from rest_framework import serializers, viewsets
from rest_framework.routers import SimpleRouter

from tasks.models import TaskList
from todo_project.conditional import ConditionalRequestMixin
from todo_project.idempotency import idempotent
from todo_project.problems import Conflict


class Gate:
    """Holds a request inside its transaction until the test lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def hold(self) -> None:
        self.entered.set()
        if not self.release.wait(timeout=20):
            raise RuntimeError("the test never released the gate")


GATES: dict[str, Gate] = {}


class ProbeListSerializer(serializers.ModelSerializer):
    class Meta:
        model = TaskList
        fields = ["id", "name", "version"]
        read_only_fields = ["id", "version"]


class ProbeListViewSet(ConditionalRequestMixin, viewsets.ModelViewSet):
    """Lists with ETags and idempotent creation, as the real viewsets adopt them."""

    queryset = TaskList.objects.none()
    serializer_class = ProbeListSerializer

    def get_queryset(self):
        return TaskList.objects.owned_by(self.request.user)

    @idempotent
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer) -> None:
        name = serializer.validated_data["name"]
        serializer.save(owner=self.request.user)
        if name in GATES:
            GATES[name].hold()
        if name == "explode":
            raise RuntimeError("after the write")
        if name == "conflict":
            raise Conflict("a 4xx after the write")
        if name == "invalid":
            raise serializers.ValidationError({"name": ["A 400 after the write."]})

    def perform_update(self, serializer) -> None:
        name = serializer.validated_data.get("name")
        if name in GATES:
            GATES[name].hold()
        serializer.save(version=serializer.instance.version + 1)


router = SimpleRouter()
router.register("api/v1/test/lists", ProbeListViewSet, basename="probe-list")

urlpatterns = [*router.urls, path("", include("todo_project.urls"))]
