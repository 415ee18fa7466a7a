"""The fleet: pools follow the configuration; agents register, beat, drain and leave."""

from __future__ import annotations

import logging
import uuid

from django.db import connection, transaction
from django.utils import timezone

from agents.models import Agent, AgentPool
from coordination import budgets, dispatch
from coordination.events import publish
from coordination.models import Task, TaskAttempt
from coordination.services import attempt_lost

log = logging.getLogger(__name__)


def pool_sync(*, config) -> list[AgentPool]:
    """Create or update one AgentPool row per configured pool; disable pools no longer configured.

    The desired instance count (which beat's scaler and operators change at run time) is kept
    within the new min/max bounds, zero included when the pool's minimum is zero: a worker
    starting (which syncs too) must not wake a pool the scaler put to sleep. A new pool starts
    at max(1, min_instances). With scaling disabled every pool is set to that size, the one
    `hive up` then runs (hive_project.actuator.configured_size). A raised (or removed)
    budget_usd_per_day releases the tasks it held.
    """
    pools = []
    scaling = config.scaling.enabled
    with transaction.atomic():
        for name, spec in config.agents.items():
            size = min(max(1, spec.min_instances), spec.max_instances)
            pool, _ = AgentPool.objects.get_or_create(name=name, defaults={"desired_instances": size})
            pool.capabilities = list(spec.capabilities)
            pool.runner = spec.runner.model_dump(mode="json")
            pool.workspace = spec.workspace.model_dump(mode="json")
            pool.concurrency = spec.concurrency
            pool.min_instances = spec.min_instances
            pool.max_instances = spec.max_instances
            kept = min(max(pool.desired_instances, spec.min_instances), spec.max_instances)
            pool.desired_instances = kept if scaling else size
            pool.allow_commands = spec.allow_commands
            pool.max_attempts = spec.max_attempts
            pool.max_concurrent = spec.max_concurrent
            pool.max_starts_per_minute = spec.max_starts_per_minute
            raised = pool.budget_usd_per_day is not None and (
                spec.budget_usd_per_day is None or spec.budget_usd_per_day > pool.budget_usd_per_day
            )
            pool.budget_usd_per_day = spec.budget_usd_per_day
            pool.enabled = True
            pool.save()
            if raised:  # the tasks it held ask again now, not at their next recheck
                budgets.held_release(pool_id=pool.id)
            pools.append(pool)
        AgentPool.objects.exclude(name__in=list(config.agents)).update(enabled=False)
    return pools


def agent_register(*, name: str, pool: AgentPool, host: str, pid: int, concurrency: int) -> Agent:
    """A worker started: mark its agent online under a new incarnation.

    Attempts still marked running on this agent belong to its previous incarnation, which is gone
    (the same node name cannot run twice), so they are recovered now rather than after a timeout.
    """
    now = timezone.now()
    with transaction.atomic():
        agent, _ = Agent.objects.update_or_create(
            name=name,
            defaults={
                "pool": pool,
                "status": Agent.Status.ONLINE,
                "host": host,
                "pid": pid,
                "concurrency": concurrency,
                "incarnation": uuid.uuid4(),
                "load": 0,
                "last_heartbeat": now,
                "started_at": now,
                "stopped_at": None,
            },
        )
        publish("agent.online", agent=agent, pool=pool, host=host, pid=pid, concurrency=concurrency)
    orphans = (
        TaskAttempt.objects.filter(agent=agent, outcome=TaskAttempt.Outcome.RUNNING)
        .order_by("id")
        .values_list("id", flat=True)
    )
    for attempt_id in list(orphans):
        attempt_lost(attempt_id=attempt_id, reason=f"agent {name} restarted")
    return agent


def agent_heartbeat(*, agent_id: int, resources: dict) -> str | None:
    """Refresh the heartbeat, the resources sample and the load (the agent's running tasks, counted
    inside the same statement). Returns the agent's status now, or None when it was marked offline
    meanwhile (it must register again).

    One statement, `UPDATE ... RETURNING status`: a worker beats every few seconds, so with
    hundreds of agents a separate count and a separate status read would triple the database's
    share of the fleet's chatter.
    """
    quote = connection.ops.quote_name
    agent, task = Agent._meta, Task._meta

    def column(meta, name: str) -> str:
        return quote(meta.get_field(name).column)

    load = (
        f"SELECT COUNT(*) FROM {quote(task.db_table)} "
        f"WHERE {column(task, 'agent')} = %s AND {column(task, 'status')} = %s"
    )
    sql = (
        f"UPDATE {quote(agent.db_table)} SET {column(agent, 'last_heartbeat')} = %s, {column(agent, 'resources')} = %s, "
        f"{column(agent, 'load')} = ({load}) WHERE {column(agent, 'id')} = %s AND {column(agent, 'status')} <> %s "
        f"RETURNING {column(agent, 'status')}"
    )
    params = [
        agent.get_field("last_heartbeat").get_db_prep_value(timezone.now(), connection),
        agent.get_field("resources").get_db_prep_value(resources, connection),
        agent_id,
        Task.Status.RUNNING.value,
        agent_id,
        Agent.Status.OFFLINE.value,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


def agent_stopped(*, agent_id: int) -> None:
    with transaction.atomic():
        agent = Agent.objects.select_related("pool").get(id=agent_id)
        Agent.objects.filter(id=agent_id).update(status=Agent.Status.OFFLINE, stopped_at=timezone.now(), load=0)
        publish("agent.offline", agent=agent, pool=agent.pool, reason="worker shut down")


def agent_drain(*, agent: Agent) -> Agent:
    """Stop an agent taking new tasks; what it runs finishes. Tells the worker to stop consuming."""
    with transaction.atomic():
        Agent.objects.filter(id=agent.id).exclude(status=Agent.Status.OFFLINE).update(status=Agent.Status.DRAINING)
        agent.refresh_from_db()
        publish("agent.draining", agent=agent, pool=agent.pool)
    dispatch.stop_consuming(queue=agent.pool.queue, node=agent.name)
    return agent


def agent_attempts_running(*, agent_ids: list[int]) -> int:
    """Attempts these agents still run. A draining agent is drained when this is 0: it takes no new
    task, and everything it had taken has ended (succeeded, failed, re-queued or lost)."""
    return TaskAttempt.objects.filter(agent_id__in=agent_ids, outcome=TaskAttempt.Outcome.RUNNING).count()
