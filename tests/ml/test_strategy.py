"""The predictive strategy: expected completion time, seeded exploration, confidence, fallbacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coordination import routing
from coordination.models import RoutingDecision, Task
from coordination.routing import TaskSpec
from coordination.services import task_submit
from ml import patterns
from ml.models import ModelVersion
from ml.predict import PoolStates
from ml.services import ml_train
from ml.strategy import Predictive
from tests.ml.conftest import with_config
from tests.ml.synthetic import CAPABILITY, END, World, build_history, build_profiles, make_pools

pytestmark = pytest.mark.django_db

# The fresh pool wins about 1% of the posterior samples against the trained fast one: enough
# draws that exploration shows whatever the models' small differences (60 draws did by luck).
DRAWS = 400
BUILD = TaskSpec(task_type="build", capabilities=(CAPABILITY,), complexity=5, prompt_length=100)


@pytest.fixture
def predictive(settings, monkeypatch):
    """`predictive` configured, with a seeded generator in place of the process's own."""
    with_config(settings, multi_agent={"load_balancing_strategy": "predictive"})
    strategy = Predictive(rng=np.random.default_rng(0))
    monkeypatch.setitem(routing.STRATEGIES, "predictive", strategy)
    return strategy


@pytest.fixture
def trained(ml_pools, world):
    build_history(world, n=900, pools=ml_pools, seed=1)
    build_profiles(ml_pools)
    report = ml_train(kinds=["duration", "success"])
    assert report.of("duration").status == "activated"
    return ml_pools


def submit(n: int, *, task_type: str = "build") -> list[RoutingDecision]:
    tasks = [
        task_submit(capabilities=[CAPABILITY], prompt=f"task {i}", task_type=task_type, complexity=5) for i in range(n)
    ]
    return [RoutingDecision.objects.get(task=t) for t in tasks]


def test_predictive_without_a_model_falls_back_and_says_so(ml_pools, predictive):
    (decision,) = submit(1)

    assert decision.strategy == "predictive" and decision.fallback == "no_model"
    assert decision.reason.startswith("no active duration model yet")
    assert "performance_weighted: no finished attempts of type build on these pools" in decision.reason
    assert decision.model_version == "" and decision.predicted_seconds is None


def test_predictive_sends_builds_to_the_faster_more_reliable_pool(trained, predictive):
    decisions = submit(12)

    chosen = [d.chosen_pool.name for d in decisions]
    assert chosen.count("fast") >= 11
    first = decisions[0]
    assert first.fallback == "" and first.model_version == "duration v1, success v1"
    assert first.confidence >= 0.85
    fast, slow = sorted(first.candidates, key=lambda c: c["pool"])
    assert fast["pool"] == "fast" and fast["p50"] < slow["p50"] and fast["success"] > slow["success"]
    assert fast["score"] < slow["score"] and fast["win_share"] == pytest.approx(first.confidence, abs=1e-4)
    assert first.predicted_seconds == pytest.approx(fast["p50"], rel=1e-3)
    assert 0.5 * 20 * 1.75 * 0.6 < first.predicted_seconds < 0.5 * 20 * 1.75 * 1.6  # the truth table's median


def test_predictive_below_the_confidence_threshold_falls_back_to_performance_weighted(ml_pools, settings):
    twins = World(speed={"fast": 1.0, "slow": 1.0}, types={"build": 10.0}, noise=0.1)
    build_history(twins, n=600, pools=ml_pools, seed=3)
    build_profiles(ml_pools)
    ml_train(kinds=["duration"])
    strategy = Predictive(rng=np.random.default_rng(1), states=PoolStates(max_age=0))

    choice = strategy.choose(list(ml_pools.values()), spec=BUILD)

    assert choice.fallback == "low_confidence"
    assert "is below confidence_threshold 0.85; performance_weighted chose" in choice.reason
    assert choice.model_version.startswith("duration v1") and 0 < choice.confidence < 0.85
    assert {c["pool"] for c in choice.candidates} == {"fast", "slow"} and "win_share" in choice.candidates[0]


