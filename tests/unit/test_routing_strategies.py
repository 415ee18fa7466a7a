"""Routing: which pools may take a task, and how each strategy picks between frontend and ios (both offer ui)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from agents.models import Agent, AgentPool
from agents.profiles import profile_record
from coordination.errors import NoEligiblePool
from coordination.models import Task, TaskAttempt
from coordination.routing import LeastLoaded, PerformanceWeighted, RoundRobin, TaskSpec, eligible_pools
from coordination.services import task_submit

Status = Task.Status


def with_strategy(settings, name: str) -> None:
    config = settings.HIVE_CONFIG
    multi_agent = config.multi_agent.model_copy(update={"load_balancing_strategy": name})
    settings.HIVE_CONFIG = config.model_copy(update={"multi_agent": multi_agent})


def ui_pools(pools) -> list[AgentPool]:
    return [pools["frontend"], pools["ios"]]


def add_tasks(pool: AgentPool, n: int, *, status: str = Status.QUEUED, task_type: str = "general") -> list[Task]:
    return [
        Task.objects.create(pool=pool, status=status, timeout=60, capabilities=["ui"], task_type=task_type)
        for _ in range(n)
    ]


def add_agents(pool: AgentPool, n: int, *, status: str = Agent.Status.ONLINE) -> None:
    for i in range(n):
        Agent.objects.create(name=f"{pool.name}-{status}-{i}@test", pool=pool, status=status)


def add_history(pool: AgentPool, outcomes: list[str], *, seconds: float, task_type: str = "build") -> None:
    """Finished attempts, and the performance profile the workers keep as they finish."""
    finished = timezone.now()
    agent, _ = Agent.objects.get_or_create(name=f"{pool.name}-history@test", defaults={"pool": pool})
    for task in add_tasks(pool, len(outcomes), status=Status.SUCCEEDED, task_type=task_type):
        outcome = outcomes.pop()
        TaskAttempt.objects.create(
            task=task,
            number=1,
            agent=agent,
            outcome=outcome,
            started_at=finished - timedelta(seconds=seconds),
            heartbeat_at=finished,
            finished_at=finished,
        )
        profile_record(
            pool_id=pool.id,
            agent_id=agent.id,
            task_type=task_type,
            succeeded=outcome == "succeeded",
            seconds=seconds,
            cost_usd=None,
            learning_rate=0.005,
        )


# --- eligible pools ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capabilities", "names"),
    [
        (["ui"], {"frontend", "ios"}),
        ([" UI", "react"], {"frontend"}),
        (["python", "api"], {"backend"}),
        (["docker"], {"infrastructure"}),
    ],
)
def test_eligible_pools_capabilities_select_only_covering_pools(pools, capabilities, names):
    assert {p.name for p in eligible_pools(capabilities)} == names


def test_eligible_pools_excludes_disabled_and_command_refusing_pools(pools):
    AgentPool.objects.filter(name="frontend").update(enabled=False)
    assert [p.name for p in eligible_pools(["ui"])] == ["ios"]

    AgentPool.objects.filter(name="ios").update(allow_commands=False)
    assert [p.name for p in eligible_pools(["ui"])] == ["ios"]
    with pytest.raises(NoEligiblePool, match="no pool that offers ui allows commands"):
        eligible_pools(["ui"], needs_commands=True)


# --- least loaded -----------------------------------------------------------------------------------


def test_least_loaded_busier_pool_is_avoided(pools):
    add_tasks(pools["frontend"], 1)
    assert LeastLoaded().choose(ui_pools(pools), spec=TaskSpec(task_type="general")).pool.name == "ios"

    add_tasks(pools["ios"], 1, status=Status.RUNNING)
    add_tasks(pools["ios"], 1)
    assert LeastLoaded().choose(ui_pools(pools), spec=TaskSpec(task_type="general")).pool.name == "frontend"


def test_least_loaded_finished_tasks_do_not_count_as_load(pools):
    for status in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.DEAD):
        add_tasks(pools["frontend"], 2, status=status)
    add_tasks(pools["ios"], 1)

    assert LeastLoaded().choose(ui_pools(pools), spec=TaskSpec(task_type="general")).pool.name == "frontend"


def test_least_loaded_load_is_per_unit_of_live_capacity(pools):
    add_tasks(pools["frontend"], 2)
    add_tasks(pools["ios"], 1)
    add_agents(pools["frontend"], 3)  # 2 tasks over 3 agents beats 1 task over 1
    assert LeastLoaded().choose(ui_pools(pools), spec=TaskSpec(task_type="general")).pool.name == "frontend"

    Agent.objects.filter(pool=pools["frontend"]).update(status=Agent.Status.OFFLINE)
    assert LeastLoaded().choose(ui_pools(pools), spec=TaskSpec(task_type="general")).pool.name == "ios"


def test_route_with_least_loaded_sends_ui_task_to_the_idle_pool(pools, settings):
    with_strategy(settings, "least_loaded")
    add_tasks(pools["frontend"], 3)

    task = task_submit(capabilities=["ui"], prompt="fix the button")

    assert task.pool.name == "ios"


# --- round robin ------------------------------------------------------------------------------------


def test_round_robin_alternates_between_eligible_pools(pools):
    cache.delete("rr:frontend,ios")
    strategy = RoundRobin()

    picks = [strategy.choose(ui_pools(pools), spec=TaskSpec(task_type="general")).pool.name for _ in range(4)]

    assert picks in (["ios", "frontend"] * 2, ["frontend", "ios"] * 2)


def test_route_with_round_robin_spreads_tasks_whatever_the_load(pools, settings):
    with_strategy(settings, "round_robin")
    add_tasks(pools["frontend"], 5)  # least_loaded would send everything to ios

    picks = [task_submit(capabilities=["ui"], prompt=f"task {i}").pool.name for i in range(4)]

    assert sorted(picks) == ["frontend", "frontend", "ios", "ios"]
    assert all(a != b for a, b in zip(picks, picks[1:], strict=False))


# --- performance weighted ---------------------------------------------------------------------------


def test_performance_weighted_prefers_more_successes_per_second(pools):
    add_history(pools["frontend"], [TaskAttempt.Outcome.SUCCEEDED] * 4, seconds=100)
    add_history(pools["ios"], [TaskAttempt.Outcome.SUCCEEDED] * 4, seconds=10)

    assert PerformanceWeighted().choose(ui_pools(pools), spec=TaskSpec(task_type="build")).pool.name == "ios"


def test_performance_weighted_fast_failures_lose_to_slow_successes(pools):
    add_history(pools["frontend"], [TaskAttempt.Outcome.SUCCEEDED] * 3 + [TaskAttempt.Outcome.FAILED], seconds=60)
    add_history(pools["ios"], [TaskAttempt.Outcome.FAILED, TaskAttempt.Outcome.TIMEOUT] * 2, seconds=1)

    assert PerformanceWeighted().choose(ui_pools(pools), spec=TaskSpec(task_type="build")).pool.name == "frontend"


def test_performance_weighted_without_history_falls_back_to_least_loaded(pools):
    add_history(pools["ios"], [TaskAttempt.Outcome.SUCCEEDED] * 4, seconds=1, task_type="other-type")
    add_tasks(pools["frontend"], 2)

    assert PerformanceWeighted().choose(ui_pools(pools), spec=TaskSpec(task_type="build")).pool.name == "ios"


def test_route_with_performance_weighted_follows_history_not_load(pools, settings):
    add_history(pools["frontend"], [TaskAttempt.Outcome.SUCCEEDED] * 4, seconds=5)
    add_history(pools["ios"], [TaskAttempt.Outcome.FAILED] * 4, seconds=5)
    add_tasks(pools["frontend"], 3)

    with_strategy(settings, "performance_weighted")
    assert task_submit(capabilities=["ui"], prompt="p", task_type="build").pool.name == "frontend"
    with_strategy(settings, "least_loaded")
    assert task_submit(capabilities=["ui"], prompt="p", task_type="build").pool.name == "ios"


def test_performance_weighted_new_pool_without_history_is_tried(pools):
    add_history(pools["frontend"], [TaskAttempt.Outcome.SUCCEEDED] * 4, seconds=5)

    picks = {
        PerformanceWeighted().choose(ui_pools(pools), spec=TaskSpec(task_type="build")).pool.name for _ in range(10)
    }

    assert "ios" in picks
