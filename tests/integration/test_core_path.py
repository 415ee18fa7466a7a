"""The core path through real Redis, real worker processes and real subprocesses."""

from __future__ import annotations

import sys

import psutil
import pytest

from coordination.models import Task
from coordination.services import task_submit
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished(task: Task) -> Task | None:
    task.refresh_from_db()
    return task if task.is_terminal else None


def test_command_task_runs_on_its_pool_and_succeeds(hive):
    hive.worker("backend")
    task = task_submit(capabilities=["python"], command=[sys.executable, "-c", "print('hello from the hive')"])

    wait_for(lambda: finished(task), timeout=30, what="the task to finish")

    assert task.status == Task.Status.SUCCEEDED
    attempt = task.attempt_set.get()
    assert attempt.agent.name == "backend@test"
    assert attempt.exit_code == 0
    assert "hello from the hive" in attempt.output_tail
    assert open(attempt.log_path).read().strip() == "hello from the hive"
    types = list(task.events.values_list("type", flat=True))
    assert types[0] == "task.queued" and "task.running" in types and types[-1] == "task.succeeded"


def test_a_pool_worker_and_its_children_run_tasks_without_pydantic_in_memory(hive, tmp_path):
    # The worker validates its configuration in a child that exits (hive_project/config/snapshot.py);
    # pydantic's native core, mapped into a process that imports it, must be in none of the tree.
    config = tmp_path / "hive.yaml"
    config.write_text("agents:\n  backend:\n    capabilities: [python]\n    runner: {timeout: 45}\n")
    worker = hive.worker("backend", concurrency=2, LEANVIBE_CONFIG=str(config))
    task = task_submit(capabilities=["python"], command=[sys.executable, "-c", "print('ok')"])
    wait_for(lambda: finished(task), timeout=30, what="the task to finish")

    tree = [worker.pid, *psutil.Process(worker.pid).children(recursive=True)]
    pids = [p if isinstance(p, int) else p.pid for p in tree]
    assert len(pids) >= 3  # the main process and its two prefork children
    maps = {pid: open(f"/proc/{pid}/maps").read() for pid in pids}
    assert all("libpython" in m or "python" in m for m in maps.values())
    assert [pid for pid, m in maps.items() if "pydantic_core" in m] == []
    assert task.status == Task.Status.SUCCEEDED
    assert task.pool.runner["timeout"] == 45.0  # the file the worker read, as pool_sync stored it
