"""The registry: versions, promotion rules, refused artifacts, and picking up a new version without a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import timezone

from ml import registry
from ml.models import ModelVersion
from ml.services import ml_train
from ml.training import Trained
from tests.ml.synthetic import World, build_history

pytestmark = pytest.mark.django_db


def versions(kind: str) -> list[tuple[int, bool]]:
    return list(ModelVersion.objects.filter(kind=kind).order_by("version").values_list("version", "active"))


def test_first_duration_model_that_beats_the_baseline_is_activated(ml_pools, world):
    build_history(world, n=800, pools=ml_pools, seed=1)

    report = ml_train(kinds=["duration"])

    row = ModelVersion.objects.get(kind="duration")
    assert report.of("duration").status == "activated" and row.active and row.activated_at
    assert row.metrics["mae_p50"] < row.baseline_metrics["mae_p50"]
    assert row.promotion.startswith("beats the baseline (mae_p50 ")
    assert row.samples == 800 and row.algorithm == "hist_gradient_boosting/quantile"
    assert Path(row.artifact).parent == registry.artifact_dir() and len(row.sha256) == 64
    assert "pool" in row.features and row.trained_until is not None


def trained(mae: float, baseline: float) -> Trained:
    return Trained(
        kind="duration",
        algorithm="test",
        artifact={"kind": "duration"},
        features=["pool"],
        metrics={"mae_p50": mae, "rows": 100},
        baseline_metrics={"mae_p50": baseline, "rows": 100},
        samples=500,
        trained_until=timezone.now(),
        seconds=0.1,
    )


def test_register_model_not_better_than_the_baseline_stays_inactive():
    done = registry.register(trained(5.0, 4.0), threshold=0.15, compare=None, primary="mae_p50")

    assert not done.activated and not done.version.active
    assert done.reason == "not better than the baseline (mae_p50 5 vs 4 on 100 held-out rows)"


@pytest.mark.parametrize(
    ("new", "old", "activated"),
    [(8.0, 10.0, True), (8.5, 10.0, True), (8.6, 10.0, False), (10.0, 10.0, False)],
)
def test_register_replaces_the_active_version_only_by_the_adaptation_threshold(new, old, activated):
    first = registry.register(trained(3.0, 9.0), threshold=0.15, compare=None, primary="mae_p50")
    assert first.activated and first.version.version == 1

    done = registry.register(
        trained(new, 99.0), threshold=0.15, primary="mae_p50", compare=lambda _t, _artifact, active: (new, old, 42)
    )

    assert done.activated is activated and done.version.version == 2
    assert versions("duration") == [(1, not activated), (2, activated)]
    assert f"on 42 held-out rows, {(old - new) / old:+.0%})" in done.reason


def test_retrained_model_not_better_by_the_adaptation_threshold_stays_inactive(ml_pools, world):
    build_history(world, n=800, pools=ml_pools, seed=1)
    ml_train(kinds=["duration"])

    build_history(world, n=200, pools=ml_pools, seed=5)  # more of the same world
    report = ml_train(kinds=["duration"])

    assert versions("duration") == [(1, True), (2, False)]
    assert report.of("duration").status == "kept"
    assert "does not beat duration v1" in report.of("duration").reason
    assert "15% the adaptation threshold asks" in report.of("duration").reason


def test_retrained_model_replaces_the_active_one_when_the_world_changed(ml_pools, world):
    build_history(world, n=800, pools=ml_pools, seed=1)
    ml_train(kinds=["duration"])

    changed = World(speed={"fast": 4.0, "slow": 0.3}, types=world.types)  # fast got slow, slow got fast
    build_history(changed, n=600, pools=ml_pools, seed=6)
    report = ml_train(kinds=["duration"])

    assert versions("duration") == [(1, False), (2, True)]
    assert "beats duration v1" in report.of("duration").reason


def test_artifact_that_does_not_match_its_checksum_is_refused(ml_pools, world):
    build_history(world, n=600, pools=ml_pools, seed=1)
    ml_train(kinds=["duration"])
    row = ModelVersion.objects.get(kind="duration")
    assert registry.active_models().models["duration"].id == row.id
    registry.forget()
    Path(row.artifact).write_bytes(Path(row.artifact).read_bytes() + b"tampered")

    active = registry.active_models()

    assert "duration" not in active.models
    assert active.refused["duration"] == f"duration v1: artifact {row.artifact} does not match its checksum (refused)"
    with pytest.raises(registry.ArtifactRefused):
        registry.load_artifact(row)


def test_missing_artifact_is_refused(ml_pools, world):
    build_history(world, n=600, pools=ml_pools, seed=1)
    ml_train(kinds=["duration"])
    row = ModelVersion.objects.get(kind="duration")
    Path(row.artifact).unlink()

    assert "cannot be read" in registry.active_models().refused["duration"]


def test_active_models_sees_a_new_version_once_the_check_interval_passed(ml_pools, world):
    now = [0.0]
    build_history(world, n=800, pools=ml_pools, seed=1)
    ml_train(kinds=["duration"])
    first = registry.active_models(clock=lambda: now[0]).models["duration"]
    changed = World(speed={"fast": 4.0, "slow": 0.3}, types=world.types)
    build_history(changed, n=600, pools=ml_pools, seed=6)
    ml_train(kinds=["duration"])

    now[0] = registry.ACTIVE_CHECK_SECONDS - 0.1
    assert registry.active_models(clock=lambda: now[0]).models["duration"].id == first.id  # cached
    now[0] = registry.ACTIVE_CHECK_SECONDS + 0.1
    assert registry.active_models(clock=lambda: now[0]).models["duration"].version == 2


def test_active_models_sees_a_version_retired_without_a_successor(ml_pools, world):
    now = [0.0]
    build_history(world, n=600, pools=ml_pools, seed=1)
    ml_train(kinds=["duration"])
    first = registry.active_models(clock=lambda: now[0])
    now[0] = registry.ACTIVE_CHECK_SECONDS + 0.1
    assert registry.active_models(clock=lambda: now[0]) is first  # nothing changed: the same models, not reloaded

    ModelVersion.objects.update(active=False)
    now[0] = 2 * registry.ACTIVE_CHECK_SECONDS + 0.2

    assert registry.active_models(clock=lambda: now[0]).models == {}


def test_only_one_version_per_kind_can_be_active(ml_pools, world):
    from django.db import IntegrityError, transaction

    build_history(world, n=600, pools=ml_pools, seed=1)
    ml_train(kinds=["duration"])
    row = ModelVersion.objects.get(kind="duration")

    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(
            kind="duration",
            version=2,
            trained_at=row.trained_at,
            samples=1,
            artifact=row.artifact,
            sha256=row.sha256,
            active=True,
        )
