"""Which pool gets a task: capability matching, then an allocation strategy among eligible pools.

A task may only go to a pool whose capabilities cover all it requires. When several pools can take
it, the configured strategy chooses, and says why in a `Choice` (stored as the task's
`RoutingDecision`):

- `least_loaded`: fewest queued + running tasks per unit of capacity (concurrency × live agents).
- `round_robin`: turn by turn, counted in Redis so every web process shares the turn.
- `performance_weighted`: the fewest seconds per success for the task's type, from the pools'
  performance profiles; a pool with no history yet is chosen first, so new pools get tried.
- others registered at start with `register_strategy` (`predictive` comes from the `ml` app, so
  this module never imports it).

Every candidate's `score` is what the strategy minimises (lower is better).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count

from agents.models import Agent, AgentPool
from agents.profiles import PoolRecord, pool_records
from coordination.errors import NoEligiblePool
from coordination.models import Priority, Source, Task
from coordination.snapshot import Snapshot, routing_snapshot

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskSpec:
    """What routing knows about a task before it is stored; what the models predict from."""

    task_type: str = "general"
    capabilities: tuple[str, ...] = ()
    priority: str = Priority.NORMAL
    complexity: int | None = None
    prompt_length: int = 0
    source: str = Source.PYTHON

    @classmethod
    def of(cls, task: Task) -> TaskSpec:
        return cls(
            task_type=task.task_type,
            capabilities=tuple(task.capabilities or ()),
            priority=task.priority,
            complexity=task.complexity,
            prompt_length=len(task.prompt or ""),
            source=task.source,
        )


@dataclass
class Choice:
    """A routing decision: the pool, who chose it and why.

    `fallback` is a short code ("" when the named strategy decided itself) and `reason` the
    sentence a user reads. `confidence` is the strategy's probability that the chosen pool is the
    best one, when it can state one. `predicted_*` describe one attempt on the chosen pool.
    """

    pool: AgentPool
    strategy: str
    candidates: list[dict[str, Any]] = field(default_factory=list)
    confidence: float | None = None
    model_version: str = ""
    fallback: str = ""
    reason: str = ""
    predicted_seconds: float | None = None
    predicted_p90: float | None = None
    predicted_success: float | None = None
    decision_ms: float = 0.0


class AllocationStrategy(Protocol):
    name: str

    def choose(self, pools: Sequence[AgentPool], *, spec: TaskSpec) -> Choice: ...


def eligible_pools(
    capabilities: Sequence[str], *, needs_commands: bool = False, snapshot: Snapshot | None = None
) -> list[AgentPool]:
    """Enabled pools covering every capability, or NoEligiblePool naming what each pool offers.

    `snapshot` (coordination.snapshot) spares the check of the routing token when the caller has
    just read one."""
    required = sorted({c.strip().lower() for c in capabilities})
    snapshot = snapshot or routing_snapshot()
    eligible = [p for p in snapshot.pools if p.covers(required) and (p.allow_commands or not needs_commands)]
    if eligible:
        return snapshot.copies(eligible)
    pools = snapshot.pools
    offers = "; ".join(f"{p.name} offers {', '.join(sorted(p.capabilities))}" for p in pools) or "no pools"
    what = "+".join(required)
    if needs_commands and any(p.covers(required) for p in pools):
        raise NoEligiblePool(f"no pool that offers {what} allows commands ({offers})")
    raise NoEligiblePool(f"no pool offers {what}: {offers}")


def pool_capacity(pools: Sequence[AgentPool]) -> dict[int, int]:
    """Pool id -> tasks it can run at once: concurrency × live agents (at least one agent's worth)."""
    agents = dict(
        Agent.objects.live().filter(pool_id__in=[p.id for p in pools]).values_list("pool_id").annotate(n=Count("id"))
    )
    return capacity_of(pools, live=agents)


def capacity_of(pools: Sequence[AgentPool], *, live: Mapping[int, int]) -> dict[int, int]:
    """Pool id -> concurrency × `live[pool id]` agents (at least one agent's worth)."""
    return {p.id: p.concurrency * max(1, live.get(p.id, 0)) for p in pools}


class LeastLoaded:
    name = "least_loaded"

    def choose(self, pools: Sequence[AgentPool], *, spec: TaskSpec) -> Choice:
        ids = [p.id for p in pools]
        busy = dict(
            Task.objects.filter(pool_id__in=ids, status__in=[Task.Status.QUEUED, Task.Status.RUNNING])
            .values_list("pool_id")
            .annotate(n=Count("id"))
        )
        capacity = pool_capacity(pools)
        loads = {p.id: busy.get(p.id, 0) / capacity[p.id] for p in pools}
        pool = min(pools, key=lambda p: (loads[p.id], p.name))
        candidates = [
            {"pool": p.name, "score": round(loads[p.id], 4), "active": busy.get(p.id, 0), "capacity": capacity[p.id]}
            for p in pools
        ]
        return Choice(pool=pool, strategy=self.name, candidates=candidates)


class RoundRobin:
    name = "round_robin"

    def choose(self, pools: Sequence[AgentPool], *, spec: TaskSpec) -> Choice:
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
            return fallback(
                pools,
                spec=spec,
                strategy=self.name,
                code="counter_unavailable",
                reason=f"round robin counter unavailable ({exc})",
                using=LeastLoaded(),
            )
        chosen = turn % len(ordered)
        candidates = [{"pool": p.name, "score": (i - chosen) % len(ordered)} for i, p in enumerate(ordered)]
        return Choice(pool=ordered[chosen], strategy=self.name, candidates=candidates)


class PerformanceWeighted:
    """Fewest seconds per success (p50 duration / success rate) on the task's type, from profiles.

    `records` ((pool id, type) -> PoolRecord) spares the query when the caller has read them already.
    """

    name = "performance_weighted"

    def __init__(self, *, records: Mapping[tuple[int, str], PoolRecord] | None = None) -> None:
        self.records = records

    def choose(self, pools: Sequence[AgentPool], *, spec: TaskSpec) -> Choice:
        if self.records is not None:
            ids = {p.id for p in pools}
            records = {k: r for k, r in self.records.items() if k[0] in ids and k[1] == spec.task_type}
        else:
            records = pool_records(pool_ids=[p.id for p in pools], task_type=spec.task_type)
        # A record without durations comes from lost attempts only: its success rate is 0 anyway.
        stats = {
            pool_id: (r.success_rate, max(r.p50_seconds or 0.0, 0.001), r.count) for (pool_id, _), r in records.items()
        }
        if not stats:
            return fallback(
                pools,
                spec=spec,
                strategy=self.name,
                code="no_history",
                reason=f"no finished attempts of type {spec.task_type} on these pools",
                using=LeastLoaded(),
            )

        def score(pool: AgentPool) -> tuple[float, str]:
            if pool.id not in stats:  # untried: explore it before exploiting the measured ones
                return float("-inf"), pool.name
            rate, seconds, _ = stats[pool.id]
            return (seconds / rate if rate > 0 else float("inf")), pool.name

        pool = min(pools, key=score)
        candidates = []
        for p in pools:
            if p.id in stats:
                rate, seconds, count = stats[p.id]
                s = score(p)[0]
                candidates.append(
                    {
                        "pool": p.name,
                        "score": round(s, 3) if s != float("inf") else None,
                        "success_rate": round(rate, 4),
                        "p50_seconds": round(seconds, 3),
                        "attempts": count,
                    }
                )
            else:
                candidates.append({"pool": p.name, "score": None, "attempts": 0})
        reason = "" if pool.id in stats else f"pool {pool.name} has no history of type {spec.task_type}: trying it"
        return Choice(pool=pool, strategy=self.name, candidates=candidates, reason=reason)


def fallback(
    pools: Sequence[AgentPool],
    *,
    spec: TaskSpec,
    strategy: str,
    code: str,
    reason: str,
    using: AllocationStrategy | None = None,
    candidates: list[dict[str, Any]] | None = None,
    model_version: str = "",
    confidence: float | None = None,
) -> Choice:
    """Let `using` (default performance_weighted, which itself falls back to least_loaded without
    history) choose, and record it as `strategy` falling back for `reason`.

    The candidates the failing strategy saw are kept when given, so the record shows both views.
    """
    helper = using or PerformanceWeighted()
    choice = helper.choose(pools, spec=spec)
    if choice.fallback:  # the helper fell back too: say so rather than naming it as the chooser
        how = f"{choice.strategy}: {choice.reason}"
    else:
        how = f"{helper.name} chose {choice.pool.name}" + (f" ({choice.reason})" if choice.reason else "")
    return Choice(
        pool=choice.pool,
        strategy=strategy,
        candidates=candidates if candidates is not None else choice.candidates,
        confidence=confidence,
        model_version=model_version,
        fallback=code,
        reason=f"{reason}; {how}",
    )


STRATEGIES: dict[str, AllocationStrategy] = {s.name: s for s in (LeastLoaded(), RoundRobin(), PerformanceWeighted())}


def register_strategy(strategy: AllocationStrategy) -> None:
    """Make a strategy selectable by its name (apps call this from `AppConfig.ready`)."""
    STRATEGIES[strategy.name] = strategy


def current_strategy() -> AllocationStrategy | None:
    return STRATEGIES.get(settings.HIVE_CONFIG.multi_agent.load_balancing_strategy)


def route(
    spec: TaskSpec,
    *,
    needs_commands: bool,
    only: str | None = None,
    snapshot: Snapshot | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Choice:
    """Choose a pool for a task: eligible pools, then the configured strategy. Raises NoEligiblePool.

    With `only`, that pool, provided it is eligible (a session's fan-out target). The Choice carries
    how long the decision took (`decision_ms`, matching and strategy together).
    """
    started = clock()
    pools = eligible_pools(spec.capabilities, needs_commands=needs_commands, snapshot=snapshot)
    name = settings.HIVE_CONFIG.multi_agent.load_balancing_strategy
    strategy = current_strategy()
    if only is not None:
        chosen = pool_among(pools, only)
        choice = Choice(
            pool=chosen,
            strategy=name,
            candidates=[{"pool": chosen.name, "score": None}],
            confidence=1.0,
            fallback="named",
            reason=f"the submitter named pool {chosen.name}",
        )
    elif len(pools) == 1:
        choice = Choice(
            pool=pools[0],
            strategy=name,
            candidates=[{"pool": pools[0].name, "score": None}],
            confidence=1.0,
            fallback="only_eligible",
            reason=f"{pools[0].name} is the only eligible pool",
        )
    elif strategy is None:
        choice = fallback(
            pools,
            spec=spec,
            strategy=name,
            code="unavailable",
            reason=f"strategy {name} is not registered in this process",
        )
    else:
        choice = strategy.choose(pools, spec=spec)
    choice.decision_ms = (clock() - started) * 1000.0
    return choice


def pool_among(pools: Sequence[AgentPool], name: str) -> AgentPool:
    """The pool called `name` among the eligible ones, or NoEligiblePool saying which could run the task."""
    for pool in pools:
        if pool.name == name:
            return pool
    raise NoEligiblePool(f"pool {name} cannot run it (eligible: {', '.join(sorted(p.name for p in pools))})")