def test_predictive_explores_a_new_pool_sometimes_and_the_same_seed_repeats_it(trained, settings):
    with_config(settings, intelligence_framework={"confidence_threshold": 0.5})
    pools = [*trained.values(), *make_pools(["fresh"]).values()]

    def run(seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        return [
            Predictive(rng=rng, states=PoolStates(max_age=0), now=lambda: END).choose(pools, spec=BUILD).pool.name
            for _ in range(DRAWS)
        ]

    picks = run(42)

    assert picks == run(42)
    assert picks.count("fresh") >= 1  # never tried, wide posterior: it wins some samples
    assert picks.count("fast") > picks.count("fresh") and picks.count("fast") > DRAWS / 2


def test_exploring_choice_states_its_own_confidence_and_why(trained, settings):
    with_config(settings, intelligence_framework={"confidence_threshold": 0.5})
    pools = [*trained.values(), *make_pools(["fresh"]).values()]
    rng = np.random.default_rng(42)
    # the hour of day is a feature: predicting at a fixed time makes the draws the same at any hour
    choices = [
        Predictive(rng=rng, states=PoolStates(max_age=0), now=lambda: END).choose(pools, spec=BUILD)
        for _ in range(DRAWS)
    ]

    exploring = [c for c in choices if c.reason.startswith("exploring:")]
    assert exploring and all(c.fallback == "" for c in exploring)
    for c in exploring:
        share = next(x["win_share"] for x in c.candidates if x["pool"] == c.pool.name)
        assert c.confidence == pytest.approx(share, abs=1e-4) and c.confidence < 0.5


def test_predictive_slower_than_the_allocation_timeout_falls_back(trained, settings):
    with_config(settings, intelligent_task_allocation={"allocation_timeout": 1e-9})

    choice = Predictive(rng=np.random.default_rng(0)).choose(list(trained.values()), spec=BUILD)

    assert choice.fallback == "timeout" and "above allocation_timeout 1e-09s" in choice.reason


def test_predictive_with_a_refused_artifact_falls_back_and_names_it(trained, predictive):
    row = ModelVersion.objects.get(kind="duration", active=True)
    Path(row.artifact).write_bytes(b"not the model")

    (decision,) = submit(1)

    assert decision.fallback == "model_refused"
    assert "does not match its checksum (refused)" in decision.reason


def test_predictive_follows_the_routing_weights_of_failure_patterns(trained):
    patterns.store_weights({"fast|build": 40.0})
    strategy = Predictive(rng=np.random.default_rng(0), states=PoolStates(max_age=0))

    choice = strategy.choose(list(trained.values()), spec=BUILD)
    other = strategy.choose(list(trained.values()), spec=TaskSpec(task_type="test", capabilities=(CAPABILITY,)))

    assert choice.pool.name == "slow"
    assert next(c for c in choice.candidates if c["pool"] == "fast")["weight"] == 40.0
    assert other.pool.name == "fast"  # the weight is for builds only


def test_a_burst_of_submissions_spreads_once_the_fast_pool_queues_up(ml_pools, predictive):
    near = World(speed={"fast": 0.5, "slow": 0.8}, types={"build": 20.0}, noise=0.1)
    build_history(near, n=600, pools=ml_pools, seed=4)
    build_profiles(ml_pools)
    ml_train(kinds=["duration"])

    chosen = [d.chosen_pool.name for d in submit(24)]

    assert chosen[:4] == ["fast"] * 4  # four free slots on fast first
    assert 0 < chosen.count("slow") < chosen.count("fast")


def test_predictive_scales_a_pool_that_turned_slow_by_its_recent_outcomes(ml_pools, predictive):
    from ml.predict import CORRECTION_MIN_ROWS

    near = World(speed={"fast": 0.5, "slow": 0.8}, types={"build": 20.0}, noise=0.1)
    build_history(near, n=600, pools=ml_pools, seed=4)
    ml_train(kinds=["duration"])
    decisions = [d for d in submit(2 * CORRECTION_MIN_ROWS + 2) if d.chosen_pool.name == "fast"]
    assert len(decisions) >= CORRECTION_MIN_ROWS
    Task.objects.update(status=Task.Status.SUCCEEDED)  # finished: no queue to wait behind
    for d in decisions:  # the fast pool now takes 4x what the model says
        RoutingDecision.objects.filter(id=d.id).update(
            duration=d.predicted_seconds * 4, success=True, closed_at=d.decided_at
        )
    strategy = Predictive(rng=np.random.default_rng(0), states=PoolStates(max_age=0))

    choice = strategy.choose(list(ml_pools.values()), spec=BUILD)

    fast = next(c for c in choice.candidates if c["pool"] == "fast")
    slow = next(c for c in choice.candidates if c["pool"] == "slow")
    assert fast["correction"] == pytest.approx(4, rel=0.01) and slow["correction"] == 1.0
    assert fast["p50"] == pytest.approx(fast["p50_model"] * 4, rel=0.01)
    assert fast["p50_model"] < slow["p50_model"] and choice.pool.name == "slow"


@pytest.mark.parametrize("section", ["intelligent_task_allocation", "intelligence_framework"])
def test_predictive_switched_off_falls_back_though_a_model_is_active(trained, settings, section):
    with_config(settings, **{section: {"enabled": False}})

    choice = Predictive(rng=np.random.default_rng(0)).choose(list(trained.values()), spec=BUILD)

    assert choice.fallback == "disabled" and choice.reason.startswith(f"{section} is disabled; ")
    assert choice.model_version == "" and choice.predicted_seconds is None
