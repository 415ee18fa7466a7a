"""The local actuator's pure parts: names, sizes, plans and the worker-seconds of a run."""

from __future__ import annotations

import pytest

from hive_project.actuator import PoolPlan, Span, configured_size, node_name, pool_plans
from hive_project.config import load_config

POOLS = """
agents:
  a:   {capabilities: [x], min_instances: 0, max_instances: 3, concurrency: 2, runner: {timeout: 90}}
  a-2: {capabilities: [y], min_instances: 4, max_instances: 6, concurrency: 1}
"""


@pytest.mark.parametrize(("low", "high", "size"), [(0, 1, 1), (0, 5, 1), (3, 5, 3), (5, 5, 5)])
def test_configured_size_is_the_minimum_but_at_least_one(low, high, size):
    assert configured_size(min_instances=low, max_instances=high) == size


def test_node_names_of_pools_whose_names_end_in_a_number_never_collide():
    names = {node_name(pool, n, "h") for pool in ("a", "a-2", "a-1") for n in range(1, 13)}
    assert len(names) == 3 * 12
    assert node_name("backend", 2, "vm") == "backend-2@vm"


@pytest.mark.parametrize(("scaling", "fixed"), [("true", {"a": None, "a-2": None}), ("false", {"a": 1, "a-2": 4})])
def test_pool_plans_follow_the_database_unless_scaling_is_disabled(tmp_path, scaling, fixed):
    path = tmp_path / "hive.yaml"
    path.write_text(f"scaling: {{enabled: {scaling}}}\n{POOLS}")

    plans = pool_plans(load_config(str(path)))

    assert {plan.name: plan.fixed for plan in plans} == fixed
    assert plans[0] == PoolPlan(name="a", concurrency=2, timeout=90.0, fixed=fixed["a"])


@pytest.mark.parametrize(
    ("started", "ended", "seconds"),
    [(10.0, 20.0, 10.0), (0.0, 20.0, 15.0), (10.0, None, 10.0), (2.0, None, 15.0), (30.0, 40.0, 0.0), (0.0, 3.0, 0.0)],
)
def test_span_seconds_counts_only_the_part_inside_the_window(started, ended, seconds):
    span = Span(pool="a", node="a-1@h", pid=1, started=started, ended=ended)
    assert span.seconds(start=5.0, end=20.0) == seconds
