"""Failure patterns: injected causes are found, background noise is not reported, recommendations and weights."""

from __future__ import annotations

import re

import pytest

from ml import patterns
from ml.features import history
from ml.patterns import binomial_tail, find_patterns, insights, normalise_error, publish_weights, routing_weights
from ml.services import ml_train
from tests.ml.conftest import with_config
from tests.ml.synthetic import Cause, World, build_history, make_pools

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("error", "exit_code", "expected"),
    [
        ("xcodebuild: not found", 127, "exit 127: xcodebuild: not found"),
        (
            "\n  FileNotFoundError: [Errno 2] No such file: /tmp/work/a1/x.py\nmore",
            1,
            "exit 1: FileNotFoundError: [Errno <n>] No such file: <path>",
        ),
        ("push of 3f2a4c1e-1111-2222-3333-444455556666 at deadbeef12 failed", None, "push of <id> at <hex> failed"),
        ("fetch https://example.com/a?b=1 timed out after 30.5s", 2, "exit 2: fetch <url> timed out after <n>s"),
        ("", None, "timeout"),
    ],
)
def test_normalise_error_masks_what_varies_between_occurrences(error, exit_code, expected):
    assert normalise_error(error=error, exit_code=exit_code, outcome="timeout") == expected


def test_binomial_tail_known_values():
    assert binomial_tail(0, 10, 0.3) == 1.0
    assert binomial_tail(10, 10, 0.5) == pytest.approx(0.5**10)
    assert binomial_tail(2, 3, 0.5) == pytest.approx(0.5)


def noisy_world(causes: list[Cause]) -> World:
    """Four pools, four types, 7% generic failures spread evenly, plus the given causes."""
    return World(
        speed={"a": 1.0, "b": 1.0, "c": 1.2, "d": 0.8},
        types={"build": 20.0, "test": 5.0, "lint": 2.0, "deploy": 30.0},
        reliability=0.93,
        causes=causes,
    )


def test_find_patterns_reports_the_injected_causes_and_nothing_else():
    pools = make_pools(["a", "b", "c", "d"])
    causes = [
        Cause(pool="a", task_type="build", rate=0.7, error="xcodebuild: not found", exit_code=127),
        Cause(
            pool="c",
            task_type="deploy",
            rate=0.35,
            error="docker: permission denied on /var/run/docker.sock",
            exit_code=126,
        ),
    ]
    build_history(noisy_world(causes), n=4000, pools=pools, seed=11)

    found = find_patterns(history(), sensitivity=0.8)

    assert {(p.pool, p.task_type, p.signature) for p in found} == {
        ("a", "build", "exit 127: xcodebuild: not found"),
        ("c", "deploy", "exit 126: docker: permission denied on <path>"),
    }
    xcode = next(p for p in found if p.pool == "a")
    assert 0.6 < xcode.rate < 0.8 and xcode.lift > 10 and xcode.p_value < 1e-6 and not xcode.everywhere
    assert xcode.support == pytest.approx(xcode.failures / 4000)


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_find_patterns_on_noise_alone_reports_nothing(seed):
    pools = make_pools(["a", "b", "c", "d"])
    build_history(noisy_world([]), n=3000, pools=pools, seed=seed)

    assert find_patterns(history(), sensitivity=0.8) == []


def test_sensitivity_sets_the_smallest_share_reported():
    pools = make_pools(["a", "b", "c", "d"])
    cause = Cause(pool="b", task_type="test", rate=0.15, error="pytest: fixture db locked", exit_code=4)
    build_history(noisy_world([cause]), n=4000, pools=pools, seed=12)
    h = history()

    assert find_patterns(h, sensitivity=0.8) == []  # 15% of b's tests: below 1 - 0.8
    assert [p.pool for p in find_patterns(h, sensitivity=0.9)] == ["b"]


