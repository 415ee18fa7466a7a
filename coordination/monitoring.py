"""Performance monitoring: beat's `hive.monitor`, every `performance_monitoring.monitoring_interval`.

One round (`monitoring_tick`) reads every enabled pool's state once, records it as a `PoolSample`
(the dashboard's time series: desired and online instances, queued and running tasks), prunes
samples older than a day and alerts resolved more than a week ago, and evaluates the alerts
(`coordination.alerts`). Two beats never both sample: a round first takes the database lease
`monitoring` for most of one interval; a process that does not get it does nothing.

With `performance_monitoring.enabled` false a round records nothing and raises nothing, and
resolves the alerts still active (nobody watches them any more), saying why.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from agents.models import AgentPool
from coordination.alerts import OFF, AlertChange, alerts_evaluate, alerts_resolve_all
from coordination.leases import lease_acquire, lease_holder
from coordination.models import Alert, PoolSample
from coordination.scaling.policy import PoolState
from coordination.scaling.services import pool_states

log = logging.getLogger(__name__)

LEASE = "monitoring"
LEASE_SHARE = 0.8  # of an interval: the next tick of the same beat finds the lease free again
SAMPLE_RETENTION = timedelta(days=1)
ALERT_RETENTION = timedelta(days=7)  # resolved alerts; active ones stay however old


@dataclass(frozen=True)
class MonitoringRound:
    """What one round did. `ran` is False when another process held the lease."""

    ran: bool
    samples: int = 0
    pruned: int = 0
    changes: list[AlertChange] = field(default_factory=list)


def monitoring_tick(*, now: datetime | None = None) -> MonitoringRound:
    """One monitoring round (see the module's docstring). Safe to run in several processes at once."""
    now = now or timezone.now()
    conf = settings.HIVE_CONFIG.external_api.performance_monitoring
    if not lease_acquire(name=LEASE, holder=lease_holder(), ttl=conf.monitoring_interval * LEASE_SHARE, now=now):
        log.debug("another process holds the monitoring lease; skipping this round")
        return MonitoringRound(ran=False)
    if not conf.enabled:
        return MonitoringRound(ran=True, changes=alerts_resolve_all(resolution=OFF, now=now))
    pools = list(AgentPool.objects.filter(enabled=True).order_by("name"))
    states = pool_states(pools=pools, now=now)
    samples = pool_samples_record(pools=pools, states=states, now=now)
    pruned = pool_samples_prune(now=now)
    changes = alerts_evaluate(now=now, pools=pools, states=states)
    return MonitoringRound(ran=True, samples=samples, pruned=pruned, changes=changes)


def pool_samples_record(*, pools: Sequence[AgentPool], states: Mapping[str, PoolState], now: datetime) -> int:
    """One sample per pool from its state; returns how many were written."""
    rows = [
        PoolSample(
            pool=pool,
            at=now,
            desired=state.desired,
            online=state.instances,
            queued=state.ready + state.delayed,
            running=state.running,
        )
        for pool in pools
        if (state := states.get(pool.name)) is not None
    ]
    PoolSample.objects.bulk_create(rows)
    return len(rows)


def pool_samples_prune(*, now: datetime) -> int:
    """Delete samples older than a day and alerts resolved more than a week ago; returns the rows deleted."""
    samples, _ = PoolSample.objects.filter(at__lt=now - SAMPLE_RETENTION).delete()
    alerts, _ = Alert.objects.filter(resolved_at__lt=now - ALERT_RETENTION).delete()
    return samples + alerts
