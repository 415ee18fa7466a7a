from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from external_api.api import alerts, costs, ml, sessions, views
from external_api.api.auth import StrictTokenObtainView, StrictTokenRefreshView

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("tasks", views.TaskViewSet, basename="task")
router.register("agents", views.AgentViewSet, basename="agent")
router.register("pools", views.PoolViewSet, basename="pool")
router.register("sessions", sessions.SessionViewSet, basename="session")
router.register("decisions", ml.DecisionViewSet, basename="decision")

urlpatterns = [
    path("v1/auth/token/", StrictTokenObtainView.as_view(), name="token_obtain"),
    path("v1/auth/token/refresh/", StrictTokenRefreshView.as_view(), name="token_refresh"),
    path("v1/events/", views.EventsView.as_view(), name="events"),
    path("v1/alerts/", alerts.AlertsView.as_view(), name="alerts"),
    path("v1/status/", views.StatusView.as_view(), name="status"),
    path("v1/costs/", costs.CostsView.as_view(), name="costs"),
    path("v1/ml/models/", ml.ModelsView.as_view(), name="ml-models"),
    path("v1/ml/train/", ml.TrainView.as_view(), name="ml-train"),
    path("v1/insights/", ml.InsightsView.as_view(), name="insights"),
    path("v1/predict/", ml.PredictView.as_view(), name="predict"),
    # KEDA's metrics-api scaler calls the URL as configured: answer with and without the slash, no redirect.
    re_path(r"^v1/pools/(?P<name>[-a-zA-Z0-9_]+)/scale/?$", views.PoolScaleView.as_view(), name="pool-scale"),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]
