from django.urls import URLPattern
from rest_framework.routers import SimpleRouter

from tasks.fast_read import with_fast_get
from tasks.views import TagViewSet, TaskListViewSet, TaskViewSet

router = SimpleRouter()
router.register("lists", TaskListViewSet, basename="list")
router.register("tasks", TaskViewSet, basename="task")
router.register("tags", TagViewSet, basename="tag")

urlpatterns = [
    # The detail URL of a task answers its plainest GET itself (tasks/fast_read.py).
    URLPattern(url.pattern, with_fast_get(url.callback), url.default_args, url.name)
    if url.name == "task-detail"
    else url
    for url in router.urls
]
