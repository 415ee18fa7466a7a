"""A worker's resources: what it samples, and the pure decisions taken on a sample.

Sampling follows `resources.monitoring` (cpu, memory, disk, network, `interval_seconds`). It
measures the machine the worker runs on, or its container: where a cgroup v2 limit is set (a
Kubernetes pod, `docker run --memory/--cpus`) CPU and memory are measured against that limit,
as the kernel will enforce it, not against the host. Network is reported as bytes per second.

Decisions (pure, table-tested):

- `claim_gate`: a worker may claim while every sampled resource is at or under its
  `resources.allocation.<resource>_limit_percent`; above one it stops claiming until it is under
  again (network has no limit in the schema).
- `resource_alerts`: a level per resource, `critical` at `resources.thresholds.critical`,
  `warning` at `resources.thresholds.warning` or at the `performance_monitoring.alert_thresholds`
  (`cpu_usage`, `memory_usage`, fractions); `queue_alerts`: a pool whose queue reaches
  `alert_thresholds.task_queue_length` is a warning.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import psutil

if TYPE_CHECKING:
    from hive_project.config import (
        AlertThresholdsConfig,
        ResourceAllocationConfig,
        ResourceMonitoringConfig,
        ResourceThresholdsConfig,
    )

Level = Literal["ok", "warning", "critical"]
LIMITED = ("cpu", "memory", "disk")  # the resources with a *_limit_percent
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ResourceSample:
    """One sample; a resource not monitored (or not measurable here) is None."""

    at: float  # epoch seconds
    cpu_percent: float | None = None
    memory_percent: float | None = None
    disk_percent: float | None = None
    net_sent_per_second: float | None = None
    net_recv_per_second: float | None = None

    def percent(self, resource: str) -> float | None:
        return getattr(self, f"{resource}_percent")

    def as_dict(self) -> dict[str, float]:
        """The sampled values only, rounded, for the agent's `resources` column and events."""
        names = ("cpu_percent", "memory_percent", "disk_percent", "net_sent_per_second", "net_recv_per_second")
        return {name: round(value, 1) for name in names if (value := getattr(self, name)) is not None}


@dataclass(frozen=True)
class ClaimGate:
    ok: bool
    over: tuple[str, ...] = ()  # "memory 82.0% > 75%" for every resource above its limit

    def describe(self) -> str:
        return "within limits" if self.ok else "over limits: " + ", ".join(self.over)


@dataclass(frozen=True)
class Alert:
    subject: str  # cpu, memory, disk, or queue:<pool>
    level: Literal["warning", "critical"]
    value: float
    threshold: float
    source: str  # the configuration key whose threshold was reached
    message: str


def claim_gate(sample: ResourceSample, allocation: ResourceAllocationConfig) -> ClaimGate:
    """May this worker claim a task? Not while a sampled resource is above its limit."""
    over = []
    for resource in LIMITED:
        value = sample.percent(resource)
        limit = getattr(allocation, f"{resource}_limit_percent")
        if value is not None and value > limit:
            over.append(f"{resource} {value:.1f}% > {limit:g}%")
    return ClaimGate(ok=not over, over=tuple(over))


def gate_changed(previous: ClaimGate | None, current: ClaimGate) -> Literal["stopped", "resumed"] | None:
    """ "stopped" when a worker must stop claiming now, "resumed" when it may again, else None."""
    was_ok = previous is None or previous.ok
    if was_ok and not current.ok:
        return "stopped"
    if not was_ok and current.ok:
        return "resumed"
    return None


def level_of(percent: float, thresholds: ResourceThresholdsConfig) -> Level:
    if percent >= thresholds.critical:
        return "critical"
    if percent >= thresholds.warning:
        return "warning"
    return "ok"


def resource_alerts(
    sample: ResourceSample, *, thresholds: ResourceThresholdsConfig, alert_thresholds: AlertThresholdsConfig
) -> list[Alert]:
    """One alert per sampled resource at warning or above (the higher of the two rules decides)."""
    alerts = []
    usage = {"cpu": alert_thresholds.cpu_usage, "memory": alert_thresholds.memory_usage}
    for resource in LIMITED:
        value = sample.percent(resource)
        if value is None:
            continue
        level = level_of(value, thresholds)
        threshold, source = (
            (thresholds.critical, "resources.thresholds.critical")
            if level == "critical"
            else (thresholds.warning, "resources.thresholds.warning")
        )
        if level == "ok" and resource in usage and value >= usage[resource] * 100:
            level = "warning"
            threshold = usage[resource] * 100
            source = f"external_api.performance_monitoring.alert_thresholds.{resource}_usage"
        if level == "ok":
            continue
        alerts.append(
            Alert(
                subject=resource,
                level=level,
                value=round(value, 1),
                threshold=threshold,
                source=source,
                message=f"{resource} at {value:.1f}% (>= {threshold:g}%, {source})",
            )
        )
    return alerts


