"""URLs by role: `hive serve --role gateway|webhooks|streaming|all` serves one front door or all.

Health, readiness and metrics are served by every role.
"""

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

from external_api import dashboard
from hive_project import health, metrics

admin.site.site_header = "Agent Hive"
admin.site.site_title = "Agent Hive"

urlpatterns: list[URLPattern | URLResolver] = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path(settings.HIVE_CONFIG.monitoring.prometheus.path.lstrip("/"), metrics.metrics, name="metrics"),
]
if settings.SERVE_ROLE in ("all", "gateway"):
    urlpatterns += [path("api/", include("external_api.api.urls")), path("admin/", admin.site.urls)]
    urlpatterns += [
        path("login/", dashboard.login, name="login"),
        path("logout/", dashboard.logout, name="logout"),
        path("dashboard/series/", dashboard.series, name="dashboard-series"),
        path("", dashboard.dashboard, name="dashboard"),
    ]
if settings.SERVE_ROLE in ("all", "webhooks"):
    urlpatterns += [path("webhooks/", include("external_api.webhooks.urls"))]
