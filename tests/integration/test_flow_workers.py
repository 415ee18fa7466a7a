"""Flow control through real workers: max_concurrent across workers, a provider rate limit that
pauses the pool without spending attempts, and a worker over its resource limits that stops claiming."""

from __future__ import annotations

import pytest

from coordination.models import Event, Task, TaskAttempt
from coordination.services import task_submit
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _spans(marker_dir) -> list[tuple[float, float]]:
    spans = []
    for path in marker_dir.glob("*.span"):
        start, end = (float(x) for x in path.read_text().split())
        spans.append((start, end))
    return sorted(spans)


def test_max_concurrent_holds_across_two_workers(hive, marker_dir):
    limit = {"LEANVIBE_AGENTS_BACKEND_MAX_CONCURRENT": "1"}
    hive.worker("backend", name="backend-a", concurrency=2, **limit)
    hive.worker("backend", name="backend-b", concurrency=2, **limit)
    script = f"import time,sys; s=time.time(); time.sleep(0.6); open('{marker_dir}/'+sys.argv[1]+'.span','w').write(f'{{s}} {{time.time()}}')"
    tasks = [task_submit(command=["python3", "-c", script, str(n)], capabilities=["python"]) for n in range(4)]

    wait_for(lambda: Task.objects.filter(status="succeeded").count() == 4, timeout=60, what="4 tasks to succeed")

    spans = _spans(marker_dir)
    assert len(spans) == 4
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end - 0.05, f"two tasks ran at once: {spans}"
    agents = set(TaskAttempt.objects.values_list("agent__name", flat=True))
    assert agents <= {"backend-a@test", "backend-b@test"}
    assert all(t.attempts == 1 for t in Task.objects.filter(id__in=[t.id for t in tasks]))


def test_a_rate_limited_program_pauses_the_pool_and_spends_no_attempt(hive, tmp_path):
    counter = tmp_path / "starts"
    hive.worker(
        "infrastructure",
        concurrency=2,
        LEANVIBE_AGENTS_INFRASTRUCTURE_RUNNER_RATE_LIMIT_BACKOFF_INITIAL="1",
        LEANVIBE_AGENTS_INFRASTRUCTURE_RUNNER_RATE_LIMIT_BACKOFF_MAX="2",
    )
    tasks = [
        task_submit(prompt=f"rate limited 2 {counter}", capabilities=["kubernetes"], max_attempts=1) for _ in range(3)
    ]

    wait_for(
        lambda: Task.objects.filter(status__in=Task.TERMINAL_STATUSES).count() == 3, timeout=90, what="3 tasks to end"
    )

    assert sorted(Task.objects.values_list("status", flat=True)) == ["succeeded"] * 3
    assert counter.read_text().count("start") >= 5  # two refused starts, three that ran
    assert Event.objects.filter(type="pool.paused").exists()
    assert Event.objects.filter(type="task.requeued").count() == 2
    for task in Task.objects.filter(id__in=[t.id for t in tasks]):
        rate_limited = task.attempt_set.filter(error__contains="rate limited by the provider").count()
        assert task.max_attempts == 1 + rate_limited  # the refused starts were given back


def test_a_worker_over_its_memory_limit_stops_claiming_and_the_task_runs_elsewhere(hive):
    hive.worker(
        "ios",
        name="ios-full",
        LEANVIBE_RESOURCES_ALLOCATION_MEMORY_LIMIT_PERCENT="0.1",
        LEANVIBE_RESOURCES_MONITORING_INTERVAL_SECONDS="0.2",
    )
    from agents.models import Agent

    wait_for(
        lambda: Agent.objects.filter(name="ios-full@test", resources__claiming=False).exists(),
        timeout=30,
        what="the full worker to stop claiming",
    )
    task = task_submit(prompt="hello", capabilities=["swift"])
    hive.worker("ios", name="ios-roomy")

    wait_for(lambda: Task.objects.filter(id=task.id, status="succeeded").exists(), timeout=60, what="the task")

    assert list(TaskAttempt.objects.filter(task=task).values_list("agent__name", flat=True)) == ["ios-roomy@test"]
    assert Task.objects.get(id=task.id).attempts == 1
