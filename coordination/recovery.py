"""Beat's reconciliation: silent agents go offline, lost attempts are re-queued, and queued tasks
whose message the broker no longer holds are sent again. Safe to run from two beats at once:
every change is a conditional UPDATE and a resent message is only claimed once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.models import Agent
from coordination import dispatch as broker
from coordination.events import publish
from coordination.models import Task, TaskAttempt
from coordination.services import attempt_lost, count_agent_failure, task_send

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    agents_offline: int = 0
    attempts_lost: int = 0
    tasks_resent: int = 0


def reconcile() -> ReconcileReport:
    cfg = settings.HIVE_CONFIG.multi_agent
    offline_after = timedelta(seconds=cfg.offline_after)
    return ReconcileReport(
        agents_offline=agents_mark_offline(older_than=offline_after),
        attempts_lost=attempts_recover_stale(older_than=offline_after),
        tasks_resent=tasks_resend_unclaimed(older_than=timedelta(seconds=cfg.redispatch_after)),
    )


def agents_mark_offline(*, older_than: timedelta) -> int:
    """Agents whose heartbeat stopped go offline; their running attempts are lost."""
    count = 0
    for agent in Agent.objects.stale(older_than=older_than):
        with transaction.atomic():
            changed = (
                Agent.objects.filter(id=agent.id, last_heartbeat=agent.last_heartbeat)
                .exclude(status=Agent.Status.OFFLINE)
                .update(status=Agent.Status.OFFLINE, stopped_at=timezone.now(), load=0)
            )
            if not changed:
                continue
            publish(
                "agent.offline",
                agent=agent,
                pool=agent.pool,
                reason="no heartbeat",
                last_heartbeat=agent.last_heartbeat.isoformat(),
            )
            count_agent_failure(pool=agent.pool.name)  # a clean shutdown (scale-in) is no failure
        count += 1
        running = TaskAttempt.objects.filter(agent=agent, outcome=TaskAttempt.Outcome.RUNNING).order_by("id")
        for attempt_id in list(running.values_list("id", flat=True)):
            attempt_lost(attempt_id=attempt_id, reason=f"agent {agent.name} went offline")
    return count


def attempts_recover_stale(*, older_than: timedelta) -> int:
    """Running attempts whose runner stopped beating (its process died) are lost."""
    cutoff = timezone.now() - older_than
    # Ordered by id, not by the model's (task, number), which joins every stale attempt to its task
    # and sorts them: the order does not matter, each one is recovered on its own.
    stale = TaskAttempt.objects.filter(outcome=TaskAttempt.Outcome.RUNNING, heartbeat_at__lt=cutoff).order_by("id")
    count = 0
    for attempt_id in stale.values_list("id", flat=True):
        attempt_lost(attempt_id=attempt_id, reason="the attempt stopped sending heartbeats")
        count += 1
    return count


def tasks_resend_unclaimed(*, older_than: timedelta) -> int:
    """Send again the queued tasks that were due long enough ago but that no queue holds."""
    cutoff = timezone.now() - older_than
    candidates = list(
        Task.objects.filter(status=Task.Status.QUEUED, dispatched_at__lt=cutoff, available_at__lt=cutoff)
        .select_related("pool")
        .order_by("dispatched_at")[:5000]
    )
    if not candidates:
        return 0
    try:
        # A message reserved before the cutoff by a worker that has not claimed it is held by a dead one.
        held = broker.task_ids_in_broker(
            sorted({t.routed_pool.queue for t in candidates}), reserved_within=older_than.total_seconds()
        )
    except Exception as exc:
        log.warning("cannot read the broker (%s); resending nothing this round", exc)
        return 0
    count = 0
    for task in candidates:
        if str(task.id) in held:
            continue
        moved = Task.objects.filter(id=task.id, status=Task.Status.QUEUED, dispatched_at=task.dispatched_at).update(
            dispatched_at=timezone.now()
        )
        if moved and task_send(task):
            count += 1
    if count:
        publish("tasks.resent", count=count)
        log.info("resent %d queued tasks the broker had lost", count)
    return count
