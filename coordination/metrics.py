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
# The guide's coordination latency. stage="dependency": a dependency's end to its dependents queued
# (coordination.sessions); the guide alerts at 500 ms, the hive aims under 100 ms at p99.
COORDINATION_LATENCY = Histogram(
    "agent_hive_coordination_latency_seconds",
    "Time the hive spends coordinating agents, by stage",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
