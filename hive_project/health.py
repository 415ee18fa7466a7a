"""Liveness and readiness. Both are public (load balancers and Kubernetes probes call them).

`readiness()` is the one place that decides whether the hive can take traffic; `/ready`,
`/api/v1/status/` and `hive status` all ask it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.http import HttpRequest, JsonResponse

from coordination.dispatch import redis_client


@dataclass(frozen=True)
class Check:
    """One dependency's answer: `error` is None when it answered."""

    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        """`ok`, or `error: <ExceptionClass>` (no message: it may name hosts or credentials)."""
        return "ok" if self.error is None else f"error: {self.error.__class__.__name__}"


class Readiness(dict[str, Check]):
    """`database` and `redis`, each a Check, in that order."""

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.values())


def readiness() -> Readiness:
    """Whether the database and Redis answer now (a `SELECT 1` and a `PING`). Never raises."""
    checks = Readiness()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = Check()
    except Exception as exc:
        checks["database"] = Check(exc)
    try:
        redis_client().ping()
        checks["redis"] = Check()
    except Exception as exc:
        checks["redis"] = Check(exc)
    return checks


def health(request: HttpRequest) -> JsonResponse:
    """The process answers: it is alive. Nothing external is checked, so a Redis outage does not
    make an orchestrator restart every web process."""
    return JsonResponse({"status": "ok"})


def ready(request: HttpRequest) -> JsonResponse:
    """Ready to take traffic: the database and Redis answer."""
    checks = readiness()
    return JsonResponse(
        {"status": "ok" if checks.ok else "unavailable", "checks": {name: c.describe() for name, c in checks.items()}},
        status=200 if checks.ok else 503,
    )
