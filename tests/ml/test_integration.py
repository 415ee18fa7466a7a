"""The hive learning through real workers: history from real attempts, a beat-triggered training,
predictive routing to the faster pool, ETAs against what then happened."""

from __future__ import annotations

import statistics
import sys
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from agents.models import AgentPool
from coordination import routing
from coordination.models import RoutingDecision, Task
from coordination.services import task_submit
from ml import registry
from ml.models import ModelVersion
from ml.predict import task_etas
from ml.strategy import Predictive
from tests.conftest import wait_for
from tests.ml.conftest import with_config

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# frontend and ios both offer `ui`. Their agent programs sleep `base × complexity` seconds: the
# prompt carries the complexity, the hive sees it only as the task's `complexity` field.
SECONDS_PER_COMPLEXITY = {"frontend": 0.1, "ios": 0.4}
HISTORY = 60


def agent_program(base: float) -> dict:
    code = f"import sys, time; time.sleep({base} * int(sys.argv[1])); print('done', sys.argv[1])"
    return {"kind": "command", "argv": [sys.executable, "-c", code, "{prompt}"], "timeout": 60, "output_format": "text"}


def set_programs() -> None:
    """After the workers synced their pools from the configuration: the programs of this test."""
    for name, base in SECONDS_PER_COMPLEXITY.items():
        AgentPool.objects.filter(name=name).update(runner=agent_program(base))


def submit(complexity: int) -> Task:
    return task_submit(capabilities=["ui"], prompt=str(complexity), complexity=complexity, task_type="build")


def finished(tasks: list[Task]) -> bool:
    return Task.objects.filter(id__in=[t.id for t in tasks], status=Task.Status.SUCCEEDED).count() == len(tasks)


def test_predictive_learns_from_real_attempts_and_routes_to_the_faster_pool(hive, settings, monkeypatch):
    hive.worker("frontend")
    hive.worker("ios")
    set_programs()

    # history: round robin gives both pools their share
    with_config(settings, multi_agent={"load_balancing_strategy": "round_robin"})
    history = [submit(1 + i % 5) for i in range(HISTORY)]
    wait_for(lambda: finished(history), timeout=240, what="the history tasks")

    # beat trains the first models on hive.control (no model, enough attempts: due). The adaptation
    # threshold is 100%. A retraining on the same 60 noisy attempts compares its candidate (fit on
    # the 48 oldest) with v1's artifact (refit on all 60) on the 12 newest, and on so few rows that
    # can go either way by a lot (82% once, at 50% this test failed); only a perfect score could
    # beat v1 by 100%. The threshold's arithmetic itself: tests/ml/test_registry.py.
    hive.control(LEANVIBE_EXTERNAL_API_ML_ENHANCEMENTS_ADAPTIVE_LEARNING_ADAPTATION_THRESHOLD="1")
    v1 = wait_for(lambda: ModelVersion.objects.filter(kind="duration").first(), timeout=90, what="a duration model")
    assert v1.version == 1 and v1.active and v1.samples == HISTORY, (v1.promotion, v1.metrics, v1.baseline_metrics)
    assert v1.metrics["mae_p50"] < v1.baseline_metrics["mae_p50"]  # complexity: the per-pool median cannot see it
    assert v1.promotion.startswith("beats the baseline")

    # a retraining on the same history is not better by the adaptation threshold: kept, not activated
    ModelVersion.objects.filter(kind="duration").update(trained_at=timezone.now() - timedelta(hours=2))
    v2 = wait_for(
        lambda: ModelVersion.objects.filter(kind="duration", version=2).first(),
        timeout=90,
        what="the hourly retraining",
    )
    v1.refresh_from_db()
    assert v1.active and not v2.active, [(v.version, v.active, v.promotion) for v in ModelVersion.objects.all()]
    assert "does not beat duration v1" in v2.promotion and "the 100% the adaptation threshold asks" in v2.promotion

    # predictive: one task at a time (no queue), so only the pools' speed decides
    with_config(settings, multi_agent={"load_balancing_strategy": "predictive"})
    monkeypatch.setitem(routing.STRATEGIES, "predictive", Predictive(rng=np.random.default_rng(0)))
    registry.forget()
    tasks, etas = [], {}
    for i in range(12):
        task = submit(1 + i % 5)
        etas[task.id] = task_etas([Task.objects.select_related("pool", "agent").get(id=task.id)])[str(task.id)]
        wait_for(lambda t=task: finished([t]), timeout=60, what="a predictive task")
        tasks.append(task)

    decisions = list(RoutingDecision.objects.filter(task__in=tasks).select_related("chosen_pool"))
    chosen = [d.chosen_pool.name for d in decisions]
    assert chosen.count("frontend") >= 10, chosen
    assert all(d.strategy == "predictive" and d.model_version.startswith("duration v1") for d in decisions)
    assert all(d.closed_at is not None and d.success for d in decisions)

    # ETAs at submit, against the attempts that followed: within the model's stated error
    errors = []
    for task in tasks:
        task.refresh_from_db()
        actual = task.attempt_set.get().duration
        errors.append(abs(actual - etas[task.id].seconds))
        assert etas[task.id].seconds <= etas[task.id].p90_seconds
    assert statistics.mean(errors) <= max(3 * v1.metrics["mae_p50"], 0.3), (errors, v1.metrics)
