"""`/metrics` for Prometheus.

Counters (tasks reaching a status, events, attempt durations) are counted where they happen — in
web and worker processes. On one machine `hive up` gives every child the same
PROMETHEUS_MULTIPROC_DIR, and this view adds them up. Gauges that describe the hive's state
(queue depth, agents, tasks by status) are read from Redis and the database at scrape time, so
every web process reports the same truth.

Access: with `security.api_key` set, a scraper sends it (`Authorization: Bearer …` or
`X-API-Key`); without it the endpoint is open in development and refused in production.
"""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from agents.models import Agent, AgentPool
from coordination.dispatch import queue_depths
from coordination.models import Task
from ml.metrics import model_metrics


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
        yield from model_metrics()


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
