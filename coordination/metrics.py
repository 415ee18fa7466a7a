"""Prometheus metrics of the hive (names as the deployment guide's dashboards and rules use)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_TOTAL = Counter("hive_events_total", "Events published", ["type"])
TASKS_TOTAL = Counter("hive_tasks_total", "Tasks reaching a status", ["status", "pool"])
TASK_DURATION = Histogram(
    "hive_task_duration_seconds",
    "Duration of finished attempts",
    ["pool"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
DECISIONS_TOTAL = Counter(
    "hive_decisions_total", "Routing decisions, by strategy and why it fell back ('none': it decided)",
    ["strategy", "fallback"],
)  # fmt: skip
PREDICTION_ERROR = Histogram(
    "hive_prediction_error_seconds",
    "Absolute error of the predicted p50 attempt duration, observed when a decision closes",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
