"""Alerts: thresholds crossed by the fleet's machines and the pools' queues, raised once per episode.

Where the conditions come from:

- Resources. Every worker's heartbeat samples its machine (or its container) and reports, with the
  sample, the levels that `agents.resources.resource_alerts` gives under its configuration
  (`resources.thresholds.warning/critical`, `performance_monitoring.alert_thresholds.cpu_usage/
  memory_usage`). Agents on one host measure the same machine, so the host is the subject
  (`memory@host-1`), at the highest level any of its live agents reports.
- Queues. A pool whose tasks queued in the database reach `alert_thresholds.task_queue_length`
  (`queue:<pool>`, a warning).

`alerts_evaluate` compares those conditions with the active rows. A new subject is raised
(`alert.raised`); a subject whose level rises from warning to critical is raised again on the same
row (`escalated_from`); a lower level or a new value only updates the row; an active subject that
is no longer over is resolved (`alert.resolved`). So an episode makes one raise (two when it
escalates) and one resolve, however long it lasts. The state is the database's: a partial unique
constraint allows one active row per subject, so a second evaluator's raise fails instead of
doubling it, and every process reads the same answer.

With `performance_monitoring.optimization_enabled` each alert carries a recommendation: what an
operator can change (a pool's instances or concurrency, scaling, the host), read from the pool's
state and the configuration (`recommend`, pure).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeGuard

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.models import Agent, AgentPool
from agents.resources import LIMITED, queue_alerts
from coordination.events import publish
from coordination.models import Alert, Event
from coordination.scaling.policy import PoolState
from coordination.scaling.services import pool_states

if TYPE_CHECKING:
    from hive_project.config import AlertThresholdsConfig

log = logging.getLogger(__name__)

RANK = {"warning": 1, "critical": 2}
OFF = "performance monitoring is off (external_api.performance_monitoring.enabled)"
PERCENT_KEYS = {resource: f"{resource}_percent" for resource in LIMITED}


@dataclass(frozen=True)
class Condition:
    """One subject over a threshold now."""

    subject: str
    resource: str  # cpu, memory, disk or queue
    level: str  # warning or critical
    value: float
    threshold: float
    source: str  # the configuration key of the threshold
    message: str
    host: str = ""
    pool: str | None = None
    agents: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertChange:
    """A raise, an escalation or a resolve, with the event that announced it (for the webhook)."""

    alert: Alert
    change: str  # raised, escalated or resolved
    event_id: int


@dataclass(frozen=True)
class Report:
    """What a live agent said at its last heartbeat."""

    agent: str
    host: str
    pool: str
    resources: Mapping = field(default_factory=dict)


# --- conditions (pure) ---------------------------------------------------------------------------
def resource_conditions(reports: Iterable[Report]) -> list[Condition]:
    """One condition per (host, resource) that any agent of the host reports at warning or above,
    at the highest level (then value) reported; entries that are not well formed are skipped."""
    best: dict[tuple[str, str], dict] = {}
    agents: dict[tuple[str, str], set[str]] = {}
    for report in reports:
        for entry in report.resources.get("alerts") or ():
            parsed = _reported(entry)
            if parsed is None:
                continue
            key = (report.host or report.agent, parsed["resource"])
            agents.setdefault(key, set()).add(report.agent)
            known = best.get(key)
            if known is None or (RANK[parsed["level"]], parsed["value"]) > (RANK[known["level"]], known["value"]):
                best[key] = parsed
    conditions = []
    for (host, resource), entry in sorted(best.items()):
        value, threshold, source = entry["value"], entry["threshold"], entry["source"]
        conditions.append(
            Condition(
                subject=f"{resource}@{host}",
                resource=resource,
                level=entry["level"],
                value=value,
                threshold=threshold,
                source=source,
                host=host,
                agents=tuple(sorted(agents[(host, resource)])),
                message=f"{resource} at {value:.1f}% on {host} (>= {threshold:g}%, {source})",
            )
        )
    return conditions


def _finite_number(n: object) -> TypeGuard[int | float]:
    return isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n)


def _reported(entry: object) -> dict | None:
    if not isinstance(entry, Mapping):
        return None
    resource, level, source = entry.get("resource"), entry.get("level"), entry.get("source")
    value, threshold = entry.get("value"), entry.get("threshold")
    if resource not in LIMITED or level not in RANK or not isinstance(source, str):
        return None
    if not _finite_number(value) or not _finite_number(threshold):
        return None
    return {
        "resource": resource,
        "level": level,
        "value": float(value),
        "threshold": float(threshold),
        "source": source[:120],
    }


def queue_conditions(queued: Mapping[str, int], *, alert_thresholds: AlertThresholdsConfig) -> list[Condition]:
    """A warning for every pool with at least `alert_thresholds.task_queue_length` tasks queued."""
    return [
        Condition(
            subject=a.subject,
            resource="queue",
            level=a.level,
            value=a.value,
            threshold=a.threshold,
            source=a.source,
            message=a.message,
            pool=a.subject.removeprefix("queue:"),
        )
        for a in queue_alerts(queued, alert_thresholds=alert_thresholds)
    ]


def recommend(
    condition: Condition,
    *,
    pools: Mapping[str, PoolState],
    host_pools: Sequence[str] = (),
    scaling_applies: bool,
    limit_percent: float | None = None,
) -> str:
    """What an operator can do about `condition` (pure). `pools` are the pools' states, `host_pools`
    the pools whose agents run on the condition's host, `scaling_applies` whether the scaler's
    decisions are applied (scaling.enabled and auto_scale), `limit_percent` the resource's
    `resources.allocation.<resource>_limit_percent`."""
    if condition.resource == "queue":
        return _recommend_queue(condition.pool or "", pools.get(condition.pool or ""), scaling_applies)
    names = ", ".join(host_pools) or "its pools"
    stop = (
        f"; its workers stop claiming above resources.allocation.{condition.resource}_limit_percent ({limit_percent:g}%)"
        if limit_percent is not None
        else ""
    )
    if condition.resource == "memory":
        return f"lower the concurrency of {names} on {condition.host}, or give it more memory{stop}"
    if condition.resource == "cpu":
        return f"lower the concurrency of {names} on {condition.host}, or give it more CPUs{stop}"
    return (
        f"free disk on {condition.host}: workspaces kept after their attempts (agents.<pool>.workspace.keep) "
        f"and logs under var/ are the usual growth{stop}"
    )


def _recommend_queue(pool: str, state: PoolState | None, scaling_applies: bool) -> str:
    if state is None:
        return ""
    if state.instances == 0 and state.desired > 0:
        return (
            f"no worker of pool {pool} is online ({state.desired} wanted): start one (hive up) or check its Deployment"
        )
    if state.desired >= state.max_instances:
        return (
            f"pool {pool} is at its max_instances ({state.max_instances}): raise agents.{pool}.max_instances "
            f"or agents.{pool}.concurrency ({state.concurrency})"
        )
    if not scaling_applies:
        target = min(state.max_instances, state.desired + 1)
        return (
            f"the scaler's decisions are not applied: run `hive scale {pool} {target}` or set scaling.auto_scale: true"
        )
    return (
        f"the scaler is growing pool {pool} ({state.instances} online, {state.desired} wanted, at most "
        f"{state.max_instances}); raise agents.{pool}.max_instances if the queue keeps growing"
    )


# --- evaluation --------------------------------------------------------------------------------------
def live_reports() -> list[Report]:
    rows = Agent.objects.live().values_list("name", "host", "pool__name", "resources")
    return [Report(agent=name, host=host, pool=pool, resources=resources or {}) for name, host, pool, resources in rows]


def alerts_evaluate(
    *,
    now: datetime | None = None,
    pools: Sequence[AgentPool] | None = None,
    states: Mapping[str, PoolState] | None = None,
) -> list[AlertChange]:
    """Raise, escalate, update and resolve alerts from the fleet's state now; return the changes
    that were announced (an update without a raise is not a change). `states` are the enabled
    pools' states when the caller has read them already (the monitoring beat has)."""
    now = now or timezone.now()
    config = settings.HIVE_CONFIG
    monitoring = config.external_api.performance_monitoring
    if pools is None:
        pools = list(AgentPool.objects.filter(enabled=True).order_by("name"))
    if states is None:
        states = pool_states(pools=pools, now=now)
    by_name = {pool.name: pool for pool in pools}
    reports = live_reports()
    queued = {name: state.ready + state.delayed for name, state in states.items()}
    conditions = resource_conditions(reports) + queue_conditions(queued, alert_thresholds=monitoring.alert_thresholds)
    scaling_applies = config.scaling.enabled and config.scaling.auto_scale
    host_pools: dict[str, set[str]] = {}
    for report in reports:
        host_pools.setdefault(report.host or report.agent, set()).add(report.pool)
    active = {alert.subject: alert for alert in Alert.objects.active()}
    changes: list[AlertChange] = []
    standing: list[Alert] = []  # still over, same episode, no escalation: updated together below
    for condition in conditions:
        advice = ""
        if monitoring.optimization_enabled:
            limit = getattr(config.resources.allocation, f"{condition.resource}_limit_percent", None)
            advice = recommend(
                condition,
                pools=states,
                host_pools=sorted(host_pools.get(condition.host, ())),
                scaling_applies=scaling_applies,
                limit_percent=limit,
            )
        pool = by_name.get(condition.pool) if condition.pool else None
        alert = active.pop(condition.subject, None)
        fields = _condition_fields(condition, advice, now=now)
        if alert is None:
            change = _raise(condition, fields, pool=pool, now=now)
        elif RANK[condition.level] > RANK.get(alert.level, 0):
            change = _escalate(alert, fields)
        else:
            for name, value in fields.items():
                setattr(alert, name, value)
            alert.peak = max(alert.peak, condition.value)
            standing.append(alert)
            continue
        if change is not None:
            changes.append(change)
    _standing_update(standing)
    for alert in active.values():
        change = alert_resolve(alert=alert, resolution=_cleared(alert, reports, queued), now=now)
        if change is not None:
            changes.append(change)
    return changes


