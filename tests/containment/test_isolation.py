"""Through real workers and real subprocesses: what a contained task can reach.

A command task of team B tries to read team A's rows (the SQLite file), the hive's secret files,
the worker's environment and team A's running workspace; a prompt task's agent program reports
who it runs as and what it sees. Cancel, timeout and the worker's death kill what runs inside.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from coordination.models import Task, TaskAttempt, Team
from coordination.services import task_cancel, task_submit
from hive_project.paths import BASE_DIR, sqlite_files, write_private
from tests.conftest import wait_for
from tests.containment.conftest import (
    RUNNER,
    SYSTEM_PYTHON,
    contain_pool,
    marked,
    probe_command,
    probe_report,
    probe_script,
    stubborn_tree,
    var,
    wait_gone,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished(task: Task) -> bool:
    task.refresh_from_db()
    return task.is_terminal


def running_attempt(task: Task) -> TaskAttempt | None:
    return TaskAttempt.objects.filter(task=task, outcome="running", pgid__isnull=False).exclude(workspace="").first()


def report_of(task: Task) -> dict:
    wait_for(lambda: finished(task), timeout=60, what="the probe task")
    assert task.status == Task.Status.SUCCEEDED, task.error
    return probe_report(task.attempt_set.get().output_tail)


def secret_files() -> list[Path]:
    """The hive's secrets in var/: the settings wrote two, `hive up` writes the admin's password."""
    write_private(var() / "admin-password", "admin-password-of-the-hive\n")
    files = [var() / "secret_key", var() / "jwt_signing_key", var() / "admin-password"]
    assert all(f.exists() for f in files)
    return files


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on the host's loopback that accepts connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


@pytest.mark.parametrize("sandbox", ["none", "bubblewrap"], ids=["run_as", "run_as+sandbox"])
def test_command_task_of_team_b_gets_nothing_of_team_a_or_of_the_hive(hive, runner_user, sandbox):
    acme, globex = Team.objects.create(name="acme"), Team.objects.create(name="globex")
    worker = hive.worker("backend", concurrency=2)
    contain_pool("backend", run_as=RUNNER, sandbox=sandbox)
    secrets = secret_files()
    database = [p for p in sqlite_files(settings.DATABASES) if p.exists()]  # none on PostgreSQL
    keep = [SYSTEM_PYTHON, "-c", "open('plans.txt', 'w').write('acme workspace secret'); import time; time.sleep(60)"]
    a = task_submit(capabilities=["python"], command=keep, prompt="acme's secret plan", team=acme)
    a_attempt = wait_for(lambda: running_attempt(a), timeout=30, what="team A's task to run")
    a_plans = Path(a_attempt.workspace) / "plans.txt"
    wait_for(a_plans.exists, timeout=10, what="team A's workspace file")
    spec = {
        "read": [
            *map(str, database),
            *map(str, secrets),
            "/proc/{ppid}/environ",
            f"/proc/{worker.pid}/environ",
            f"/proc/{a_attempt.pid}/environ",
        ],
        "list": [str(var()), str(var() / "workspaces")],
    }
    if sandbox == "bubblewrap":  # the sandbox keeps tasks apart; run_as alone keeps them from the hive
        spec["read"].append(str(a_plans))

    b = task_submit(capabilities=["python"], command=probe_command(spec), team=globex)
    seen = report_of(b)

    assert (seen["uid"], seen["user"]) == (runner_user.uid, RUNNER)
    assert seen["own_workspace"]["status"] == "ok"
    hidden = "missing" if sandbox == "bubblewrap" else "denied"
    for path in [*database, *secrets]:
        assert seen["read"][str(path)]["status"] == hidden, (path, seen["read"][str(path)])
    for pid in (worker.pid, a_attempt.pid):  # the worker's environment holds the database URL and secrets
        assert seen["read"][f"/proc/{pid}/environ"]["status"] == hidden
    parent = seen["read"]["/proc/{ppid}/environ"]  # the worker process, or bubblewrap inside the sandbox
    if sandbox == "none":
        assert parent["status"] == "denied"
    else:
        assert "LEANVIBE_DATABASE_URL" not in parent["value"]
    if sandbox == "bubblewrap":
        assert seen["read"][str(a_plans)]["status"] == "missing"
        assert seen["list"][str(var())]["value"] == ["workspaces"]  # only the way to its own workspace
        assert seen["list"][str(var() / "workspaces")]["value"] == [str(b.id)]
    else:
        assert seen["list"][str(var())]["status"] == "denied"
        assert seen["list"][str(var() / "workspaces")]["status"] == "denied"
    assert not {"LEANVIBE_DATABASE_URL", "DJANGO_SETTINGS_MODULE"} & set(seen["env"])
    assert "acme's secret plan" not in b.attempt_set.get().output_tail
    task_cancel(task=a)


@pytest.mark.parametrize("network", [False, True], ids=["network-off", "network-on"])
def test_prompt_task_runs_the_agent_program_as_the_pool_user_in_the_sandbox(hive, runner_user, listener, network):
    hive.worker("backend")
    contain_pool(
        "backend",
        argv=[SYSTEM_PYTHON, probe_script(), "{prompt}"],
        output_format="text",
        run_as=RUNNER,
        sandbox="bubblewrap",
        sandbox_network=network,
    )
    escape = f"probe-escape-{uuid.uuid4().hex}"
    outside = [str(BASE_DIR / escape), f"/etc/{escape}", str(var() / escape), f"/tmp/{escape}"]
    spec = {"list": [str(var())], "write": outside, "connect": [["127.0.0.1", listener]]}

    task = task_submit(capabilities=["python"], prompt=json.dumps(spec))
    seen = report_of(task)

    assert (seen["uid"], seen["user"]) == (runner_user.uid, RUNNER)
    assert seen["pids"] == [1, 2]  # bubblewrap and the program: nothing of the worker or the machine
    assert seen["list"][str(var())]["value"] == ["workspaces"]
    # the hive's checkout is read-only, or hidden behind the private /tmp when it lives under /tmp
    assert seen["write"][str(BASE_DIR / escape)]["status"] == ("ok" if BASE_DIR.is_relative_to("/tmp") else "read-only")
    assert seen["write"][f"/etc/{escape}"]["status"] == "read-only"
    assert seen["write"][str(var() / escape)]["status"] == "ok"  # an empty tmpfs over var/, gone afterwards
    assert seen["write"][f"/tmp/{escape}"]["status"] == "ok"  # its private /tmp
    for path in outside:
        assert not Path(path).exists(), f"{path} was written outside the sandbox"
    assert (seen["connect"][f"127.0.0.1:{listener}"]["status"] == "ok") is network


@pytest.mark.parametrize("sandbox", ["none", "bubblewrap"], ids=["run_as", "run_as+sandbox"])
def test_timeout_kills_the_contained_tree_that_ignores_sigterm(hive, runner_user, reaper, sandbox):
    marker = f"hive-marker-{uuid.uuid4().hex}"
    reaper.append(marker)
    hive.worker("backend")
    contain_pool("backend", run_as=RUNNER, sandbox=sandbox)

    task = task_submit(capabilities=["python"], command=stubborn_tree(marker), timeout=2, max_attempts=1)
    wait_for(lambda: finished(task), timeout=30, what="the task to time out")

    assert task.status == Task.Status.DEAD
    assert task.attempt_set.get().outcome == "timeout"
    assert wait_gone(marker) == [], "a process of the timed-out tree survived"


def test_cancel_kills_the_sandboxed_tree_within_3_seconds(hive, runner_user, reaper):
    marker = f"hive-marker-{uuid.uuid4().hex}"
    reaper.append(marker)
    hive.worker("backend")
    contain_pool("backend", run_as=RUNNER, sandbox="bubblewrap")
    task = task_submit(capabilities=["python"], command=stubborn_tree(marker))
    wait_for(lambda: running_attempt(task) and len(marked(marker)) >= 2, timeout=30, what="the tree to start")

    task_cancel(task=task)

    assert wait_gone(marker, within=3.0) == [], "the cancelled tree was still running after 3 s"
    wait_for(lambda: finished(task), timeout=10, what="the cancel to be recorded")
    assert task.status == Task.Status.CANCELLED


def test_sandboxed_program_dies_with_its_worker(hive, runner_user, reaper):
    marker = f"hive-marker-{uuid.uuid4().hex}"
    reaper.append(marker)
    worker = hive.worker("backend")
    contain_pool("backend", run_as=RUNNER, sandbox="bubblewrap")
    task = task_submit(
        capabilities=["python"], command=[SYSTEM_PYTHON, "-c", f"import time; time.sleep(120)  # {marker}"]
    )
    wait_for(lambda: running_attempt(task), timeout=30, what="the task to run")

    os.killpg(worker.pid, signal.SIGKILL)  # the worker's main process and its pool children

    assert wait_gone(marker) == [], "the sandboxed program outlived its worker"
