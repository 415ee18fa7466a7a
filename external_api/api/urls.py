from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from external_api.api import sessions, views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("tasks", views.TaskViewSet, basename="task")
router.register("agents", views.AgentViewSet, basename="agent")
router.register("pools", views.PoolViewSet, basename="pool")
router.register("sessions", sessions.SessionViewSet, basename="session")

urlpatterns = [
    path("v1/auth/token/", TokenObtainPairView.as_view(), name="token_obtain"),
    path("v1/auth/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("v1/events/", views.EventsView.as_view(), name="events"),
    path("v1/status/", views.StatusView.as_view(), name="status"),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]
