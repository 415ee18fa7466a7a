"""Training now, and training when due: what the CLI, the API and beat call.

`ml_train` trains the kinds asked for from the last `pattern_optimizer.learning_window_size`
finished attempts, registers each model (activated only when it earned it, see ml.registry),
and refreshes the failure patterns and the routing weights they imply. `ml_retrain_if_due` is
beat's entry point: it trains a kind when its update frequency has passed since its last
version (`adaptive_learning.model_update_frequency` for duration and success,
`predictive_analytics.model_update_frequency` for the forecast), or early when the active
model's error on history newer than it exceeds its evaluated error by the adaptation threshold.

One training at a time, across processes and machines: a lock in the shared cache (Redis), taken
with an atomic add and given a time to live, so a trainer that dies does not block the next.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from coordination.models import TaskAttempt
from ml.features import LEARNABLE, history
from ml.models import ModelVersion

if TYPE_CHECKING:
    from ml.registry import Compare

log = logging.getLogger(__name__)

KINDS = ("duration", "success", "forecast")
LOCK_KEY = "ml:train-lock"
LOCK_SECONDS = 1800
FREQUENCY = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(days=7)}
DRIFT_ROWS = 500
MIN_DRIFT_ROWS = 20
DRIFT_MIN_GAP = timedelta(minutes=2)  # a drifting model is retrained early, but not at every beat
# After a training that found nothing to learn (all attempts succeeded, too few hours of
# arrivals), beat does not try that kind again for a while.
SKIP_RETRY = {"duration": timedelta(minutes=10), "success": timedelta(minutes=10), "forecast": timedelta(hours=1)}
SKIPPED_KEY = "ml:skipped:{kind}"
MAX_RATIO = 1e6  # JSON has no infinity


@dataclass
class KindReport:
    kind: str
    status: str  # activated | kept (trained, not activated) | skipped (no model) | locked
    reason: str
    version: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    baseline_metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class TrainReport:
    started_at: datetime
    kinds: list[KindReport] = field(default_factory=list)
    patterns: int = 0
    weights: dict[str, float] = field(default_factory=dict)
    due: dict[str, str] = field(default_factory=dict)  # kind -> why it was trained (beat only)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        return data

    def of(self, kind: str) -> KindReport | None:
        return next((k for k in self.kinds if k.kind == kind), None)


@contextmanager
def training_lock() -> Iterator[bool]:
    """Yields True when this caller holds the lock (released at the end), False when another does."""
    token = uuid.uuid4().hex
    try:
        held = cache.add(LOCK_KEY, token, timeout=LOCK_SECONDS)
    except Exception as exc:  # no shared cache: training alone cannot be guaranteed, so do not train
        log.warning("training lock unavailable (%s); not training", exc)
        held = False
    try:
        yield held
    finally:
        if held and cache.get(LOCK_KEY) == token:
            cache.delete(LOCK_KEY)


def ml_train(
    *, now: datetime | None = None, kinds: Sequence[str] = KINDS, window: int | None = None, seed: int = 0
) -> TrainReport:
    """Train `kinds` now (skipping those without enough history) and refresh failure patterns."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"kinds: {', '.join(unknown)} is not one of {', '.join(KINDS)}")
    ml = settings.HIVE_CONFIG.external_api.ml_enhancements
    report = TrainReport(started_at=now or timezone.now())
    with training_lock() as held:
        if not held:
            report.kinds = [KindReport(kind=k, status="locked", reason="another training is running") for k in kinds]
            return report
        h = None
        if {"duration", "success"} & set(kinds):
            h = history(limit=window or ml.pattern_optimizer.learning_window_size)
        for kind in kinds:
            report.kinds.append(_train_one(kind, h=h, now=report.started_at, seed=seed))
        _refresh_patterns(report, window=window, rows=h)
    return report


def _train_one(kind: str, *, h: Any, now: datetime, seed: int) -> KindReport:
    from ml import forecast, training
    from ml.registry import register

    threshold = settings.HIVE_CONFIG.external_api.ml_enhancements.adaptive_learning.adaptation_threshold
    compare: Compare
    if kind == "duration":
        trained, compare = training.train_duration(h, seed=seed), _compare_rows
    elif kind == "success":
        trained, compare = training.train_success(h, seed=seed), _compare_rows
    else:
        trained, compare = forecast.train_forecast(now=now), forecast.compare
    if isinstance(trained, str):
        cache.set(SKIPPED_KEY.format(kind=kind), trained, timeout=int(SKIP_RETRY[kind].total_seconds()))
        log.info("%s: %s", kind, trained)
        return KindReport(kind=kind, status="skipped", reason=trained)
    done = register(trained, threshold=threshold, compare=compare, primary=training.PRIMARY[kind])
    log.info("%s v%s %s: %s", kind, done.version.version, "activated" if done.activated else "kept", done.reason)
    return KindReport(
        kind=kind,
        status="activated" if done.activated else "kept",
        reason=done.reason,
        version=done.version.version,
        metrics=done.version.metrics,
        baseline_metrics=done.version.baseline_metrics,
        seconds=round(trained.seconds, 3),
    )


