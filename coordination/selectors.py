"""Shared reads: who sees which tasks and events, counts by status, pool summaries.

The API, the event stream, the CLI and `/metrics` all answer these questions; they ask here so the
answers cannot drift apart. Everything returns QuerySets or plain values and changes nothing.

Team visibility, the one rule: staff see every task and event; anyone else sees their own team's
tasks, their team's events and the events that belong to no team (about shared pools and
agents). A principal without a team who is not staff (an anonymous stream viewer, a user never
put in a team) sees no task and only the team-less events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

from django.db.models import Count, Q, QuerySet

from agents.models import Agent, AgentPool
from coordination.dispatch import queue_depths
from coordination.models import Alert, Event, PoolSample, ScalingDecision, Task, TaskQuerySet

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


# --- team visibility -------------------------------------------------------------------------------
def tasks_visible_to(*, team_id: int | None, staff: bool) -> TaskQuerySet:
    """The tasks this principal may see (and act on, scopes permitting)."""
    return Task.objects.visible_to(team_id=team_id, staff=staff)


def events_visible_to(*, team_id: int | None, staff: bool) -> QuerySet[Event]:
    """The stored events this principal may see, for lists and replay."""
    events = Event.objects.all()
    if staff:
        return events
    if team_id is not None:
        return events.filter(Q(team_id=team_id) | Q(team__isnull=True))
    return events.filter(team__isnull=True)


def event_message_visible_to(event: Mapping[str, Any], *, team_id: int | None, staff: bool) -> bool:
    """The same rule as `events_visible_to`, for a published event (`Event.as_message()`) that
    the stream relays without reading the table."""
    owner = event.get("team")
    return staff or owner is None or (team_id is not None and owner == team_id)


# --- counts ------------------------------------------------------------------------------------------
def task_counts_by_status(*, active_only: bool = False) -> dict[str, int]:
    """Tasks per status, every status present (0 when none); only pending/queued/running with
    `active_only` (cheaper: the terminal statuses hold almost every row)."""
    tasks = Task.objects.active() if active_only else Task.objects.all()
    found = dict(tasks.order_by().values_list("status").annotate(n=Count("id")))
    statuses = Task.ACTIVE_STATUSES if active_only else Task.Status.values
    return {str(status): found.get(status, 0) for status in statuses}


def task_counts_by_status_and_pool() -> list[tuple[str, str, int]]:
    """(status, pool name or "", count) for every pair that has tasks."""
    rows = Task.objects.order_by().values_list("status", "pool__name").annotate(n=Count("id"))
    return [(status, pool or "", n) for status, pool, n in rows]


def agent_counts_by_status() -> dict[str, int]:
    """Agents per status, every status present."""
    found = dict(Agent.objects.order_by().values_list("status").annotate(n=Count("id")))
    return {str(status): found.get(status, 0) for status in Agent.Status.values}


def agent_counts_by_status_and_pool() -> list[tuple[str, str, int]]:
    rows = Agent.objects.order_by().values_list("status", "pool__name").annotate(n=Count("id"))
    return [(status, pool, n) for status, pool, n in rows]


# --- pools ---------------------------------------------------------------------------------------------
class PoolCounts(TypedDict):
    queued: int
    running: int
    agents_online: int


def pools_with_counts() -> QuerySet[WithAnnotations[AgentPool, PoolCounts]]:
    """Enabled pools, each annotated with `queued` and `running` tasks and `agents_online`
    (agents not offline). Pools and agents are shared: every principal sees them all."""
    return AgentPool.objects.filter(enabled=True).annotate(
        queued=Count("tasks", filter=Q(tasks__status=Task.Status.QUEUED), distinct=True),
        running=Count("tasks", filter=Q(tasks__status=Task.Status.RUNNING), distinct=True),
        agents_online=Count("agents", filter=~Q(agents__status=Agent.Status.OFFLINE), distinct=True),
    )


def pool_queue_depths(pools: Iterable[AgentPool] | None = None) -> dict[str, int]:
    """Messages waiting in the broker per queue name (`hive.<pool>`) for these pools (default:
    the enabled ones). Empty when Redis does not answer: a summary never fails for want of it."""
    queues = [pool.queue for pool in (AgentPool.objects.filter(enabled=True) if pools is None else pools)]
    try:
        return queue_depths(queues)
    except Exception:  # Redis away: callers show "?" or leave the gauge out
        return {}


def pool_instances() -> list[tuple[str, int, int]]:
    """(pool, desired instances, online instances) for every enabled pool, by name."""
    online = dict(
        Agent.objects.filter(status=Agent.Status.ONLINE)
        .values("pool__name")
        .annotate(n=Count("id"))
        .values_list("pool__name", "n")
    )
    return [
        (name, desired, online.get(name, 0))
        for name, desired in AgentPool.objects.filter(enabled=True)
        .order_by("name")
        .values_list("name", "desired_instances")
    ]


def scaling_decisions_recent(*, pool: str | None = None) -> QuerySet[ScalingDecision]:
    """Scaling decisions, newest first, optionally of one pool (slice it for the last N)."""
    decisions = ScalingDecision.objects.select_related("pool").order_by("-created_at", "-id")
    return decisions.filter(pool__name=pool) if pool else decisions


def live_agent_resources(pools: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
    """(pool, resources of its last heartbeat) for every agent online or draining in these pools."""
    rows = Agent.objects.live().filter(pool__name__in=list(pools)).values_list("pool__name", "resources")
    return [(pool, resources or {}) for pool, resources in rows]


# --- monitoring ------------------------------------------------------------------------------------------
SERIES_MAX_POINTS = 1500  # per pool: a day of 30-second samples is 2880 points; a chart needs fewer


def alerts_filtered(
    *,
    status: str | None = None,
    level: str | None = None,
    resource: str | None = None,
    pool: str | None = None,
    host: str | None = None,
    since: datetime | None = None,
) -> QuerySet[Alert]:
    """Alerts, newest raise first. They are about the shared fleet: every principal who may read
    sees them all. `status` is active or resolved; `since` keeps those raised at or after it."""
    alerts = Alert.objects.select_related("pool").order_by("-raised_at", "-id")
    if status == "active":
        alerts = alerts.filter(resolved_at__isnull=True)
    elif status == "resolved":
        alerts = alerts.filter(resolved_at__isnull=False)
    filters = {"level": level, "resource": resource, "pool__name": pool, "host": host, "raised_at__gte": since}
    return alerts.filter(**{lookup: value for lookup, value in filters.items() if value is not None})


def pool_series(*, since: datetime) -> list[dict[str, Any]]:
    """Every enabled pool's samples since `since` as columns (epoch seconds `t`, `desired`, `online`,
    `queued`, `running`; at most SERIES_MAX_POINTS, evenly thinned, the newest always kept) and
    its scaling decisions in that time (`t`, `previous`, `desired`, `reason`, `actuator`, `applied`)."""
    pools = list(AgentPool.objects.filter(enabled=True).order_by("name").values_list("id", "name"))
    columns = ("desired", "online", "queued", "running")
    rows: dict[int, list[tuple]] = {pool_id: [] for pool_id, _ in pools}
    samples = PoolSample.objects.filter(pool_id__in=rows, at__gte=since).order_by("pool_id", "at", "id")
    for pool_id, at, *values in samples.values_list("pool_id", "at", *columns):
        rows[pool_id].append((round(at.timestamp(), 3), *values))
    decisions: dict[int, list[dict[str, Any]]] = {pool_id: [] for pool_id in rows}
    for d in ScalingDecision.objects.filter(pool_id__in=rows, created_at__gte=since).order_by("created_at", "id"):
        decisions[d.pool_id].append(
            {
                "t": round(d.created_at.timestamp(), 3),
                "previous": d.previous,
                "desired": d.desired,
                "reason": d.reason,
                "actuator": d.actuator,
                "applied": d.applied,
            }
        )
    series = []
    for pool_id, name in pools:
        points = _thin(rows[pool_id], SERIES_MAX_POINTS)
        samples_by_column = {key: [point[i] for point in points] for i, key in enumerate(("t", *columns))}
        series.append({"pool": name, "samples": samples_by_column, "decisions": decisions[pool_id]})
    return series


def _thin(points: list[tuple], most: int) -> list[tuple]:
    if len(points) <= most:
        return points
    step = len(points) / most
    kept = [points[int(i * step)] for i in range(most - 1)]
    return [*kept, points[-1]]
