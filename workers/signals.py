"""Worker lifecycle: register the agent when a pool worker is ready, mark it offline on shutdown."""

from __future__ import annotations

import logging

from celery.signals import worker_ready, worker_shutdown

from agents.models import AgentPool
from workers.agent import Heartbeat, heartbeat_interval, pool_of_queue, register

log = logging.getLogger(__name__)

_heartbeat: Heartbeat | None = None


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
