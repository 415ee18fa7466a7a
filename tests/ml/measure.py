"""Measure the learning core on a synthetic workload (not a test; the bench scenario comes later).

    .venv/bin/python -m tests.ml.measure [--attempts 100000] [--database sqlite|postgresql://…]

Builds the history in a fresh database (SQLite in a temporary directory unless a URL is given),
then, each in a fresh process so peak RSS is its own: trains the duration and success models on
all attempts, and times routing decisions of the `predictive` strategy. Prints one JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setup(database: str, var: str) -> None:
    os.environ.update(LEANVIBE_DATABASE_URL=database, LEANVIBE_VAR_DIR=var, DJANGO_SETTINGS_MODULE="hive_project.settings",
                      LEANVIBE_CONFIG=str(ROOT / "tests/fixtures/hive-test.yaml"))  # fmt: skip
    os.environ.setdefault("LEANVIBE_REDIS_URL", "redis://127.0.0.1:6379/11")
    import django

    django.setup()


def world():
    from tests.ml.synthetic import Cause, World

    return World(
        speed={"alpha": 0.5, "beta": 1.0, "gamma": 1.5, "delta": 0.8},
        types={"build": 20.0, "test": 5.0, "migrate": 60.0, "lint": 2.0, "deploy": 30.0},
        causes=[
            Cause(pool="gamma", task_type="build", rate=0.7, error="xcodebuild: not found"),
            Cause(pool="delta", task_type="deploy", rate=0.4, error="docker: permission denied"),
        ],  # fmt: skip
        complexity_risk=0.4,
    )


def build(n: int) -> dict:
    from django.core.management import call_command

    from tests.ml.synthetic import build_history, build_profiles, make_pools

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    pools = make_pools(["alpha", "beta", "gamma", "delta"])
    build_history(world(), n=n, pools=pools, seed=1, spacing=5.0)
    build_profiles(pools)
    return {"attempts": n, "build_seconds": round(time.perf_counter() - started, 1)}


def train(n: int) -> dict:
    from ml.services import ml_train

    started = time.perf_counter()
    report = ml_train(kinds=["duration", "success"], window=n)
    out = {"train_seconds": round(time.perf_counter() - started, 1),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}  # fmt: skip
    for kind in report.kinds:
        out[kind.kind] = {"status": kind.status, "seconds": kind.seconds, "model": kind.metrics,
                          "baseline": kind.baseline_metrics}  # fmt: skip
    return out


def decide(samples: int) -> dict:
    import random

    from django.conf import settings

    from coordination.routing import TaskSpec, route
    from tests.ml.synthetic import CAPABILITY

    config = settings.HIVE_CONFIG
    settings.HIVE_CONFIG = config.model_copy(
        update={"multi_agent": config.multi_agent.model_copy(update={"load_balancing_strategy": "predictive"})}
    )
    rng = random.Random(0)
    types = sorted(world().types)
    times, fallbacks = [], {}
    for i in range(samples + 50):
        spec = TaskSpec(task_type=rng.choice(types), capabilities=(CAPABILITY,), complexity=rng.randint(1, 10),
                        prompt_length=rng.randint(10, 400), source="api")  # fmt: skip
        choice = route(spec, needs_commands=False)
        if i >= 50:  # the first decisions load the models
            times.append(choice.decision_ms)
            fallbacks[choice.fallback or "none"] = fallbacks.get(choice.fallback or "none", 0) + 1
    times.sort()
    return {"decisions": samples, "decision_ms_p50": round(times[len(times) // 2], 3),
            "decision_ms_p99": round(times[int(len(times) * 0.99)], 3), "fallbacks": fallbacks}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=100_000)
    parser.add_argument("--database", default="sqlite")
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--step", choices=["all", "build", "train", "decide"], default="all")
    parser.add_argument("--var")
    args = parser.parse_args()
    var = args.var or tempfile.mkdtemp(prefix="hive-ml-measure-")
    database = f"sqlite:///{var}/measure.sqlite3" if args.database == "sqlite" else args.database
    if args.step != "all":
        setup(database, var)
        result = {"build": lambda: build(args.attempts), "train": lambda: train(args.attempts),
                  "decide": lambda: decide(args.decisions)}[args.step]()  # fmt: skip
        print(json.dumps(result))
        return
    report = {"database": "sqlite" if args.database == "sqlite" else "postgresql"}
    for step in ("build", "train", "decide"):
        argv = [sys.executable, "-m", "tests.ml.measure", "--step", step, "--attempts", str(args.attempts),
                "--database", database, "--decisions", str(args.decisions), "--var", var]  # fmt: skip
        out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True)
        report[step] = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
