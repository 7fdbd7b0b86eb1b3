from rest_framework.routers import SimpleRouter

from tasks.views import TagViewSet, TaskListViewSet, TaskViewSet

router = SimpleRouter()
router.register("lists", TaskListViewSet, basename="list")
router.register("tasks", TaskViewSet, basename="task")
router.register("tags", TagViewSet, basename="tag")

urlpatterns = router.urls
