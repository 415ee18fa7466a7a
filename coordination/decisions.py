"""Routing decisions: recorded with the task at submit, closed with its outcome when it ends."""

from __future__ import annotations

from django.utils import timezone

from coordination.metrics import PREDICTION_ERROR
from coordination.models import RoutingDecision, Task, TaskAttempt
from coordination.routing import Choice
from coordination.rows import row_insert


def decision_record(*, task: Task, choice: Choice) -> RoutingDecision:
    """Store the Choice that placed `task` (inside the submit transaction)."""
    decision = RoutingDecision(
        task=task,
        strategy=choice.strategy,
        chosen_pool=choice.pool,
        candidates=choice.candidates,
        confidence=choice.confidence,
        model_version=choice.model_version[:100],
        fallback=choice.fallback[:40],
        reason=choice.reason,
        predicted_seconds=choice.predicted_seconds,
        predicted_p90=choice.predicted_p90,
        predicted_success=choice.predicted_success,
        decided_at=timezone.now(),
        decision_ms=round(choice.decision_ms, 3),
    )
    row_insert(decision)
    return decision


def decision_close(*, task: Task, attempt: TaskAttempt | None) -> bool:
    """Write the outcome of a task that reached a terminal status onto its decision.

    Idempotent: a decision already closed is left as it is (a retried task keeps the outcome of
    its first run). Observes the prediction error when the decision predicted a duration.
    Returns whether a decision was closed.
    """
    duration = attempt.duration if attempt is not None else None
    closed = RoutingDecision.objects.filter(task_id=task.id, closed_at__isnull=True).update(
        duration=duration,
        success=task.status == Task.Status.SUCCEEDED if task.status != Task.Status.CANCELLED else None,
        attempts=task.attempts,
        closed_at=timezone.now(),
    )
    if closed and duration is not None:
        predicted = RoutingDecision.objects.filter(task_id=task.id).values_list("predicted_seconds", flat=True).first()
        if predicted is not None:
            PREDICTION_ERROR.observe(abs(duration - predicted))
    return bool(closed)
