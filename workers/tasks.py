"""Celery tasks: adapters that translate a message into one service call."""

from __future__ import annotations

import os
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from agents.runners.execute import attempt_run
from coordination.models import Event
from coordination.processes import HOSTNAME
from coordination.recovery import reconcile
from coordination.services import task_claim
from ml.services import ml_retrain_if_due
from workers.agent import current_agent


@shared_task(name="hive.execute_task", bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def execute_task(self, task_id: str) -> None:
    """Claim the task and run one attempt. A duplicate or stale delivery claims nothing and returns."""
    agent = current_agent(self.request.hostname, queue=(self.request.delivery_info or {}).get("routing_key"))
    attempt = task_claim(task_id=task_id, agent=agent, pid=os.getpid(), host=HOSTNAME)
    if attempt is None:
        return
    attempt_run(attempt=attempt)


@shared_task(name="hive.reconcile", ignore_result=True)
def reconcile_hive() -> dict:
    report = reconcile()
    return report.__dict__


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
