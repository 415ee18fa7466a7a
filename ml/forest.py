"""Fitted models as plain arrays, evaluated with numpy alone.

scikit-learn's `predict` costs about a millisecond per call for a boosted model of a hundred trees
(one Python-level call per tree), which would spend the whole routing budget on three models.
So the fitted estimators are compiled once, at training, into arrays: every tree of every model
side by side, walked level by level for all rows at once. The same arrays are what the artifact
stores, so loading a model needs numpy but not scikit-learn. `tests/ml/test_training.py` checks
that these evaluators give scikit-learn's own predictions.

Semantics follow scikit-learn's `_predict_one_from_raw_data`: NaN goes the node's missing-value
way; a categorical value goes left when in the split's left set, right when it is another
category known at fit, and the missing-value way when negative or unknown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# Which child a row takes at a node: column of the node's `children` row.
RIGHT, LEFT, MISSING = 0, 1, 2
OUT_OF_RANGE = 256  # a category code column that always means "missing" (negative, too big, NaN)


def compile_hgb(estimator: Any) -> dict[str, Any]:
    """Arrays of a fitted HistGradientBoosting{Regressor,Classifier} with one tree per iteration.

    `children[node]` holds the (right, left, missing-way) child; a leaf is its own child, so a
    walk of `depth` levels leaves every row on its leaf. A categorical node points at a row of
    `tables`, which gives the way to go for each category code (row 0 serves numeric nodes).
    """
    import numpy as np

    if estimator.n_trees_per_iteration_ != 1:
        raise ValueError("only single-output boosting (regression, binary classification) can be compiled")
    known_bitsets, f_idx_map = estimator._bin_mapper.make_known_categories_bitsets()
    feature, threshold, children, value, cat_row, roots = [], [], [], [], [], []
    tables = [np.full(OUT_OF_RANGE + 1, MISSING, dtype=np.int64)]
    depth = 0
    offset = 0
    for (predictor,) in estimator._predictors:
        nodes = predictor.nodes
        roots.append(offset)
        depth = max(depth, int(nodes["depth"].max()))
        leaf = nodes["is_leaf"].astype(bool)
        idx = np.arange(len(nodes))
        left = np.where(leaf, idx, nodes["left"].astype(np.int64)) + offset
        right = np.where(leaf, idx, nodes["right"].astype(np.int64)) + offset
        missing = np.where(nodes["missing_go_to_left"].astype(bool), left, right)
        children.append(np.column_stack([right, left, missing]))
        feature.append(np.where(leaf, 0, nodes["feature_idx"]).astype(np.int64))
        threshold.append(nodes["num_threshold"].astype(np.float64))
        value.append(nodes["value"].astype(np.float64))
        rows = np.zeros(len(nodes), dtype=np.int64)
        for i in np.flatnonzero(nodes["is_categorical"].astype(bool) & ~leaf):
            table = np.full(OUT_OF_RANGE + 1, MISSING, dtype=np.int64)
            table[_bits(known_bitsets[f_idx_map[nodes["feature_idx"][i]]])] = RIGHT
            table[_bits(predictor.raw_left_cat_bitsets[nodes["bitset_idx"][i]])] = LEFT
            rows[i] = len(tables)
            tables.append(table)
        cat_row.append(rows)
        offset += len(nodes)
    return {
        "kind": "hgb",
        "feature": np.concatenate(feature),
        "threshold": np.concatenate(threshold),
        "children": np.concatenate(children),
        "value": np.concatenate(value),
        "cat_row": np.concatenate(cat_row),
        "tables": np.stack(tables),
        "roots": np.asarray(roots, dtype=np.int64),
        "depth": depth,
        "baseline": float(np.ravel(estimator._baseline_prediction)[0]),
    }


def _bits(bitset: np.ndarray) -> np.ndarray:
    import numpy as np

    words = np.asarray(bitset, dtype=np.uint32)
    return np.flatnonzero([(int(words[v >> 5]) >> (v & 31)) & 1 for v in range(256)])


def joint(models: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several compiled forests over the same columns as one, evaluated in a single walk."""
    import numpy as np

    nodes = np.cumsum([0] + [len(m["feature"]) for m in models])
    tables = np.cumsum([0] + [len(m["tables"]) - 1 for m in models])
    cat_rows = []
    for m, t in zip(models, tables[:-1], strict=True):
        rows = m["cat_row"]
        cat_rows.append(np.where(rows > 0, rows + t, 0))
    return {
        "kind": "joint",
        "feature": np.concatenate([m["feature"] for m in models]),
        "threshold": np.concatenate([m["threshold"] for m in models]),
        "children": np.concatenate([m["children"] + n for m, n in zip(models, nodes[:-1], strict=True)]),
        "value": np.concatenate([m["value"] for m in models]),
        "cat_row": np.concatenate(cat_rows),
        "tables": np.concatenate([models[0]["tables"][:1], *(m["tables"][1:] for m in models)]),
        "roots": np.concatenate([m["roots"] + n for m, n in zip(models, nodes[:-1], strict=True)]),
        "depth": max(m["depth"] for m in models),
        "baselines": [m["baseline"] for m in models],
        "sizes": [len(m["roots"]) for m in models],
    }