def alerts_resolve_all(*, resolution: str, now: datetime | None = None) -> list[AlertChange]:
    """Resolve every active alert, saying why (monitoring turned off): none is left standing unwatched."""
    now = now or timezone.now()
    changes = [alert_resolve(alert=alert, resolution=resolution, now=now) for alert in Alert.objects.active()]
    return [change for change in changes if change is not None]


def alert_resolve(*, alert: Alert, resolution: str, now: datetime) -> AlertChange | None:
    """Resolve `alert` if it is still active (a conditional UPDATE); None when it was not."""
    with transaction.atomic():
        moved = Alert.objects.filter(id=alert.id, resolved_at__isnull=True).update(
            resolved_at=now, updated_at=now, resolution=resolution
        )
        if not moved:
            return None
        alert.resolved_at, alert.updated_at, alert.resolution = now, now, resolution
        event = _announce("alert.resolved", alert)
    return AlertChange(alert=alert, change="resolved", event_id=event.id)


def _condition_fields(condition: Condition, advice: str, *, now: datetime) -> dict:
    """What a round writes on the alert row of `condition`'s subject."""
    return {
        "level": condition.level,
        "value": condition.value,
        "threshold": condition.threshold,
        "source": condition.source,
        "message": condition.message,
        "recommendation": advice,
        "agents": list(condition.agents),
        "updated_at": now,
    }


