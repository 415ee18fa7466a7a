"""Routing through real workers: a pool only ever runs what its capabilities cover."""

from __future__ import annotations

import sys

import pytest

from coordination.models import Task
from coordination.services import task_submit
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ECHO = [sys.executable, "-c", "print('ok')"]


def test_each_of_four_pools_receives_only_tasks_its_capabilities_cover(hive):
    for pool in ("backend", "frontend", "ios", "infrastructure"):
        hive.worker(pool)
    wanted = {
        ("python",): {"backend"},
        ("database", "api"): {"backend"},
        ("react",): {"frontend"},
        ("typescript", "ui"): {"frontend"},
        ("swift",): {"ios"},
        ("mobile", "app_store"): {"ios"},
        ("terraform",): {"infrastructure"},
        ("docker", "kubernetes"): {"infrastructure"},
        ("ui",): {"frontend", "ios"},
    }
    tasks = [(caps, task_submit(capabilities=list(caps), command=ECHO)) for caps in wanted for _ in range(2)]

    wait_for(lambda: all(Task.objects.get(id=t.id).is_terminal for _, t in tasks), timeout=60, what="all tasks")

    for caps, task in tasks:
        task.refresh_from_db()
        attempt = task.attempt_set.select_related("agent__pool").get()
        assert task.status == Task.Status.SUCCEEDED, task.error
        assert task.pool.name in wanted[caps]
        assert attempt.agent.pool.name == task.pool.name, f"{caps} ran on {attempt.agent.name}"
        assert set(caps) <= set(attempt.agent.pool.capabilities)
