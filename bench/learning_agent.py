"""The agent program of scenario 8 (bench/learning.py), and the table it follows, which the hive never sees.

    python -S bench/learning_agent.py <pool> "<task type> <complexity> <nonce>" <slow-marker path>

It sleeps for a duration drawn from the table (the pool's speed on the task type, the task's
complexity, some noise) and exits 0, or fails: with the pool's injected cause for the type (its own
exit status and message, more likely the more complex the task) or, rarely and more often for
complex tasks, a generic error (exit 1).
The draws are seeded by the task's nonce and the pool, so one task does the same on one pool
under every strategy. While the marker file exists, SLOWED_POOL is SLOW_FACTOR times slower.
LEARNING_AGENT_TIME_SCALE (default 1) scales the sleep only (what it prints and its outcome stay):
its own tests check the draws without waiting them out.

Standard library only: it runs with `python -S` (no site-packages) to start fast.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time

BASE_SECONDS = {"build": 0.8, "test": 0.5, "lint": 0.25}
# Each pool is fastest at one type and slowest at another.
SPEED = {
    "alpha": {"build": 0.5, "test": 1.2, "lint": 1.5},
    "beta": {"build": 1.5, "test": 0.5, "lint": 1.2},
    "gamma": {"build": 1.2, "test": 1.5, "lint": 0.5},
}
PER_COMPLEXITY = 0.25  # duration × (1 + 0.25 × complexity)
NOISE = 0.1  # sigma of the lognormal duration noise
# Injected causes: (pool, type) -> (exit status, message). The hive records a command's failure
# as "exited with status N", so a distinct status per cause is what tells causes apart in its
# failure patterns. A cause strikes complex tasks more: with probability CAUSE_PER_COMPLEXITY ×
# complexity (0.1 at 1, 1 at 10), so a pool is a fine choice for simple tasks of that type and a
# poor one for complex ones, which a per-(pool, type) rate cannot tell apart. A failure shows at
# the end of the work (the full duration).
CAUSES = {
    ("alpha", "lint"): (3, "eslint: cache file is corrupt"),
    ("beta", "build"): (4, "linker: out of disk space"),
    ("gamma", "test"): (5, "pytest: fixture database unreachable"),
}
CAUSE_PER_COMPLEXITY = 0.1
GENERIC_FAILURE = (0.02, 0.012)  # probability 0.02 + 0.012 × complexity, exit 1
SLOWED_POOL, SLOW_FACTOR = "alpha", 5.0


def mean_seconds(pool: str, task_type: str, complexity: int, *, slowed: bool = False) -> float:
    """The expected duration of one attempt (the lognormal noise's mean included)."""
    seconds = BASE_SECONDS[task_type] * SPEED[pool][task_type] * (1 + PER_COMPLEXITY * complexity)
    if slowed and pool == SLOWED_POOL:
        seconds *= SLOW_FACTOR
    return seconds * math.exp(NOISE**2 / 2)


def cause_probability(pool: str, task_type: str, complexity: int) -> float:
    return min(1.0, CAUSE_PER_COMPLEXITY * complexity) if (pool, task_type) in CAUSES else 0.0


def success_probability(pool: str, task_type: str, complexity: int) -> float:
    generic = GENERIC_FAILURE[0] + GENERIC_FAILURE[1] * complexity
    return (1 - cause_probability(pool, task_type, complexity)) * (1 - generic)


def run(pool: str, prompt: str, slowed: bool) -> int:
    task_type, complexity, nonce = prompt.split()
    cx = int(complexity)
    rng = random.Random(f"{nonce}|{pool}")
    seconds = mean_seconds(pool, task_type, cx, slowed=slowed) / math.exp(NOISE**2 / 2)
    seconds *= math.exp(rng.gauss(0, NOISE))
    caused = rng.random() < cause_probability(pool, task_type, cx)
    generic = rng.random() < GENERIC_FAILURE[0] + GENERIC_FAILURE[1] * cx
    asleep = seconds * float(os.environ.get("LEARNING_AGENT_TIME_SCALE", "1"))
    if generic:
        time.sleep(asleep)
        sys.stderr.write("connection reset by peer\n")
        return 1
    time.sleep(asleep)
    if caused:
        code, message = CAUSES[(pool, task_type)]
        sys.stderr.write(f"{message}\n")
        return code
    print(f"{pool} did {task_type} (complexity {cx}) in {seconds:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2], os.path.exists(sys.argv[3])))
