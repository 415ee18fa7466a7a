"""The submit path's tree walk (ml.forest.raw_joint) against scikit-learn's own predictions.

A decision predicts a handful of rows (one per eligible pool) with the duration quantiles and the
boosted success model walked together; these check that walk, at those sizes and at many rows,
on fitted models with categorical splits, missing values going either way, unknown categories and
negative codes.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

from ml.forest import (
    LEFT,
    MISSING,
    RIGHT,
    apply_duration,
    apply_duration_success,
    apply_success,
    compile_hgb,
    compile_logistic,
    compile_sigmoid,
    fit_linear_layout,
    linear_design,
)
from tests.ml.test_training import mixed_matrix, scored_rows


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(11)
    X, categorical = mixed_matrix(rng, 3000)
    seconds = np.exp(
        1 + 0.3 * X[:, 0] + np.where(np.isnan(X[:, 1]), 0.5, (X[:, 1] % 4) / 4) + 0.2 * np.nan_to_num(X[:, 3], nan=2.0)
    ) * rng.lognormal(0, 0.3, 3000)
    logit = (X[:, 0] - 2.5) + np.nan_to_num(X[:, 2]) - (np.nan_to_num(X[:, 1], nan=1.0) % 3)
    ok = (rng.random(3000) < 1 / (1 + np.exp(-logit))).astype(int)
    target = np.log1p(seconds)

    def quantile(q: float) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            loss="quantile", quantile=q, categorical_features=categorical, max_iter=60, random_state=0
        ).fit(X, target)

    booster = HistGradientBoostingClassifier(categorical_features=categorical, max_iter=40, random_state=0)
    classifier = CalibratedClassifierCV(booster, method="sigmoid", cv=3, ensemble=False).fit(X, ok)
    return {"X": X, "categorical": categorical, "p50": quantile(0.5), "p90": quantile(0.9), "success": classifier}


def artifacts(fitted) -> tuple[dict, dict]:
    calibrated = fitted["success"].calibrated_classifiers_[0]
    duration = {"p50": compile_hgb(fitted["p50"]), "p90": compile_hgb(fitted["p90"])}
    success = {
        "model": {
            "kind": "hgb",
            "trees": compile_hgb(calibrated.estimator),
            "calibration": compile_sigmoid(calibrated.calibrators[0]),
        }
    }
    return duration, success


def test_the_models_have_what_the_walk_must_get_right(fitted):
    """Categorical splits, and numeric splits whose missing values go left as well as right."""
    for name in ("p50", "p90"):
        compiled = compile_hgb(fitted[name])
        inner = compiled["children"][:, LEFT] != compiled["children"][:, RIGHT]
        left = compiled["children"][:, MISSING] == compiled["children"][:, LEFT]
        numeric = inner & (compiled["cat_row"] == 0)
        assert (compiled["cat_row"] > 0).any()
        assert (numeric & left).any() and (numeric & ~left).any()


@pytest.mark.parametrize("rows", [1, 3, 4, 300])
def test_one_walk_of_quantiles_and_success_gives_sklearns_predictions(fitted, rows):
    rng = np.random.default_rng(rows)
    Z = scored_rows(rng, fitted["X"])
    Z = Z[rng.permutation(len(Z))[:rows]] if rows < len(Z) else Z
    duration, success = artifacts(fitted)

    p50, p90, p_success = apply_duration_success(duration, success, Z)

    want50 = np.maximum(np.expm1(fitted["p50"].predict(Z)), 0.0)
    assert np.allclose(p50, want50, rtol=1e-12, atol=1e-9)
    assert np.allclose(p90, np.maximum(np.expm1(fitted["p90"].predict(Z)), want50), rtol=1e-12, atol=1e-9)
    assert np.allclose(p_success, fitted["success"].predict_proba(Z)[:, 1], atol=1e-12)
    alone50, alone90 = apply_duration(duration, {}, X=Z)
    assert np.array_equal(alone50, p50) and np.array_equal(alone90, p90)


def test_every_row_kind_one_at_a_time_matches_the_batch(fitted):
    """A row's prediction does not depend on the rows predicted beside it."""
    Z = scored_rows(np.random.default_rng(5), fitted["X"])[::7]
    duration, success = artifacts(fitted)

    batch = apply_duration_success(duration, success, Z)
    single = [apply_duration_success(duration, success, Z[i : i + 1]) for i in range(len(Z))]

    for k in range(3):
        assert np.allclose(batch[k], [s[k][0] for s in single], rtol=1e-12, atol=1e-12)


def test_a_logistic_success_model_is_applied_apart(fitted):
    X, categorical = fitted["X"], fitted["categorical"]
    layout = fit_linear_layout(X, categorical=categorical)
    ok = (X[:, 0] > 2).astype(int)
    model = LogisticRegression(max_iter=2000).fit(linear_design(X, categorical=categorical, layout=layout), ok)
    Z = scored_rows(np.random.default_rng(6), X)[:4]
    duration, _ = artifacts(fitted)
    # apply_success reads the categorical flags from the artifact's spec
    success = {"model": compile_logistic(model, layout=layout), "_spec": Spec(categorical)}

    _, _, p_success = apply_duration_success(duration, success, Z)

    want = model.predict_proba(linear_design(Z, categorical=categorical, layout=layout))[:, 1]
    assert np.allclose(p_success, want, atol=1e-12)
    assert np.array_equal(p_success, apply_success(success, {}, X=Z))


class Spec:
    def __init__(self, categorical: list[bool]) -> None:
        self.categorical = categorical
