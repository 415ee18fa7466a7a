"""`predictive`: route to the pool with the lowest expected completion time, exploring by Thompson sampling.

For each eligible pool the models give the p50/p90 duration of one attempt (scaled by the pool's
recent actual/predicted ratio, see ml.predict) and the probability p that it succeeds; the pool's queue gives the expected wait. Expected completion time =
wait + duration × expected attempts (1/p, capped at 50), × the failure-pattern weight of that
pool and type (ml.patterns; 1 when none).

Uncertainty is a posterior per pool: success ~ Beta(p·(n+2), (1−p)·(n+2)) and log duration ~
Normal(log p50, √(σ²/(n+1) + 0.05²)) with σ from the p90/p50 spread widened by a prior, where n
is the attempts of this type the pool has finished (the 0.05 is the model's own error, which no
amount of history removes). Rarely tried pools are wide, so they win some
samples and get tried. With S joint samples (seeded RNG, injectable):

- the share of samples in which each pool is fastest is its `win_share`;
- the top pool's share is the model's confidence; below `intelligence_framework.
  confidence_threshold` the decision falls back to performance_weighted (least_loaded without
  history) and says so;
- otherwise the winner of one sample is chosen (Thompson sampling: mostly the top pool, sometimes
  exploring another) and the decision's confidence is the chosen pool's share: the checkable
  probability that it is the best one.

The pool figures (wait, history, corrections) come from `PoolStates` (ml.predict), which a thread of
the routing process keeps fresh, so a decision normally reads nothing from the database.

`intelligent_task_allocation.enabled` or `intelligence_framework.enabled` off, no active duration
model, an artifact refused, an error, or a prediction slower than
`intelligent_task_allocation.allocation_timeout`: fall back, with the reason recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from agents.models import AgentPool
from coordination.routing import Choice, PerformanceWeighted, TaskSpec, fallback
from ml.patterns import WEIGHTS_MAX_AGE, routing_weights
from ml.predict import SUCCESS_FLOOR, NoModel, PoolPrediction, PoolStates, predict_pools
from ml.registry import ACTIVE_CHECK_SECONDS, active_models

log = logging.getLogger(__name__)

SAMPLES = 256
PRIOR_SPREAD = 0.5  # log-duration spread of a pool the model knows nothing particular about
# The model's own error does not shrink with a pool's history: durations predicted within ~5% of
# each other are not told apart, however many attempts the pools have behind them.
MODEL_SPREAD = 0.05
Z90 = 1.2815515655446004  # the standard normal's 90th percentile


class Predictive:
    name = "predictive"

    def __init__(
        self,
        *,
        rng: Any = None,
        samples: int = SAMPLES,
        states: PoolStates | None = None,
        clock: Callable[[], float] = time.perf_counter,
        now: Callable[[], datetime] = timezone.now,
    ) -> None:
        self._rng = rng
        self.samples = samples
        self.states = states or PoolStates(also=self._keep_checks_fresh)
        self.clock = clock
        self.now = now  # the time the models see (hour of day and weekday are features)
        self._lock = threading.Lock()

    @staticmethod
    def _keep_checks_fresh() -> None:
        """Run by the pool figures' refresher: the active-models and routing-weights checks, a
        second before a decision would find them due and make them itself."""
        active_models(max_age=ACTIVE_CHECK_SECONDS - 1.0)
        routing_weights(max_age=WEIGHTS_MAX_AGE - 1.0)

    @property
    def rng(self) -> Any:
        if self._rng is None:
            import numpy as np

            self._rng = np.random.default_rng()
        return self._rng

    def choose(self, pools: Sequence[AgentPool], *, spec: TaskSpec) -> Choice:
        api = settings.HIVE_CONFIG.external_api
        allocation = api.intelligent_task_allocation
        started = self.clock()

        def fall(code: str, reason: str, **kwargs: Any) -> Choice:
            return fallback(pools, spec=spec, strategy=self.name, code=code, reason=reason, **kwargs)

        if not allocation.enabled:
            return fall("disabled", "intelligent_task_allocation is disabled")
        if not api.intelligence_framework.enabled:
            return fall("disabled", "intelligence_framework is disabled")
        models = active_models()
        try:
            predictions = predict_pools(spec=spec, pools=pools, models=models, states=self.states, at=self.now())
        except NoModel as exc:
            return fall("model_refused" if "duration" in models.refused else "no_model", str(exc))
        except Exception as exc:  # a broken model must not stop tasks from being accepted
            log.exception("predictive routing failed; falling back")
            return fall("error", f"prediction failed ({type(exc).__name__}: {exc})")
        elapsed = self.clock() - started
        if elapsed > allocation.allocation_timeout:
            return fall(
                "timeout",
                f"prediction took {elapsed:.3f}s, above allocation_timeout {allocation.allocation_timeout:g}s",
            )
        weights = routing_weights()
        weight = [weights.get(f"{p.pool}|{spec.task_type}", 1.0) for p in predictions]
        shares, first = self._sample(predictions, weight)
        candidates: list[dict[str, Any]] = [
            {
                "pool": p.pool,
                "score": round(p.expected * w, 3),
                "p50": round(p.p50, 3),
                "p90": round(p.p90, 3),
                "p50_model": round(p.p50_model, 3),
                "correction": round(p.correction, 3),
                "success": round(p.success, 4),
                "attempts": round(p.attempts, 3),
                "wait": round(p.wait, 3),
                "history": p.history,
                "weight": round(w, 3),
                "win_share": round(s, 4),
            }
            for p, w, s in zip(predictions, weight, shares, strict=True)
        ]
        version = predictions[0].model_version
        top = max(range(len(pools)), key=lambda i: (shares[i], -candidates[i]["score"]))
        threshold = api.intelligence_framework.confidence_threshold
        if shares[top] < threshold:
            choice = fall(
                "low_confidence",
                f"confidence {shares[top]:.2f} in {pools[top].name} is below confidence_threshold {threshold:g}",
                candidates=candidates,
                model_version=version,
                using=PerformanceWeighted(records=self.states.records(pools)),
            )
            # what the model thinks of the pool the fallback chose: still a checkable probability
            choice.confidence = shares[next(i for i, p in enumerate(pools) if p.id == choice.pool.id)]
        else:
            pick = predictions[first]
            reason = (
                ""
                if first == top
                else (
                    f"exploring: {pick.pool} is fastest in {shares[first]:.0%} of posterior samples, "
                    f"{pools[top].name} in {shares[top]:.0%}"
                )
            )
            choice = Choice(
                pool=pools[first],
                strategy=self.name,
                candidates=candidates,
                confidence=shares[first],
                model_version=version,
                reason=reason,
            )
        chosen = next(p for p in predictions if p.pool_id == choice.pool.id)
        choice.predicted_seconds, choice.predicted_p90 = chosen.p50, chosen.p90
        choice.predicted_success = chosen.success
        self.states.note(choice.pool.id, seconds=chosen.p50)
        return choice

    def _sample(self, predictions: Sequence[PoolPrediction], weight: Sequence[float]) -> tuple[list[float], int]:
        """(share of samples each pool is fastest in, the pool fastest in the first sample)."""
        import numpy as np

        n = np.array([p.history for p in predictions], dtype=np.float64)
        p50 = np.maximum([p.p50 for p in predictions], 1e-3)
        p90 = np.maximum([p.p90 for p in predictions], p50)
        success = np.clip([p.success for p in predictions], 0.01, 0.99)
        wait = np.array([p.wait for p in predictions])
        sigma = np.log(p90 / p50) / Z90
        spread = np.sqrt((sigma**2 + PRIOR_SPREAD**2) / (n + 1.0) + MODEL_SPREAD**2)
        strength = n + 2.0
        with self._lock:  # numpy generators are not thread-safe; web processes route from threads
            z = self.rng.standard_normal((self.samples, len(predictions)))
            s = self.rng.beta(success * strength, (1 - success) * strength, size=(self.samples, len(predictions)))
        attempts = 1.0 / np.maximum(s, SUCCESS_FLOOR)
        completion = (wait + p50 * np.exp(spread * z) * attempts) * np.asarray(weight)
        winners = np.argmin(completion, axis=1)
        shares = np.bincount(winners, minlength=len(predictions)) / self.samples
        return [float(x) for x in shares], int(winners[0])
