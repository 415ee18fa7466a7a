"""Health, readiness and metrics answer before host validation and sessions.

Kubernetes probes and Prometheus call pods by IP, which is not in ALLOWED_HOSTS; these three
endpoints reveal nothing host-specific, so they skip the host check rather than widen it.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from hive_project import health, metrics

PROBES = {"/health": health.health, "/ready": health.ready, "/metrics": metrics.metrics}


class ProbesMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = PROBES.get(request.path)
        if view is not None and request.method in ("GET", "HEAD"):
            return view(request)
        return self.get_response(request)
