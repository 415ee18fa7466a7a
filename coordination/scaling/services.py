"""Scaling decisions: beat's evaluation of every pool, and an operator's manual target.

`scaling_evaluate` reads each enabled pool's state from the database (the truth: the broker holds
duplicates and countdown messages, the task rows do not), asks the policy, trims the verdicts to
the fleet's caps, and for every pool whose desired count changes writes a `ScalingDecision`,
publishes `pool.scaled`, and, with `scaling.auto_scale`, sets the pool's `desired_instances`,
which the actuators follow (`hive up` locally; KEDA through `/metrics` or the scale endpoint).
Without auto_scale the decision is a recommendation: recorded, not applied.

Two beats never both act: an evaluation first takes the database lease `scaling` for most of
one interval (a conditional UPDATE, the same on SQLite and PostgreSQL); a beat that does not get
it does nothing. The desired count itself changes by compare-and-set on the value the policy
read, so an operator's target set in between is never overwritten by a stale verdict.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from agents.models import Agent, AgentPool
from coordination.errors import Invalid, NotFound
from coordination.events import publish
from coordination.leases import lease_acquire, lease_holder
from coordination.models import ScalingDecision, Task, TaskAttempt
from coordination.scaling.policy import PoolState, ScalingSettings, ScalingVerdict, decide, fleet_limit

log = logging.getLogger(__name__)

LEASE = "scaling"
LEASE_SHARE = 0.8  # of an interval: the next tick of the same beat finds the lease free again
MEAN_OVER = 50  # recent attempts whose durations give a pool's mean task time

# Hooks for the learning models (ml may import coordination, not the other way round): the
# caller, beat's task, passes them in when models exist. Both return None when they cannot say.
WorkPredictor = Callable[[AgentPool, QuerySet], float | None]  # queued tasks -> predicted seconds, added up
Forecaster = Callable[[AgentPool, datetime], float | None]  # -> expected arrivals per hour


def scaling_settings() -> ScalingSettings:
    return ScalingSettings.from_config(settings.HIVE_CONFIG)


def default_actuator() -> str:
    """Who follows the decisions: KEDA when beat runs in a Kubernetes pod, else `hive up`."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return ScalingDecision.Actuator.KEDA
    return ScalingDecision.Actuator.LOCAL


def pool_states(
    *,
    pools: Sequence[AgentPool],
    now: datetime,
    predict_work: WorkPredictor | None = None,
    forecast: Forecaster | None = None,
) -> dict[str, PoolState]:
    """Each pool's state at `now`, read in a few grouped queries (not one per pool)."""
    ids = [pool.id for pool in pools]
    due = Q(available_at__isnull=True) | Q(available_at__lte=now)
    queued = Q(status=Task.Status.QUEUED)
    work: dict[int, Mapping[str, Any]] = {
        row["pool_id"]: row
        for row in Task.objects.filter(pool_id__in=ids, status__in=[Task.Status.QUEUED, Task.Status.RUNNING])
        .order_by()
        .values("pool_id")
        # COUNT(status) (never null) rather than COUNT(id): the partial index task_active_pool holds
        # every column read here, so PostgreSQL counts from the index without visiting the rows.
        .annotate(
            running=Count("status", filter=Q(status=Task.Status.RUNNING)),
            ready=Count("status", filter=queued & due),
            delayed=Count("status", filter=queued & Q(available_at__gt=now)),
        )
    }
    alive_since = now - timedelta(seconds=settings.HIVE_CONFIG.multi_agent.offline_after)
    online = dict(
        Agent.objects.filter(pool_id__in=ids, status=Agent.Status.ONLINE, last_heartbeat__gte=alive_since)
        .order_by()
        .values("pool_id")
        .annotate(n=Count("id"))
        .values_list("pool_id", "n")
    )
    changed = dict(
        ScalingDecision.objects.filter(pool_id__in=ids)
        .order_by()
        .values("pool_id")
        .annotate(at=Max("created_at"))
        .values_list("pool_id", "at")
    )
    states = {}
    for pool in pools:
        counts = work.get(pool.id, {})
        predicted = _ask(predict_work, pool, Task.objects.filter(pool=pool, status=Task.Status.QUEUED))
        arrivals = _ask(forecast, pool, now)
        states[pool.name] = PoolState(
            pool=pool.name,
            now=now,
            instances=online.get(pool.id, 0),
            desired=pool.desired_instances,
            concurrency=pool.concurrency,
            min_instances=pool.min_instances,
            max_instances=max(pool.max_instances, pool.min_instances, 1),
            running=counts.get("running", 0),
            ready=counts.get("ready", 0),
            delayed=counts.get("delayed", 0),
            predicted_work_seconds=predicted,
            forecast_per_hour=arrivals,
            mean_task_seconds=pool_mean_task_seconds(pool=pool) if arrivals is not None else None,
            last_change_at=changed.get(pool.id),
        )
    return states


def pool_mean_task_seconds(*, pool: AgentPool) -> float | None:
    """Mean duration of the pool's recent successful attempts, or None without history."""
    spans = (
        TaskAttempt.objects.filter(task__pool=pool, outcome=TaskAttempt.Outcome.SUCCEEDED, finished_at__isnull=False)
        .order_by("-finished_at")
        .values_list("started_at", "finished_at")[:MEAN_OVER]
    )
    durations = [(end - start).total_seconds() for start, end in spans if end is not None]
    return sum(durations) / len(durations) if durations else None


