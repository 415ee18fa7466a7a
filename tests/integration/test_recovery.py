"""Faults during execution: killed processes, lost messages, duplicates. Nothing accepted is lost,
and a task's effect happens once."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from agents.models import Agent
from coordination import dispatch
from coordination.models import Task, TaskAttempt
from coordination.services import task_submit
from tests.conftest import purge_broker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def slow_marker_command(marker, seconds: float = 3.0) -> list[str]:
    """Sleeps, then appends one line to the marker: the task's visible effect."""
    return [sys.executable, "-c", f"import time; time.sleep({seconds}); open({str(marker)!r}, 'a').write('done\\n')"]


def running_attempt(task: Task) -> TaskAttempt | None:
    return TaskAttempt.objects.filter(task=task, outcome="running", pgid__isnull=False).select_related("agent").first()


def terminal(task: Task) -> bool:
    task.refresh_from_db()
    return task.is_terminal


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_kill_9_of_a_pool_child_mid_task_runs_it_again_and_its_effect_happens_once(hive, marker_dir):
    hive.worker("backend")
    marker = marker_dir / "effect"
    task = task_submit(capabilities=["python"], command=slow_marker_command(marker))
    first = wait_for(lambda: running_attempt(task), timeout=30, what="the task to start")

    os.kill(first.pid, signal.SIGKILL)  # the prefork child running the task

    wait_for(lambda: terminal(task), timeout=60, what="the task to finish")
    assert task.status == Task.Status.SUCCEEDED
    assert marker.read_text() == "done\n"
    outcomes = list(task.attempt_set.values_list("outcome", flat=True))
    assert outcomes[0] == "lost" and outcomes[-1] == "succeeded"
    assert not group_alive(first.pgid), "the killed attempt's program must not keep running"


def test_kill_9_of_a_whole_worker_sends_its_agent_offline_and_the_task_finishes_elsewhere(hive, marker_dir):
    workers = {
        "backend-a@test": hive.worker("backend", name="backend-a"),
        "backend-b@test": hive.worker("backend", name="backend-b"),
    }
    hive.control()
    marker = marker_dir / "effect"
    task = task_submit(capabilities=["python"], command=slow_marker_command(marker, 4))
    first = wait_for(lambda: running_attempt(task), timeout=30, what="the task to start")
    victim = first.agent.name

    os.killpg(workers[victim].pid, signal.SIGKILL)  # the worker's main process and its pool children

    wait_for(lambda: Agent.objects.get(name=victim).status == "offline", timeout=30, what=f"{victim} offline")
    wait_for(lambda: terminal(task), timeout=60, what="the task to finish")
    assert task.status == Task.Status.SUCCEEDED
    last = task.attempt_set.select_related("agent").order_by("-number").first()
    assert last.agent.name != victim
    assert marker.read_text() == "done\n"
    assert not group_alive(first.pgid)


def test_every_message_deleted_from_redis_while_20_tasks_wait_all_20_still_finish(hive, marker_dir):
    tasks = [
        task_submit(
            capabilities=["python"],
            command=[sys.executable, "-c", f"open({str(marker_dir / str(i))!r}, 'a').write('x')"],
        )
        for i in range(20)
    ]
    assert len(dispatch.task_ids_in_broker(["hive.backend"])) == 20
    purge_broker()  # as a Redis restart without persistence would
    assert dispatch.task_ids_in_broker(["hive.backend"]) == set()

    hive.worker("backend")
    hive.control()

    wait_for(lambda: all(terminal(t) for t in tasks), timeout=90, what="all 20 tasks")
    assert {t.status for t in tasks} == {Task.Status.SUCCEEDED}
    assert sorted(p.read_text() for p in marker_dir.iterdir()) == ["x"] * 20


def test_cancel_of_a_running_60_second_task_kills_it_within_3_seconds(hive):
    from coordination.services import task_cancel

    hive.worker("backend")
    task = task_submit(capabilities=["python"], command=["sh", "-c", "sleep 60; echo never"])
    attempt = wait_for(lambda: running_attempt(task), timeout=30, what="the task to start")
    assert group_alive(attempt.pgid)

    started = time.monotonic()
    task_cancel(task=task)
    wait_for(lambda: not group_alive(attempt.pgid), timeout=3, interval=0.05, what="the process group to die")
    elapsed = time.monotonic() - started

    task.refresh_from_db()
    assert task.status == Task.Status.CANCELLED
    assert elapsed < 3
    wait_for(lambda: TaskAttempt.objects.get(id=attempt.id).outcome == "cancelled", timeout=10, what="attempt closed")


