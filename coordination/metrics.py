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
COST_USD = Counter("hive_cost_usd_total", "Spend reported by agent programs (USD)", ["pool", "team"])
FLOW_DEFERRED = Counter(
    "hive_flow_deferred_total", "Task starts held back by flow control (no attempt spent)", ["pool", "reason"]
)
RATE_LIMITED = Counter("hive_pool_rate_limited_total", "Provider rate limits reported by agent programs", ["pool"])