def raw_hgb(model: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    """Raw score per row: baseline plus the leaf value of every tree (scikit-learn's `_raw_predict`)."""
    return raw_joint(model, X)[0]


def raw_joint(model: Mapping[str, Any], X: np.ndarray) -> list[np.ndarray]:
    """Raw scores of each forest of a `joint` model (or of one compiled forest, as a list of one).

    Every tree of every forest is walked at once, one level per step, in seven numpy calls a level
    (this is on the submit path: a numpy call costs a microsecond or so whatever its size here, so
    their count is the cost). One comparison per node is enough (`_Walk`): a categorical node reads
    a column of its own, made per call, holding 0 where the row goes left and 1 where it goes right
    (its missing-value way resolved at build), against 0.5; a numeric node whose missing values go
    left reads a copy of X with NaN as -inf (NaN compares false: right; -inf compares true: left).
    """
    import numpy as np

    walk = _walk_of(model)
    n = X.shape[0]
    if n == 0 or walk.trees == 0:
        return [np.full(n, b) for b in walk.baselines]
    if n > WALK_ROWS:  # the categorical columns are (categorical nodes × rows): keep them small
        chunks = [raw_joint(model, X[i : i + WALK_ROWS]) for i in range(0, n, WALK_ROWS)]
        return [np.concatenate(scores) for scores in zip(*chunks, strict=True)]
    columns = np.ascontiguousarray(X.T, dtype=np.float64)
    parts = []
    if walk.categorical:
        # codes outside 0..255 (and NaN, whose comparisons are false) take the always-missing column
        codes = np.where((columns >= 0) & (columns < OUT_OF_RANGE), columns, OUT_OF_RANGE).astype(np.int64)
        parts.append(walk.cat_value[walk.cat_base[:, None] + codes[walk.cat_feature]].ravel())
    parts += [columns.ravel(), np.where(np.isnan(columns), -np.inf, columns).ravel()]
    values = np.concatenate(parts)
    offset = walk.offsets(width=columns.shape[0], n=n)
    cols = np.arange(n)
    node = walk.roots[:, None] + np.zeros(n, dtype=np.int64)
    child, threshold = walk.child, walk.threshold
    for _ in range(walk.depth):
        node = child[node + (values[offset[node] + cols] <= threshold[node])]
    leaves = walk.value[node]
    out, start = [], 0
    for baseline, size in zip(walk.baselines, walk.sizes, strict=True):
        out.append(baseline + leaves[start : start + size].sum(axis=0))
        start += size
    return out


WALK_ROWS = 256  # rows walked together (training's evaluations predict many)


class _Walk:
    """A compiled forest (or `joint`) rearranged for `raw_joint`, built once per model.

    Node i is held twice, at 2i (its right child) and 2i + 1 (its left child), so a row's next
    node is `child[node + went_left]`; `threshold`, `value` and `offsets` are indexed by that
    doubled number. The values a walk reads are, one after the other: a column per categorical
    node, X's columns, and X's columns with NaN as -inf.
    """

    def __init__(self, model: Mapping[str, Any]) -> None:
        import numpy as np

        feature, children, cat_row = model["feature"], model["children"], model["cat_row"]
        self.baselines = list(model["baselines"]) if "baselines" in model else [model["baseline"]]
        self.sizes = list(model["sizes"]) if "sizes" in model else [len(model["roots"])]
        self.trees = len(model["roots"])
        self.depth = int(model["depth"])
        missing_left = children[:, MISSING] == children[:, LEFT]
        cat_nodes = np.flatnonzero(cat_row > 0)
        self.categorical = len(cat_nodes)
        self.cat_feature = feature[cat_nodes]
        # per categorical node, per code: 0.0 (left) or 1.0 (right), the missing way resolved
        tables = model["tables"][cat_row[cat_nodes]]
        missing_way = np.where(missing_left[cat_nodes], LEFT, RIGHT)[:, None]
        way = np.where(tables == MISSING, missing_way, tables)
        self.cat_value = np.where(way == LEFT, 0.0, 1.0).ravel()
        self.cat_base = np.arange(self.categorical) * tables.shape[1] if self.categorical else np.zeros(0, np.int64)
        threshold = model["threshold"].astype(np.float64)
        threshold[cat_nodes] = 0.5
        self._feature, self._missing_left, self._cat_nodes = feature, missing_left, cat_nodes
        self.child = (2 * children[:, [RIGHT, LEFT]]).ravel()
        self.threshold = np.repeat(threshold, 2)
        self.value = np.repeat(model["value"].astype(np.float64), 2)
        self.roots = 2 * np.asarray(model["roots"], dtype=np.int64)
        self._offsets: dict[tuple[int, int], np.ndarray] = {}

    def offsets(self, *, width: int, n: int) -> np.ndarray:
        """Per doubled node, where the values it reads start (X of `width` columns and `n` rows)."""
        import numpy as np

        key = (width, n)
        if key not in self._offsets:
            if len(self._offsets) > 16:
                self._offsets.clear()
            column = self.categorical + self._feature + np.where(self._missing_left, width, 0)
            column[self._cat_nodes] = np.arange(self.categorical)
            self._offsets[key] = np.repeat(column * n, 2)
        return self._offsets[key]


_walks: dict[int, tuple[Mapping[str, Any], _Walk]] = {}  # id(model) -> (the model, kept so its id stays its own)
MAX_WALKS = 64


def _walk_of(model: Mapping[str, Any]) -> _Walk:
    found = _walks.get(id(model))
    if found is not None and found[0] is model:
        return found[1]
    if len(_walks) >= MAX_WALKS:
        _walks.clear()
    walk = _Walk(model)
    _walks[id(model)] = (model, walk)
    return walk


def compile_sigmoid(calibrator: Any) -> dict[str, Any]:
    """Platt scaling as scikit-learn fits it: p = 1 / (1 + exp(a·f + b))."""
    return {"kind": "sigmoid", "a": float(calibrator.a_), "b": float(calibrator.b_)}


def compile_logistic(estimator: Any, *, layout: Mapping[str, Any]) -> dict[str, Any]:
    """A fitted LogisticRegression over `linear_design(…, layout=layout)` columns."""
    import numpy as np

    return {
        "kind": "logistic",
        "coef": np.asarray(estimator.coef_, dtype=np.float64).ravel(),
        "intercept": float(np.ravel(estimator.intercept_)[0]),
        "layout": dict(layout),
    }


def expit(z: np.ndarray) -> np.ndarray:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


def logit(p: float) -> float:
    """The log-odds of `p`, clipped to [1e-6, 1 - 1e-6]."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def linear_design(X: np.ndarray, *, categorical: list[bool], layout: Mapping[str, Any]) -> np.ndarray:
    """One-hot categorical codes plus standardised numbers (NaN -> the mean, with a missing flag),
    then each cross of the layout: a categorical column's one-hot block times a standardised number
    (a slope of that number per category).

    `layout` (from `fit_linear_layout`) fixes the columns, so training and prediction agree.
    """
    import numpy as np

    n = X.shape[0]
    parts, blocks = [], {}
    for j, size in layout["onehot"]:
        codes = X[:, j]
        block = np.zeros((n, size))
        ok = ~np.isnan(codes) & (codes < size)
        block[np.flatnonzero(ok), codes[ok].astype(np.int64)] = 1.0
        parts.append(block)
        blocks[j] = block
    numeric = layout.get("numeric")  # artifacts from before a choice of numbers use them all
    if numeric is None:
        numeric = [j for j, c in enumerate(categorical) if not c]
    values = X[:, numeric]
    missing = np.isnan(values)
    mean, scale = layout["mean"], layout["scale"]
    standard = np.where(missing, 0.0, (values - mean) / scale)
    parts.append(standard)
    parts.append(missing[:, layout["flags"]].astype(np.float64))
    for j, k in layout.get("crosses", ()):  # artifacts from before crosses have none
        parts.append(blocks[j] * standard[:, k][:, None])
    return np.hstack(parts)


def fit_linear_layout(
    X: np.ndarray,
    *,
    categorical: list[bool],
    crosses: Sequence[tuple[int, int]] = (),
    onehot: Sequence[int] | None = None,
    numeric: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The columns of `linear_design` for training rows `X`; `crosses` are (categorical column,
    numeric column) pairs of X whose product gets a column per category. `onehot` and `numeric`
    choose the categorical and numeric columns of X the design uses (all of them by default)."""
    import numpy as np

    chosen = [j for j, c in enumerate(categorical) if c] if onehot is None else list(onehot)
    widths = [(j, int(np.nanmax(X[:, j])) + 1 if np.any(~np.isnan(X[:, j])) else 0) for j in chosen]
    numeric = [j for j, c in enumerate(categorical) if not c] if numeric is None else list(numeric)
    values = X[:, numeric]
    with np.errstate(all="ignore"):
        mean = np.nan_to_num(np.nanmean(values, axis=0)) if len(values) else np.zeros(len(numeric))
        scale = np.nan_to_num(np.nanstd(values, axis=0)) if len(values) else np.ones(len(numeric))
    scale = np.where(scale > 0, scale, 1.0)
    flags = [i for i in range(len(numeric)) if np.isnan(values[:, i]).any()]
    return {
        "onehot": widths,
        "numeric": numeric,
        "mean": mean,
        "scale": scale,
        "flags": flags,
        "crosses": [(j, numeric.index(k)) for j, k in crosses],
    }


def predict_success(model: Mapping[str, Any], X: np.ndarray, *, categorical: list[bool]) -> np.ndarray:
    """Probability of success per row from a compiled success model (boosting + Platt, or logistic)."""
    if model["kind"] == "logistic":
        design = linear_design(X, categorical=categorical, layout=model["layout"])
        return expit(design @ model["coef"] + model["intercept"])
    return boosted_probability(model, raw_hgb(model["trees"], X))


def boosted_probability(model: Mapping[str, Any], raw: np.ndarray) -> np.ndarray:
    """A boosted success model's probability from its trees' raw score (Platt-scaled when calibrated)."""
    calibration = model.get("calibration")
    if calibration is None:
        return expit(raw)
    return expit(-(calibration["a"] * raw + calibration["b"]))


def apply_duration(
    artifact: dict[str, Any], rows: Mapping[str, Any], *, X: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(p50, p90) seconds of one attempt for each row, from a duration artifact. `X`: the rows as
    this artifact's spec encodes them, when the caller has them already."""
    import numpy as np

    if X is None:
        X = artifact_spec(artifact).encode(rows)
    if "_joint" not in artifact:  # both quantiles in one walk; built once per loaded artifact
        artifact["_joint"] = joint([artifact["p50"], artifact["p90"]])
    raw50, raw90 = raw_joint(artifact["_joint"], X)
    p50 = np.maximum(np.expm1(raw50), 0.0)
    p90 = np.maximum(np.expm1(raw90), p50)  # quantiles fitted apart may cross
    return p50, p90


def apply_duration_success(
    duration: dict[str, Any], success: dict[str, Any], X: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """apply_duration and apply_success on rows `X` that both artifacts encode alike (`same_encoding`):
    a boosted success model's trees join the duration quantiles' walk (one walk instead of two on
    the submit path); a logistic one is applied apart."""
    import numpy as np

    model = success["model"]
    if model["kind"] != "hgb":
        p50, p90 = apply_duration(duration, {}, X=X)
        return p50, p90, apply_success(success, {}, X=X)
    held = duration.get("_joint_success")
    if held is None or held[0] is not success:  # built once per pair of loaded artifacts
        held = duration["_joint_success"] = (success, joint([duration["p50"], duration["p90"], model["trees"]]))
    raw50, raw90, raw_success = raw_joint(held[1], X)
    p50 = np.maximum(np.expm1(raw50), 0.0)
    p90 = np.maximum(np.expm1(raw90), p50)
    return p50, p90, boosted_probability(model, raw_success)


def apply_success(artifact: Mapping[str, Any], rows: Mapping[str, Any], *, X: np.ndarray | None = None) -> np.ndarray:
    """Probability that one attempt succeeds, for each row, from a success artifact (`X` as for
    apply_duration)."""
    spec = artifact_spec(artifact)
    return predict_success(artifact["model"], spec.encode(rows) if X is None else X, categorical=spec.categorical)


def same_encoding(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Whether two artifacts encode rows alike (same vocabularies and capabilities), so one
    encoding serves both. Compared once per pair of loaded artifacts: the answer is kept on `second`."""
    if first.get("spec") is None or second.get("spec") is None:
        return False
    known = second.setdefault("_same_encoding", {})
    key = id(first["spec"])
    if key not in known:
        known[key] = (first["spec"], first["spec"] == second["spec"])  # the spec kept: its id stays its own
    return bool(known[key][1])


def artifact_spec(artifact: Mapping[str, Any]) -> Any:
    """The artifact's FeatureSpec (the registry keeps a built one under `_spec` once loaded)."""
    from ml.features import FeatureSpec

    return artifact.get("_spec") or FeatureSpec.from_dict(artifact["spec"])