def test_cancelled_task_never_runs_even_when_its_message_is_delivered(hive, marker_dir):
    from coordination.services import task_cancel

    marker = marker_dir / "effect"
    task = task_submit(capabilities=["python"], command=slow_marker_command(marker, 0))
    task_cancel(task=task)
    hive.worker("backend")  # the message is still in the queue
    wait_for(lambda: dispatch.task_ids_in_broker(["hive.backend"]) == set(), timeout=20, what="the message consumed")
    time.sleep(0.5)
    task.refresh_from_db()
    assert task.status == Task.Status.CANCELLED and task.attempts == 0
    assert not marker.exists()


def test_timeout_kills_a_process_tree_that_ignores_sigterm(hive, marker_dir):
    hive.worker("backend")
    pids = marker_dir / "pids"
    script = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(120)\n"
    )
    task = task_submit(capabilities=["python"], command=[sys.executable, "-c", script], timeout=2, max_attempts=1)

    wait_for(lambda: terminal(task), timeout=30, what="the task to time out")

    assert task.status == Task.Status.DEAD
    attempt = task.attempt_set.get()
    assert attempt.outcome == "timeout" and "timed out after 2s" in attempt.error
    for pid in map(int, pids.read_text().split()):
        wait_for(lambda pid=pid: not _alive(pid), timeout=3, what=f"pid {pid} to be gone")


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_always_failing_task_ends_dead_after_max_attempts_and_redrive_runs_it_again(hive, marker_dir):
    from coordination.services import task_redrive

    hive.worker("backend")
    flag, runs = marker_dir / "flag", marker_dir / "runs"
    command = ["sh", "-c", f"echo run >> {runs}; test -f {flag} || {{ echo 'no flag yet' >&2; exit 1; }}"]
    task = task_submit(capabilities=["python"], command=command, max_attempts=3)

    wait_for(lambda: terminal(task), timeout=60, what="the task to die")
    assert task.status == Task.Status.DEAD
    assert task.attempts == 3 and runs.read_text().count("run") == 3
    assert "exited with status 1" in task.error
    assert list(task.events.filter(type="task.retrying").values_list("payload__attempt", flat=True)) == [1, 2]

    flag.touch()
    task_redrive(task=task)
    wait_for(lambda: terminal(task), timeout=60, what="the redriven task to finish")
    assert task.status == Task.Status.SUCCEEDED
    assert task.attempts == 4 and runs.read_text().count("run") == 4


def test_critical_task_behind_50_normal_ones_in_a_one_worker_pool_starts_before_them(hive):
    normal = [task_submit(capabilities=["python"], command=["true"]) for _ in range(50)]
    critical = task_submit(capabilities=["python"], command=["true"], priority="critical")
    hive.worker("backend")

    wait_for(lambda: terminal(critical), timeout=60, what="the critical task")
    critical_start = critical.attempt_set.get().started_at
    wait_for(lambda: all(terminal(t) for t in normal), timeout=120, what="the normal tasks")
    starts = [t.attempt_set.get().started_at for t in normal]
    started_before = sum(s < critical_start for s in starts)
    assert started_before <= 1, f"{started_before} normal tasks started before the critical one"


def test_the_same_message_delivered_twice_runs_the_task_once(hive, marker_dir):
    marker = marker_dir / "effect"
    task = task_submit(capabilities=["python"], command=slow_marker_command(marker, 1))
    assert dispatch.dispatch(task_id=str(task.id), queue="hive.backend", priority=6, timeout=60)  # the duplicate
    hive.worker("backend", concurrency=2)

    wait_for(lambda: terminal(task), timeout=30, what="the task to finish")
    wait_for(lambda: dispatch.task_ids_in_broker(["hive.backend"]) == set(), timeout=20, what="both messages consumed")
    time.sleep(1.5)

    assert task.status == Task.Status.SUCCEEDED and task.attempts == 1
    assert marker.read_text() == "done\n"
    assert task.events.filter(type="task.running").count() == 1
