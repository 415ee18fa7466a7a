"""Demand forecast: expected task arrivals per pool and hour, seasonal by hour of the week.

Arrivals are tasks routed to a pool, counted per hour over the last `forecast_horizon_days` of
history (from the first task in that span). Three forms are fitted on the older 80% of hours and
measured on the newest 20% (mean absolute error in arrivals per hour, all pools together):
a flat rate (the baseline), a rate per hour of day, and a rate per hour of week (168 slots, slots
never seen taking the hour-of-day rate). The best form is refitted on all hours and stored as a
`ModelVersion` of kind forecast; `forecast_arrivals` reads the active one for the scaler.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from coordination.models import Task
from ml.registry import active_models
from ml.training import Trained

HOURS_PER_WEEK = 168
MIN_HOURS = 48
MIN_TASKS = 50
HELD_OUT = 0.2
FORMS = ("flat", "hour_of_day", "hour_of_week")


def slot(at: datetime) -> int:
    """Hour of the week (UTC): Monday 00:00 is 0."""
    return at.weekday() * 24 + at.hour


def hourly_arrivals(*, since: datetime, until: datetime) -> tuple[datetime, dict[str, list[int]]]:
    """(first hour, pool -> arrivals in each hour from it to `until`); starts at the first task."""
    rows = list(
        Task.objects.filter(created_at__gte=since, created_at__lt=until, pool__isnull=False)
        .order_by("created_at")
        .values_list("pool__name", "created_at")
    )
    if not rows:
        return since, {}
    first = rows[0][1].replace(minute=0, second=0, microsecond=0)
    hours = int((until - first).total_seconds() // 3600)
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * hours)
    for pool, created in rows:
        i = int((created - first).total_seconds() // 3600)
        if i < hours:
            counts[pool][i] += 1
    return first, dict(counts)


def fit_profiles(first: datetime, counts: Mapping[str, Sequence[int]], form: str) -> dict[str, list[float]]:
    """Per pool, the expected arrivals in each of the 168 hours of the week, for `form`."""
    out = {}
    for pool, series in counts.items():
        flat = sum(series) / len(series) if series else 0.0
        by_day: dict[int, list[int]] = defaultdict(list)
        by_week: dict[int, list[int]] = defaultdict(list)
        for i, n in enumerate(series):
            s = slot(first + timedelta(hours=i))
            by_day[s % 24].append(n)
            by_week[s].append(n)
        profile = []
        for s in range(HOURS_PER_WEEK):
            day = sum(by_day[s % 24]) / len(by_day[s % 24]) if by_day[s % 24] else flat
            if form == "flat":
                profile.append(flat)
            elif form == "hour_of_day":
                profile.append(day)
            else:
                profile.append(sum(by_week[s]) / len(by_week[s]) if by_week[s] else day)
        out[pool] = profile
    return out


def forecast_error(
    profiles: Mapping[str, Sequence[float]], first: datetime, counts: Mapping[str, Sequence[int]]
) -> float:
    """Mean absolute error (arrivals per hour) of `profiles` on `counts` starting at hour `first`."""
    errors = []
    for pool, series in counts.items():
        profile = profiles.get(pool)
        for i, n in enumerate(series):
            expected = profile[slot(first + timedelta(hours=i))] if profile else 0.0
            errors.append(abs(n - expected))
    return sum(errors) / len(errors) if errors else 0.0


def train_forecast(*, now: datetime | None = None, days: int | None = None) -> Trained | str:
    """The best seasonal form of demand per pool, or the reason there is none."""
    started = time.perf_counter()
    now = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    days = days or settings.HIVE_CONFIG.external_api.ml_enhancements.predictive_analytics.forecast_horizon_days
    first, counts = hourly_arrivals(since=now - timedelta(days=days), until=now)
    hours = len(next(iter(counts.values()), []))
    tasks = sum(sum(s) for s in counts.values())
    if hours < MIN_HOURS or tasks < MIN_TASKS:
        return f"{tasks} tasks over {hours} hours, fewer than {MIN_TASKS} tasks or {MIN_HOURS} hours: no forecast yet"
    cut = hours - max(24, int(hours * HELD_OUT))
    train = {p: s[:cut] for p, s in counts.items()}
    held = {p: s[cut:] for p, s in counts.items()}
    held_first = first + timedelta(hours=cut)
    errors = {form: forecast_error(fit_profiles(first, train, form), held_first, held) for form in FORMS}
    best = min(FORMS, key=lambda f: (errors[f], FORMS.index(f)))
    mean_rate = sum(sum(s) for s in held.values()) / max(1, sum(len(s) for s in held.values()))
    metrics = {
        "mae": errors[best],
        "rows": sum(len(s) for s in held.values()),
        "hours": hours - cut,
        "mean_rate": mean_rate,
        "candidates": {f: round(e, 6) for f, e in errors.items()},
    }
    return Trained(
        kind="forecast",
        algorithm=f"seasonal/{best}",
        artifact={"kind": "forecast", "format": 1, "form": best, "profiles": fit_profiles(first, counts, best)},
        features=["pool"] if best == "flat" else ["pool", best],
        metrics=metrics,
        baseline_metrics={"mae": errors["flat"], "rows": metrics["rows"], "hours": hours - cut},
        samples=tasks,
        trained_until=now,
        seconds=time.perf_counter() - started,
        held_out=(held_first, held),
        candidate={"kind": "forecast", "form": best, "profiles": fit_profiles(first, train, best)},
    )


def compare(trained: Trained, active: Mapping[str, Any], _row: Any) -> tuple[float, float, int]:
    """(new error, active error, hours × pools) on the new training's held-out hours."""
    first, held = trained.held_out
    rows = sum(len(s) for s in held.values())
    return (
        forecast_error(trained.candidate["profiles"], first, held),
        forecast_error(active["profiles"], first, held),
        rows,
    )


def forecast_arrivals(*, pool: str, start: datetime | None = None, hours: int | None = None) -> list[float] | None:
    """Expected arrivals for `pool` in each hour from `start` (now) over `hours` (the configured
    horizon), from the active forecast; None when there is none or it has not seen the pool."""
    model = active_models().models.get("forecast")
    if model is None or pool not in model.artifact["profiles"]:
        return None
    profile = model.artifact["profiles"][pool]
    start = (start or timezone.now()).replace(minute=0, second=0, microsecond=0)
    horizon = settings.HIVE_CONFIG.external_api.ml_enhancements.predictive_analytics.forecast_horizon_days
    return [profile[slot(start + timedelta(hours=i))] for i in range(hours or horizon * 24)]
