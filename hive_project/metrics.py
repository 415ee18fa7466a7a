"""`/metrics` for Prometheus.

Counters (tasks reaching a status, events, attempt durations) are counted where they happen — in
web and worker processes. On one machine `hive up` gives every child the same
PROMETHEUS_MULTIPROC_DIR, and this view adds them up. Gauges that describe the hive's state
(queue depth, agents, tasks by status, the guide's agent_hive_* gauges) are read from Redis and
the database at scrape time, so every web process reports the same truth.

Access: with `security.api_key` set, a scraper sends it (`Authorization: Bearer …` or
`X-API-Key`); without it the endpoint is open in development and refused in production.
"""

from __future__ import annotations

import hmac
import os
from collections import defaultdict
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from agents.models import Agent, AgentPool
from coordination.dispatch import queue_depths
from coordination.models import Task


class HiveStateCollector:
    def collect(self):
        pools = list(AgentPool.objects.filter(enabled=True).values_list("name", flat=True))
        depth = GaugeMetricFamily("hive_queue_depth", "Messages waiting in the pool's queue", labels=["pool"])
        try:
            for queue, n in queue_depths([f"hive.{p}" for p in pools]).items():
                depth.add_metric([queue.removeprefix("hive.")], n)
        except Exception:  # Redis away: report what the database knows
            pass
        yield depth
        agents = GaugeMetricFamily("hive_agents", "Agents by status", labels=["status", "pool"])
        for status, pool, n in Agent.objects.values_list("status", "pool__name").annotate(n=Count("id")):
            agents.add_metric([status, pool], n)
        yield agents
        tasks = GaugeMetricFamily("hive_tasks", "Tasks by current status", labels=["status", "pool"])
        for status, pool, n in Task.objects.values_list("status", "pool__name").annotate(n=Count("id")):
            tasks.add_metric([status, pool or ""], n)
        yield tasks
        yield from guide_gauges(pools)


def guide_gauges(pools: list[str]) -> Iterator[GaugeMetricFamily]:
    """The deployment guide's state gauges, labelled by agent_type (the pool).

    agent_hive_active_agents_total: agents online or draining (0 for a pool with none).
    agent_hive_resource_utilization_percent: the mean, over those agents, of every `<resource>_percent`
    value their last heartbeat reported (cpu, memory, and whatever else the workers sample).
    """
    live = list(Agent.objects.live().filter(pool__name__in=pools).values_list("pool__name", "resources"))
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
