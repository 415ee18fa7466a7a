"""The scaling policy: pure functions from pools' states to the instances each should have.

No I/O, no ORM, no clock: everything the decision depends on is in `PoolState` and
`ScalingSettings`, so a decision can be replayed from the inputs its `ScalingDecision` row keeps.

The rules, per pool (`decide`):

- Utilisation is the work the pool has now, running plus ready (not yet started and due), over
  its slots (instances x concurrency). A backlog alone is not the measure: ten ready tasks on ten
  idle slots need no more instances, two running tasks on two slots with nothing waiting are busy.
  A demand forecast, turned into busy slots by Little's law, raises the work when it is higher.
- Above `scale_up.threshold` the pool grows to at least `ceil(instances x factor)`, and at once to
  the instances that bring utilisation under the threshold (a burst should not wait for several
  rounds of factor steps). With a backlog (ready work no free slot can take) this happens
  immediately; busy without a backlog waits out the cooldown like a scale-down. When the learning
  model says the queued work is done within one interval on the slots the pool has, it holds: new
  instances would arrive after the queue is empty.
- Below `scale_down.threshold`, after the cooldown since the last change, the pool shrinks to
  `ceil(instances x factor)` (at least one fewer), never below what its current work needs; an
  idle pool (nothing running or ready) goes straight to its floor.
- The floor is the pool's `min_instances`, or one instance while retries wait in backoff or the
  forecast expects a task within the cooldown. A pool whose minimum is zero goes to zero when it
  is idle, and comes back (at once, no cooldown, one slot per task) when work arrives.

Across pools (`fleet_limit`): the fleet holds at most min(`multi_agent.max_agents`,
`scale_up.max_instances`) instances and `system.max_concurrent_tasks` slots; over either, the
instances are shared out max-min fairly (every pool with work gets one before any gets a second).
The fleet minimum, max(`multi_agent.min_agents`, `scale_down.min_instances`), only holds back
scale-downs; it never starts idle instances.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hive_project.config import HiveConfig

__all__ = ["PoolState", "ScalingSettings", "ScalingVerdict", "decide", "fleet_limit"]


@dataclass(frozen=True)
class ScalingSettings:
    """The scaling configuration as the policy reads it (see `from_config` for where each comes from)."""

    enabled: bool = True
    auto_scale: bool = True
    up_threshold: float = 0.8
    up_factor: float = 1.5
    down_threshold: float = 0.3
    down_factor: float = 0.7
    cooldown_seconds: float = 180.0
    interval_seconds: float = 5.0
    fleet_max_instances: int = 20
    fleet_min_instances: int = 0
    max_concurrent_tasks: int = 50

    @classmethod
    def from_config(cls, config: HiveConfig) -> ScalingSettings:
        scaling = config.scaling
        up, down = scaling.strategies.scale_up, scaling.strategies.scale_down
        return cls(
            enabled=scaling.enabled,
            auto_scale=scaling.auto_scale,
            up_threshold=up.threshold,
            up_factor=up.factor,
            down_threshold=down.threshold,
            down_factor=down.factor,
            cooldown_seconds=scaling.cooldown_seconds,
            interval_seconds=scaling.interval_seconds,
            fleet_max_instances=min(config.multi_agent.max_agents, up.max_instances),
            fleet_min_instances=max(config.multi_agent.min_agents, down.min_instances),
            max_concurrent_tasks=config.system.max_concurrent_tasks,
        )


@dataclass(frozen=True)
class PoolState:
    """What the policy knows about one pool at `now`.

    `instances` are the agents online and consuming; `desired` is the count the actuator follows
    now (the pool's `desired_instances`). While instances start or drain the two differ; the
    policy counts the larger as the pool's capacity, so a scale-up on its way is not asked for
    twice. `predicted_work_seconds` (the queued tasks' predicted run time, added up),
    `forecast_per_hour` (expected arrivals) and `mean_task_seconds` are None when unknown.
    """

    pool: str
    now: datetime
    instances: int
    desired: int
    concurrency: int
    min_instances: int
    max_instances: int
    running: int = 0
    ready: int = 0
    delayed: int = 0
    predicted_work_seconds: float | None = None
    forecast_per_hour: float | None = None
    mean_task_seconds: float | None = None
    last_change_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("instances", "desired", "min_instances", "running", "ready", "delayed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, not {value!r}")
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ValueError(f"concurrency must be an integer >= 1, not {self.concurrency!r}")
        if not isinstance(self.max_instances, int) or self.max_instances < max(1, self.min_instances):
            raise ValueError(f"max_instances must be >= 1 and >= min_instances, not {self.max_instances!r}")
        for name in ("predicted_work_seconds", "forecast_per_hour", "mean_task_seconds"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value < 0 or math.isnan(value)):
                raise ValueError(f"{name} must be a number >= 0 or None, not {value!r}")

    @property
    def capacity_instances(self) -> int:
        return max(self.instances, self.desired)

    @property
    def slots(self) -> int:
        return self.capacity_instances * self.concurrency

    @property
    def forecast_slots(self) -> float | None:
        """Slots the forecast keeps busy (arrivals x mean duration), when both are known."""
        mean = self.mean_task_seconds
        if mean is None and self.predicted_work_seconds is not None and self.ready + self.delayed:
            mean = self.predicted_work_seconds / (self.ready + self.delayed)
        if self.forecast_per_hour is None or mean is None:
            return None
        return self.forecast_per_hour * mean / 3600.0

    @property
    def load(self) -> float:
        """The work the slots must carry: running plus ready, or the forecast's if higher."""
        return max(float(self.running + self.ready), self.forecast_slots or 0.0)

    @property
    def utilisation(self) -> float:
        if self.slots == 0:
            return math.inf if self.load > 0 else 0.0
        return self.load / self.slots

    @property
    def backlog(self) -> int:
        """Ready tasks that no free slot can take now."""
        return max(0, self.ready - max(0, self.slots - self.running))

    def as_inputs(self) -> dict[str, Any]:
        """The state as JSON, for the decision row."""
        data: dict[str, Any] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            data[field.name] = value.isoformat() if isinstance(value, datetime) else value
        utilisation = self.utilisation
        data["utilisation"] = None if math.isinf(utilisation) else round(utilisation, 4)
        return data


@dataclass(frozen=True)
class ScalingVerdict:
    desired: int
    reason: str


def decide(state: PoolState, settings: ScalingSettings) -> ScalingVerdict:
    """The instances this pool should have, and why. Pure: same inputs, same verdict."""
    low, high = state.min_instances, state.max_instances
    keep = _clamp(state.desired, low, high)
    if not settings.enabled:
        return ScalingVerdict(keep, "scaling is disabled")
    if keep != state.desired:
        return ScalingVerdict(keep, f"{state.desired} is outside the pool's bounds {low}..{high}")

    floor, floor_why = _floor(state, settings)
    base = state.capacity_instances
    work = f"{state.running} running + {state.ready} ready"
    if base == 0:
        if state.running + state.ready > 0:
            # Lean: one slot per task. Headroom, if still wanted, follows after the cooldown.
            target = _clamp(max(1, math.ceil(state.load / state.concurrency), floor), low, high)
            return ScalingVerdict(target, f"work arrived for a pool at zero ({work}): start {target}")
        if floor > 0:
            target = _clamp(max(floor, _needed(state, settings)), low, high)
            return ScalingVerdict(target, f"at zero, but {floor_why}: start {target}")
        return ScalingVerdict(0, "idle at zero")
    if keep < floor:
        return ScalingVerdict(_clamp(floor, low, high), f"below its floor: {floor_why}")

    utilisation = state.utilisation
    shown = f"utilisation {utilisation:.0%} ({work} on {state.slots} slots)"
    wait = _cooldown_left(state, settings)
    if utilisation > settings.up_threshold:
        target = _clamp(max(math.ceil(base * settings.up_factor), _needed(state, settings), base + 1), low, high)
        if target <= keep:
            return ScalingVerdict(keep, f"{shown} above {settings.up_threshold:.0%}, but at its maximum of {high}")
        work_s = state.predicted_work_seconds
        if work_s is not None and work_s / state.slots <= settings.interval_seconds:
            return ScalingVerdict(
                keep, f"{shown}, but the queued work (~{work_s:.0f}s) clears within one interval on the slots it has"
            )
        if state.backlog == 0 and wait > 0:
            return ScalingVerdict(keep, f"{shown} busy without a backlog; may grow after the cooldown ({wait:.0f}s)")
        why = f"backlog of {state.backlog}" if state.backlog else "busy without a backlog"
        return ScalingVerdict(target, f"{shown} above {settings.up_threshold:.0%}, {why}: {keep} -> {target}")
    if utilisation < settings.down_threshold:
        if keep <= floor:
            at = f"its floor ({floor_why})" if floor_why else "zero"
            return ScalingVerdict(keep, f"{shown} below {settings.down_threshold:.0%}, already at {at}")
        if wait > 0:
            return ScalingVerdict(keep, f"{shown} below {settings.down_threshold:.0%}; in cooldown for {wait:.0f}s")
        if state.load == 0:
            target = _clamp(floor, low, high)
            suffix = f" ({floor_why})" if floor_why else ""
            return ScalingVerdict(target, f"idle (nothing running or ready): {keep} -> {target}{suffix}")
        shrunk = min(base - 1, math.ceil(base * settings.down_factor))
        target = _clamp(max(shrunk, _needed(state, settings), floor), low, high)
        if target >= keep:
            return ScalingVerdict(keep, f"{shown} below {settings.down_threshold:.0%}, but its work needs {keep}")
        return ScalingVerdict(target, f"{shown} below {settings.down_threshold:.0%}: {keep} -> {target}")
    return ScalingVerdict(
        keep, f"{shown} within {settings.down_threshold:.0%}..{settings.up_threshold:.0%}: stay at {keep}"
    )


def fleet_limit(
    states: Mapping[str, PoolState], verdicts: Mapping[str, ScalingVerdict], settings: ScalingSettings
) -> dict[str, ScalingVerdict]:
    """Trim the pools' verdicts to the fleet's caps, and hold back scale-downs at the fleet minimum.

    Over a cap, instances are granted one at a time, from each pool's `min_instances` up to its
    verdict, always to the pool that has fewest so far (ties: the larger unmet request, then the
    name): max-min fairness, so a pool coming back from zero gets its first instance before a big
    pool gets its twentieth. Pool minimums are kept even above a cap. Deterministic.
    """
    if not settings.enabled:
        return dict(verdicts)
    requested = {name: verdicts[name].desired for name in states}
    grants = dict(requested)

    def slots(counts: Mapping[str, int]) -> int:
        return sum(counts[name] * states[name].concurrency for name in counts)

    over_total = sum(requested.values()) > settings.fleet_max_instances
    over_slots = slots(requested) > settings.max_concurrent_tasks
    if over_total or over_slots:
        grants = {name: min(states[name].min_instances, requested[name]) for name in states}
        while True:
            room = settings.fleet_max_instances - sum(grants.values())
            free = settings.max_concurrent_tasks - slots(grants)
            candidates = [
                name
                for name in states
                if grants[name] < requested[name] and room >= 1 and free >= states[name].concurrency
            ]
            if not candidates:
                break
            chosen = min(candidates, key=lambda name: (grants[name], grants[name] - requested[name], name))
            grants[chosen] += 1

    floor = settings.fleet_min_instances
    held: set[str] = set()
    while sum(grants.values()) < floor:
        shrinking = [n for n in states if grants[n] < min(states[n].desired, states[n].max_instances)]
        if not shrinking:
            break
        chosen = min(shrinking, key=lambda n: (grants[n] - states[n].desired, n))
        grants[chosen] += 1
        held.add(chosen)

    result: dict[str, ScalingVerdict] = {}
    for name, verdict in verdicts.items():
        granted = grants.get(name, verdict.desired)
        if granted == verdict.desired:
            result[name] = verdict
        elif name in held:
            result[name] = replace(
                verdict,
                desired=granted,
                reason=f"{verdict.reason}; kept at {granted} by the fleet minimum of {floor} instances "
                f"(multi_agent.min_agents, scaling.strategies.scale_down.min_instances)",
            )
        else:
            cap = (
                f"at most {settings.fleet_max_instances} instances in all "
                "(multi_agent.max_agents, scaling.strategies.scale_up.max_instances)"
                if over_total
                else f"at most {settings.max_concurrent_tasks} concurrent tasks (system.max_concurrent_tasks)"
            )
            result[name] = replace(verdict, desired=granted, reason=f"{verdict.reason}; trimmed to {granted}: {cap}")
    return result


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _needed(state: PoolState, settings: ScalingSettings) -> int:
    """Instances that carry the pool's load at or under the scale-up threshold."""
    return math.ceil(state.load / (state.concurrency * settings.up_threshold) - 1e-9)


def _floor(state: PoolState, settings: ScalingSettings) -> tuple[int, str]:
    if state.min_instances > 0:
        return state.min_instances, f"its minimum is {state.min_instances}"
    if state.delayed > 0:
        return 1, f"{state.delayed} queued task(s) wait in backoff"
    if state.forecast_per_hour and state.forecast_per_hour * settings.cooldown_seconds / 3600.0 >= 1.0:
        return 1, f"the forecast expects {state.forecast_per_hour:g} tasks an hour"
    return 0, ""


def _cooldown_left(state: PoolState, settings: ScalingSettings) -> float:
    if state.last_change_at is None:
        return 0.0
    elapsed = (state.now - state.last_change_at).total_seconds()
    return max(0.0, settings.cooldown_seconds - elapsed)
