"""Prometheus metrics of the hive (names as the deployment guide's dashboards and rules use).

Counters and histograms are counted where things happen (web and worker processes; `/metrics`
adds up every process of a machine). Gauges of the hive's state — queue depth, agents, the
guide's `agent_hive_active_agents_total` and `agent_hive_resource_utilization_percent` — are read
from the database at scrape time by `hive_project.metrics`, so every web process tells the same.
"""

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

# The deployment guide's own names. agent_type is the pool's name.
TASKS_COMPLETED = Counter(
    "agent_hive_tasks_completed_total",
    "Tasks reaching a terminal status (succeeded, failed, dead, cancelled)",
    ["agent_type", "status"],
)
AGENT_FAILURES = Counter(
    "agent_hive_agent_failures_total",
    "Attempts that failed, timed out or were lost, and agents that went offline without a heartbeat",
    ["agent_type"],
)
# The guide's coordination latency, by stage: "claim" from a task becoming ready (queued, its
# available_at reached) to a worker claiming it (coordination.services.task_claim); "dependency" from
# a session step's last dependency ending to the step being queued (coordination.sessions). The
# guide alerts at 500 ms; the hive aims under 100 ms at p99.
COORDINATION_LATENCY = Histogram(
    "agent_hive_coordination_latency_seconds",
    "Time the hive spends coordinating agents, by stage (claim, dependency)",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DECISIONS_TOTAL = Counter(
    "hive_decisions_total",
    "Routing decisions, by strategy and why it fell back ('none': it decided)",
    ["strategy", "fallback"],
)
PREDICTION_ERROR = Histogram(
    "hive_prediction_error_seconds",
    "Absolute error of the predicted p50 attempt duration, observed when a decision closes",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
ALERT_NOTIFICATIONS = Counter(
    "hive_alert_notifications_total",
    "Alert webhook delivery attempts by outcome (sent, retryable failure, refused by the receiver)",
    ["outcome"],
)