def test_insights_recommend_rerouting_with_evidence_and_publish_routing_weights(settings):
    pools = make_pools(["a", "b", "c", "d"])
    cause = Cause(pool="a", task_type="build", rate=0.7, error="xcodebuild: not found", exit_code=127)
    build_history(noisy_world([cause]), n=3000, pools=pools, seed=13)
    with_config(settings, pattern_optimizer={"optimization_aggressiveness": 0.5})

    found = insights()
    weights = publish_weights(found)

    (rec,) = found.recommendations
    (pattern,) = found.patterns
    assert rec.kind == "reroute" and rec.pool == "a" and rec.task_type == "build"
    assert 0.6 < pattern.rate < 0.8
    assert rec.text == (
        f"pool a fails task type build {pattern.rate:.0%} of {pattern.attempts} attempts with "
        f"`exit 127: xcodebuild: not found`: route elsewhere or fix the image (routing weight ×{rec.weight:.2f})"
    )
    assert weights == {"a|build": pytest.approx(1 + 0.5 * found.patterns[0].rate)}
    assert routing_weights(max_age=0) == weights


def test_aggressiveness_zero_reports_only(settings):
    pools = make_pools(["a", "b", "c", "d"])
    cause = Cause(pool="a", task_type="build", rate=0.7, error="xcodebuild: not found", exit_code=127)
    build_history(noisy_world([cause]), n=3000, pools=pools, seed=13)
    with_config(settings, pattern_optimizer={"optimization_aggressiveness": 0.0})

    found = insights()

    assert found.recommendations[0].weight is None
    assert "(report only: optimization_aggressiveness is 0)" in found.recommendations[0].text
    assert publish_weights(found) == {} and routing_weights(max_age=0) == {}


def test_a_cause_on_every_pool_is_the_task_not_a_pool():
    pools = make_pools(["a", "b"])
    world = World(
        speed={"a": 1.0, "b": 1.0},
        types={"migrate": 10.0, "test": 5.0},
        causes=[
            Cause(pool=p, task_type="migrate", rate=0.6, error="relation users does not exist", exit_code=1)
            for p in ("a", "b")
        ],
    )
    build_history(world, n=2000, pools=pools, seed=14)
    h = history()

    found = find_patterns(h, sensitivity=0.8)
    recs = patterns.recommend(found, [], aggressiveness=0.6)

    assert {p.pool for p in found} == {"a", "b"} and all(p.everywhere for p in found)
    assert {r.kind for r in recs} == {"fix_task"} and all(r.weight is None for r in recs)
    assert "as every pool does: fix the task or its inputs" in recs[0].text


def test_timeout_risk_names_the_type_whose_p95_nears_its_timeout(settings):
    pools = make_pools(["a", "b"])
    world = World(speed={"a": 1.0, "b": 1.0}, types={"migrate": 50.0, "test": 5.0}, timeout={"migrate": 100.0})
    build_history(world, n=600, pools=pools, seed=15)

    found = insights()

    migrations = history()["task_type"].count("migrate")
    (rec,) = [r for r in found.recommendations if r.kind == "raise_timeout"]
    assert rec.task_type == "migrate"
    assert re.fullmatch(
        rf"p95 duration of type migrate is \d\.\d of its timeout \(100s, {migrations} attempts\): "
        r"raise the timeout",
        rec.text,
    )


def test_insights_report_patterns_above_the_configured_sensitivity(settings):
    pools = make_pools(["a", "b", "c", "d"])
    cause = Cause(pool="b", task_type="test", rate=0.15, error="pytest: fixture db locked", exit_code=4)
    build_history(noisy_world([cause]), n=4000, pools=pools, seed=12)

    assert insights().patterns == []  # the default 0.8: 15% of b's tests is below 1 - 0.8
    with_config(settings, pattern_optimizer={"pattern_detection_sensitivity": 0.9})
    assert [p.pool for p in insights().patterns] == ["b"]


@pytest.mark.parametrize(
    "switch",
    [{"pattern_optimizer": {"enabled": False}}, {"intelligence_framework": {"pattern_recognition_enabled": False}}],
)
def test_pattern_recognition_off_training_publishes_no_pattern_and_no_routing_weight(settings, switch):
    pools = make_pools(["a", "b", "c", "d"])
    cause = Cause(pool="a", task_type="build", rate=0.7, error="xcodebuild: not found", exit_code=127)
    build_history(noisy_world([cause]), n=3000, pools=pools, seed=13)
    on = ml_train(kinds=[])
    assert on.patterns == 1 and set(routing_weights(max_age=0)) == {"a|build"}

    with_config(settings, **switch)
    off = ml_train(kinds=[])

    assert off.patterns == 0 and off.weights == {} and routing_weights(max_age=0) == {}