def queue_alerts(lengths: Mapping[str, int], *, alert_thresholds: AlertThresholdsConfig) -> list[Alert]:
    """A warning for every pool whose queue holds at least `task_queue_length` tasks."""
    bar = alert_thresholds.task_queue_length
    source = "external_api.performance_monitoring.alert_thresholds.task_queue_length"
    return [
        Alert(
            subject=f"queue:{pool}",
            level="warning",
            value=float(n),
            threshold=float(bar),
            source=source,
            message=f"pool {pool} has {n} tasks queued (>= {bar}, {source})",
        )
        for pool, n in sorted(lengths.items())
        if n >= bar
    ]


# --- sampling -----------------------------------------------------------------------------------


class ResourceSampler:
    """Samples what `monitoring` enables; `latest()` samples at most once per `interval_seconds`.

    Rates (CPU in a cgroup, network) are measured between samples; the constructor takes the
    first reading, so the first sample already has them. Not thread-safe: one per thread.
    """

    def __init__(
        self,
        monitoring: ResourceMonitoringConfig,
        *,
        disk_path: str | os.PathLike[str],
        cgroup_root: Path = CGROUP_ROOT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.monitoring = monitoring
        self.disk_path = str(disk_path)
        self.cgroup = cgroup_root
        self.clock = clock
        self._last: ResourceSample | None = None
        self._cpu_quota = _cgroup_cpus(cgroup_root)
        self._cpu_mark = (time.monotonic(), _cgroup_cpu_usec(cgroup_root)) if self._cpu_quota else None
        self._net_mark = (time.monotonic(), psutil.net_io_counters()) if monitoring.network else None
        if monitoring.cpu and not self._cpu_quota:
            psutil.cpu_percent(None)  # the first call only starts psutil's measurement

    @property
    def interval(self) -> float:
        return self.monitoring.interval_seconds

    def latest(self) -> ResourceSample:
        """The last sample while it is younger than the interval, else a new one."""
        if self._last is None or self.clock() - self._last.at >= self.interval:
            self._last = self.sample()
        return self._last

    def sample(self) -> ResourceSample:
        m = self.monitoring
        sent = received = None
        if m.network:
            sent, received = self._network()
        return ResourceSample(
            at=self.clock(),
            cpu_percent=self._cpu() if m.cpu else None,
            memory_percent=self._memory() if m.memory else None,
            disk_percent=psutil.disk_usage(self.disk_path).percent if m.disk else None,
            net_sent_per_second=sent,
            net_recv_per_second=received,
        )

    def _cpu(self) -> float:
        if not self._cpu_quota or self._cpu_mark is None:
            return float(psutil.cpu_percent(None))
        now, usage = time.monotonic(), _cgroup_cpu_usec(self.cgroup)
        then, before = self._cpu_mark
        self._cpu_mark = (now, usage)
        if usage is None or before is None or now <= then:
            return float(psutil.cpu_percent(None))
        return min(100.0, max(0.0, (usage - before) / ((now - then) * 1e6 * self._cpu_quota) * 100))

    def _memory(self) -> float:
        limited = _cgroup_memory_percent(self.cgroup)
        return limited if limited is not None else float(psutil.virtual_memory().percent)

    def _network(self) -> tuple[float | None, float | None]:
        now, counters = time.monotonic(), psutil.net_io_counters()
        if self._net_mark is None or counters is None:
            self._net_mark = (now, counters)
            return None, None
        then, before = self._net_mark
        self._net_mark = (now, counters)
        if before is None or now <= then:
            return None, None
        elapsed = now - then
        return (
            max(0.0, (counters.bytes_sent - before.bytes_sent) / elapsed),
            max(0.0, (counters.bytes_recv - before.bytes_recv) / elapsed),
        )


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cgroup_cpus(root: Path) -> float | None:
    """CPUs the cgroup may use (cpu.max quota / period), or None without a quota."""
    text = _read(root / "cpu.max")
    if not text:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max":
        return None
    try:
        return int(quota) / int(period or 100000)
    except ValueError:
        return None


def _cgroup_cpu_usec(root: Path) -> int | None:
    for line in (_read(root / "cpu.stat") or "").splitlines():
        name, _, value = line.partition(" ")
        if name == "usage_usec" and value.isdigit():
            return int(value)
    return None


def _cgroup_memory_percent(root: Path) -> float | None:
    """The working set (current minus inactive file cache, as Kubernetes counts it) over memory.max."""
    limit, current = _read(root / "memory.max"), _read(root / "memory.current")
    if not limit or limit == "max" or not current or not limit.isdigit() or not current.isdigit():
        return None
    inactive = 0
    for line in (_read(root / "memory.stat") or "").splitlines():
        name, _, value = line.partition(" ")
        if name == "inactive_file" and value.isdigit():
            inactive = int(value)
    working = max(0, int(current) - inactive)
    return min(100.0, working / int(limit) * 100) if int(limit) else None
