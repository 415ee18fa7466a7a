"""`hive up`'s local actuator through real processes: `hive up` on the database and Redis under test,
with a one-pool configuration (concurrency 1, max 3); the test submits tasks and reads the rows.

A burst grows the pool and it shrinks back, no attempt killed; a drained worker finishes its
running task before it stops; `hive scale` raises and lowers the count; a pool at zero comes back
when work arrives.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agents.models import Agent, AgentPool
from coordination.models import ScalingDecision, Task, TaskAttempt
from coordination.services import task_submit
from hive_project.launch import free_port
from tests.conftest import ROOT, child_env, purge_broker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HOST = socket.gethostname()
POOL = "work"
CAPABILITY = "autoscaled"
CONFIG = """
system: {{log_level: INFO}}
multi_agent: {{min_agents: 0, health_check_interval: 2, failure_threshold: 3, heartbeat_interval: 0.5,
              redispatch_after: 10}}
resources:
  allocation: {{cpu_limit_percent: 100, memory_limit_percent: 100, disk_limit_percent: 100}}
scaling:
  enabled: {enabled}
  auto_scale: {auto_scale}
  interval_seconds: 1
  cooldown_minutes: {cooldown_minutes}
  strategies: {{scale_down: {{min_instances: 0}}}}
agents:
  {pool}:
    capabilities: [{capability}]
    concurrency: 1
    min_instances: {min_instances}
    max_instances: 3
    runner: {{kind: command, argv: ["true"], timeout: 60, output_format: text}}
"""


class HiveUp:
    """One `hive up` child; its console output goes to a file the test reads while it runs."""

    def __init__(self, tmp_path: Path, **config: object) -> None:
        self.var = tmp_path / "var"
        self.var.mkdir()
        self.config = tmp_path / "hive.yaml"
        self.config.write_text(CONFIG.format(pool=POOL, capability=CAPABILITY, **config))
        self.env = child_env(LEANVIBE_CONFIG=str(self.config), LEANVIBE_VAR_DIR=str(self.var))
        self.out = tmp_path / "up.out"
        argv = [sys.executable, "-m", "hive_project.cli", "up", "--port", str(free_port()), "--no-flower"]
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hive_project.cli", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def workers(self) -> list[psutil.Process]:
        """The pool's worker processes hive up runs now (main processes, not their pool children)."""
        self.alive()
        found = []
        for child in psutil.Process(self.proc.pid).children():
            try:
                if f"hive.{POOL}" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                    found.append(child)
            except psutil.NoSuchProcess:
                pass
        return found

    def online(self) -> list[str]:
        self.alive()
        return sorted(Agent.objects.filter(pool__name=POOL, status="online").values_list("name", flat=True))

    def alive(self) -> bool:
        assert self.proc.poll() is None, f"hive up exited with {self.proc.returncode}:\n{self.output()[-3000:]}"
        return True

    def log(self, node: str) -> str:
        number = node.split("@")[0].rsplit("-", 1)[1]
        return (self.var / "logs" / f"worker-{POOL}-{number}.log").read_text(errors="replace")

    def stop(self) -> str:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.output()


@pytest.fixture
def hive_up(tmp_path) -> Iterator:
    purge_broker()
    started: list[HiveUp] = []

    def start(
        *, min_instances: int = 1, auto_scale: bool = True, cooldown_minutes: float = 0.1, enabled: bool = True
    ) -> HiveUp:
        up = HiveUp(
            tmp_path,
            min_instances=min_instances,
            auto_scale=str(auto_scale).lower(),
            cooldown_minutes=cooldown_minutes,
            enabled=str(enabled).lower(),
        )
        started.append(up)
        return up

    try:
        yield start
    finally:
        for up in started:
            up.stop()


def sleeper(seconds: float) -> list[str]:
    return ["sleep", str(seconds)]


def held(release: Path) -> list[str]:
    """Runs until the test creates `release` (90 s at most)."""
    code = (
        f"import os, time; t = time.time()\nwhile not os.path.exists({str(release)!r}) and time.time() - t < 90: "
        "time.sleep(0.05)"
    )
    return [sys.executable, "-c", code]


