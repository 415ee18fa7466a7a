"""The core path through real Redis, real worker processes and real subprocesses."""

from __future__ import annotations

import sys

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
