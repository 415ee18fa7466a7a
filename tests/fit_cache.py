"""Tests train on the same seeded histories again and again (800 rows of one world, seed 1, in
dozens of tests): each model fit is remembered for the session, keyed by everything it reads.

`ml.training._fit_duration` and `_fit_success` are pure functions of the rows' model inputs and
targets, the feature spec, the algorithm and the seed (scikit-learn's random_state is the seed,
threads are fixed), so a remembered artifact is the one the fit would return; each caller gets its
own copy. Training itself (splits, metrics, promotion, registry) still runs in every test.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import pickle
from collections.abc import Callable
from typing import Any

_artifacts: dict[str, dict[str, Any]] = {}


def _key(h: Any, spec: Any, *rest: Any) -> str:
    from ml.features import history_rows

    inputs = (history_rows(h), h["duration"], h["success"], spec.to_dict(), rest)
    return hashlib.sha256(pickle.dumps(inputs, protocol=5)).hexdigest()


def remembering(fit: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    @functools.wraps(fit)
    def remembered(h: Any, spec: Any, *rest: Any) -> dict[str, Any]:
        key = f"{fit.__name__}:{_key(h, spec, *rest)}"
        if key not in _artifacts:
            _artifacts[key] = fit(h, spec, *rest)
        return copy.deepcopy(_artifacts[key])

    return remembered
