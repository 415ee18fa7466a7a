"""The success model against the per-(pool, type) base rate, on histories built in memory.

Each history is drawn from a known probability of success per (pool, task type, complexity), so a
test states what the model must be able to represent: a pool × type interaction that neither the
pool nor the type shows alone, and a complexity that matters within one (pool, type) only.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from ml.features import History
from ml.forest import apply_success
from ml.training import (
    GROUP_RATE,
    HELD_OUT,
    SUCCESS_ALGORITHMS,
    GroupBaseline,
    _routing_rows,
    evaluation_folds,
    success_metrics,
    train_success,
)

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
POOLS, TYPES = ("north", "south"), ("build", "test")


def drawn_history(n: int, probability: Callable[[str, str, int], float], *, seed: int) -> History:
    """`n` attempts, one every 30 s, pool, type and complexity uniform, outcomes drawn from `probability`."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        pool, task_type, complexity = rng.choice(POOLS), rng.choice(TYPES), rng.randint(1, 10)
        started = START + timedelta(seconds=30 * i)
        rows.append(
            {
                "attempt_id": i + 1,
                "pool": pool,
                "agent": f"{pool}-1",
                "task_type": task_type,
                "capabilities": ["code"],
                "priority": "normal",
                "complexity": complexity,
                "prompt_length": 40,
                "source": "api",
                "started_at": started,
                "finished_at": started + timedelta(seconds=20),
                "duration": 20.0,
                "success": rng.random() < probability(pool, task_type, complexity),
                "pool_load": 0,
            }
        )
    return History({name: [r[name] for r in rows] for name in rows[0]})


def crossed(pool: str, task_type: str, complexity: int) -> float:
    """north fails tests, south fails builds: by pool alone or by type alone every rate is the same."""
    return 0.3 if (pool, task_type) in (("north", "test"), ("south", "build")) else 0.95


def by_pool_and_type_only(pool: str, task_type: str, complexity: int) -> float:
    """A rate per (pool, type) and nothing else: the baseline's own model is the truth."""
    return {("north", "build"): 0.9, ("north", "test"): 0.6, ("south", "build"): 0.75, ("south", "test"): 0.95}[
        (pool, task_type)
    ]


def complex_builds_fail_on_south(pool: str, task_type: str, complexity: int) -> float:
    """One (pool, type) fails its complex tasks only; complexity means nothing anywhere else."""
    return 0.1 if (pool, task_type) == ("south", "build") and complexity > 5 else 0.95


@pytest.mark.parametrize("algorithms", [[a] for a in SUCCESS_ALGORITHMS] + [list(SUCCESS_ALGORITHMS)])
def test_success_model_represents_a_pool_by_type_interaction(algorithms):
    h = drawn_history(1500, crossed, seed=1)

    trained = train_success(h, algorithms=algorithms)

    held = trained.held_out
    older_rate = float(np.mean(h["success"][: len(h) - len(held)]))
    base_rate = success_metrics(held["success"], [older_rate] * len(held))["brier"]
    # the pools' and the types' own rates are equal, so only the interaction explains the outcomes
    assert trained.metrics["rows"] == len(held) == 300
    assert trained.metrics["brier"] < 0.75 * base_rate
    p = apply_success(trained.candidate, _routing_rows(held))
    failing = np.array([crossed(pool, t, 0) < 0.5 for pool, t in zip(held["pool"], held["task_type"], strict=True)])
    assert p[failing].mean() < 0.45 and p[~failing].mean() > 0.85
    if algorithms != ["boosting+platt"]:  # boosting alone also splits on the drifting hour: worse than the group rate
        assert trained.metrics["brier"] < 1.05 * trained.baseline_metrics["brier"]