def scaling_evaluate(
    *,
    now: datetime | None = None,
    actuator: str | None = None,
    predict_work: WorkPredictor | None = None,
    forecast: Forecaster | None = None,
) -> list[ScalingDecision]:
    """Evaluate every enabled pool once; return the decisions written (changes only).

    Does nothing (returns []) when scaling is disabled or another process holds the lease. A
    recommendation (auto_scale off) equal to the last one still standing is not written again.
    """
    now = now or timezone.now()
    config = scaling_settings()
    if not config.enabled:
        return []
    if not lease_acquire(name=LEASE, holder=lease_holder(), ttl=config.interval_seconds * LEASE_SHARE, now=now):
        log.debug("another process holds the scaling lease; skipping this round")
        return []
    pools = list(AgentPool.objects.filter(enabled=True).order_by("name"))
    states = pool_states(pools=pools, now=now, predict_work=predict_work, forecast=forecast)
    verdicts = fleet_limit(states, {name: decide(state, config) for name, state in states.items()}, config)
    actuator = actuator or default_actuator()
    decisions = []
    for pool in pools:
        state, verdict = states[pool.name], verdicts[pool.name]
        if verdict.desired == state.desired:
            continue
        decision = _record(pool, state, verdict, actuator=actuator, applied=config.auto_scale, now=now)
        if decision is not None:
            decisions.append(decision)
    return decisions


def scaling_set(*, pool: str, desired: int, reason: str = "", now: datetime | None = None) -> ScalingDecision:
    """An operator's target for a pool, within its min_instances..max_instances; applied at once.

    Recorded as a decision (actuator `manual`), which starts the cooldown: with auto_scale on,
    the policy may move the pool again once the cooldown has passed. Raises NotFound for an
    unknown pool and Invalid (nothing changed) for a disabled pool, a count out of bounds, or
    when scaling is disabled (every pool then runs at its configured size, which nothing moves).
    """
    now = now or timezone.now()
    if isinstance(desired, bool) or not isinstance(desired, int):
        raise Invalid(f"desired = {desired!r}: expected a whole number of instances")
    if not settings.HIVE_CONFIG.scaling.enabled:
        raise Invalid(
            "scaling is disabled (scaling.enabled: false): every pool runs at its configured size, "
            "max(1, min_instances)",
            code="scaling_disabled",
        )
    with transaction.atomic():
        row = AgentPool.objects.select_for_update().filter(name=pool).first()
        if row is None:
            raise NotFound(f"no pool {pool!r}", code="pool_not_found")
        if not row.enabled:
            raise Invalid(f"pool {pool!r} is disabled: it is no longer in the configuration")
        if not row.min_instances <= desired <= row.max_instances:
            raise Invalid(
                f"desired = {desired}: expected {row.min_instances}..{row.max_instances} for pool {pool} "
                "(its min_instances..max_instances)"
            )
        state = pool_states(pools=[row], now=now)[row.name]
        text = f"manual target {desired}" + (f": {reason.strip()}" if reason.strip() else "")
        AgentPool.objects.filter(id=row.id).update(desired_instances=desired, updated_at=now)
        decision = ScalingDecision.objects.create(
            pool=row,
            inputs=state.as_inputs(),
            previous=row.desired_instances,
            desired=desired,
            reason=text,
            actuator=ScalingDecision.Actuator.MANUAL,
            applied=True,
            created_at=now,
        )
        _announce(decision)
    return decision


def _record(
    pool: AgentPool, state: PoolState, verdict: ScalingVerdict, *, actuator: str, applied: bool, now: datetime
) -> ScalingDecision | None:
    with transaction.atomic():
        if applied:
            # Compare-and-set on the count the policy read: a target set meanwhile wins.
            moved = AgentPool.objects.filter(id=pool.id, desired_instances=state.desired).update(
                desired_instances=verdict.desired, updated_at=now
            )
            if not moved:
                log.info("pool %s changed while it was evaluated; deciding again next round", pool.name)
                return None
        else:
            last = ScalingDecision.objects.filter(pool=pool).order_by("-created_at", "-id").first()
            standing = last is not None and not last.applied
            if standing and last is not None and (last.previous, last.desired) == (state.desired, verdict.desired):
                return None  # the same recommendation stands
        decision = ScalingDecision.objects.create(
            pool=pool,
            inputs=state.as_inputs(),
            previous=state.desired,
            desired=verdict.desired,
            reason=verdict.reason,
            actuator=actuator,
            applied=applied,
            created_at=now,
        )
        _announce(decision)
    return decision


def _announce(decision: ScalingDecision) -> None:
    publish(
        "pool.scaled",
        pool=decision.pool,
        decision=decision.id,
        previous=decision.previous,
        desired=decision.desired,
        reason=decision.reason,
        actuator=decision.actuator,
        applied=decision.applied,
    )


def _ask(hook: Callable | None, pool: AgentPool, arg: object) -> float | None:
    """A learning model's answer, or None: scaling goes on without predictions when a model fails."""
    if hook is None:
        return None
    try:
        value = hook(pool, arg)
    except Exception:
        log.warning("scaling hook %r failed for pool %s; deciding without it", hook, pool.name, exc_info=True)
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        return None  # None, NaN, negative or infinite: no usable answer
    return float(value)
