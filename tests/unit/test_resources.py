"""Resource limits and alerts as tables; sampling from the real machine and from a cgroup tree."""

from __future__ import annotations

import time

import pytest

from agents.resources import (
    Alert,
    ClaimGate,
    ResourceSample,
    ResourceSampler,
    claim_gate,
    gate_changed,
    level_of,
    queue_alerts,
    resource_alerts,
)
from hive_project.config import (
    AlertThresholdsConfig,
    ResourceAllocationConfig,
    ResourceMonitoringConfig,
    ResourceThresholdsConfig,
)

ALLOCATION = ResourceAllocationConfig(cpu_limit_percent=80, memory_limit_percent=75, disk_limit_percent=90)
THRESHOLDS = ResourceThresholdsConfig(warning=75, critical=90)
ALERTS = AlertThresholdsConfig(cpu_usage=0.85, memory_usage=0.70, task_queue_length=100)


def sample(**values) -> ResourceSample:
    return ResourceSample(at=0.0, **values)


@pytest.mark.parametrize(
    ("values", "gate"),
    [
        ({"cpu_percent": 10, "memory_percent": 20, "disk_percent": 30}, ClaimGate(ok=True)),
        ({"cpu_percent": 80, "memory_percent": 75, "disk_percent": 90}, ClaimGate(ok=True)),  # at the limit: fine
        ({"memory_percent": 82}, ClaimGate(ok=False, over=("memory 82.0% > 75%",))),
        ({"cpu_percent": 99.5, "disk_percent": 95}, ClaimGate(ok=False, over=("cpu 99.5% > 80%", "disk 95.0% > 90%"))),
        ({}, ClaimGate(ok=True)),  # nothing monitored: nothing to stop for
        ({"net_sent_per_second": 1e12}, ClaimGate(ok=True)),  # network has no limit
    ],
    ids=["under", "at-limits", "memory-over", "cpu-and-disk-over", "nothing-sampled", "network-unlimited"],
)
def test_claim_gate_table(values, gate):
    assert claim_gate(sample(**values), ALLOCATION) == gate


def test_claim_gate_describe_names_the_resources():
    assert claim_gate(sample(memory_percent=82), ALLOCATION).describe() == "over limits: memory 82.0% > 75%"
    assert claim_gate(sample(memory_percent=12), ALLOCATION).describe() == "within limits"


@pytest.mark.parametrize(
    ("previous", "current", "change"),
    [
        (None, ClaimGate(ok=True), None),
        (None, ClaimGate(ok=False, over=("cpu",)), "stopped"),
        (ClaimGate(ok=True), ClaimGate(ok=False, over=("cpu",)), "stopped"),
        (ClaimGate(ok=False, over=("cpu",)), ClaimGate(ok=False, over=("memory",)), None),
        (ClaimGate(ok=False, over=("cpu",)), ClaimGate(ok=True), "resumed"),
    ],
)
def test_gate_changed_table(previous, current, change):
    assert gate_changed(previous, current) == change


@pytest.mark.parametrize(
    ("percent", "level"),
    [(0, "ok"), (74.9, "ok"), (75, "warning"), (89.9, "warning"), (90, "critical"), (100, "critical")],
)
def test_level_of_table(percent, level):
    assert level_of(percent, THRESHOLDS) == level


def test_resource_alerts_take_the_higher_rule():
    alerts = resource_alerts(
        sample(cpu_percent=86, memory_percent=72, disk_percent=93, net_recv_per_second=5e9),
        thresholds=THRESHOLDS,
        alert_thresholds=ALERTS,
    )

    assert alerts == [
        Alert(
            "cpu",
            "warning",
            86.0,
            75.0,
            "resources.thresholds.warning",
            "cpu at 86.0% (>= 75%, resources.thresholds.warning)",
        ),
        Alert(
            "memory",
            "warning",
            72.0,
            70.0,
            "external_api.performance_monitoring.alert_thresholds.memory_usage",
            "memory at 72.0% (>= 70%, external_api.performance_monitoring.alert_thresholds.memory_usage)",
        ),
        Alert(
            "disk",
            "critical",
            93.0,
            90.0,
            "resources.thresholds.critical",
            "disk at 93.0% (>= 90%, resources.thresholds.critical)",
        ),
    ]


def test_resource_alerts_quiet_when_under_every_bar():
    assert (
        resource_alerts(
            sample(cpu_percent=50, memory_percent=60, disk_percent=70), thresholds=THRESHOLDS, alert_thresholds=ALERTS
        )
        == []
    )


def test_queue_alerts_at_the_bar():
    alerts = queue_alerts({"backend": 100, "ios": 99, "frontend": 250}, alert_thresholds=ALERTS)

    assert [(a.subject, a.level, a.value) for a in alerts] == [
        ("queue:backend", "warning", 100.0),
        ("queue:frontend", "warning", 250.0),
    ]
    assert alerts[0].message == (
        "pool backend has 100 tasks queued (>= 100, external_api.performance_monitoring.alert_thresholds"
        ".task_queue_length)"
    )


# --- sampling -----------------------------------------------------------------------------------


def test_sampler_reads_this_machine(tmp_path):
    sampler = ResourceSampler(ResourceMonitoringConfig(), disk_path=tmp_path, cgroup_root=tmp_path / "none")

    got = sampler.sample()

    for value in (got.cpu_percent, got.memory_percent, got.disk_percent):
        assert value is not None and 0 <= value <= 100
    assert got.net_sent_per_second is not None and got.net_sent_per_second >= 0
    assert set(got.as_dict()) == {
        "cpu_percent",
        "memory_percent",
        "disk_percent",
        "net_sent_per_second",
        "net_recv_per_second",
    }


def test_sampler_skips_what_monitoring_disables(tmp_path):
    monitoring = ResourceMonitoringConfig(cpu=False, memory=True, disk=False, network=False)

    got = ResourceSampler(monitoring, disk_path=tmp_path, cgroup_root=tmp_path / "none").sample()

    assert (got.cpu_percent, got.disk_percent, got.net_sent_per_second) == (None, None, None)
    assert got.as_dict().keys() == {"memory_percent"}


def test_sampler_measures_against_cgroup_limits(tmp_path):
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text("1000000\n")
    (cgroup / "memory.current").write_text("900000\n")
    (cgroup / "memory.stat").write_text("anon 500000\ninactive_file 100000\n")
    (cgroup / "cpu.max").write_text("50000 100000\n")  # half a CPU
    (cgroup / "cpu.stat").write_text("usage_usec 1000\n")
    started = time.monotonic()
    sampler = ResourceSampler(ResourceMonitoringConfig(network=False), disk_path=tmp_path, cgroup_root=cgroup)
    time.sleep(0.5)
    # A quarter of a CPU busy since the sampler started: half of its quota.
    (cgroup / "cpu.stat").write_text(f"usage_usec {1000 + int((time.monotonic() - started) * 0.25e6)}\n")

    got = sampler.sample()

    assert got.memory_percent == pytest.approx(80.0)  # (900000 - 100000) / 1000000
    assert got.cpu_percent == pytest.approx(50.0, abs=5)


def test_sampler_latest_samples_once_per_interval(tmp_path):
    now = [1000.0]
    sampler = ResourceSampler(
        ResourceMonitoringConfig(interval_seconds=5),
        disk_path=tmp_path,
        cgroup_root=tmp_path / "none",
        clock=lambda: now[0],
    )

    first = sampler.latest()
    now[0] += 4.9
    same = sampler.latest()
    now[0] += 0.2
    fresh = sampler.latest()

    assert same is first and fresh is not first and fresh.at == 1005.1
