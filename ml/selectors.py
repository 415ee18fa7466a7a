"""Reads behind the learning surfaces (API, CLI): models, decisions, insights, predictions, ETAs.

Thin over ml.registry/predict/patterns and coordination: the API and the CLI ask here, so `hive ml
status` and `GET /api/v1/ml/models/` (and the other pairs) cannot tell different stories.
Nothing here trains; `model_versions` refreshes the stored drift of the active models (a read of
recent history) because a status without it would be stale.

Team visibility is Task.objects.visible_to, the rule coordination.selectors states (ml cannot import
that module: it reaches the broker): decisions belong to their task, so a non-staff
caller sees the decisions of their team's tasks only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from coordination.models import Priority, RoutingDecision, Source, Task
from coordination.routing import TaskSpec, eligible_pools
from ml.models import ModelVersion
from ml.patterns import Insights, insights
from ml.predict import Eta, NoModel, PoolPrediction, duration_model, predict_pools, task_etas
from ml.registry import active_models

DRIFT_KINDS = ("duration", "success")  # the forecast's error is measured when it is retrained
RECOMMENDATION_KINDS = ("reroute", "fix_task", "raise_timeout")  # ml.patterns.Recommendation.kind


# --- models ----------------------------------------------------------------------------------------------
def model_versions(*, kind: str | None = None, measure_drift: bool = True) -> list[ModelVersion]:
    """Every registered version (of `kind`), by kind then newest first; with `measure_drift`, the
    active duration and success versions carry their drift measured now (stored on the row)."""
    from ml.services import measure_drift as measure

    versions = ModelVersion.objects.order_by("kind", "-version")
    if kind:
        versions = versions.filter(kind=kind)
    rows = list(versions)
    if measure_drift:
        for row in rows:
            if row.active and row.kind in DRIFT_KINDS:
                drift = measure(row)
                if drift is not None:
                    row.drift = drift
    return rows


def model_version_dict(row: ModelVersion) -> dict[str, Any]:
    """A version as the API and `hive ml status --json` show it (times as datetimes: each renders them);
    `metric` names the error that decides promotion (lower is better), in `metrics` and `baseline_metrics`."""
    from ml.training import PRIMARY

    return {
        "kind": row.kind,
        "version": row.version,
        "metric": PRIMARY.get(row.kind, ""),
        "trained_at": row.trained_at,
        "trained_until": row.trained_until,
        "samples": row.samples,
        "algorithm": row.algorithm,
        "features": list(row.features or []),
        "metrics": row.metrics or {},
        "baseline_metrics": row.baseline_metrics or {},
        "active": row.active,
        "activated_at": row.activated_at,
        "promotion": row.promotion,
        "drift": row.drift or None,
        "training_seconds": row.training_seconds,
    }


# --- decisions -------------------------------------------------------------------------------------------
def decisions_visible_to(
    *,
    team_id: int | None,
    staff: bool,
    task: str | None = None,
    pool: str | None = None,
    strategy: str | None = None,
) -> QuerySet[RoutingDecision]:
    """Routing decisions of the tasks this principal may see, newest first; optionally of one task
    (its full id), one chosen pool or one strategy."""
    visible = Task.objects.visible_to(team_id=team_id, staff=staff)  # the rule of coordination.selectors
    decisions = RoutingDecision.objects.filter(task__in=visible).select_related("task", "chosen_pool")
    if task:
        decisions = decisions.filter(task_id=task)
    if pool:
        decisions = decisions.filter(chosen_pool__name=pool)
    if strategy:
        decisions = decisions.filter(strategy=strategy)
    return decisions.order_by("-decided_at", "-id")


def decision_dict(decision: RoutingDecision) -> dict[str, Any]:
    """A decision as the API and `hive decisions --json` show it: `outcome` is null until the task ended."""
    closed = decision.closed_at is not None
    outcome = (
        {
            "duration": decision.duration,
            "success": decision.success,
            "attempts": decision.attempts,
            "closed_at": decision.closed_at,
        }
        if closed
        else None
    )
    return {
        "task": str(decision.task_id),
        "strategy": decision.strategy,
        "pool": decision.chosen_pool.name if decision.chosen_pool else None,
        "candidates": list(decision.candidates or []),
        "confidence": decision.confidence,
        "model_version": decision.model_version,
        "fallback": decision.fallback,
        "reason": decision.reason,
        "predicted_seconds": decision.predicted_seconds,
        "predicted_p90": decision.predicted_p90,
        "predicted_success": decision.predicted_success,
        "decided_at": decision.decided_at,
        "decision_ms": decision.decision_ms,
        "outcome": outcome,
    }


# --- insights --------------------------------------------------------------------------------------------
def insights_current(*, window: int | None = None) -> Insights:
    """Failure patterns and recommendations over the last `window` attempts (pattern_optimizer's
    learning_window_size by default), computed now from the history."""
    return insights(window=window)


def insights_dict(found: Insights) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "attempts": found.attempts,
        "patterns": [asdict(p) for p in found.patterns],
        "recommendations": [asdict(r) for r in found.recommendations],
    }


# --- predictions ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolForecast:
    """What a new task of this kind would meet on one eligible pool (from ml.predict)."""

    prediction: PoolPrediction
    eta: datetime  # when it would be done: now + wait + p50 × expected attempts

    def as_dict(self) -> dict[str, Any]:
        p = self.prediction
        return {
            "pool": p.pool,
            "p50_seconds": round(p.p50, 3),
            "p90_seconds": round(p.p90, 3),
            "success_probability": round(p.success, 4),
            "expected_attempts": round(p.attempts, 3),
            "expected_wait_seconds": round(p.wait, 3),
            "eta_seconds": round(p.expected, 3),
            "eta": self.eta,
            "history": p.history,
            "success_source": p.success_source,
            "model_version": p.model_version,
        }


def predictions_for(
    *,
    capabilities: Sequence[str],
    task_type: str = "general",
    complexity: int | None = None,
    priority: str = Priority.NORMAL,
    prompt_length: int = 0,
    source: str = Source.API,
    now: datetime | None = None,
) -> list[PoolForecast]:
    """Per eligible pool (by name), the predicted duration, success, wait and ETA of a task of
    this kind submitted now. Raises NoEligiblePool (no pool covers `capabilities`) or NoModel."""
    now = now or timezone.now()
    pools = sorted(eligible_pools(capabilities), key=lambda p: p.name)
    spec = TaskSpec(
        task_type=task_type,
        capabilities=tuple(sorted({c.strip().lower() for c in capabilities})),
        priority=priority,
        complexity=complexity,
        prompt_length=prompt_length,
        source=source,
    )
    return [
        PoolForecast(prediction=p, eta=now + timedelta(seconds=p.expected))
        for p in predict_pools(spec=spec, pools=pools, at=now)
    ]


# --- ETAs of tasks ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskEtas:
    """ETAs of the queued and running tasks among those asked about; `reason` says why there are
    none when no model can predict (empty otherwise)."""

    etas: dict[str, Eta]
    reason: str = ""

    def of(self, task: Task) -> Eta | None:
        return self.etas.get(str(task.id))


def task_etas_for(tasks: Iterable[Task], *, now: datetime | None = None) -> TaskEtas:
    """ETAs (p50 and p90, from now) of the queued and running ones among `tasks`; none, with the
    reason, when there is no usable duration model. Select `pool` and `agent` with the tasks."""
    active = [t for t in tasks if t.status in (Task.Status.QUEUED, Task.Status.RUNNING)]
    if not active:
        return TaskEtas(etas={})
    try:
        return TaskEtas(etas=task_etas(active, now=now))
    except NoModel as exc:
        return TaskEtas(etas={}, reason=str(exc))


def etas_unavailable() -> str | None:
    """Why no task can have an ETA now (no usable duration model), or None when one is active.
    Cheap (the registry rechecks the database at most every few seconds): a list asks it before
    loading its live tasks as models only to be told there is no model."""
    try:
        duration_model(active_models())
    except NoModel as exc:
        return str(exc)
    return None


def task_prediction(task: Task, *, now: datetime | None = None) -> dict[str, Any] | None:
    """The `prediction` block of a task's detail: its ETA (p50, p90), the wait in its pool and the
    model version; the same keys, null, with `reason` when no model predicts; None for a task that
    is not queued or running (or not routed to a pool yet)."""
    if task.status not in (Task.Status.QUEUED, Task.Status.RUNNING) or task.pool_id is None:
        return None
    found = task_etas_for([task], now=now)
    eta = found.of(task)
    if eta is None:
        return {
            "eta_seconds": None,
            "eta_p90_seconds": None,
            "eta": None,
            "wait_seconds": None,
            "model_version": None,
            "reason": found.reason or "no prediction for this task",
        }
    return eta_dict(eta)


def eta_dict(eta: Eta) -> dict[str, Any]:
    return {
        "eta_seconds": round(eta.seconds, 3),
        "eta_p90_seconds": round(eta.p90_seconds, 3),
        "eta": eta.at,
        "wait_seconds": round(eta.wait, 3),
        "model_version": eta.model_version,
        "reason": None,
    }
