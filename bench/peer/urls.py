from rest_framework.routers import SimpleRouter

from bench.peer.views import NoteViewSet

router = SimpleRouter()
router.register("peer/notes", NoteViewSet, basename="note")
urlpatterns = router.urls
