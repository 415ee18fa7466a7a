"""Synthetic history written straight into the database (fast): tasks, attempts, agents, pools.

A hidden truth table decides each attempt: duration = base seconds of the type × the pool's speed
× (1 + 0.15 × complexity) × lognormal noise; success with the pool's reliability for the type.
Failures carry an error: an injected cause where the table names one, else one of a few generic
errors. Everything is drawn from one seeded generator.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import F, Max

from agents.models import Agent, AgentPool, PerformanceProfile
from agents.profiles import quantile
from coordination.models import Task, TaskAttempt

CAPABILITY = "mlcap"
# Histories end at a fixed time unless told otherwise: hour and weekday are features, so a history
# that moved with the clock would train a different model at every run.
END = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
GENERIC_ERRORS = [
    (1, "ConnectionResetError: [Errno 104] Connection reset by peer while fetching https://pypi.org/simple/x"),
    (2, "error: could not lock /var/tmp/build-{n}/index.lock: File exists"),
    (None, "agent exited: killed by signal 9 after {n}s"),
]


@dataclass
class Cause:
    """An injected failure: `pool` fails `task_type` with `rate` and this error."""

    pool: str
    task_type: str
    rate: float
    error: str
    exit_code: int | None = 127


@dataclass
class World:
    speed: Mapping[str, float]  # pool -> duration factor (1 = nominal)
    types: Mapping[str, float]  # task type -> base seconds
    reliability: float = 0.95  # success rate where no cause applies
    causes: list[Cause] = field(default_factory=list)
    noise: float = 0.25  # sigma of the lognormal duration noise
    timeout: Mapping[str, float] = field(default_factory=dict)  # task type -> timeout (default 600)
    hourly: Mapping[int, float] | None = None  # hour of day -> arrival weight (forecast tests)
    complexity_risk: float = 0.0  # success probability × (1 - risk × complexity / 10)

    def duration(self, rng: random.Random, *, pool: str, task_type: str, complexity: int) -> float:
        seconds = self.types[task_type] * self.speed[pool] * (1 + 0.15 * complexity)
        return seconds * math.exp(rng.gauss(0, self.noise))

    def success_probability(self, *, pool: str, task_type: str, complexity: int) -> float:
        """The truth the outcomes are drawn from."""
        p = self.reliability * (1 - self.complexity_risk * complexity / 10)
        for cause in self.causes:
            if cause.pool == pool and cause.task_type == task_type:
                p *= 1 - cause.rate
        return p

    def outcome(
        self, rng: random.Random, *, pool: str, task_type: str, complexity: int
    ) -> tuple[bool, str, int | None]:
        for cause in self.causes:
            if cause.pool == pool and cause.task_type == task_type and rng.random() < cause.rate:
                return False, cause.error, cause.exit_code
        if rng.random() < self.reliability * (1 - self.complexity_risk * complexity / 10):
            return True, "", 0
        code, text = rng.choice(GENERIC_ERRORS)
        return False, text.format(n=rng.randint(1, 99999)), code


def make_pools(names: list[str], *, concurrency: int = 2, agents: int = 2) -> dict[str, AgentPool]:
    pools = {}
    for name in names:
        pool = AgentPool.objects.create(
            name=name,
            capabilities=[CAPABILITY],
            concurrency=concurrency,
            runner={"kind": "command", "argv": ["true"], "timeout": 600},
        )
        for i in range(agents):
            Agent.objects.create(name=f"{name}-{i}@synthetic", pool=pool)
        pools[name] = pool
    return pools


def build_history(
    world: World,
    *,
    n: int,
    pools: Mapping[str, AgentPool] | None = None,
    seed: int = 0,
    end: datetime | None = None,
    spacing: float = 30.0,
    batch: int = 5000,
) -> list[Task]:
    """`n` finished tasks, one attempt each, about `spacing` seconds apart: ending at `end` (END),
    or, when attempts exist and no `end` is given, starting after the newest of them."""
    rng = random.Random(seed)
    pools = pools or {p.name: p for p in AgentPool.objects.filter(name__in=list(world.speed))}
    agents = {name: list(Agent.objects.filter(pool=pool)) for name, pool in pools.items()}
    names = sorted(pools)
    weights = world.hourly
    last = TaskAttempt.objects.aggregate(last=Max("started_at"))["last"]
    if end is None and last is not None:
        at = last  # a later batch follows the history already there: a change of the world is a change in time
    else:
        at = (end or END) - timedelta(seconds=spacing * n)
    tasks, attempts = [], []
    while len(tasks) < n:
        at += timedelta(seconds=rng.expovariate(1 / spacing))
        if weights is not None and rng.random() > weights.get(at.hour, 0.0):
            continue  # thin arrivals by hour of day
        pool_name = rng.choice(names)
        task_type = rng.choice(sorted(world.types))
        complexity = rng.randint(1, 10)
        seconds = world.duration(rng, pool=pool_name, task_type=task_type, complexity=complexity)
        ok, error, exit_code = world.outcome(rng, pool=pool_name, task_type=task_type, complexity=complexity)
        agent = rng.choice(agents[pool_name])
        task = Task(
            id=uuid.UUID(int=rng.getrandbits(128), version=4),
            prompt="p" * rng.randint(10, 400),
            task_type=task_type,
            capabilities=[CAPABILITY],
            complexity=complexity,
            pool=pools[pool_name],
            agent=agent,
            status=Task.Status.SUCCEEDED if ok else Task.Status.DEAD,
            attempts=1,
            timeout=world.timeout.get(task_type, 600.0),
            queued_at=at,
            started_at=at,
            finished_at=at + timedelta(seconds=seconds),
            error=error,
        )
        tasks.append(task)
        attempts.append(
            TaskAttempt(
                task=task,
                number=1,
                agent=agent,
                outcome="succeeded" if ok else "failed",
                started_at=at,
                heartbeat_at=at,
                finished_at=at + timedelta(seconds=seconds),
                exit_code=exit_code,
                error=error,
            )
        )
    for i in range(0, n, batch):
        Task.objects.bulk_create(tasks[i : i + batch])
        TaskAttempt.objects.bulk_create(attempts[i : i + batch])
    # created_at is auto_now_add; history needs it in the past, where the task arrived
    Task.objects.filter(pool__in=list(pools.values())).update(created_at=F("queued_at"))
    return tasks


def build_profiles(pools: Mapping[str, AgentPool]) -> None:
    """Performance profiles of the attempts in the database, as the workers would have kept them
    (plain averages: the synthetic histories stay below 1 / learning_rate attempts per profile)."""
    rows: dict[tuple[int, int, str], list[tuple[bool, float]]] = {}
    for pool_id, agent_id, ttype, outcome, started, finished in (
        TaskAttempt.objects.filter(task__pool__in=list(pools.values()), finished_at__isnull=False)
        .order_by("finished_at")
        .values_list("task__pool_id", "agent_id", "task__task_type", "outcome", "started_at", "finished_at")
    ):
        rows.setdefault((pool_id, agent_id, ttype), []).append(
            (outcome == "succeeded", (finished - started).total_seconds())
        )
    profiles = []
    for (pool_id, agent_id, ttype), results in rows.items():
        recent = [round(d, 3) for _, d in results][-PerformanceProfile.RECENT_WINDOW :]
        profiles.append(
            PerformanceProfile(
                pool_id=pool_id,
                agent_id=agent_id,
                task_type=ttype,
                count=len(results),
                successes=sum(ok for ok, _ in results),
                success_rate=sum(ok for ok, _ in results) / len(results),
                mean_seconds=sum(d for _, d in results) / len(results),
                p50_seconds=quantile(recent, 0.5),
                p95_seconds=quantile(recent, 0.95),
                recent=recent,
            )
        )
    PerformanceProfile.objects.bulk_create(profiles)
