"""Training services: the lock, retraining when due (frequency, drift), metrics, and what workers import."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from prometheus_client import REGISTRY

from coordination.decisions import decision_close
from coordination.models import RoutingDecision, Task, TaskAttempt
from coordination.services import task_submit
from ml.metrics import model_metrics
from ml.models import ModelVersion
from ml.services import LOCK_KEY, ml_retrain_if_due, ml_train
from tests.conftest import ROOT, child_env
from tests.ml.conftest import with_config
from tests.ml.synthetic import CAPABILITY, World, build_history

pytestmark = pytest.mark.django_db


def test_ml_train_while_another_training_holds_the_lock_trains_nothing(ml_pools, world):
    build_history(world, n=300, pools=ml_pools)
    cache.set(LOCK_KEY, "someone else", timeout=60)

    report = ml_train(kinds=["duration", "success"])

    assert [(k.kind, k.status) for k in report.kinds] == [("duration", "locked"), ("success", "locked")]
    assert not ModelVersion.objects.exists()
    assert cache.get(LOCK_KEY) == "someone else"


def test_ml_train_releases_the_lock_and_rejects_unknown_kinds(ml_pools, world):
    with pytest.raises(ValueError, match="kinds: weather is not one of duration, success, forecast"):
        ml_train(kinds=["weather"])

    ml_train(kinds=["duration"])

    assert cache.get(LOCK_KEY) is None


def test_ml_train_without_enough_history_says_so_for_each_kind(ml_pools, world):
    build_history(world, n=20, pools=ml_pools)

    report = ml_train()

    assert [(k.kind, k.status) for k in report.kinds] == [
        ("duration", "skipped"),
        ("success", "skipped"),
        ("forecast", "skipped"),
    ]
    assert report.of("duration").reason == "20 finished attempts, fewer than 50: no duration model yet"


def test_ml_retrain_if_due_trains_first_models_once_there_is_enough_history(ml_pools, world, settings):
    with_config(settings, predictive_analytics={"enabled": False})
    build_history(world, n=40, pools=ml_pools, seed=1)
    assert ml_retrain_if_due().kinds == []

    build_history(world, n=760, pools=ml_pools, seed=2)
    report = ml_retrain_if_due()

    assert set(report.due) == {"duration", "success"}
    assert report.due["duration"] == "no duration model yet and 800 finished attempts"
    assert report.of("duration").status == "activated"
    assert ml_retrain_if_due().kinds == []  # trained within the hour, no drift: nothing due


def test_ml_retrain_if_due_trains_again_after_the_update_frequency(ml_pools, world, settings):
    build_history(world, n=400, pools=ml_pools, seed=2)
    first = ml_retrain_if_due()
    trained_at = ModelVersion.objects.get(kind="duration").trained_at

    with_config(settings, predictive_analytics={"enabled": False})
    report = ml_retrain_if_due(now=trained_at + timedelta(minutes=61))

    assert first.of("duration").version == 1
    assert report.due["duration"].endswith("update frequency passed")
    assert report.of("duration").version == 2


def test_drift_on_newer_history_retrains_early_and_the_new_model_takes_over(ml_pools, world, settings):
    with_config(settings, predictive_analytics={"enabled": False})
    build_history(world, n=600, pools=ml_pools, seed=2)
    ml_train(kinds=["duration"])
    v1 = ModelVersion.objects.get(kind="duration")
    changed = World(speed={"fast": 4.0, "slow": 0.3}, types=world.types)
    build_history(changed, n=300, pools=ml_pools, seed=3)  # after v1's history: the fast pool got slow

    report = ml_retrain_if_due(now=v1.trained_at + timedelta(minutes=3))

    v1.refresh_from_db()
    assert v1.drift["rows"] == 300 and v1.drift["ratio"] > 1.0 and v1.drift["metric"] == "mae_p50"
    assert report.due["duration"].startswith("drift: error ")
    assert report.of("duration").status == "activated" and not v1.active


@pytest.mark.parametrize(
    "switch",
    [{"adaptive_learning": {"enabled": False}}, {"intelligence_framework": {"adaptive_learning_enabled": False}}],
)
def test_adaptive_learning_disabled_keeps_beat_from_training(ml_pools, world, settings, switch):
    with_config(settings, predictive_analytics={"enabled": False}, **switch)
    build_history(world, n=400, pools=ml_pools, seed=2)

    assert ml_retrain_if_due().kinds == []


def test_forecast_is_retrained_at_its_own_update_frequency(ml_pools, settings):
    with_config(
        settings, adaptive_learning={"enabled": False}, predictive_analytics={"model_update_frequency": "daily"}
    )
    now = timezone.now()
    ModelVersion.objects.create(
        kind="forecast",
        version=1,
        trained_at=now - timedelta(hours=2),
        samples=0,
        artifact="forecast-v1.joblib",
        sha256="0" * 64,
    )
    assert ml_retrain_if_due(now=now).due == {}

    with_config(settings, predictive_analytics={"model_update_frequency": "hourly"})
    report = ml_retrain_if_due(now=now)

    assert list(report.due) == ["forecast"] and report.due["forecast"].startswith("last trained ")
    assert [k.kind for k in report.kinds] == ["forecast"]


def test_training_reads_the_newest_learning_window_size_attempts(ml_pools, world, settings):
    build_history(world, n=300, pools=ml_pools, seed=2)
    with_config(settings, pattern_optimizer={"learning_window_size": 120})

    report = ml_train(kinds=["duration"])

    row = ModelVersion.objects.get(kind="duration")
    assert row.samples == 120 and report.of("duration").version == 1
    assert row.trained_until == TaskAttempt.objects.order_by("-started_at").values_list("started_at", flat=True)[0]


def test_model_error_gauge_shows_the_active_duration_models_error(ml_pools, world):
    build_history(world, n=800, pools=ml_pools, seed=2)
    ml_train(kinds=["duration"])
    row = ModelVersion.objects.get(kind="duration", active=True)

    (family,) = model_metrics()

    assert family.name == "hive_model_error_seconds"
    assert [(s.labels, s.value) for s in family.samples] == [({"kind": "duration"}, row.metrics["mae_p50"])]


def test_metrics_endpoint_exposes_model_error_decisions_and_prediction_error(ml_pools, world, client):
    build_history(world, n=800, pools=ml_pools, seed=2)
    ml_train(kinds=["duration"])
    task_submit(capabilities=[CAPABILITY], prompt="p")

    text = client.get("/metrics").content.decode()

    mae = ModelVersion.objects.get(kind="duration", active=True).metrics["mae_p50"]
    assert f'hive_model_error_seconds{{kind="duration"}} {mae}' in text
    assert 'hive_decisions_total{fallback="none",strategy="least_loaded"}' in text
    assert "# TYPE hive_prediction_error_seconds histogram" in text


def test_closing_a_decision_observes_the_prediction_error(ml_pools):
    task = Task.objects.create(pool=ml_pools["fast"], status=Task.Status.SUCCEEDED, timeout=60, attempts=1)
    RoutingDecision.objects.create(
        task=task,
        strategy="predictive",
        chosen_pool=ml_pools["fast"],
        predicted_seconds=10.0,
        decided_at=task.created_at,
    )
    attempt = task.attempt_set.create(
        number=1,
        started_at=task.created_at,
        heartbeat_at=task.created_at,
        finished_at=task.created_at + timedelta(seconds=14),
        outcome="succeeded",
    )
    before = REGISTRY.get_sample_value("hive_prediction_error_seconds_bucket", {"le": "5.0"}) or 0
    below = REGISTRY.get_sample_value("hive_prediction_error_seconds_bucket", {"le": "2.5"}) or 0

    assert decision_close(task=task, attempt=attempt) is True
    assert decision_close(task=task, attempt=attempt) is False  # closed once

    assert REGISTRY.get_sample_value("hive_prediction_error_seconds_bucket", {"le": "5.0"}) == before + 1
    assert (REGISTRY.get_sample_value("hive_prediction_error_seconds_bucket", {"le": "2.5"}) or 0) == below


def test_pool_worker_process_imports_neither_scikit_learn_nor_numpy():
    code = (
        "import django, sys; django.setup(); import workers.tasks, workers.signals, hive_project.celery; "
        "print(sorted(m for m in ('sklearn', 'numpy', 'scipy', 'joblib') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=child_env(DJANGO_SETTINGS_MODULE="hive_project.settings"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
