"""Health, readiness and metrics answer before host validation and sessions.

Kubernetes probes and Prometheus call pods by IP, which is not in ALLOWED_HOSTS; these three
endpoints reveal nothing host-specific, so they skip the host check rather than widen it.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from hive_project import health, metrics

PROBES = {"/health": health.health, "/ready": health.ready}


class ProbesMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # read per request, so a test's override of settings.HIVE_CONFIG takes effect
        metrics_path = settings.HIVE_CONFIG.monitoring.prometheus.path
        view = metrics.metrics if request.path == metrics_path else PROBES.get(request.path)
        if view is not None and request.method in ("GET", "HEAD"):
            return view(request)
        return self.get_response(request)
