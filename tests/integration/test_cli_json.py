"""Every listing command with `--json`, as a script runs it: a real `hive` process whose output parses
as a JSON array of objects with stable keys and the values the hive holds."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.utils import timezone

from agents.models import Agent
from coordination.models import Alert
from coordination.services import task_submit
from coordination.sessions import session_create
from tests.conftest import ROOT, child_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def hive_json(*args: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "hive_project.cli", *args, "--json"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert isinstance(listed, list) and all(isinstance(item, dict) for item in listed)
    return listed


@pytest.fixture
def world(live_pools):
    task = task_submit(capabilities=["python"], command=["echo", "json"], priority="high")
    Agent.objects.create(
        name="backend@json",
        pool=live_pools["backend"],
        host="h1",
        pid=42,
        load=1,
        concurrency=2,
        resources={"memory_percent": 40.0, "alerts": []},
    )
    session = session_create(
        plan={"name": "json plan", "steps": [{"name": "a", "command": ["true"], "capabilities": ["python"]}]}
    )
    alert = Alert.objects.create(
        subject="queue:ios",
        resource="queue",
        pool=live_pools["ios"],
        level="warning",
        value=120,
        peak=120,
        threshold=100,
        message="pool ios has 120 tasks queued",
        source="external_api.performance_monitoring.alert_thresholds.task_queue_length",
        recommendation="start a worker",
        raised_at=timezone.now(),
    )
    return task, session, alert


def test_tasks_json_lists_the_tasks_with_stable_keys(world):
    task, _, _ = world

    listed = hive_json("tasks")

    mine = next(t for t in listed if t["id"] == str(task.id))
    assert set(mine) == {
        "id",
        "status",
        "pool",
        "agent",
        "prompt",
        "command",
        "capabilities",
        "priority",
        "attempts",
        "max_attempts",
        "result",
        "error",
        "created_at",
        "finished_at",
        "eta",
    }
    assert mine["eta"] is None  # queued, but no duration model has been trained
    assert (mine["status"], mine["pool"], mine["command"], mine["priority"]) == (
        "queued",
        "backend",
        ["echo", "json"],
        "high",
    )
    assert len(hive_json("tasks", "--status", "succeeded")) == 0


def test_agents_json_lists_the_agents_with_their_resources(world):
    [agent] = hive_json("agents")

    assert set(agent) == {
        "name",
        "pool",
        "status",
        "load",
        "concurrency",
        "host",
        "pid",
        "last_heartbeat",
        "started_at",
        "resources",
    }
    assert (agent["name"], agent["pool"], agent["load"], agent["concurrency"]) == ("backend@json", "backend", 1, 2)
    assert agent["resources"]["memory_percent"] == 40.0


def test_pools_json_lists_every_pool_with_counts(world):
    listed = {p["name"]: p for p in hive_json("pools")}

    assert sorted(listed) == ["backend", "frontend", "infrastructure", "ios"]
    backend = listed["backend"]
    assert set(backend) == {
        "name",
        "capabilities",
        "agents_online",
        "actual_instances",
        "draining",
        "queued",
        "in_broker",
        "running",
        "concurrency",
        "min_instances",
        "max_instances",
        "desired_instances",
        "program",
        "program_missing",
    }
    assert backend["queued"] == 2 and backend["agents_online"] == 1  # the task and the session's first step
    assert (backend["actual_instances"], backend["draining"]) == (1, 0)
    assert "python" in backend["capabilities"]


def test_session_list_json_lists_the_sessions(world):
    _, session, _ = world

    [listed] = hive_json("session", "list")

    assert listed["id"] == str(session.id) and listed["name"] == "json plan"
    assert (listed["mode"], listed["status"], listed["steps"], listed["steps_done"]) == ("dag", "running", 1, 0)


def test_alerts_json_lists_the_alerts(world):
    _, _, alert = world

    [listed] = hive_json("alerts")

    assert (listed["id"], listed["subject"], listed["status"], listed["pool"]) == (
        alert.id,
        "queue:ios",
        "active",
        "ios",
    )
    assert listed["recommendation"] == "start a worker" and listed["threshold"] == 100
    assert hive_json("alerts", "--level", "critical") == []


def test_tasks_json_with_watch_is_a_usage_error(live_pools):
    done = subprocess.run(
        [sys.executable, "-m", "hive_project.cli", "tasks", "--json", "--watch"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    assert "--json prints the list once; leave out --watch" in done.stderr
