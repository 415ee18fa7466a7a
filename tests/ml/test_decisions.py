"""Routing decisions recorded at submit and closed with the outcome; performance profiles kept as attempts finish."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Agent, PerformanceProfile
from agents.profiles import pool_records, profile_record, quantile
from coordination.models import RoutingDecision, Task, TaskAttempt
from coordination.results import AttemptResult
from coordination.services import attempt_finish, attempt_lost, task_cancel, task_claim, task_submit
from tests.ml.conftest import with_config
from tests.ml.synthetic import CAPABILITY

pytestmark = pytest.mark.django_db

Outcome = TaskAttempt.Outcome


@pytest.fixture
def agent(ml_pools) -> Agent:
    return Agent.objects.get(name="fast-0@synthetic")


def run(task: Task, agent: Agent, result: AttemptResult, *, seconds: float = 0.0) -> Task:
    attempt = task_claim(task_id=str(task.id), agent=agent, pid=os.getpid(), host="test-host")
    TaskAttempt.objects.filter(id=attempt.id).update(started_at=timezone.now() - timedelta(seconds=seconds))
    return attempt_finish(attempt_id=attempt.id, result=result)


def test_task_submit_records_the_decision_with_candidates_and_its_time(ml_pools, settings):
    with_config(settings, multi_agent={"load_balancing_strategy": "least_loaded"})
    Task.objects.create(pool=ml_pools["fast"], status=Task.Status.QUEUED, timeout=60, capabilities=[CAPABILITY])

    task = task_submit(capabilities=[CAPABILITY], prompt="p", task_type="build")

    decision = task.decision
    assert decision.strategy == "least_loaded" and decision.chosen_pool.name == "slow" == task.pool.name
    assert decision.fallback == "" and decision.closed_at is None
    assert {c["pool"]: c["score"] for c in decision.candidates} == {"fast": 0.25, "slow": 0.0}  # 1 task / (2 × 2)
    assert 0 < decision.decision_ms < 1000


def test_task_submit_with_one_eligible_pool_records_that_no_choice_was_made(pools):
    task = task_submit(capabilities=["python"], prompt="p")

    assert task.decision.fallback == "only_eligible"
    assert task.decision.reason == "backend is the only eligible pool"
    assert task.decision.confidence == 1.0


def test_attempt_finish_success_closes_the_decision_and_updates_the_profile(ml_pools, agent, settings):
    with_config(settings, multi_agent={"load_balancing_strategy": "round_robin"})
    task = task_submit(capabilities=[CAPABILITY], prompt="p", task_type="build")
    Task.objects.filter(id=task.id).update(pool=ml_pools["fast"])

    done = run(task, agent, AttemptResult(outcome=Outcome.SUCCEEDED, exit_code=0), seconds=12)

    decision = RoutingDecision.objects.get(task=done)
    assert decision.success is True and decision.attempts == 1 and decision.closed_at is not None
    assert decision.duration == pytest.approx(12, abs=1)
    profile = PerformanceProfile.objects.get(agent=agent, task_type="build")
    assert (profile.count, profile.successes, profile.success_rate) == (1, 1, 1.0)
    assert profile.p50_seconds == pytest.approx(12, abs=1)


def test_attempt_finish_retryable_failure_leaves_the_decision_open_until_the_task_is_dead(ml_pools, agent):
    task = task_submit(capabilities=[CAPABILITY], prompt="p", task_type="build", max_attempts=2)
    Task.objects.filter(id=task.id).update(pool=ml_pools["fast"])
    failure = AttemptResult(outcome=Outcome.FAILED, exit_code=1, error="boom")

    assert run(task, agent, failure).status == Task.Status.QUEUED
    assert RoutingDecision.objects.get(task=task).closed_at is None
    Task.objects.filter(id=task.id).update(available_at=timezone.now())
    assert run(task, agent, failure).status == Task.Status.DEAD

    decision = RoutingDecision.objects.get(task=task)
    assert decision.success is False and decision.attempts == 2 and decision.closed_at is not None
    assert PerformanceProfile.objects.get(agent=agent, task_type="build").success_rate == 0.0


def test_task_cancel_closes_the_decision_without_a_verdict(ml_pools):
    task = task_submit(capabilities=[CAPABILITY], prompt="p")

    task_cancel(task=task)

    decision = RoutingDecision.objects.get(task=task)
    assert decision.closed_at is not None and decision.success is None


def test_attempt_lost_counts_for_success_but_not_for_duration(ml_pools, agent):
    task = task_submit(capabilities=[CAPABILITY], prompt="p", task_type="build")
    Task.objects.filter(id=task.id).update(pool=ml_pools["fast"])
    attempt = task_claim(task_id=str(task.id), agent=agent, pid=os.getpid(), host="test-host")

    attempt_lost(attempt_id=attempt.id, reason="worker died")

    profile = PerformanceProfile.objects.get(agent=agent, task_type="build")
    assert (profile.count, profile.success_rate, profile.p50_seconds, profile.recent) == (1, 0.0, None, [])


def test_profile_record_is_a_plain_average_then_an_ema_with_the_learning_rate(ml_pools, agent):
    pool_id = ml_pools["fast"].id
    for ok in [True] * 4:
        profile_record(
            pool_id=pool_id,
            agent_id=agent.id,
            task_type="t",
            succeeded=ok,
            seconds=1.0,
            cost_usd=None,
            learning_rate=0.5,
        )
    profile = profile_record(
        pool_id=pool_id, agent_id=agent.id, task_type="t", succeeded=False, seconds=1.0, cost_usd=0.2, learning_rate=0.5
    )
    # after 1/0.5 = 2 attempts the learning rate takes over: 1 + 0.5 * (0 - 1)
    assert profile.success_rate == pytest.approx(0.5)
    assert profile.count == 5 and profile.successes == 4 and profile.cost_usd == pytest.approx(0.2)

    first = profile_record(
        pool_id=pool_id,
        agent_id=agent.id,
        task_type="u",
        succeeded=True,
        seconds=2.0,
        cost_usd=None,
        learning_rate=0.005,
    )
    second = profile_record(
        pool_id=pool_id,
        agent_id=agent.id,
        task_type="u",
        succeeded=False,
        seconds=4.0,
        cost_usd=None,
        learning_rate=0.005,
    )
    assert first.success_rate == 1.0 and second.success_rate == pytest.approx(0.5)  # plain average while young
    assert second.mean_seconds == pytest.approx(3.0)


def test_profile_keeps_p50_and_p95_of_a_bounded_recent_window(ml_pools, agent):
    window = PerformanceProfile.RECENT_WINDOW
    for seconds in range(1, window + 21):
        profile = profile_record(
            pool_id=ml_pools["fast"].id,
            agent_id=agent.id,
            task_type="w",
            succeeded=True,
            seconds=float(seconds),
            cost_usd=None,
            learning_rate=0.005,
        )

    recent = list(range(21, window + 21))
    assert profile.recent == recent
    assert profile.p50_seconds == pytest.approx(quantile(recent, 0.5))
    assert profile.p95_seconds == pytest.approx(quantile(recent, 0.95))


def test_pool_records_weigh_agents_by_their_counts(ml_pools):
    pool = ml_pools["slow"]
    a, b = Agent.objects.filter(pool=pool)[:2]
    for agent, outcomes in ((a, [True] * 3), (b, [False])):
        for ok in outcomes:
            profile_record(
                pool_id=pool.id,
                agent_id=agent.id,
                task_type="x",
                succeeded=ok,
                seconds=10.0 if ok else 30.0,
                cost_usd=None,
                learning_rate=0.005,
            )

    record = pool_records(pool_ids=[pool.id], task_type="x")[(pool.id, "x")]

    assert record.count == 4 and record.success_rate == pytest.approx(0.75)
    assert record.p50_seconds == pytest.approx((3 * 10 + 30) / 4)


def test_configured_strategy_missing_from_this_process_falls_back_and_says_so(ml_pools, settings, monkeypatch):
    from coordination import routing

    with_config(settings, multi_agent={"load_balancing_strategy": "predictive"})
    monkeypatch.delitem(routing.STRATEGIES, "predictive")

    task = task_submit(capabilities=[CAPABILITY], prompt="p", task_type="build")

    assert task.decision.strategy == "predictive" and task.decision.fallback == "unavailable"
    assert task.decision.reason.startswith("strategy predictive is not registered in this process; ")


def test_the_ml_app_registers_the_predictive_strategy():
    from coordination.routing import STRATEGIES
    from ml.strategy import Predictive

    assert isinstance(STRATEGIES["predictive"], Predictive)


def finish(ml_pools, agent, outcome: str, *, seconds: float = 2.0) -> Task:
    task = task_submit(capabilities=[CAPABILITY], prompt="p", task_type="build", max_attempts=1)
    Task.objects.filter(id=task.id).update(pool=ml_pools["fast"])
    code = 0 if outcome == Outcome.SUCCEEDED else 1
    return run(task, agent, AttemptResult(outcome=outcome, exit_code=code, error=""), seconds=seconds)


@pytest.mark.parametrize("section", ["intelligent_task_allocation", "intelligence_framework"])
def test_performance_tracking_off_leaves_the_profiles_alone(ml_pools, agent, settings, section):
    with_config(settings, **{section: {"performance_tracking_enabled": False}})

    assert finish(ml_pools, agent, Outcome.SUCCEEDED).status == Task.Status.SUCCEEDED
    assert not PerformanceProfile.objects.filter(agent=agent).exists()


@pytest.mark.parametrize(("rate", "success_rate"), [(0.5, 0.5), (0.005, 2 / 3)])
def test_finished_attempts_update_the_profile_at_the_configured_learning_rate(
    ml_pools, agent, settings, rate, success_rate
):
    with_config(settings, intelligence_framework={"learning_rate": rate})

    for outcome in (Outcome.SUCCEEDED, Outcome.SUCCEEDED, Outcome.FAILED):
        finish(ml_pools, agent, outcome)

    # plain average for the first 1/rate attempts, then each new one weighs `rate`
    profile = PerformanceProfile.objects.get(agent=agent, task_type="build")
    assert profile.count == 3 and profile.success_rate == pytest.approx(success_rate)
