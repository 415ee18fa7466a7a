"""Measure the learning core on a synthetic workload (not a test; the bench scenario is bench/learning.py).

    .venv/bin/python -m tests.ml.measure [--attempts 100000] [--database sqlite|postgresql://…] [--profile]

Builds the history in a fresh database (SQLite in a temporary directory unless a URL is given),
with closed decisions of the model about to be trained and some queued and running tasks (what
the pool aggregates read), then, each in a fresh process so peak RSS is its own: trains the
duration and success models on all attempts, and times `route()` under the `predictive` strategy,
wall (the `decision_ms` it stores) and CPU (time.process_time, robust to a shared machine):

- back_to_back: decisions in a burst, the pool aggregates cached (ml.predict.AGGREGATE_SECONDS);
- one_at_a_time: every process cache expired before each decision (the aggregates, the active
  models check, the routing weights), as a decision sees them after ACTIVE_CHECK_SECONDS idle,
  or when the pool figures' refresher (off here: its CPU would count in process_time) is behind.

`--profile` prints the top of a cProfile of each mode on stderr. Prints one JSON report.
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
    os.environ.update(
        LEANVIBE_DATABASE_URL=database,
        LEANVIBE_VAR_DIR=var,
        DJANGO_SETTINGS_MODULE="hive_project.settings",
        LEANVIBE_CONFIG=str(ROOT / "tests/fixtures/hive-test.yaml"),
    )
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
        ],
        complexity_risk=0.4,
    )


def build(n: int) -> dict:
    from django.core.management import call_command

    from tests.ml.synthetic import build_history, build_profiles, make_pools

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    pools = make_pools(["alpha", "beta", "gamma", "delta"])
    tasks = build_history(world(), n=n, pools=pools, seed=1, spacing=5.0)
    build_profiles(pools)
    build_decisions(pools, tasks)
    return {"attempts": n, "build_seconds": round(time.perf_counter() - started, 1)}


def build_decisions(pools: dict, tasks: list, *, closed: int = 400, queued: int = 6, running: int = 4) -> None:
    """Closed decisions of the newest `closed` tasks under the model the train step makes first
    (the duration corrections read them), and `queued` + `running` predicted tasks per pool."""
    from django.utils import timezone

    from coordination.models import RoutingDecision, Task
    from tests.ml.synthetic import CAPABILITY

    version = "duration v1, success v1"
    RoutingDecision.objects.bulk_create(
        RoutingDecision(
            task=t,
            strategy="predictive",
            chosen_pool=t.pool,
            model_version=version,
            candidates=[{"pool": name, "p50_model": 20.0} for name in pools],
            predicted_seconds=20.0,
            decided_at=t.queued_at,
            duration=(t.finished_at - t.started_at).total_seconds(),
            success=t.status == Task.Status.SUCCEEDED,
            closed_at=t.finished_at,
        )
        for t in tasks[-closed:]
    )
    now = timezone.now()
    for pool in pools.values():
        for status in [Task.Status.QUEUED] * queued + [Task.Status.RUNNING] * running:
            task = Task.objects.create(
                prompt="waiting",
                task_type="build",
                capabilities=[CAPABILITY],
                pool=pool,
                status=status,
                timeout=600,
                queued_at=now,
            )
            RoutingDecision.objects.create(
                task=task,
                strategy="predictive",
                chosen_pool=pool,
                model_version=version,
                predicted_seconds=15.0,
                decided_at=now,
            )


def train(n: int) -> dict:
    from ml.services import ml_train

    started = time.perf_counter()
    report = ml_train(kinds=["duration", "success"], window=n)
    out = {
        "train_seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    for kind in report.kinds:
        out[kind.kind] = {
            "status": kind.status,
            "seconds": kind.seconds,
            "model": kind.metrics,
            "baseline": kind.baseline_metrics,
        }
    return out


def decide(samples: int, *, profile: bool = False) -> dict:
    import cProfile
    import io
    import pstats
    import random

    from django.conf import settings

    from coordination import routing
    from coordination.routing import TaskSpec, route
    from ml import patterns, predict, registry
    from tests.ml.synthetic import CAPABILITY

    predict.REFRESH_SECONDS = None  # the decision's own CPU: no refresher's in process_time

    config = settings.HIVE_CONFIG
    settings.HIVE_CONFIG = config.model_copy(
        update={"multi_agent": config.multi_agent.model_copy(update={"load_balancing_strategy": "predictive"})}
    )
    rng = random.Random(0)
    types = sorted(world().types)

    def spec() -> TaskSpec:
        return TaskSpec(
            task_type=rng.choice(types),
            capabilities=(CAPABILITY,),
            complexity=rng.randint(1, 10),
            prompt_length=rng.randint(10, 400),
            source="api",
        )

    def expire() -> None:
        routing.STRATEGIES["predictive"].states._read_at.clear()  # type: ignore[attr-defined]
        registry._checked_at = -float("inf")
        patterns._weights_read = -float("inf")

    for _ in range(50):  # the first decisions load the models
        route(spec(), needs_commands=False)
    out: dict = {"decisions": samples}
    for mode in ("back_to_back", "one_at_a_time"):
        wall, cpu, fallbacks = [], [], {}
        profiler = cProfile.Profile()
        for _ in range(samples):
            if mode == "one_at_a_time":
                expire()
            task = spec()
            started = time.process_time()
            if profile:
                profiler.enable()
            choice = route(task, needs_commands=False)
            if profile:
                profiler.disable()
            cpu.append((time.process_time() - started) * 1000.0)
            wall.append(choice.decision_ms)
            fallbacks[choice.fallback or "none"] = fallbacks.get(choice.fallback or "none", 0) + 1
        out[mode] = {"wall_ms": quantiles(wall), "cpu_ms": quantiles(cpu), "fallbacks": fallbacks}
        if profile:
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
            print(f"--- {mode} ---\n{text.getvalue()}", file=sys.stderr)
    return out


def quantiles(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "p50": round(ordered[len(ordered) // 2], 3),
        "p99": round(ordered[int(len(ordered) * 0.99)], 3),
        "mean": round(sum(ordered) / len(ordered), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=100_000)
    parser.add_argument("--database", default="sqlite")
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--step", choices=["all", "build", "train", "decide"], default="all")
    parser.add_argument("--var")
    parser.add_argument("--profile", action="store_true", help="cProfile the decisions (stderr)")
    args = parser.parse_args()
    var = args.var or tempfile.mkdtemp(prefix="hive-ml-measure-")
    database = f"sqlite:///{var}/measure.sqlite3" if args.database == "sqlite" else args.database
    if args.step != "all":
        setup(database, var)
        result = {
            "build": lambda: build(args.attempts),
            "train": lambda: train(args.attempts),
            "decide": lambda: decide(args.decisions, profile=args.profile),
        }[args.step]()
        print(json.dumps(result))
        return
    report = {"database": "sqlite" if args.database == "sqlite" else "postgresql"}
    for step in ("build", "train", "decide"):
        argv = [
            sys.executable,
            "-m",
            "tests.ml.measure",
            "--step",
            step,
            "--attempts",
            str(args.attempts),
            "--database",
            database,
            "--decisions",
            str(args.decisions),
            "--var",
            var,
        ]
        if args.profile:
            argv.append("--profile")
        out = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
        report[step] = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
