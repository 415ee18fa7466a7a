"""Which pool gets a task: capability matching, then an allocation strategy among eligible pools.

A task may only go to a pool whose capabilities cover all it requires. When several pools can take
it, the configured strategy chooses:

- `least_loaded`: fewest queued + running tasks per unit of capacity (concurrency × live agents).
- `round_robin`: turn by turn, counted in Redis so every web process shares the turn.
- `performance_weighted`: the best measured success rate per second for the task's type, from
  finished attempts; a pool with no history yet is chosen first, so new pools get tried.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count

from agents.models import Agent, AgentPool
from coordination.errors import NoEligiblePool
from coordination.models import Task, TaskAttempt

log = logging.getLogger(__name__)


class AllocationStrategy(Protocol):
    name: str

    def choose(self, pools: Sequence[AgentPool], *, task_type: str) -> AgentPool: ...


def eligible_pools(capabilities: Sequence[str], *, needs_commands: bool = False) -> list[AgentPool]:
    """Enabled pools covering every capability, or NoEligiblePool naming what each pool offers."""
    required = sorted({c.strip().lower() for c in capabilities})
    pools = list(AgentPool.objects.filter(enabled=True))
    eligible = [p for p in pools if p.covers(required) and (p.allow_commands or not needs_commands)]
    if eligible:
        return eligible
    offers = "; ".join(f"{p.name} offers {', '.join(sorted(p.capabilities))}" for p in pools) or "no pools"
    what = "+".join(required)
    if needs_commands and any(p.covers(required) for p in pools):
        raise NoEligiblePool(f"no pool that offers {what} allows commands ({offers})")
    raise NoEligiblePool(f"no pool offers {what}: {offers}")


class LeastLoaded:
    name = "least_loaded"

    def choose(self, pools: Sequence[AgentPool], *, task_type: str) -> AgentPool:
        ids = [p.id for p in pools]
        busy = dict(
            Task.objects.filter(pool_id__in=ids, status__in=[Task.Status.QUEUED, Task.Status.RUNNING])
            .values_list("pool_id")
            .annotate(n=Count("id"))
        )
        agents = dict(Agent.objects.live().filter(pool_id__in=ids).values_list("pool_id").annotate(n=Count("id")))

        def load(pool: AgentPool) -> tuple[float, str]:
            capacity = pool.concurrency * max(1, agents.get(pool.id, 0))
            return busy.get(pool.id, 0) / capacity, pool.name

        return min(pools, key=load)


class RoundRobin:
    name = "round_robin"

    def choose(self, pools: Sequence[AgentPool], *, task_type: str) -> AgentPool:
        ordered = sorted(pools, key=lambda p: p.name)
        key = "rr:" + ",".join(p.name for p in ordered)
        try:
            try:
                turn = cache.incr(key)
            except ValueError:
                cache.add(key, 0, timeout=None)
                turn = cache.incr(key)
        except Exception as exc:  # Redis away: the task is still accepted, placed by load instead
            log.warning("round robin counter unavailable (%s); using least_loaded", exc)
            return LeastLoaded().choose(pools, task_type=task_type)
        return ordered[turn % len(ordered)]


class PerformanceWeighted:
    name = "performance_weighted"
    window = 500

    def choose(self, pools: Sequence[AgentPool], *, task_type: str) -> AgentPool:
        rows = (
            TaskAttempt.objects.filter(
                task__pool_id__in=[p.id for p in pools],
                task__task_type=task_type,
                finished_at__isnull=False,
            )
            .exclude(outcome=TaskAttempt.Outcome.CANCELLED)
            .order_by("-id")
            .values_list("task__pool_id", "outcome", "started_at", "finished_at")[: self.window]
        )
        totals: dict[int, list[float]] = {}  # pool id -> [attempts, successes, seconds]
        for pool_id, outcome, started, finished in rows:
            acc = totals.setdefault(pool_id, [0, 0, 0.0])
            acc[0] += 1
            acc[1] += outcome == TaskAttempt.Outcome.SUCCEEDED
            acc[2] += (finished - started).total_seconds()
        stats = {pid: (ok / n, max(secs / n, 0.001)) for pid, (n, ok, secs) in totals.items()}
        if not stats:
            return LeastLoaded().choose(pools, task_type=task_type)

        def score(pool: AgentPool) -> tuple[float, str]:
            if pool.id not in stats:  # untried: explore it before exploiting the measured ones
                return float("-inf"), pool.name
            rate, seconds = stats[pool.id]
            return -(rate / seconds), pool.name

        return min(pools, key=score)


STRATEGIES: dict[str, AllocationStrategy] = {s.name: s for s in (LeastLoaded(), RoundRobin(), PerformanceWeighted())}


def current_strategy() -> AllocationStrategy:
    return STRATEGIES[settings.HIVE_CONFIG.multi_agent.load_balancing_strategy]


def route(capabilities: Sequence[str], *, task_type: str, needs_commands: bool, only: str | None = None) -> AgentPool:
    """The pool for a task; with `only`, that pool, provided it is eligible (a session's fan-out target)."""
    pools = eligible_pools(capabilities, needs_commands=needs_commands)
    if only is not None:
        return pool_among(pools, only)
    if len(pools) == 1:
        return pools[0]
    return current_strategy().choose(pools, task_type=task_type)


def pool_among(pools: Sequence[AgentPool], name: str) -> AgentPool:
    """The pool called `name` among the eligible ones, or NoEligiblePool saying which could run the task."""
    for pool in pools:
        if pool.name == name:
            return pool
    raise NoEligiblePool(f"pool {name} cannot run it (eligible: {', '.join(sorted(p.name for p in pools))})")
