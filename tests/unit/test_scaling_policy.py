"""The scaling policy as a table: thresholds, factors, cooldown, zero, forecast, predictions, fleet caps."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from coordination.scaling.policy import PoolState, ScalingSettings, ScalingVerdict, decide, fleet_limit
from hive_project.config import load_config

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SETTINGS = ScalingSettings(
    up_threshold=0.8,
    up_factor=1.5,
    down_threshold=0.3,
    down_factor=0.7,
    cooldown_seconds=180,
    interval_seconds=5,
    fleet_max_instances=20,
    fleet_min_instances=0,
    max_concurrent_tasks=50,
)


def state(**fields) -> PoolState:
    changed = fields.pop("changed_ago", None)
    base = {
        "pool": "backend",
        "now": NOW,
        "instances": 1,
        "desired": 1,
        "concurrency": 1,
        "min_instances": 0,
        "max_instances": 4,
    }
    if changed is not None:
        base["last_change_at"] = NOW - timedelta(seconds=changed)
    return PoolState(**(base | fields))


# (id, state fields, settings changes, desired, words in the reason)
CASES = [
    ("burst-jumps-to-max", dict(running=1, ready=39), {}, 4, "backlog of 39: 1 -> 4"),
    ("backlog-ignores-cooldown", dict(running=1, ready=39, changed_ago=10), {}, 4, "1 -> 4"),
    (
        "factor-is-the-least-step",
        dict(instances=10, desired=10, max_instances=30, running=10, ready=1),
        {},
        15,
        "10 -> 15",
    ),
    ("needed-beats-factor", dict(instances=2, desired=2, max_instances=20, running=2, ready=10), {}, 15, "2 -> 15"),
    (
        "busy-no-backlog-waits-cooldown",
        dict(instances=2, desired=2, running=2, changed_ago=60),
        {},
        2,
        "busy without a backlog; may grow after the cooldown (120s)",
    ),
    (
        "busy-no-backlog-grows-after-cooldown",
        dict(instances=2, desired=2, running=2, changed_ago=400),
        {},
        3,
        "busy without a backlog: 2 -> 3",
    ),
    (
        "ready-on-free-slot-is-no-backlog",
        dict(instances=2, desired=2, running=1, ready=1, changed_ago=30),
        {},
        2,
        "busy without a backlog",
    ),
    ("at-maximum", dict(instances=4, desired=4, running=4, ready=10), {}, 4, "at its maximum of 4"),
    (
        "scale-up-on-its-way-not-asked-twice",
        dict(instances=1, desired=3, max_instances=10, running=1, ready=1),
        {},
        3,
        "within 30%..80%",
    ),
    ("within-band", dict(instances=2, desired=2, running=1), {}, 2, "utilisation 50%"),
    ("down-waits-cooldown", dict(instances=4, desired=4, running=1, changed_ago=60), {}, 4, "in cooldown for 120s"),
    ("down-by-factor", dict(instances=10, desired=10, max_instances=20, running=2, changed_ago=181), {}, 7, "10 -> 7"),
    ("down-at-least-one-fewer", dict(instances=2, desired=2, concurrency=2, running=1), {}, 1, "2 -> 1"),
    (
        "idle-keeps-one-for-retries",
        dict(instances=2, desired=2, delayed=1),
        {},
        1,
        "idle (nothing running or ready): 2 -> 1 (1 queued task(s) wait in backoff)",
    ),
    (
        "down-never-below-the-work",
        dict(instances=10, desired=10, max_instances=20, running=6),
        dict(down_threshold=0.7, up_threshold=0.75, down_factor=0.1),
        8,
        "10 -> 8",
    ),
    ("idle-straight-to-minimum", dict(instances=4, desired=4, min_instances=1), {}, 1, "idle"),
    ("idle-to-zero", dict(changed_ago=400), {}, 0, "1 -> 0"),
    ("zero-stays-zero", dict(instances=0, desired=0), {}, 0, "idle at zero"),
    (
        "work-wakes-zero-despite-cooldown",
        dict(instances=0, desired=0, ready=1, changed_ago=10),
        {},
        1,
        "work arrived for a pool at zero",
    ),
    ("work-wakes-zero-one-slot-per-task", dict(instances=0, desired=0, concurrency=2, ready=5), {}, 3, "start 3"),
    ("retries-in-backoff-keep-one", dict(running=0, delayed=2), {}, 1, "already at its floor"),
    ("retries-in-backoff-wake-zero", dict(instances=0, desired=0, delayed=2), {}, 1, "wait in backoff"),
    ("forecast-keeps-one-warm", dict(forecast_per_hour=60.0), {}, 1, "forecast expects 60 tasks an hour"),
    ("thin-forecast-lets-it-sleep", dict(forecast_per_hour=10.0), {}, 0, "idle"),
    (
        "forecast-raises-the-load",
        dict(instances=2, desired=2, max_instances=10, running=1, forecast_per_hour=3600.0, mean_task_seconds=3.0),
        {},
        4,
        "2 -> 4",
    ),
    (
        "short-predicted-work-holds",
        dict(running=1, ready=5, predicted_work_seconds=4.0),
        {},
        1,
        "clears within one interval",
    ),
    ("long-predicted-work-grows", dict(running=1, ready=5, predicted_work_seconds=600.0), {}, 4, "1 -> 4"),
    ("disabled-holds", dict(running=1, ready=39), dict(enabled=False), 1, "scaling is disabled"),
    ("above-bounds-clamped", dict(desired=6, instances=6), {}, 4, "outside the pool's bounds 0..4"),
    ("below-minimum-raised", dict(desired=1, min_instances=2), {}, 2, "outside the pool's bounds 2..4"),
]


@pytest.mark.parametrize(("fields", "changes", "desired", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide_table_gives_desired_and_reason(fields, changes, desired, words):
    verdict = decide(state(**fields), replace(SETTINGS, **changes))

    assert verdict.desired == desired, verdict.reason
    assert words in verdict.reason


def test_decide_same_inputs_same_verdict():
    given = state(running=1, ready=39, changed_ago=10)

    assert decide(given, SETTINGS) == decide(given, SETTINGS)


def test_pool_state_bad_field_names_it():
    with pytest.raises(ValueError, match="ready must be an integer >= 0"):
        state(ready=-1)
    with pytest.raises(ValueError, match="concurrency must be an integer >= 1"):
        state(concurrency=0)
    with pytest.raises(ValueError, match="max_instances must be >= 1 and >= min_instances"):
        state(min_instances=3, max_instances=2)
    with pytest.raises(ValueError, match="forecast_per_hour must be a number >= 0"):
        state(forecast_per_hour=float("nan"))


def test_pool_state_inputs_are_json():
    inputs = state(instances=0, desired=0, ready=2, changed_ago=5).as_inputs()

    assert json.loads(json.dumps(inputs))["last_change_at"] == (NOW - timedelta(seconds=5)).isoformat()
    assert inputs["utilisation"] is None  # work on no slots at all
    assert state(instances=2, desired=2, running=1).as_inputs()["utilisation"] == 0.5


def test_settings_from_config_reads_every_key(tmp_path):
    path = tmp_path / "hive.yaml"
    path.write_text(
        "system: {max_concurrent_tasks: 30}\n"
        "multi_agent: {max_agents: 12, min_agents: 2}\n"
        "scaling: {auto_scale: false, cooldown_minutes: 2, interval_seconds: 3, strategies: "
        "{scale_up: {threshold: 0.7, factor: 2, max_instances: 10}, "
        "scale_down: {threshold: 0.2, factor: 0.5, min_instances: 3}}}\n"
    )

    got = ScalingSettings.from_config(load_config(path, environ={}))

    assert got == ScalingSettings(
        enabled=True,
        auto_scale=False,
        up_threshold=0.7,
        up_factor=2.0,
        down_threshold=0.2,
        down_factor=0.5,
        cooldown_seconds=120.0,
        interval_seconds=3.0,
        fleet_max_instances=10,
        fleet_min_instances=3,
        max_concurrent_tasks=30,
    )


# --- across pools -------------------------------------------------------------------------------


def fleet(**pools: tuple[int, int]) -> tuple[dict[str, PoolState], dict[str, ScalingVerdict]]:
    """name=(current desired, verdict) -> states and verdicts, concurrency 1, bounds 0..20."""
    states = {n: state(pool=n, instances=d, desired=d, max_instances=20) for n, (d, _) in pools.items()}
    return states, {n: ScalingVerdict(v, "policy") for n, (_, v) in pools.items()}


def test_fleet_limit_under_caps_keeps_verdicts():
    states, verdicts = fleet(a=(2, 5), b=(1, 3))

    assert fleet_limit(states, verdicts, SETTINGS) == verdicts


def test_fleet_limit_over_max_agents_shares_fairly():
    states, verdicts = fleet(a=(2, 10), b=(2, 10), c=(0, 1))

    got = fleet_limit(states, verdicts, replace(SETTINGS, fleet_max_instances=8))

    assert {n: v.desired for n, v in got.items()} == {"a": 4, "b": 3, "c": 1}
    assert got["b"].reason == (
        "policy; trimmed to 3: at most 8 instances in all "
        "(multi_agent.max_agents, scaling.strategies.scale_up.max_instances)"
    )
    assert got["c"].reason == "policy"  # a pool waking from zero gets its instance first


def test_fleet_limit_over_concurrent_tasks_counts_slots():
    states, verdicts = fleet(a=(1, 5), b=(1, 5))
    states["a"] = replace(states["a"], concurrency=4)

    got = fleet_limit(states, verdicts, replace(SETTINGS, max_concurrent_tasks=10))

    assert {n: v.desired for n, v in got.items()} == {"a": 2, "b": 2}
    assert "at most 10 concurrent tasks (system.max_concurrent_tasks)" in got["a"].reason


def test_fleet_limit_keeps_pool_minimums_above_a_cap():
    states, verdicts = fleet(a=(3, 5), b=(3, 5))
    states = {n: replace(s, min_instances=3) for n, s in states.items()}

    got = fleet_limit(states, verdicts, replace(SETTINGS, fleet_max_instances=4))

    assert {n: v.desired for n, v in got.items()} == {"a": 3, "b": 3}


def test_fleet_limit_minimum_holds_back_scale_down():
    states, verdicts = fleet(a=(4, 1), b=(2, 2))

    got = fleet_limit(states, verdicts, replace(SETTINGS, fleet_min_instances=5))

    assert {n: v.desired for n, v in got.items()} == {"a": 3, "b": 2}
    assert "kept at 3 by the fleet minimum of 5 instances" in got["a"].reason


def test_fleet_limit_minimum_never_starts_idle_instances():
    states, verdicts = fleet(a=(0, 0), b=(1, 1))

    got = fleet_limit(states, verdicts, replace(SETTINGS, fleet_min_instances=5))

    assert {n: v.desired for n, v in got.items()} == {"a": 0, "b": 1}


def test_fleet_limit_random_fleets_stay_within_bounds_and_caps():
    rng = random.Random(20260105)
    for _ in range(300):
        settings = replace(SETTINGS, fleet_max_instances=rng.randint(1, 30), max_concurrent_tasks=rng.randint(1, 60))
        states = {}
        for name in "abcd":
            low = rng.randint(0, 1)
            high = rng.randint(max(1, low), 8)
            current = rng.randint(low, high)
            states[name] = state(
                pool=name,
                instances=rng.randint(0, high),
                desired=current,
                concurrency=rng.randint(1, 3),
                min_instances=low,
                max_instances=high,
                running=rng.randint(0, 10),
                ready=rng.randint(0, 30),
                delayed=rng.randint(0, 2),
                changed_ago=rng.choice([None, 30, 600]),
            )
        verdicts = fleet_limit(states, {n: decide(s, settings) for n, s in states.items()}, settings)

        for name, verdict in verdicts.items():
            assert states[name].min_instances <= verdict.desired <= states[name].max_instances
        floors = sum(s.min_instances for s in states.values())
        floor_slots = sum(s.min_instances * s.concurrency for s in states.values())
        assert sum(v.desired for v in verdicts.values()) <= max(settings.fleet_max_instances, floors)
        slots = sum(verdicts[n].desired * states[n].concurrency for n in states)
        assert slots <= max(settings.max_concurrent_tasks, floor_slots)