STANDING_FIELDS = ("level", "value", "threshold", "source", "message", "recommendation", "agents", "updated_at", "peak")


def _standing_update(alerts: Sequence[Alert]) -> None:
    """Write the alerts whose episode goes on, unannounced, in one UPDATE (one commit, not one per
    alert: at a fleet's size each commit is a WAL flush). Only rows still active are written: one
    resolved meanwhile stays resolved, and the next round raises a new episode."""
    if alerts:
        Alert.objects.filter(resolved_at__isnull=True).bulk_update(alerts, STANDING_FIELDS)


def _raise(condition: Condition, fields: dict, *, pool: AgentPool | None, now: datetime) -> AlertChange | None:
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                subject=condition.subject,
                resource=condition.resource,
                host=condition.host,
                pool=pool,
                peak=condition.value,
                raised_at=now,
                **fields,
            )
            event = _announce("alert.raised", alert)
    except IntegrityError:  # another evaluator raised this episode first
        log.info("alert %s was raised by another process", condition.subject)
        return None
    return AlertChange(alert=alert, change="raised", event_id=event.id)


def _escalate(alert: Alert, fields: dict) -> AlertChange | None:
    """Raise `alert` again at its higher level, on the same row, with its event in the same transaction."""
    escalated_from = alert.level
    fields = fields | {"peak": max(alert.peak, fields["value"])}
    with transaction.atomic():
        if not Alert.objects.filter(id=alert.id, resolved_at__isnull=True).update(**fields):
            return None  # resolved meanwhile: the next round raises a new episode
        for name, value in fields.items():
            setattr(alert, name, value)
        event = _announce("alert.raised", alert, escalated_from=escalated_from)
    return AlertChange(alert=alert, change="escalated", event_id=event.id)


def _cleared(alert: Alert, reports: Sequence[Report], queued: Mapping[str, int]) -> str:
    """Why an active alert is no longer over, in words."""
    if alert.resource == "queue":
        pool = alert.subject.removeprefix("queue:")
        if pool not in queued:
            return f"pool {pool} is no longer enabled"
        return f"pool {pool} has {queued[pool]} tasks queued (< {alert.threshold:g})"
    values = [
        r.resources[PERCENT_KEYS[alert.resource]]
        for r in reports
        if (r.host or r.agent) == alert.host and isinstance(r.resources.get(PERCENT_KEYS[alert.resource]), int | float)
    ]
    if not values:
        return f"no live agent on {alert.host} reports {alert.resource}"
    return f"{alert.resource} on {alert.host} at {max(values):.1f}%, under its thresholds again"


def _announce(type: str, alert: Alert, **extra: object) -> Event:
    fields = alert_fields(alert) | extra
    return publish(type, pool=alert.pool, **fields)


def alert_fields(alert: Alert) -> dict:
    """The alert as its events carry it, with stable keys (the event names the pool itself)."""
    return {
        "alert": alert.id,
        "subject": alert.subject,
        "resource": alert.resource,
        "level": alert.level,
        "value": alert.value,
        "peak": alert.peak,
        "threshold": alert.threshold,
        "source": alert.source,
        "message": alert.message,
        "recommendation": alert.recommendation,
        "host": alert.host,
        "agents": list(alert.agents),
        "status": alert.status,
        "raised_at": alert.raised_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "resolution": alert.resolution,
    }