def node(number: int) -> str:
    return f"{POOL}-{number}@{HOST}"


def assert_no_attempt_killed(tasks: list[Task]) -> None:
    ids = [t.id for t in tasks]
    assert sorted(Task.objects.filter(id__in=ids).values_list("status", flat=True)) == ["succeeded"] * len(ids)
    assert set(Task.objects.filter(id__in=ids).values_list("attempts", flat=True)) == {1}
    assert list(TaskAttempt.objects.filter(task_id__in=ids).exclude(outcome="succeeded")) == []


def test_a_burst_grows_the_pool_and_it_shrinks_back_with_no_attempt_killed(hive_up):
    up = hive_up(min_instances=1, cooldown_minutes=0.1)
    wait_for(lambda: up.online() == [node(1)], timeout=120, what="the pool's first worker")

    burst = [task_submit(capabilities=[CAPABILITY], command=sleeper(2)) for _ in range(8)]

    wait_for(lambda: len(up.workers()) >= 2, timeout=120, what="a second worker process")
    wait_for(
        lambda: Task.objects.filter(status="succeeded").count() == len(burst), timeout=240, what="the burst to finish"
    )

    def shrunk() -> bool:
        out = up.output()  # every worker stopped has been reaped and said so
        return (
            len(up.workers()) == 1 and up.online() == [node(1)] and out.count("stopped   ") == out.count("stopping  ")
        )

    wait_for(shrunk, timeout=120, what="the pool to shrink back to one worker")

    assert_no_attempt_killed(burst)
    ran_on = set(TaskAttempt.objects.values_list("agent__name", flat=True))
    assert len(ran_on) >= 2, f"no second instance took work: {ran_on}"
    decisions = list(ScalingDecision.objects.order_by("created_at").values_list("previous", "desired", "actuator"))
    assert decisions[0][0] == 1 and decisions[0][1] > 1 and decisions[-1][1] == 1, decisions
    out = up.output()
    assert "killing" not in out
    stopped = re.findall(rf"stopped   worker-{POOL}-\d+ \((\S+), drained\)", out)
    assert stopped, out
    for name in stopped:
        log = up.log(name)
        assert "Warm shutdown" in log and f"hive up: {name} drained; SIGTERM (warm shutdown)" in log
        assert Agent.objects.get(name=name).status == Agent.Status.OFFLINE


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the agent programs see: as root, hive up runs them as its unprivileged user, to
    whom the test's own tmp_path (mode 0700) is closed."""
    path = Path(tempfile.mkdtemp(prefix="hive-up-scaling-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_hive_scale_raises_and_lowers_and_the_drained_worker_finishes_its_task_first(hive_up, shared_dir):
    up = hive_up(min_instances=1, auto_scale=False)  # beat only recommends: the operator's targets hold
    wait_for(lambda: up.online() == [node(1)], timeout=120, what="the pool's first worker")

    raised = up.cli("scale", POOL, "2", "--reason", "release day")
    assert raised.returncode == 0, raised.stderr
    assert raised.stdout.strip() == f"pool {POOL}: desired 1 -> 2 (manual target 2: release day)"
    wait_for(lambda: up.online() == [node(1), node(2)], timeout=120, what="a second worker online")
    pools = up.cli("pools").stdout
    assert re.search(rf"^{POOL}\s+{CAPABILITY}\s+2\s+2\s", pools, re.M), pools

    release = shared_dir / "release"
    tasks = [task_submit(capabilities=[CAPABILITY], command=held(release)) for _ in range(2)]
    wait_for(
        lambda: TaskAttempt.objects.filter(outcome="running").count() == 2,
        timeout=60,
        what="both workers to run a task",
    )
    (busy_pid,) = Agent.objects.filter(name=node(2)).values_list("pid", flat=True)

    lowered = up.cli("scale", POOL, "1")
    assert lowered.returncode == 0 and "desired 2 -> 1" in lowered.stdout, lowered.stderr
    wait_for(
        lambda: Agent.objects.filter(name=node(2), status="draining").exists(),
        timeout=30,
        what="the surplus worker to drain",
    )
    time.sleep(3)  # several rounds of the actuator: a worker that ran an attempt must not be stopped
    assert psutil.pid_exists(busy_pid) and busy_pid in [p.pid for p in up.workers()]
    assert TaskAttempt.objects.filter(agent__name=node(2), outcome="running").count() == 1
    assert f"draining  worker-{POOL}-2 ({node(2)}, 1 running; {POOL} wants 1)" in up.output()

    release.touch()
    wait_for(
        lambda: [p.pid for p in up.workers()] == [Agent.objects.get(name=node(1)).pid],
        timeout=120,
        what="the drained worker to stop",
    )

    assert_no_attempt_killed(tasks)
    assert Agent.objects.get(name=node(2)).status == Agent.Status.OFFLINE
    log = up.log(node(2))
    assert log.index("succeeded in") < log.index("Warm shutdown"), "the task ended before the warm shutdown"
    listing = up.cli("scaling", "--pool", POOL).stdout
    assert re.search(r"2 -> 1\s+manual\s+applied\s+manual target 1$", listing, re.M), listing
    assert re.search(r"1 -> 2\s+manual\s+applied\s+manual target 2: release day$", listing, re.M), listing

    for args, line in (
        (("scale", POOL, "9"), f"hive: invalid: desired = 9: expected 1..3 for pool {POOL}"),
        (("scale", POOL, "-1"), f"hive: invalid: desired = -1: expected 1..3 for pool {POOL}"),
        (("scale", POOL, "two"), "hive: invalid: desired = 'two': expected a whole number of instances"),
        (("scale", "nosuch", "1"), "hive: pool_not_found: no pool 'nosuch'"),
        (("scaling", "--pool", "nosuch"), "hive: not_found: no pool 'nosuch'"),
    ):
        done = up.cli(*args)
        assert done.returncode == 2 and done.stderr.startswith(line), (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1
    assert AgentPool.objects.get(name=POOL).desired_instances == 1


def test_a_pool_at_zero_comes_back_when_work_arrives(hive_up):
    up = hive_up(min_instances=0, cooldown_minutes=0.05)
    wait_for(
        lambda: ScalingDecision.objects.filter(desired=0).exists() and not up.workers(),
        timeout=120,
        what="the idle pool to go to zero",
    )
    assert AgentPool.objects.get(name=POOL).desired_instances == 0

    task = task_submit(capabilities=[CAPABILITY], command=sleeper(0.1))

    wait_for(
        lambda: Task.objects.filter(id=task.id, status="succeeded").exists(),
        timeout=120,
        what="the task to run on a worker started for it",
    )
    assert_no_attempt_killed([task])
    woke = ScalingDecision.objects.filter(previous=0, desired__gte=1).first()
    # "work arrived for a pool at zero", or, when beat read the task in the instant between its
    # commit and its available_at, "1 queued task(s) wait in backoff": either way it starts one
    assert woke is not None and woke.actuator == "local", woke


def test_with_scaling_disabled_each_pool_runs_its_configured_size_and_hive_scale_is_refused(hive_up):
    up = hive_up(min_instances=2, enabled=False)
    wait_for(lambda: up.online() == [node(1), node(2)], timeout=120, what="the pool's two workers")
    task_submit(capabilities=[CAPABILITY], command=sleeper(0.1))  # work arrives: nothing decides to scale

    refused = up.cli("scale", POOL, "3")

    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "hive: scaling_disabled: scaling is disabled (scaling.enabled: false): every pool runs at its configured "
        "size, max(1, min_instances)"
    )
    wait_for(lambda: Task.objects.filter(status="succeeded").count() == 1, timeout=60, what="the task")
    time.sleep(3)  # beat's scale job has run several times meanwhile
    assert len(up.workers()) == 2 and not ScalingDecision.objects.exists()
    assert AgentPool.objects.get(name=POOL).desired_instances == 2

    drained = up.cli("drain", "--self", "--wait", "--timeout", "30")  # hive up's names end in @<host> too
    assert drained.returncode == 0, drained.stderr
    assert f"agent {node(1)} draining" in drained.stdout and f"agent {node(2)} draining" in drained.stdout
    time.sleep(3)  # an agent an operator drained is neither stopped nor replaced by the actuator
    assert len(up.workers()) == 2 and up.online() == []