def test_success_model_beats_the_group_rate_when_complexity_matters_in_one_pool_and_type():
    h = drawn_history(1500, complex_builds_fail_on_south, seed=2)

    trained = train_success(h)

    # the (south, build) rate is about one half whatever the complexity; the model tells them apart
    assert trained.metrics["brier"] < 0.85 * trained.baseline_metrics["brier"]
    rows = _routing_rows(h.take(range(4)))
    rows.update(pool=["south"] * 4, task_type=["build", "build", "test", "test"], complexity=[2, 9, 2, 9])
    p = apply_success(trained.artifact, rows)
    assert p[0] > 0.75 and p[1] < 0.4  # south builds: simple ones succeed, complex ones fail
    assert abs(p[2] - p[3]) < 0.2  # south tests: complexity changes little


def test_evaluation_folds_are_time_ordered_and_newest_first(monkeypatch):
    assert evaluation_folds(360)[0] == (288, 360)
    assert evaluation_folds(5000) == [(4000, 5000)]
    monkeypatch.setattr("ml.training.MAX_FOLDS", 3)
    assert evaluation_folds(360) == [(288, 360), (216, 288), (144, 216)]
    assert evaluation_folds(700) == [(560, 700), (420, 560)]
    assert evaluation_folds(50) == [(40, 50), (30, 40), (20, 30)]


def test_success_model_scores_model_and_baseline_on_the_same_rows():
    h = drawn_history(360, crossed, seed=3)

    trained = train_success(h)

    rows = len(h) - evaluation_folds(len(h))[-1][0]
    assert trained.metrics["rows"] == trained.baseline_metrics["rows"] == rows
    assert trained.metrics["success_rate"] == trained.baseline_metrics["success_rate"]
    assert trained.metrics["success_rate"] == pytest.approx(float(np.mean(h["success"][len(h) - rows :])))


def test_the_newest_rows_play_no_part_in_choosing_or_fitting_the_candidate():
    """Flipping every outcome of the held-out rows changes the score, never the choice or the fit."""
    h = drawn_history(400, crossed, seed=4)
    cut = len(h) - int(round(len(h) * HELD_OUT))
    flipped = History(dict(h.columns))
    flipped.columns["success"] = h["success"][:cut] + [not ok for ok in h["success"][cut:]]

    one, other = train_success(h), train_success(flipped)

    assert one.algorithm == other.algorithm
    assert one.metrics["candidates"] == other.metrics["candidates"]
    rows = _routing_rows(h)
    assert np.array_equal(apply_success(one.candidate, rows), apply_success(other.candidate, rows))
    assert one.metrics["brier"] != other.metrics["brier"]


def test_the_group_rate_candidate_predicts_what_the_baseline_predicts():
    h = drawn_history(400, by_pool_and_type_only, seed=5)

    trained = train_success(h, algorithms=[GROUP_RATE])

    held = trained.held_out
    train = h.take(range(len(h) - len(held)))
    expected = GroupBaseline.fit(train).predict(held)[2]
    assert np.allclose(apply_success(trained.candidate, _routing_rows(held)), expected)
    assert trained.metrics["brier"] == pytest.approx(trained.baseline_metrics["brier"])
    rows = _routing_rows(h.take(range(2)))
    rows.update(pool=["east", "north"], task_type=["build", "deploy"])  # pairs never seen: the overall rate
    assert np.allclose(apply_success(trained.artifact, rows), float(np.mean(h["success"])))


def test_success_model_is_no_worse_than_the_group_rate_when_the_group_rate_is_the_truth():
    """The learned candidates fit noise there (complexity, prompt length): the group rate is chosen."""
    h = drawn_history(1500, by_pool_and_type_only, seed=0)

    trained = train_success(h, algorithms=[*SUCCESS_ALGORITHMS, GROUP_RATE])
    learned = train_success(h)

    assert trained.algorithm == GROUP_RATE
    assert trained.metrics["brier"] <= trained.baseline_metrics["brier"] + 1e-12
    assert learned.metrics["brier"] > trained.metrics["brier"]  # without the candidate it would be worse
