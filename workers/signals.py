"""Worker lifecycle: check containment before a pool worker takes work, register the agent when it
is ready, mark it offline on shutdown."""

from __future__ import annotations

import logging
import sys

from celery.signals import worker_init, worker_ready, worker_shutdown

from agents.models import AgentPool
from agents.runners import containment
from hive_project.paths import protect_private_files
from workers.agent import Heartbeat, heartbeat_interval, pool_of_queue, register

log = logging.getLogger(__name__)

_heartbeat: Heartbeat | None = None


@worker_init.connect
def on_worker_init(sender=None, **kwargs) -> None:
    """Before a pool worker consumes anything: refuse (one line on stderr, exit 2) a pool whose
    runner cannot be contained as configured, or would run programs as root without a sandbox in
    production (a warning in development); then close the hive's files to other users."""
    queues = list(sender.app.amqp.queues.consume_from or {})
    pools = [p for p in (pool_of_queue(q) for q in queues) if p]
    if not pools:
        return  # the control worker runs no programs
    from django.conf import settings

    config = settings.HIVE_CONFIG
    runners = {name: config.agents[name].runner.model_dump(mode="json") for name in pools if name in config.agents}
    refusals, warnings = containment.start_check(
        runners, default_user=config.system.runner_user, production=settings.PRODUCTION
    )
    for line in warnings:
        sys.stderr.write(f"hive: warning: {line}\n")
    if refusals:
        sys.stderr.write("".join(f"hive: {line}\n" for line in refusals))
        sys.stderr.flush()
        raise SystemExit(2)
    for problem in protect_private_files(settings.DATABASES):
        sys.stderr.write(f"hive: warning: {problem}\n")


@worker_ready.connect
def on_worker_ready(sender=None, **kwargs) -> None:
    global _heartbeat
    queues = [q.name for q in sender.task_consumer.queues]
    pools = [p for p in (pool_of_queue(q) for q in queues) if p]
    if not pools:
        return  # the control worker is not an agent
    from django.conf import settings

    from coordination.fleet import pool_sync

    pool_sync(config=settings.HIVE_CONFIG)
    pool = AgentPool.objects.get(name=pools[0])
    concurrency = sender.pool.num_processes if hasattr(sender.pool, "num_processes") else sender.controller.concurrency
    agent = register(sender.hostname, pool, concurrency)
    _heartbeat = Heartbeat(agent=agent, consumer=sender, interval=heartbeat_interval())
    _heartbeat.start()
    log.info("agent %s online for pool %s (concurrency %s)", agent.name, pool.name, concurrency)


@worker_shutdown.connect
def on_worker_shutdown(**kwargs) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
