"""Performance profiles: record a finished attempt, read per-pool aggregates for a task type.

Writers are the workers (through `coordination.services.attempt_finish`); readers are the
allocation strategies. Both sides stay cheap: one locked row per write, one grouped query per read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from agents.models import PerformanceProfile


def profile_record(
    *,
    pool_id: int,
    agent_id: int,
    task_type: str,
    succeeded: bool,
    seconds: float | None,
    cost_usd: float | None,
    learning_rate: float,
) -> PerformanceProfile:
    """Fold one finished attempt into its (pool, agent, task type) profile.

    Runs inside the caller's transaction and locks the profile row, so concurrent finishes on the
    same agent and type are applied one after the other. `seconds` is None when the attempt's
    duration says nothing about the work (the worker was lost): it then counts for success only.
    """
    # No savepoint inside the caller's transaction (two statements per finish): an error here
    # propagates and rolls the caller back anyway; alone, this is its own transaction.
    with transaction.atomic(savepoint=False):
        profile = _locked(pool_id=pool_id, agent_id=agent_id, task_type=task_type)
        profile.count += 1
        profile.successes += int(succeeded)
        # The first 1/learning_rate attempts are averaged plainly; an EMA from the start would let
        # the first attempt weigh 99.5% of the profile for hundreds of attempts.
        alpha = max(learning_rate, 1.0 / profile.count)
        profile.success_rate = _ema(profile.success_rate if profile.count > 1 else None, float(succeeded), alpha)
        if seconds is not None and math.isfinite(seconds) and seconds >= 0:
            profile.mean_seconds = _ema(profile.mean_seconds, seconds, alpha)
            profile.recent = (list(profile.recent) + [round(seconds, 3)])[-PerformanceProfile.RECENT_WINDOW :]
            profile.p50_seconds = quantile(profile.recent, 0.5)
            profile.p95_seconds = quantile(profile.recent, 0.95)
        if cost_usd is not None:
            profile.cost_usd = _ema(profile.cost_usd, float(cost_usd), alpha)
        profile.save()
    return profile


def _locked(*, pool_id: int, agent_id: int, task_type: str) -> PerformanceProfile:
    rows = PerformanceProfile.objects.select_for_update()
    try:
        return rows.get(pool_id=pool_id, agent_id=agent_id, task_type=task_type)
    except PerformanceProfile.DoesNotExist:
        pass
    try:
        with transaction.atomic():  # a savepoint: losing the race to create must not poison the caller
            return PerformanceProfile.objects.create(pool_id=pool_id, agent_id=agent_id, task_type=task_type)
    except IntegrityError:
        return rows.get(pool_id=pool_id, agent_id=agent_id, task_type=task_type)


def _ema(previous: float | None, value: float, alpha: float) -> float:
    return value if previous is None else previous + alpha * (value - previous)


def quantile(values: Iterable[float], q: float) -> float | None:
    """The q-quantile by linear interpolation (numpy's default), or None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class PoolRecord:
    """A pool's record on one task type, all its agents together."""

    pool_id: int
    count: int
    success_rate: float
    p50_seconds: float | None
    p95_seconds: float | None


def pool_records(*, pool_ids: Iterable[int], task_type: str | None = None) -> dict[tuple[int, str], PoolRecord]:
    """(pool id, task type) -> the count-weighted record of its agents (one query).

    With `task_type`, only that type is read.
    """
    rows = PerformanceProfile.objects.filter(pool_id__in=list(pool_ids))
    if task_type is not None:
        rows = rows.filter(task_type=task_type)
    return records_of(rows.values_list("pool_id", "task_type", "count", "success_rate", "p50_seconds", "p95_seconds"))


def records_of(
    rows: Iterable[tuple[int, str, int, float, float | None, float | None]],
) -> dict[tuple[int, str], PoolRecord]:
    """Profiles' (pool id, task type, count, success rate, p50, p95) rows -> count-weighted records."""
    acc: dict[tuple[int, str], list[float]] = {}
    for pool_id, ttype, count, rate, p50, p95 in rows:
        if not count:
            continue
        # [count, Σ count·rate, Σ count (with a duration), Σ count·p50, Σ count·p95]
        a = acc.setdefault((pool_id, ttype), [0, 0.0, 0, 0.0, 0.0])
        a[0] += count
        a[1] += count * rate
        if p50 is not None:
            a[2] += count
            a[3] += count * p50
            a[4] += count * (p95 if p95 is not None else p50)
    return {
        key: PoolRecord(
            pool_id=key[0],
            count=int(n),
            success_rate=rated / n,
            p50_seconds=(p50s / timed) if timed else None,
            p95_seconds=(p95s / timed) if timed else None,
        )
        for key, (n, rated, timed, p50s, p95s) in acc.items()
    }
