"""`/metrics` for Prometheus.

Counters (tasks reaching a status, events, attempt durations) are counted where they happen — in
web and worker processes. On one machine `hive up` gives every child the same
PROMETHEUS_MULTIPROC_DIR, and this view adds them up. Gauges that describe the hive's state
(queue depth, agents, tasks by status, pools' desired and online instances, the guide's agent_hive_*
gauges) are read from Redis and the database at scrape time, so every web process reports the same
truth, and KEDA or Prometheus see the scaler's decision however many processes the hive runs.

Served at `monitoring.prometheus.path` when `monitoring.enabled` and `monitoring.prometheus.enabled`.
Access: with `security.api_key` set, a scraper sends it (`Authorization: Bearer …` or
`X-API-Key`); without it the endpoint is open in development and refused in production.
"""

from __future__ import annotations

import hmac
import os
from collections import defaultdict
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from coordination.selectors import (
    agent_counts_by_status_and_pool,
    live_agent_resources,
    pool_instances,
    pool_queue_depths,
    task_counts_by_status_and_pool,
)
from ml.metrics import model_metrics


class HiveStateCollector:
    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("hive_queue_depth", "Messages waiting in the pool's queue", labels=["pool"])
        for queue, n in pool_queue_depths().items():  # empty when Redis is away: the database's gauges remain
            depth.add_metric([queue.removeprefix("hive.")], n)
        yield depth
        agents = GaugeMetricFamily("hive_agents", "Agents by status", labels=["status", "pool"])
        for status, pool, n in agent_counts_by_status_and_pool():
            agents.add_metric([status, pool], n)
        yield agents
        desired = GaugeMetricFamily("hive_pool_desired_instances", "Instances the scaler wants", labels=["pool"])
        actual = GaugeMetricFamily("hive_pool_instances", "Instances online and consuming", labels=["pool"])
        instances = pool_instances()
        for name, want, online in instances:
            desired.add_metric([name], want)
            actual.add_metric([name], online)
        yield desired
        yield actual
        tasks = GaugeMetricFamily("hive_tasks", "Tasks by current status", labels=["status", "pool"])
        for status, pool, n in task_counts_by_status_and_pool():
            tasks.add_metric([status, pool], n)
        yield tasks
        yield from guide_gauges([name for name, _, _ in instances])
        yield from model_metrics()


def guide_gauges(pools: list[str]) -> Iterator[GaugeMetricFamily]:
    """The deployment guide's state gauges, labelled by agent_type (the pool).

    agent_hive_active_agents_total: agents online or draining (0 for a pool with none).
    agent_hive_resource_utilization_percent: the mean, over those agents, of every `<resource>_percent`
    value their last heartbeat reported (cpu, memory, and whatever else the workers sample).
    """
    live = live_agent_resources(pools)
    active = GaugeMetricFamily("agent_hive_active_agents_total", "Agents online or draining", labels=["agent_type"])
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    for pool in pools:
        active.add_metric([pool], sum(1 for name, _ in live if name == pool))
    for pool, resources in live:
        for key, value in (resources or {}).items():
            if key.endswith("_percent") and isinstance(value, int | float) and not isinstance(value, bool):
                samples[(pool, key.removesuffix("_percent"))].append(float(value))
    yield active
    utilization = GaugeMetricFamily(
        "agent_hive_resource_utilization_percent",
        "Mean resource use reported by a pool's agents, in percent",
        labels=["agent_type", "resource"],
    )
    for (pool, resource), values in sorted(samples.items()):
        utilization.add_metric([pool, resource], sum(values) / len(values))
    yield utilization


def _authorized(request: HttpRequest) -> bool | None:
    token = settings.HIVE_CONFIG.security.api_key
    if not token:
        return None if settings.PRODUCTION else True
    given = request.headers.get("X-API-Key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
    return hmac.compare_digest(given.strip(), token)


def metrics(request: HttpRequest) -> HttpResponse:
    monitoring = settings.HIVE_CONFIG.monitoring
    if not (monitoring.enabled and monitoring.prometheus.enabled):
        return JsonResponse(
            {
                "code": "not_found",
                "detail": "metrics are turned off (monitoring.enabled, monitoring.prometheus.enabled)",
            },
            status=404,
        )
    allowed = _authorized(request)
    if allowed is None:
        return JsonResponse({"code": "not_configured", "detail": "set security.api_key to scrape metrics"}, status=403)
    if not allowed:
        return JsonResponse({"code": "not_authenticated", "detail": "a valid scrape token is required"}, status=401)
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    output = generate_latest(registry)
    state = CollectorRegistry()
    state.register(HiveStateCollector())
    return HttpResponse(output + generate_latest(state), content_type=CONTENT_TYPE_LATEST)
