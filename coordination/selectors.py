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
from typing import Any

from django.db.models import Count, Q, QuerySet

from agents.models import Agent, AgentPool
from coordination.dispatch import queue_depths
from coordination.models import Event, ScalingDecision, Task, TaskQuerySet


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
def pools_with_counts() -> QuerySet[AgentPool]:
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
