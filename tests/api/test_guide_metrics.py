"""The deployment guide's metrics on /metrics, after work done through the services.

Counters are global to the test process, so each test compares a scrape before and after.
"""

from __future__ import annotations

import os
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agents.models import Agent
from coordination.fleet import agent_stopped
from coordination.models import Task, TaskAttempt
from coordination.processes import HOSTNAME
from coordination.recovery import agents_mark_offline
from coordination.results import AttemptResult
from coordination.services import (
    attempt_finish,
    attempt_lost,
    ready_to_claim_seconds,
    task_cancel,
    task_claim,
    task_submit,
)

pytestmark = pytest.mark.django_db
Outcome = TaskAttempt.Outcome


def scrape(client) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics by (sample name, labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def agent(pools) -> Agent:
    return Agent.objects.create(name="backend@metrics", pool=pools["backend"], host=HOSTNAME, pid=os.getpid())


def run_once(agent: Agent, outcome: str, *, max_attempts: int = 1, permanent: bool = False) -> Task:
    task = task_submit(capabilities=["python"], command=["true"], max_attempts=max_attempts)
    attempt = task_claim(task_id=str(task.id), agent=agent, pid=os.getpid(), host=HOSTNAME)
    return attempt_finish(attempt_id=attempt.id, result=AttemptResult(outcome=outcome, permanent=permanent))


def test_tasks_completed_counts_each_terminal_status_by_pool(client, agent, django_capture_on_commit_callbacks):
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_once(agent, Outcome.SUCCEEDED).status == "succeeded"
        assert run_once(agent, Outcome.FAILED, permanent=True).status == "failed"
        assert run_once(agent, Outcome.TIMEOUT).status == "dead"
        task_cancel(task=task_submit(capabilities=["python"], command=["true"]))
        retried = run_once(agent, Outcome.FAILED, max_attempts=2)  # goes back to the queue: not terminal
    assert retried.status == "queued"
    after = scrape(client)
    for status in ("succeeded", "failed", "dead", "cancelled"):
        name = "agent_hive_tasks_completed_total"
        delta = value(after, name, agent_type="backend", status=status) - value(
            before, name, agent_type="backend", status=status
        )
        assert delta == 1, status
    assert value(after, "agent_hive_tasks_completed_total", agent_type="backend", status="queued") == 0


def test_agent_failures_count_failed_timed_out_and_lost_attempts_and_silent_agents(
    client, agent, pools, django_capture_on_commit_callbacks
):
    name = "agent_hive_agent_failures_total"
    before = value(scrape(client), name, agent_type="backend")
    with django_capture_on_commit_callbacks(execute=True):
        run_once(agent, Outcome.SUCCEEDED)  # not a failure
        run_once(agent, Outcome.FAILED, max_attempts=3)
        run_once(agent, Outcome.TIMEOUT)
        task = task_submit(capabilities=["python"], command=["true"])
        attempt = task_claim(task_id=str(task.id), agent=agent, pid=os.getpid(), host=HOSTNAME)
        attempt_lost(attempt_id=attempt.id, reason="worker vanished")
    assert value(scrape(client), name, agent_type="backend") - before == 3

    silent = Agent.objects.create(
        name="backend@silent",
        pool=pools["backend"],
        host="elsewhere",
        last_heartbeat=timezone.now() - timedelta(minutes=5),
    )
    stopping = Agent.objects.create(name="backend@stopping", pool=pools["backend"], host="elsewhere")
    with django_capture_on_commit_callbacks(execute=True):
        assert agents_mark_offline(older_than=timedelta(seconds=30)) == 1
        agent_stopped(agent_id=stopping.id)  # a clean shutdown, as on scale-in: no failure
    silent.refresh_from_db()
    assert silent.status == "offline"
    assert value(scrape(client), name, agent_type="backend") - before == 4


def test_coordination_latency_observes_every_claim(client, agent):
    before = scrape(client)
    task = task_submit(capabilities=["python"], command=["true"])
    Task.objects.filter(id=task.id).update(available_at=timezone.now() - timedelta(seconds=3))
    assert task_claim(task_id=str(task.id), agent=agent, pid=os.getpid(), host=HOSTNAME) is not None
    after = scrape(client)
    count = "agent_hive_coordination_latency_seconds_count"
    assert value(after, count, stage="claim") - value(before, count, stage="claim") == 1
    total = "agent_hive_coordination_latency_seconds_sum"
    assert 3 <= value(after, total, stage="claim") - value(before, total, stage="claim") < 10
    bucket = "agent_hive_coordination_latency_seconds_bucket"
    assert value(after, bucket, le="2.5", stage="claim") - value(before, bucket, le="2.5", stage="claim") == 0
    assert value(after, bucket, le="5.0", stage="claim") - value(before, bucket, le="5.0", stage="claim") == 1


def test_a_claim_that_loses_the_race_observes_no_latency(client, agent):
    task = task_submit(capabilities=["python"], command=["true"])
    assert task_claim(task_id=str(task.id), agent=agent, pid=os.getpid(), host=HOSTNAME) is not None
    before = value(scrape(client), "agent_hive_coordination_latency_seconds_count", stage="claim")
    assert task_claim(task_id=str(task.id), agent=agent, pid=os.getpid(), host=HOSTNAME) is None
    assert value(scrape(client), "agent_hive_coordination_latency_seconds_count", stage="claim") == before


@pytest.mark.parametrize(
    ("queued", "available", "claimed", "expected"),
    [
        (0, 0, 0.25, 0.25),  # submitted and claimed a quarter second later
        (0, 30, 31, 1.0),  # a retry's backoff (available 30 s after queueing) is not waiting
        (0, 5, 4.5, 0.0),  # delivered a moment before available_at: never negative
        (0, None, 2, 2.0),  # no available_at: from queueing
    ],
)
def test_ready_to_claim_seconds_counts_from_readiness_not_from_queueing(queued, available, claimed, expected):
    start = timezone.now()
    at = lambda seconds: None if seconds is None else start + timedelta(seconds=seconds)  # noqa: E731
    task = SimpleNamespace(queued_at=at(queued), available_at=at(available))
    assert ready_to_claim_seconds(task, claimed_at=at(claimed)) == pytest.approx(expected)


def test_active_agents_gauge_counts_online_and_draining_agents_per_pool_with_zeros(client, pools):
    for name, status in (("a", "online"), ("b", "draining"), ("c", "offline")):
        Agent.objects.create(name=f"backend@{name}", pool=pools["backend"], status=status)
    samples = scrape(client)
    assert value(samples, "agent_hive_active_agents_total", agent_type="backend") == 2
    assert ("agent_hive_active_agents_total", frozenset({("agent_type", "ios")})) in samples
    assert value(samples, "agent_hive_active_agents_total", agent_type="ios") == 0


def test_resource_utilization_is_the_mean_of_what_live_agents_report(client, pools):
    reports = [
        ("a", "online", {"cpu_percent": 20.0, "memory_percent": 40.0, "rss_mb": 300.0}),
        ("b", "draining", {"cpu_percent": 60.0, "memory_percent": 50.0, "disk_percent": 70}),
        ("c", "offline", {"cpu_percent": 100.0, "memory_percent": 100.0}),  # gone: not counted
        ("d", "online", {}),  # no heartbeat yet
    ]
    for name, status, resources in reports:
        Agent.objects.create(name=f"backend@{name}", pool=pools["backend"], status=status, resources=resources)
    samples = scrape(client)
    metric = "agent_hive_resource_utilization_percent"
    assert value(samples, metric, agent_type="backend", resource="cpu") == pytest.approx(40.0)
    assert value(samples, metric, agent_type="backend", resource="memory") == pytest.approx(45.0)
    assert value(samples, metric, agent_type="backend", resource="disk") == pytest.approx(70.0)
    assert not [key for key in samples if key[0] == metric and ("resource", "rss_mb") in key[1]]
    assert not [key for key in samples if key[0] == metric and ("agent_type", "ios") in key[1]]
