"""Routing decisions: recorded with the task at submit, closed with its outcome when it ends."""

from __future__ import annotations

from django.db import connection
from django.utils import timezone

from coordination.metrics import PREDICTION_ERROR
from coordination.models import RoutingDecision, Task, TaskAttempt
from coordination.routing import Choice
from coordination.rows import row_insert


def decision_record(*, task: Task, choice: Choice) -> RoutingDecision:
    """Store the Choice that placed `task` (inside the submit transaction)."""
    decision = decision_row(task=task, choice=choice)
    row_insert(decision)
    return decision


def decision_row(*, task: Task, choice: Choice) -> RoutingDecision:
    """The unsaved RoutingDecision for `choice` (for a caller that inserts it with other rows)."""
    return RoutingDecision(
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


def decision_close(*, task: Task, attempt: TaskAttempt | None) -> bool:
    """Write the outcome of a task that reached a terminal status onto its decision.

    Idempotent: a decision already closed is left as it is (a retried task keeps the outcome of
    its first run). Observes the prediction error when the decision predicted a duration.
    Returns whether a decision was closed.
    """
    duration = attempt.duration if attempt is not None else None
    success = task.status == Task.Status.SUCCEEDED if task.status != Task.Status.CANCELLED else None
    # One statement: the conditional UPDATE returns the prediction it closes (no read after it).
    q = connection.ops.quote_name
    meta = RoutingDecision._meta
    sql = (
        f"UPDATE {q(meta.db_table)} SET {q('duration')} = %s, {q('success')} = %s, {q('attempts')} = %s, "
        f"{q('closed_at')} = %s WHERE {q('task_id')} = %s AND {q('closed_at')} IS NULL RETURNING {q('predicted_seconds')}"
    )
    task_id = meta.get_field("task").get_db_prep_value(task.id, connection)
    closed_at = meta.get_field("closed_at").get_db_prep_value(timezone.now(), connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [duration, success, task.attempts, closed_at, task_id])
        rows = cursor.fetchall()
    if rows and duration is not None and rows[0][0] is not None:
        PREDICTION_ERROR.observe(abs(duration - rows[0][0]))
    return bool(rows)
