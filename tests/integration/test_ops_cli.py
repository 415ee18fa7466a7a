"""`hive events` and `hive costs` as a user runs them: a real process, its output and exit code."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from coordination.fleet import agent_register
from coordination.results import AttemptResult
from coordination.services import attempt_finish, task_claim, task_submit
from tests.conftest import ROOT, child_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def hive_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hive_project.cli", *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _finished(pool, *, cost: str | None, task_type: str = "general", prompt: str = "work"):
    agent = agent_register(name=f"{pool.name}@ops", pool=pool, host="h", pid=1, concurrency=1)
    task = task_submit(command=["true"], capabilities=list(pool.capabilities)[:1], task_type=task_type, prompt=prompt)
    attempt = task_claim(task_id=str(task.id), agent=agent, pid=1, host="h")
    attempt_finish(
        attempt_id=attempt.id,
        result=AttemptResult(outcome="succeeded", exit_code=0, cost_usd=Decimal(cost) if cost else None),
    )
    return task


def test_costs_add_up_per_pool_and_type_and_count_unpriced_attempts(live_pools):
    _finished(live_pools["backend"], cost="0.50", task_type="bugfix")
    _finished(live_pools["backend"], cost="0.25", task_type="review")
    _finished(live_pools["frontend"], cost=None)

    by_pool = hive_cli("costs", "--by", "pool", "--json")
    assert by_pool.returncode == 0, by_pool.stderr
    rows = {r["group"]: r for r in json.loads(by_pool.stdout)}
    assert rows["backend"]["cost_usd"] == "0.750000" and rows["backend"]["attempts"] == 2
    assert rows["frontend"]["cost_usd"] == "0.000000" and rows["frontend"]["priced_attempts"] == 0

    by_type = hive_cli("costs", "--by", "task_type")
    assert by_type.returncode == 0
    assert "bugfix" in by_type.stdout and "0.5000" in by_type.stdout
    assert "total 0.7500 USD" in by_type.stdout

    bad = hive_cli("costs", "--since", "yesterday")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--since 'yesterday'" in bad.stderr


def test_events_lists_a_tasks_events_in_order_and_strips_control_sequences(live_pools):
    task = _finished(live_pools["backend"], cost=None, prompt="title \x1b]0;pwned\x07 here")
    other = _finished(live_pools["backend"], cost=None)

    done = hive_cli("events", "--task", str(task.id)[:8])

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[3] for line in lines] == ["task.queued", "task.running", "task.succeeded"]
    assert str(other.id)[:8] not in done.stdout
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout

    only = hive_cli("events", "--type", "task.succ*", "--json")
    assert [json.loads(line)["type"] for line in only.stdout.splitlines()] == ["task.succeeded", "task.succeeded"]


def test_events_follow_prints_new_events_as_they_are_stored(live_pools):
    follower = subprocess.Popen(
        [sys.executable, "-m", "hive_project.cli", "events", "--follow", "--type", "task.queued"],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)  # the follower has printed what existed and now polls
        task = task_submit(command=["true"], capabilities=["python"])
        deadline = time.monotonic() + 20
        line = ""
        while time.monotonic() < deadline and str(task.id)[:8] not in line:
            line = follower.stdout.readline()
        assert str(task.id)[:8] in line and "task.queued" in line
    finally:
        follower.terminate()
        follower.wait(timeout=10)
