"""`hive drain --wait` as Kubernetes' preStop hook runs it: a real worker, a real task, the real CLI.

The agent is marked draining, its worker stops consuming, and the command returns only once the
attempt it was running has ended (exit 0), or after --timeout (exit 1)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from agents.models import Agent
from coordination.models import Task, TaskAttempt
from coordination.services import task_submit
from hive_project.launch import worker_argv
from tests.conftest import ROOT, child_env, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HOST = socket.gethostname()  # what Celery's %h expands to, and what --self matches


def hive_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hive_project.cli", *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_worker(hive, node: str) -> None:
    """A backend worker named as in a pod (`-n backend@%h`), online before it returns."""
    proc = hive.spawn(node.replace("@", "-"), worker_argv(queue="hive.backend", node=node, concurrency=1, fair=False))
    wait_for(
        lambda: hive._check(proc) and Agent.objects.filter(name=node, status="online", pid=proc.pid).exists(),
        timeout=60,
        what=f"worker {node} online",
    )
    time.sleep(0.3)  # the agent is online a moment before the consumer takes messages


def sleeper(marker, seconds: float) -> list[str]:
    return [sys.executable, "-c", f"import time; time.sleep({seconds}); open({str(marker)!r}, 'w').write('done')"]


def running(task: Task) -> bool:
    return TaskAttempt.objects.filter(task=task, outcome="running").exists()


def held(marker, release) -> list[str]:
    """Runs until the test creates `release` (60 s at most), then writes the marker: its visible effect."""
    code = (
        f"import os, time; t = time.time()\nwhile not os.path.exists({str(release)!r}) and time.time() - t < 60: "
        f"time.sleep(0.05)\nopen({str(marker)!r}, 'w').write('done')"
    )
    return [sys.executable, "-c", code]


def test_drain_self_wait_returns_after_the_running_task_ends_and_the_worker_takes_no_more(hive, marker_dir):
    node = f"backend@{HOST}"
    start_worker(hive, node)
    marker, release = marker_dir / "first", marker_dir / "release"
    first = task_submit(capabilities=["python"], command=held(marker, release))
    wait_for(lambda: running(first), timeout=30, what="the task to start")

    drain = subprocess.Popen(
        [sys.executable, "-m", "hive_project.cli", "drain", "--self", "--wait", "--timeout", "60"],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: Agent.objects.get(name=node).status == Agent.Status.DRAINING, timeout=60, what="draining")
        time.sleep(1.5)
        assert drain.poll() is None, "drain returned while the task was still running"
        release.touch()
        stdout, stderr = drain.communicate(timeout=60)
    finally:
        drain.kill()
    assert drain.returncode == 0, stdout + stderr
    first.refresh_from_db()
    assert first.status == Task.Status.SUCCEEDED
    assert marker.read_text() == "done"
    assert f"agent {node} draining" in stdout
    assert f"waiting for 1 running attempt(s) of {node}" in stdout
    assert stdout.strip().endswith(f"drained: {node} run nothing")
    assert Agent.objects.get(name=node).status == Agent.Status.DRAINING

    second = task_submit(capabilities=["python"], command=[sys.executable, "-c", "pass"])
    time.sleep(3)  # several heartbeats: a worker still consuming would have claimed it by now
    second.refresh_from_db()
    assert (second.status, second.attempts) == (Task.Status.QUEUED, 0)


def test_drain_wait_exits_1_at_its_timeout_and_leaves_the_task_running(hive, marker_dir):
    node = f"backend@{HOST}"
    start_worker(hive, node)
    task = task_submit(capabilities=["python"], command=sleeper(marker_dir / "slow", 30))
    wait_for(lambda: running(task), timeout=30, what="the task to start")

    started = time.monotonic()
    done = hive_cli("drain", node, "--wait", "--timeout", "1.5")

    assert done.returncode == 1
    assert f"timeout: {node} still run 1 attempt(s) after 1.5s" in done.stderr
    assert time.monotonic() - started < 20
    task.refresh_from_db()
    assert task.status == Task.Status.RUNNING  # drain never kills: the attempt runs on


def test_drain_self_on_a_host_without_agents_has_nothing_to_do(live_pools):
    Agent.objects.create(name="backend@another-host", pool=live_pools["backend"], status="online")
    done = hive_cli("drain", "--self", "--wait")
    assert done.returncode == 0, done.stderr
    assert f"no live agent on {HOST}: nothing to drain" in done.stdout
    assert Agent.objects.get(name="backend@another-host").status == Agent.Status.ONLINE


def test_drain_self_with_pool_drains_only_that_pools_agent(live_pools):
    for pool in ("backend", "ios"):
        Agent.objects.create(name=f"{pool}@{HOST}", pool=live_pools[pool], status="online")
    done = hive_cli("drain", "--self", "--pool", "ios", "--wait")
    assert done.returncode == 0, done.stderr
    assert dict(Agent.objects.values_list("name", "status")) == {f"backend@{HOST}": "online", f"ios@{HOST}": "draining"}
    assert done.stdout.strip().endswith(f"drained: ios@{HOST} run nothing")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch@agent"], "not_found: no agent 'nosuch@agent'"),
        (["backend@x", "--self"], "give an agent name or --self, not both"),
        ([], "give an agent name or --self, not both"),
        (["backend@x", "--pool", "ios"], "--pool goes with --self"),
    ],
)
def test_drain_with_bad_arguments_exits_2_naming_the_problem_and_changes_nothing(live_pools, args, message):
    Agent.objects.create(name="backend@x", pool=live_pools["backend"], status="online")
    done = hive_cli("drain", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert Agent.objects.get(name="backend@x").status == Agent.Status.ONLINE
