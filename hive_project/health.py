"""Liveness and readiness. Both are public (load balancers and Kubernetes probes call them)."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse

from coordination.dispatch import redis_client


def health(request: HttpRequest) -> JsonResponse:
    """The process answers: it is alive. Nothing external is checked, so a Redis outage does not
    make an orchestrator restart every web process."""
    return JsonResponse({"status": "ok"})


def ready(request: HttpRequest) -> JsonResponse:
    """Ready to take traffic: the database and Redis answer."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        redis_client().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)
