"""Features: rows from attempts joined to tasks, the pool's load at start, and their encoding."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from agents.models import Agent
from coordination.models import Task, TaskAttempt
from ml.features import CATEGORICAL, NUMERIC, fit_spec, history, history_rows, pool_loads, task_rows
from tests.ml.synthetic import CAPABILITY

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 18, 14, 0, tzinfo=UTC)  # a Wednesday, 14:00


def attempt(pool, *, start: float, seconds: float | None, outcome: str = "succeeded", **task_fields) -> TaskAttempt:
    fields = {
        "task_type": "build",
        "capabilities": [CAPABILITY, "python"],
        "complexity": 4,
        "prompt": "x" * 42,
        "source": "api",
        "priority": "high",
    } | task_fields
    task = Task.objects.create(pool=pool, status="succeeded", timeout=600, **fields)
    started = T0 + timedelta(seconds=start)
    return TaskAttempt.objects.create(
        task=task,
        number=1,
        agent=Agent.objects.filter(pool=pool).first(),
        outcome=outcome,
        started_at=started,
        heartbeat_at=started,
        finished_at=None if seconds is None else started + timedelta(seconds=seconds),
        exit_code=0 if outcome == "succeeded" else 1,
        error="" if outcome == "succeeded" else "boom",
    )


def test_history_rows_carry_task_fields_and_targets_oldest_first(ml_pools):
    fast = ml_pools["fast"]
    attempt(fast, start=100, seconds=30)
    attempt(fast, start=0, seconds=12.5, outcome="failed", complexity=None, priority="low")

    h = history()

    assert len(h) == 2 and h["started_at"] == [T0, T0 + timedelta(seconds=100)]
    assert h["duration"] == [12.5, 30.0] and h["success"] == [False, True]
    assert h["pool"] == ["fast", "fast"] and h["agent"][0] == "fast-0@synthetic"
    assert h["complexity"] == [None, 4] and h["priority"] == ["low", "high"]
    assert h["prompt_length"] == [42, 42] and h["source"] == ["api", "api"]
    assert h["capabilities"][0] == [CAPABILITY, "python"]
    rows = history_rows(h)
    assert rows["hour"] == [14, 14] and rows["weekday"] == [2, 2]


def test_history_leaves_out_cancelled_and_unfinished_attempts_and_keeps_the_newest(ml_pools):
    fast = ml_pools["fast"]
    for i in range(5):
        attempt(fast, start=i * 10, seconds=5)
    attempt(fast, start=60, seconds=5, outcome="cancelled")
    attempt(fast, start=70, seconds=None, outcome="running")

    assert len(history()) == 5
    assert history(limit=2)["started_at"] == [T0 + timedelta(seconds=30), T0 + timedelta(seconds=40)]


def test_pool_load_at_start_counts_other_attempts_of_the_pool_running_then(ml_pools):
    fast, slow = ml_pools["fast"], ml_pools["slow"]
    attempt(fast, start=0, seconds=100)  # running 0..100
    attempt(fast, start=10, seconds=20)  # running 10..30
    attempt(slow, start=15, seconds=100)  # another pool: never counted
    attempt(fast, start=30, seconds=5)  # the one that ended at 30 no longer runs
    attempt(fast, start=50, seconds=5)

    h = history()

    loads = {(p, s): n for p, s, n in zip(h["pool"], h["started_at"], h["pool_load"], strict=True)}
    assert [loads[("fast", T0 + timedelta(seconds=s))] for s in (0, 10, 30, 50)] == [0, 1, 1, 1]
    assert loads[("slow", T0 + timedelta(seconds=15))] == 0


def test_pool_loads_count_unfinished_attempts_as_running():
    starts = [T0, T0 + timedelta(seconds=5)]
    assert pool_loads(["a", "a"], starts, [None, starts[1] + timedelta(seconds=1)]) == [0, 1]


def test_feature_spec_codes_frequent_values_first_and_unseen_ones_as_missing():
    rows = task_rows(
        pools=["fast", "fast", "slow"],
        task_type="build",
        capabilities=[CAPABILITY],
        priority="critical",
        complexity=None,
        prompt_length=7,
        source="api",
        loads=[1, 2, 0],
        at=T0,
    )
    spec = fit_spec(rows)
    assert spec.vocab["pool"] == {"fast": 0, "slow": 1}
    assert spec.columns == [*CATEGORICAL, *NUMERIC, f"cap:{CAPABILITY}"]

    X = spec.encode(
        task_rows(
            pools=["slow", "new-pool"],
            task_type="deploy",
            capabilities=[CAPABILITY, "x"],
            priority="low",
            complexity=3,
            prompt_length=9,
            source="cli",
            loads=[4, 0],
            at=T0,
        )
    )

    col = {name: i for i, name in enumerate(spec.columns)}
    assert X[0, col["pool"]] == 1 and math.isnan(X[1, col["pool"]])
    assert math.isnan(X[0, col["task_type"]]) and math.isnan(X[0, col["agent"]])  # unseen type; no agent yet
    assert X[0, col["priority"]] == 0 and X[0, col["complexity"]] == 3 and X[0, col["pool_load"]] == 4
    assert X[0, col["hour"]] == 14 and X[0, col["weekday"]] == 2
    assert X[0, col[f"cap:{CAPABILITY}"]] == 1 and X[0, col["n_capabilities"]] == 2


def test_feature_spec_hides_the_agent_of_masked_rows():
    rows = task_rows(
        pools=["fast", "fast"],
        task_type="build",
        capabilities=[],
        priority="normal",
        complexity=1,
        prompt_length=1,
        source="api",
        loads=[0, 0],
        at=T0,
        agent="fast-0@synthetic",
    )
    spec = fit_spec(rows)

    X = spec.encode(rows, mask_agent=[True, False])

    agent = spec.columns.index("agent")
    assert math.isnan(X[0, agent]) and X[1, agent] == 0
    assert np.array_equal(spec.encode(rows), spec.from_dict(spec.to_dict()).encode(rows), equal_nan=True)
