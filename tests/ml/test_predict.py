"""Predictions per pool: expected wait from the work ahead, success from profiles without a model, ETAs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Agent
from coordination.models import RoutingDecision, Task
from coordination.routing import TaskSpec
from ml.predict import NoModel, PoolStates, predict_pools, read_pool_states, task_etas
from ml.registry import active_models
from ml.services import ml_train
from tests.ml.synthetic import CAPABILITY, build_history, build_profiles

pytestmark = pytest.mark.django_db

SPEC = TaskSpec(task_type="build", capabilities=(CAPABILITY,), complexity=5, prompt_length=100)


def active_task(pool, *, status: str = Task.Status.QUEUED, predicted: float | None = 100.0, **fields) -> Task:
    task = Task.objects.create(
        pool=pool,
        status=status,
        timeout=600,
        capabilities=[CAPABILITY],
        task_type="build",
        complexity=5,
        queued_at=timezone.now(),
        **fields,
    )
    RoutingDecision.objects.create(
        task=task, strategy="predictive", chosen_pool=pool, predicted_seconds=predicted, decided_at=timezone.now()
    )
    return task


def test_wait_is_zero_while_a_slot_is_free_then_the_work_ahead_over_capacity(ml_pools):
    fast = ml_pools["fast"]  # 2 agents × concurrency 2: four slots
    for _ in range(3):
        active_task(fast)
    assert read_pool_states([fast])[fast.id].wait(fill=50) == 0.0

    active_task(fast, status=Task.Status.RUNNING)  # counts half its predicted duration
    active_task(fast, predicted=None)  # never predicted: filled in with `fill`

    state = read_pool_states([fast])[fast.id]
    assert (state.queued, state.running, state.unknown, state.capacity) == (4, 1, 1, 4)
    assert state.wait(fill=50) == pytest.approx((3 * 100 + 0.5 * 100 + 50) / 4)

    Agent.objects.filter(pool=fast).update(status=Agent.Status.OFFLINE)  # no live agents: one agent's worth
    assert read_pool_states([fast])[fast.id].wait(fill=50) == pytest.approx(400 / 2)


def test_pool_states_count_a_routed_task_until_the_next_read(ml_pools):
    now = [0.0]
    states = PoolStates(max_age=1.0, clock=lambda: now[0])
    fast = ml_pools["fast"]
    states.get([fast])

    for _ in range(4):
        states.note(fast.id, seconds=40.0)

    assert states.get([fast])[fast.id].wait(fill=0) == pytest.approx(160 / 4)
    now[0] = 1.5
    assert states.get([fast])[fast.id].wait(fill=0) == 0.0  # read again: nothing is in the database


def test_predict_pools_without_a_duration_model_raises_no_model(ml_pools):
    with pytest.raises(NoModel, match="no active duration model yet"):
        predict_pools(spec=SPEC, pools=list(ml_pools.values()))


def test_predict_pools_without_a_success_model_takes_success_from_profiles(ml_pools, world):
    build_history(world, n=800, pools=ml_pools, seed=1)
    build_profiles(ml_pools)
    ml_train(kinds=["duration"])

    fast, slow = predict_pools(spec=SPEC, pools=[ml_pools["fast"], ml_pools["slow"]])

    assert fast.success_source == "profile" and fast.model_version == "duration v1, success from profiles"
    assert slow.success < 0.45 < 0.6 < fast.success  # slow fails most builds
    assert fast.p50 < fast.p90 and fast.p50 < slow.p50
    assert fast.attempts == pytest.approx(1 / fast.success)
    assert fast.expected == pytest.approx(fast.wait + fast.p50 * fast.attempts)
    assert fast.history > 50


def test_task_etas_for_queued_and_running_tasks(ml_pools, world):
    build_history(world, n=800, pools=ml_pools, seed=1)
    ml_train(kinds=["duration"])
    fast = ml_pools["fast"]
    now = timezone.now()
    agent = Agent.objects.filter(pool=fast).first()
    running = active_task(fast, status=Task.Status.RUNNING, agent=agent, started_at=now - timedelta(seconds=5))
    queued = active_task(fast)
    done = active_task(fast, status=Task.Status.SUCCEEDED)

    etas = task_etas(Task.objects.select_related("pool", "agent").filter(pool=fast), now=now)

    assert set(etas) == {str(running.id), str(queued.id)} and str(done.id) not in etas
    p50, p90 = (
        predict_pools(spec=TaskSpec.of(queued), pools=[fast], models=active_models())[0].p50,
        predict_pools(spec=TaskSpec.of(queued), pools=[fast], models=active_models())[0].p90,
    )
    assert etas[str(queued.id)].wait == 0.0  # two tasks, four slots
    assert etas[str(queued.id)].seconds == pytest.approx(p50, rel=0.05)
    assert etas[str(queued.id)].p90_seconds == pytest.approx(p90, rel=0.05)
    assert etas[str(running.id)].seconds == pytest.approx(p50 - 5, rel=0.1)  # its agent is known now
    assert etas[str(running.id)].at == now + timedelta(seconds=etas[str(running.id)].seconds)
    assert etas[str(queued.id)].model_version == "duration v1"
