"""Celery tasks: adapters that translate a message into one service call."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import cast

from celery import Task as CeleryTask
from celery import shared_task
from django.conf import settings
from django.utils import timezone

from coordination import budgets, flow, notify
from coordination.models import Event
from coordination.monitoring import monitoring_tick
from coordination.processes import HOSTNAME
from coordination.recovery import reconcile
from coordination.scaling.services import scaling_evaluate
from coordination.services import task_claim
from coordination.sessions import session_reconcile
from ml.services import ml_retrain_if_due
from workers.agent import OVER_RESOURCE_LIMITS, claims_stopped, current_agent
from workers.attempt import attempt_run

log = logging.getLogger(__name__)


@shared_task(name="hive.execute_task", bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def execute_task(self: CeleryTask[..., None], task_id: str) -> None:
    """Claim the task and run one attempt. A duplicate or stale delivery claims nothing and returns.

    Before the claim, flow control may hold the task back (this worker is over its resource limits,
    the pool's or the team's daily budget is spent (prompt tasks only, coordination.budgets), the
    pool is paused after a provider rate limit, or at its max_concurrent / max_starts_per_minute):
    then it stays queued, spends no attempt, and its message comes back after the wait. A spent
    budget is the reason given over the flow limits; a held task gives its flow slot back unused.
    """
    node = cast(str, self.request.hostname)  # a worker names every request it delivers; only workers run this
    agent = current_agent(node, queue=(self.request.delivery_info or {}).get("routing_key"))
    if claims_stopped(agent.name):
        flow.task_defer(task_id=task_id, admission=OVER_RESOURCE_LIMITS)
        return
    admission = flow.admit(pool=agent.pool, task_id=task_id)
    if not admission.ok:
        hold = budgets.task_budget_admit(task_id=task_id)  # a held task waits for its budget, not a slot
        if hold is not None:
            budgets.task_hold(task_id=task_id, hold=hold)
        else:
            flow.task_defer(task_id=task_id, admission=admission)
        return
    attempt = None
    try:
        # The claim's UPDATE takes a task that no budget can hold (most: no budget set, or a command
        # task) without asking the budgets; any other goes through them first, and may be held.
        attempt = task_claim(task_id=task_id, agent=agent, pid=os.getpid(), host=HOSTNAME, budget_free=True)
        if attempt is None:
            hold = budgets.task_budget_admit(task_id=task_id)
            if hold is not None:
                budgets.task_hold(task_id=task_id, hold=hold)
                return
            attempt = task_claim(task_id=task_id, agent=agent, pid=os.getpid(), host=HOSTNAME)
        if attempt is not None:
            attempt_run(attempt=attempt, lease=admission.lease)
    finally:
        flow.release(pool=agent.pool.name, admission=admission, started=attempt is not None)


@shared_task(name="hive.reconcile", ignore_result=True)
def reconcile_hive() -> dict:
    report = reconcile()
    return report.__dict__


@shared_task(name="hive.scale", ignore_result=True)
def scale_pools() -> list[dict]:
    """Evaluate every pool's size once (beat, on hive.control). Another beat holding the scaling
    lease makes this a no-op, so two beats never both act."""
    return [
        {"pool": d.pool.name, "previous": d.previous, "desired": d.desired, "applied": d.applied}
        for d in scaling_evaluate()
    ]


@shared_task(name="hive.session_reconcile", ignore_result=True)
def reconcile_sessions() -> dict:
    """Advance every active coordination session (ready steps, ended tasks, passed deadlines)."""
    return session_reconcile()


@shared_task(name="hive.event_retention", ignore_result=True)
def event_retention() -> int:
    """Delete events older than the configured retention (the task rows keep their outcome)."""
    hours = settings.HIVE_CONFIG.external_api.event_streaming.event_retention_hours
    deleted, _ = Event.objects.filter(created_at__lt=timezone.now() - timedelta(hours=hours)).delete()
    return deleted


@shared_task(name="hive.ml_retrain", ignore_result=True)
def ml_retrain() -> dict:
    """Train the models that are due (hourly/daily, or early on drift); one training at a time."""
    return ml_retrain_if_due().as_dict()


@shared_task(name="hive.monitor", ignore_result=True)
def monitor() -> dict:
    """One performance-monitoring round (beat, on hive.control): pool samples and alerts. Every raise
    and resolve is then POSTed to the alerts webhook by its own `hive.alert_notify` message, so a slow
    or broken receiver never holds this round up."""
    round_ = monitoring_tick()
    if notify.alerts_webhook_url() is not None:
        for change in round_.changes:
            try:
                alert_notify.apply_async((change.event_id,), queue="hive.control")
            except Exception as exc:  # the broker away: the alert and its event are stored all the same
                log.warning("could not queue the webhook of alert event %s: %s", change.event_id, exc)
    return {
        "ran": round_.ran,
        "samples": round_.samples,
        "pruned": round_.pruned,
        "changes": [[change.change, change.alert.subject] for change in round_.changes],
    }


@shared_task(name="hive.alert_notify", bind=True, acks_late=True, ignore_result=True, max_retries=notify.RETRIES)
def alert_notify(self: CeleryTask[..., str], event_id: int) -> str:
    """POST one alert event to `monitoring.alerts.webhook_url`; retried with backoff and jitter while
    another attempt can help, then given up with an error in the log (the event row stays)."""
    try:
        return notify.alert_notify(event_id=event_id)
    except notify.DeliveryFailed as exc:
        if exc.retryable and (self.max_retries is None or self.request.retries < self.max_retries):
            delay = notify.backoff(self.request.retries)
            log.warning("alert event %s: %s; retrying in %.1fs", event_id, exc, delay)
            raise self.retry(countdown=delay, exc=exc) from None
        log.error(
            "alert event %s was not delivered to the alerts webhook: %s (after %d attempts)",
            event_id,
            exc,
            self.request.retries + 1,
        )
        return f"failed: {exc}"
