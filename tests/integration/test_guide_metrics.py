"""The deployment guide's metrics after real work: a real worker process runs real subprocesses,
counts into a multiprocess directory as under `hive up`, and /metrics reports every metric."""

from __future__ import annotations

import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.models import Agent
from coordination.models import Task
from coordination.services import task_submit
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished(task: Task) -> Task | None:
    task.refresh_from_db()
    return task if task.is_terminal else None


def samples(body: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def test_metrics_after_real_work_report_every_guide_metric(hive, client, tmp_path, monkeypatch):
    counts = tmp_path / "prometheus"
    counts.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(counts))  # the worker inherits it; /metrics adds it up
    hive.worker("backend")
    good = task_submit(capabilities=["python"], command=[sys.executable, "-c", "print('ok')"])
    bad = task_submit(capabilities=["python"], command=[sys.executable, "-c", "raise SystemExit(3)"], max_attempts=1)
    wait_for(lambda: finished(good) and finished(bad), timeout=60, what="both tasks to finish")
    assert (good.status, bad.status) == ("succeeded", "dead")
    wait_for(
        lambda: "cpu_percent" in Agent.objects.get(name="backend@test").resources,
        timeout=30,
        what="a heartbeat with the worker's resources",
    )

    response = client.get("/metrics")
    assert response.status_code == 200
    found = samples(response.content.decode())

    def at(name: str, **labels: str) -> float | None:
        return found.get((name, frozenset(labels.items())))

    assert at("agent_hive_tasks_completed_total", agent_type="backend", status="succeeded") == 1
    assert at("agent_hive_tasks_completed_total", agent_type="backend", status="dead") == 1
    assert at("agent_hive_agent_failures_total", agent_type="backend") == 1
    assert at("agent_hive_coordination_latency_seconds_count", stage="claim") == 2
    assert at("agent_hive_coordination_latency_seconds_bucket", le="+Inf", stage="claim") == 2
    assert 0 <= at("agent_hive_coordination_latency_seconds_sum", stage="claim") < 30
    assert at("agent_hive_active_agents_total", agent_type="backend") == 1
    assert at("agent_hive_active_agents_total", agent_type="ios") == 0
    for resource in ("cpu", "memory"):
        assert 0 <= at("agent_hive_resource_utilization_percent", agent_type="backend", resource=resource) <= 100
