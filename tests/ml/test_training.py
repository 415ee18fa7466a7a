"""Training: time-ordered split, baselines, metrics, and compiled models equal to scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

from ml.features import history
from ml.forest import (
    apply_success,
    compile_hgb,
    compile_logistic,
    compile_sigmoid,
    fit_linear_layout,
    linear_design,
    predict_success,
    raw_hgb,
)
from ml.training import _routing_rows, duration_metrics, success_metrics, train_duration, train_success
from tests.ml.synthetic import World, build_history

pytestmark = pytest.mark.django_db


def mixed_matrix(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[bool]]:
    """Two categorical columns (one with NaN) and three numeric ones (one with NaN)."""
    X = np.column_stack(
        [
            rng.integers(0, 6, n).astype(float),
            rng.integers(0, 40, n).astype(float),
            rng.normal(size=n),
            rng.normal(size=n),
            rng.integers(1, 11, n).astype(float),
        ]
    )
    X[rng.random(n) < 0.1, 1] = np.nan
    X[rng.random(n) < 0.1, 3] = np.nan
    return X, [True, True, False, False, False]


def scored_rows(rng: np.random.Generator, X: np.ndarray) -> np.ndarray:
    """Rows to predict: the training kind plus unknown categories, negatives and missing values."""
    Z = X[:300].copy()
    Z[:20, 0] = 7  # a category never seen at fit
    Z[20:40, 1] = -1  # out of range: treated as missing
    Z[40:60, 0] = np.nan
    Z[60:80, 2] = np.nan  # missing where fit saw none
    return Z


def test_compiled_boosting_regressor_gives_sklearn_predictions():
    rng = np.random.default_rng(7)
    X, categorical = mixed_matrix(rng, 3000)
    y = X[:, 0] * 3 + np.where(np.isnan(X[:, 1]), 2, X[:, 1] % 5) + np.nan_to_num(X[:, 3]) + rng.normal(size=3000)
    model = HistGradientBoostingRegressor(
        loss="quantile", quantile=0.9, categorical_features=categorical, max_iter=60, random_state=0
    ).fit(X, y)
    Z = scored_rows(rng, X)

    assert np.allclose(raw_hgb(compile_hgb(model), Z), model.predict(Z), atol=1e-9)


def test_compiled_calibrated_classifier_gives_sklearn_probabilities():
    rng = np.random.default_rng(8)
    X, categorical = mixed_matrix(rng, 3000)
    logit = (X[:, 0] - 2.5) + np.nan_to_num(X[:, 2]) - (np.nan_to_num(X[:, 1]) % 3)
    y = (rng.random(3000) < 1 / (1 + np.exp(-logit))).astype(int)
    booster = HistGradientBoostingClassifier(categorical_features=categorical, max_iter=40, random_state=0)
    model = CalibratedClassifierCV(booster, method="sigmoid", cv=3, ensemble=False).fit(X, y)
    fitted = model.calibrated_classifiers_[0]
    compiled = {
        "kind": "hgb",
        "trees": compile_hgb(fitted.estimator),
        "calibration": compile_sigmoid(fitted.calibrators[0]),
    }
    Z = scored_rows(rng, X)

    assert np.allclose(predict_success(compiled, Z, categorical=categorical), model.predict_proba(Z)[:, 1], atol=1e-9)


def test_compiled_logistic_gives_sklearn_probabilities():
    rng = np.random.default_rng(9)
    X, categorical = mixed_matrix(rng, 2000)
    y = (X[:, 0] > 2).astype(int) ^ (rng.random(2000) < 0.1)
    layout = fit_linear_layout(X, categorical=categorical)
    design = linear_design(X, categorical=categorical, layout=layout)
    model = LogisticRegression(max_iter=2000).fit(design, y)
    Z = scored_rows(rng, X)

    expected = model.predict_proba(linear_design(Z, categorical=categorical, layout=layout))[:, 1]
    got = predict_success(compile_logistic(model, layout=layout), Z, categorical=categorical)
    assert np.allclose(got, expected, atol=1e-12)


def test_metrics_known_values():
    m = duration_metrics([10, 20, 30], [12, 20, 25], [15, 25, 28])
    assert m["mae_p50"] == pytest.approx((2 + 0 + 5) / 3)
    assert m["pinball_p50"] == pytest.approx(m["mae_p50"] / 2)
    assert m["coverage_p90"] == pytest.approx(2 / 3)
    # y=30 above p90=28 costs 0.9·2; the others 0.1·(5 + 5)
    assert m["pinball_p90"] == pytest.approx((0.1 * 5 + 0.1 * 5 + 0.9 * 2) / 3)
    s = success_metrics([True, False], [0.8, 0.3])
    assert s["brier"] == pytest.approx((0.04 + 0.09) / 2)
    assert s["log_loss"] == pytest.approx(-(np.log(0.8) + np.log(0.7)) / 2)


def test_train_duration_fewer_than_fifty_attempts_gives_no_model(ml_pools, world):
    build_history(world, n=49, pools=ml_pools)

    result = train_duration(history())

    assert result == "49 finished attempts, fewer than 50: no duration model yet"


def test_train_success_when_everything_succeeded_gives_no_model(ml_pools):
    build_history(World(speed={"fast": 1, "slow": 2}, types={"build": 10}, reliability=1.0), n=80, pools=ml_pools)

    result = train_success(history())

    assert result == "all 64 older attempts succeeded: nothing to tell apart, no success model"


def test_train_duration_evaluates_on_the_newest_fifth_and_beats_the_group_median(ml_pools, world):
    build_history(world, n=3000, pools=ml_pools, seed=3)
    h = history()

    trained = train_duration(h)

    held = trained.held_out
    assert len(held) == 600 and held["started_at"][0] >= h["started_at"][2399]  # time-ordered: newest held out
    assert trained.samples == 3000 and trained.trained_until == h["started_at"][-1]
    # complexity scales duration, which a per-(pool, type) median cannot see
    assert trained.metrics["mae_p50"] < 0.85 * trained.baseline_metrics["mae_p50"]
    assert trained.metrics["pinball"] < trained.baseline_metrics["pinball"]
    assert 0.8 <= trained.metrics["coverage_p90"] <= 0.97
    assert "complexity" in trained.features and "pool_load" in trained.features


def test_train_success_probabilities_are_calibrated_and_at_least_the_base_rate(ml_pools, world):
    build_history(world, n=3000, pools=ml_pools, seed=5)

    trained = train_success(history())

    assert trained.algorithm in ("boosting+platt", "logistic")
    assert set(trained.metrics["candidates"]) == {"boosting+platt", "logistic"}
    assert trained.metrics["brier"] <= trained.baseline_metrics["brier"] * 1.05
    # calibrated: close to the probabilities the outcomes were drawn from, row by row and on average
    held = trained.held_out
    p = apply_success(trained.candidate, _routing_rows(held))
    truth = np.array(
        [
            world.success_probability(pool=pool, task_type=t, complexity=c)
            for pool, t, c in zip(held["pool"], held["task_type"], held["complexity"], strict=True)
        ]
    )
    assert float(np.mean(np.abs(p - truth))) < 0.08
    for rows in (truth < 0.5, truth >= 0.5):
        assert abs(p[rows].mean() - truth[rows].mean()) < 0.08
    # the injected cause (slow fails builds 70% of the time) is learned
    slow_builds = [i for i in range(len(held)) if held["pool"][i] == "slow" and held["task_type"][i] == "build"]
    assert 0.15 < float(np.mean(p[slow_builds])) < 0.45
