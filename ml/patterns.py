"""Failure patterns in the history, what they suggest, and how much they shift routing.

A pattern is a (normalised error, pool, task type) that accounts for many of that pool's attempts
of that type: at least MIN_FAILURES failures, a share of at least 1 − pattern_detection_sensitivity
of the group's attempts (0.2 with the default 0.8), concentrated there (lift: its share in the
group over its share in all attempts, at least MIN_LIFT), and unlikely by chance (one-sided
binomial test against its overall share, Bonferroni-corrected over the groups tested).

The error is normalised so one cause is one pattern: exit code kept, the first line of the error
with ids, hex digests, paths, URLs and numbers masked.

Recommendations: route elsewhere (a pool-specific cause), fix the task (the type fails the same way
on every pool that ran it), raise the timeout (the type's p95 duration reaches sensitivity × its
timeout). `optimization_aggressiveness` turns reroute recommendations into routing weights for the
predictive strategy: expected completion on that pool for that type × (1 + aggressiveness × share);
0 reports only.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings

from agents.profiles import quantile
from ml.features import History, history

MIN_FAILURES = 5
MIN_LIFT = 1.5
ALPHA = 0.01
MIN_TIMEOUT_ATTEMPTS = 10
WEIGHTS_KEY = "hive:ml:routing-weights"  # JSON in Redis
# Weights change when training publishes them (beat, hourly at most, or `hive ml train`): a process
# sees new ones within half a minute, and reads Redis on the submit path once in that time, not once
# every few seconds (a round trip to a busy Redis is most of a decision's wall time).
WEIGHTS_MAX_AGE = 30.0

_MASKS = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I), "<url>"),
    (re.compile(r"(?<![\w.])(?:~|\.{1,2})?(?:/[\w.@+-]+){2,}/?"), "<path>"),
    (re.compile(r"\b[A-Za-z]:\\[^\s:]+"), "<path>"),
    (re.compile(r"\b(?:0x)?(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}\b", re.I), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
]


def normalise_error(*, error: str, exit_code: int | None, outcome: str) -> str:
    """One line naming the cause: `exit 127: xcodebuild: not found`, numbers/ids/paths masked."""
    line = next((ln.strip() for ln in (error or "").splitlines() if ln.strip()), "") or outcome
    for pattern, mask in _MASKS:
        line = pattern.sub(mask, line)
    line = re.sub(r"\s+", " ", line)[:160]
    return f"exit {exit_code}: {line}" if exit_code is not None else line


@dataclass(frozen=True)
class Pattern:
    signature: str
    pool: str
    task_type: str
    failures: int
    attempts: int
    rate: float  # failures / attempts of the (pool, type)
    support: float  # failures / all attempts read
    lift: float
    p_value: float
    everywhere: bool  # the type fails this way on every pool that ran it
    example: str


@dataclass(frozen=True)
class Recommendation:
    kind: str  # reroute | fix_task | raise_timeout
    task_type: str
    pool: str | None
    text: str
    weight: float | None  # the routing weight applied, None when it only reports


@dataclass(frozen=True)
class Insights:
    patterns: list[Pattern]
    recommendations: list[Recommendation]
    attempts: int

    def weights(self) -> dict[str, float]:
        """ "pool|type" -> multiplier on the expected completion time (only those above 1)."""
        return {f"{r.pool}|{r.task_type}": r.weight for r in self.recommendations if r.weight and r.weight > 1}


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k, n + 1):
        term = math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
        total += term
        if i > n * p and term < total * 1e-12:  # past the mode the terms only shrink
            break
    return min(1.0, total)


def find_patterns(h: History, *, sensitivity: float) -> list[Pattern]:
    """Failure patterns in `h` (see the module docstring for the rules)."""
    n_all = len(h)
    if not n_all:
        return []
    attempts = Counter(zip(h["pool"], h["task_type"], strict=True))
    failures: dict[tuple[str, str, str], int] = Counter()
    overall: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for i, ok in enumerate(h["success"]):
        if ok:
            continue
        sig = normalise_error(error=h["error"][i], exit_code=h["exit_code"][i], outcome=h["outcome"][i])
        failures[(sig, h["pool"][i], h["task_type"][i])] += 1
        overall[sig] += 1
        examples.setdefault(sig, (h["error"][i] or h["outcome"][i]).strip().splitlines()[0][:300])
    min_rate = 1.0 - sensitivity
    alpha = ALPHA / max(1, len(failures))
    found = []
    for (sig, pool, ttype), k in failures.items():
        n = attempts[(pool, ttype)]
        rate, base = k / n, overall[sig] / n_all
        lift = rate / base
        if k < MIN_FAILURES or rate < min_rate or lift < MIN_LIFT:
            continue
        p_value = binomial_tail(k, n, base)
        if p_value >= alpha:
            continue
        found.append(
            Pattern(
                signature=sig,
                pool=pool,
                task_type=ttype,
                failures=k,
                attempts=n,
                rate=rate,
                support=k / n_all,
                lift=lift,
                p_value=p_value,
                everywhere=False,
                example=examples[sig],
            )
        )
    # A cause found on every pool that ran the type belongs to the task, not to a pool.
    pools_of_type: dict[str, set[str]] = defaultdict(set)
    for pool, ttype in attempts:
        pools_of_type[ttype].add(pool)
    hits: dict[tuple[str, str], set[str]] = defaultdict(set)
    for p in found:
        hits[(p.signature, p.task_type)].add(p.pool)
    out = []
    for p in found:
        everywhere = (
            len(pools_of_type[p.task_type]) > 1 and hits[(p.signature, p.task_type)] == pools_of_type[p.task_type]
        )
        out.append(Pattern(**{**asdict(p), "everywhere": everywhere}))
    return sorted(out, key=lambda p: (-p.failures, p.pool, p.task_type))


def timeout_risks(h: History, *, sensitivity: float) -> list[tuple[str, float, int, float]]:
    """(task type, p95 duration / timeout, attempts, timeout) where the ratio reaches `sensitivity`."""
    by_type: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for ttype, duration, timeout in zip(h["task_type"], h["duration"], h["timeout"], strict=True):
        if timeout:
            by_type[ttype].append((duration, timeout))
    risks = []
    for ttype, rows in sorted(by_type.items()):
        if len(rows) < MIN_TIMEOUT_ATTEMPTS:
            continue
        timeout = quantile([t for _, t in rows], 0.5) or 0.0
        p95 = quantile([d for d, _ in rows], 0.95) or 0.0
        if timeout > 0 and p95 / timeout >= sensitivity:
            risks.append((ttype, p95 / timeout, len(rows), timeout))
    return risks


def recommend(
    patterns: Sequence[Pattern], risks: Sequence[tuple[str, float, int, float]], *, aggressiveness: float
) -> list[Recommendation]:
    out = []
    weights: dict[tuple[str, str], float] = defaultdict(float)
    for p in patterns:
        if not p.everywhere:
            weights[(p.pool, p.task_type)] += p.rate
    for p in patterns:
        evidence = (
            f"pool {p.pool} fails task type {p.task_type} {p.rate:.0%} of {p.attempts} attempts with `{p.signature}`"
        )
        if p.everywhere:
            out.append(
                Recommendation(
                    kind="fix_task",
                    task_type=p.task_type,
                    pool=p.pool,
                    text=f"{evidence}, as every pool does: fix the task or its inputs",
                    weight=None,
                )
            )
            continue
        weight = 1.0 + aggressiveness * min(1.0, weights[(p.pool, p.task_type)]) if aggressiveness > 0 else None
        shift = f" (routing weight ×{weight:.2f})" if weight else " (report only: optimization_aggressiveness is 0)"
        out.append(
            Recommendation(
                kind="reroute",
                task_type=p.task_type,
                pool=p.pool,
                text=f"{evidence}: route elsewhere or fix the image{shift}",
                weight=weight,
            )
        )
    for ttype, ratio, n, timeout in risks:
        out.append(
            Recommendation(
                kind="raise_timeout",
                task_type=ttype,
                pool=None,
                weight=None,
                text=f"p95 duration of type {ttype} is {ratio:.1f} of its timeout ({timeout:g}s, "
                f"{n} attempts): raise the timeout",
            )
        )
    return out


def insights(*, window: int | None = None, rows: History | None = None) -> Insights:
    """Patterns and recommendations over the last `window` attempts (pattern_optimizer settings),
    or over `rows` when the caller has read them already."""
    config = settings.HIVE_CONFIG.external_api.ml_enhancements.pattern_optimizer
    h = rows if rows is not None else history(limit=window or config.learning_window_size)
    patterns = find_patterns(h, sensitivity=config.pattern_detection_sensitivity)
    risks = timeout_risks(h, sensitivity=config.pattern_detection_sensitivity)
    return Insights(
        patterns=patterns,
        recommendations=recommend(patterns, risks, aggressiveness=config.optimization_aggressiveness),
        attempts=len(h),
    )


def publish_weights(found: Insights) -> dict[str, float]:
    """Share the routing weights with every process (through Redis) and return them."""
    weights = found.weights()
    store_weights(weights)
    return weights


def store_weights(weights: dict[str, float]) -> None:
    redis_client().set(WEIGHTS_KEY, json.dumps(weights))


_client: Any = None
_client_lock = threading.Lock()


def redis_client() -> Any:
    """One Redis client per process for the weights, not Django's cache: the cache builds a client
    per call, whose setup (redis-py's response callbacks) cost more CPU than the read itself, and
    the read is on the submit path every WEIGHTS_MAX_AGE. redis-py's pool reconnects after a fork."""
    global _client
    with _client_lock:
        if _client is None:
            import redis

            _client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        return _client


_weights: dict[str, float] = {}
_weights_read = -float("inf")
_weights_lock = threading.Lock()


def routing_weights(
    *, max_age: float = WEIGHTS_MAX_AGE, clock: Callable[[], float] = time.monotonic
) -> dict[str, float]:
    """ "pool|type" -> weight, as last published, read from Redis at most every `max_age` seconds."""
    global _weights, _weights_read
    if clock() - _weights_read < max_age:
        return _weights
    with _weights_lock:
        try:
            raw = redis_client().get(WEIGHTS_KEY)
            _weights = json.loads(raw) if raw else {}
        except Exception:  # Redis away: route without the shift rather than not at all
            _weights = {}
        _weights_read = clock()
    return _weights