def _compare_rows(trained: Any, active_artifact: dict[str, Any], active: ModelVersion) -> tuple[float, float, int]:
    """New and active error on the held-out rows newer than the active version's training data
    (all held-out rows when fewer than MIN_DRIFT_ROWS are newer)."""
    from ml.registry import MIN_COMPARISON_ROWS
    from ml.training import PRIMARY, evaluate

    rows = trained.held_out
    if active.trained_until is not None:
        newer = [i for i, s in enumerate(rows["started_at"]) if s > active.trained_until]
        if len(newer) >= MIN_COMPARISON_ROWS:
            rows = rows.take(newer)
    metric = PRIMARY[trained.kind]
    return (
        evaluate(trained.kind, trained.candidate, rows)[metric],
        evaluate(trained.kind, active_artifact, rows)[metric],
        len(rows),
    )


def _refresh_patterns(report: TrainReport, *, window: int | None, rows: Any) -> None:
    from ml.patterns import Insights, insights, publish_weights

    config = settings.HIVE_CONFIG.external_api.ml_enhancements.pattern_optimizer
    framework = settings.HIVE_CONFIG.external_api.intelligence_framework
    if not (config.enabled and framework.pattern_recognition_enabled):
        found = Insights(patterns=[], recommendations=[], attempts=0)
    else:
        found = insights(window=window, rows=rows)
    report.patterns = len(found.patterns)
    report.weights = publish_weights(found)


# --- beat ---------------------------------------------------------------------------------------------


def ml_retrain_if_due(*, now: datetime | None = None) -> TrainReport:
    """Train the kinds that are due (see the module docstring); measures drift on the way."""
    now = now or timezone.now()
    ml = settings.HIVE_CONFIG.external_api.ml_enhancements
    due: dict[str, str] = {}
    # the framework's switch and the ML section's both have to be on (the guide sets both)
    if (
        ml.adaptive_learning.enabled
        and settings.HIVE_CONFIG.external_api.intelligence_framework.adaptive_learning_enabled
    ):
        every = FREQUENCY[ml.adaptive_learning.model_update_frequency]
        for kind in ("duration", "success"):
            if cache.get(SKIPPED_KEY.format(kind=kind)):
                continue
            why = _due(kind, now=now, every=every, threshold=ml.adaptive_learning.adaptation_threshold)
            if why:
                due[kind] = why
    if ml.predictive_analytics.enabled and not cache.get(SKIPPED_KEY.format(kind="forecast")):
        last = ModelVersion.objects.filter(kind="forecast").order_by("-trained_at").first()
        every = FREQUENCY[ml.predictive_analytics.model_update_frequency]
        if last is None or now - last.trained_at >= every:
            due["forecast"] = "no forecast yet" if last is None else f"last trained {last.trained_at:%Y-%m-%d %H:%M}"
    if not due:
        return TrainReport(started_at=now)
    report = ml_train(now=now, kinds=[k for k in KINDS if k in due])
    report.due = due
    return report


def _due(kind: str, *, now: datetime, every: timedelta, threshold: float) -> str:
    """Why `kind` should be trained now, or "" when it should not."""
    from ml.training import MIN_ATTEMPTS

    last = ModelVersion.objects.filter(kind=kind).order_by("-trained_at").first()
    if last is None:
        finished = TaskAttempt.objects.filter(finished_at__isnull=False, outcome__in=LEARNABLE).count()
        return f"no {kind} model yet and {finished} finished attempts" if finished >= MIN_ATTEMPTS else ""
    if now - last.trained_at >= every:
        return f"last trained {last.trained_at:%Y-%m-%d %H:%M}, update frequency passed"
    active = ModelVersion.objects.filter(kind=kind, active=True).first()
    if active is None:
        return ""
    drift = measure_drift(active)
    if drift and drift["ratio"] > threshold and now - last.trained_at >= DRIFT_MIN_GAP:
        return (
            f"drift: error {drift['error']:.4g} on {drift['rows']} newer attempts is {drift['ratio']:+.0%} "
            f"against the evaluated {drift['evaluated']:.4g}"
        )
    return ""


def measure_drift(active: ModelVersion) -> dict[str, Any] | None:
    """Error of the active `active` on attempts newer than its training data, stored on the row.

    None when fewer than MIN_DRIFT_ROWS such attempts exist or the artifact is refused.
    """
    from ml.registry import active_models
    from ml.training import PRIMARY, evaluate

    loaded = active_models().models.get(active.kind)
    if loaded is None or loaded.id != active.id:
        return None
    recent = history(limit=DRIFT_ROWS, since=active.trained_until)
    if len(recent) < MIN_DRIFT_ROWS:
        return None
    metric = PRIMARY[active.kind]
    error = evaluate(active.kind, loaded.artifact, recent)[metric]
    evaluated = active.metrics.get(metric) or 0.0
    ratio = min(MAX_RATIO, (error - evaluated) / evaluated) if evaluated > 0 else (0.0 if error <= 0 else MAX_RATIO)
    drift = {
        "metric": metric,
        "error": round(error, 6),
        "evaluated": evaluated,
        "ratio": round(ratio, 4),
        "rows": len(recent),
        "checked_at": timezone.now().isoformat(),
    }
    ModelVersion.objects.filter(id=active.id).update(drift=drift)
    return drift
