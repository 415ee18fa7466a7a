"""Scenario 8, learning: does `predictive` routing pay for itself on a workload the hive has to learn?

Three pools (alpha, beta, gamma) offer the same capability; each runs bench/learning_agent.py, a
small program that sleeps and exits 0 or fails, faster or slower and more or less reliable by
task type and complexity according to a table in that file, which the hive never sees (the
program reads the type and complexity from the task's prompt; the hive sees them only as the
task's fields). Each pool fails one type with an injected cause of its own (its exit status).

1. History: a batch through real workers under round_robin, so every pool meets every type.
2. Training: `ml.services.ml_train` (duration and success models, failure patterns).
3. One fresh batch under each strategy in turn (round_robin, least_loaded, performance_weighted,
   predictive): the same tasks in the same order, submitted at once, one attempt each; makespan
   (first submit → last finish) and first-attempt success.
4. Adaptation, under predictive, one task at a time (no queue, so only speed decides): tasks of
   the type alpha is fastest at, before and after alpha becomes SLOW_FACTOR times slower.
5. Failure patterns over the whole history against the injected causes.
6. Training on 100,000 synthetic attempts (tests/ml/synthetic.py's table, bulk-inserted in a
   database of its own) in a fresh process: seconds and peak RSS (`python -m tests.ml.measure`).

Calibration: a decision's confidence is the model's probability that the chosen pool is the best.
It is checked against the table: the best pool is the one with the lowest wait (as the decision
estimated it) + the table's expected duration of one attempt ÷ the table's success probability.
Decisions are grouped by stated confidence in deciles; per decile with at least CALIBRATION_MIN
decisions, |mean stated − share whose pool was the best| is reported; the goal is on the worst.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import resource
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from bench import learning_agent as table
from bench.autoscaling import SCENARIO_ENV  # workers that keep claiming on a busy shared machine
from bench.world import (
    LEARN_CAPABILITY,
    LEARN_CONCURRENCY,
    LEARN_POOLS,
    LEARN_SLOW_MARKER,
    BenchError,
    celery_worker_argv,
    wait_until,
)
from hive_project.paths import BASE_DIR

HOST = socket.gethostname()
SEED = 8
STRATEGIES = ("round_robin", "least_loaded", "performance_weighted", "predictive")
ADAPT_BEFORE = 10  # sequential tasks under predictive before the change
ADAPT_WINDOW, ADAPT_TOLERANCE = 10, 2  # moved off: a window of 10 decisions with at most 2 on the slowed pool
CALIBRATION_MIN = 10


@dataclass(frozen=True)
class Job:
    task_type: str
    complexity: int
    nonce: str

    @property
    def prompt(self) -> str:
        return f"{self.task_type} {self.complexity} {self.nonce}"


def jobs(rng: random.Random, n: int, *, task_type: str | None = None) -> list[Job]:
    types = sorted(table.BASE_SECONDS)
    return [Job(task_type or rng.choice(types), rng.randint(1, 10), f"{rng.getrandbits(40):010x}") for _ in range(n)]


def scenario_learning(run) -> None:
    import numpy as np
    from django.conf import settings

    from coordination import routing
    from coordination.fleet import pool_sync
    from ml import registry
    from ml.services import ml_train
    from ml.strategy import Predictive

    o = run.options
    pool_sync(config=settings.HIVE_CONFIG)
    marker = run.world.var / LEARN_SLOW_MARKER
    marker.unlink(missing_ok=True)
    config, predictive = settings.HIVE_CONFIG, routing.STRATEGIES.get("predictive")
    routing.STRATEGIES["predictive"] = Predictive(rng=np.random.default_rng(SEED))  # seeded: the run repeats
    rng = random.Random(SEED)
    load_before = os.getloadavg()
    workers = start_workers(run)
    result: dict = {
        "sizes": {
            "history": o.learning_history,
            "batch": o.learning_batch,
            "adapt_max": o.learning_adapt,
            "train_rows": o.learning_train_rows,
        }
    }
    try:
        run.echo(f"  history: {o.learning_history} tasks under round_robin…")
        use_strategy(settings, config, "round_robin")
        result["history"] = run_batch(run, workers, jobs(rng, o.learning_history), what="the history")
        run.echo("  training…")
        trained = ml_train(kinds=["duration", "success"], seed=0)
        registry.forget()
        result["training"] = {
            k.kind: {
                "status": k.status,
                "reason": k.reason,
                "version": k.version,
                "metrics": k.metrics,
                "baseline": k.baseline_metrics,
                "seconds": k.seconds,
            }
            for k in trained.kinds
        }
        result["training"]["patterns"], result["training"]["weights"] = trained.patterns, trained.weights
        batch = jobs(rng, o.learning_batch)
        result["batches"] = {}
        for name in STRATEGIES:
            run.echo(f"  batch of {len(batch)} under {name}…")
            use_strategy(settings, config, name)
            if name == "predictive":
                warm_up()
            result["batches"][name] = run_batch(run, workers, batch, what=f"the batch under {name}")
        run.echo(f"  adaptation: {table.SLOWED_POOL} gets {table.SLOW_FACTOR:g}× slower…")
        result["adaptation"] = adaptation(run, workers, rng, marker)
    finally:
        settings.HIVE_CONFIG = config
        if predictive is not None:
            routing.STRATEGIES["predictive"] = predictive
        marker.unlink(missing_ok=True)
        for worker in workers:
            run.world.stop(worker)
    result["calibration"] = calibration(result)
    result["decision_ms"] = decision_times(result)
    result["patterns"] = failure_patterns()
    run.echo(f"  training on {o.learning_train_rows} synthetic attempts (a database of its own)…")
    result["at_scale"] = train_at_scale(run, o.learning_train_rows)
    result["load_average"] = {
        "before": [round(x, 2) for x in load_before],
        "after": [round(x, 2) for x in os.getloadavg()],
    }
    run.results["learning"] = result
    goals(run, result)
    run.notes.append(
        f"8. learning: load average (1 min) {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after on "
        f"{os.cpu_count()} cores (a shared machine); calibration's best pool is the one with the lowest "
        "estimated wait + the hidden table's expected time to a success (bench/learning.py)"
    )


# --- workers and batches -----------------------------------------------------------------------------


def start_workers(run) -> list:
    from django.db import close_old_connections

    from agents.models import Agent

    world = run.world
    env = world.child_env(**SCENARIO_ENV)
    workers = [
        world.spawn(
            f"learn-{pool}",
            celery_worker_argv("hive_project", f"hive.{pool}", f"{pool}@{HOST}", LEARN_CONCURRENCY),
            env=env,
        )
        for pool in LEARN_POOLS
    ]

    def online() -> bool:
        close_old_connections()
        check(run, workers)
        return Agent.objects.filter(
            name__in=[f"{p}@{HOST}" for p in LEARN_POOLS], status="online", pid__in=[w.pid for w in workers]
        ).count() == len(workers)

    try:
        wait_until(online, timeout=180, interval=0.2, what="the learning pools' workers to come online")
    except BaseException:
        for worker in workers:
            world.stop(worker)
        raise
    time.sleep(1.0)  # the consumers take messages a moment after the agents are online
    return workers


def check(run, workers: list) -> None:
    for worker in workers:
        if worker.poll() is not None:
            raise BenchError(f"a learning pool worker exited with {worker.returncode}:\n{run.world.log_tail(worker)}")


def use_strategy(settings, config, name: str) -> None:
    settings.HIVE_CONFIG = config.model_copy(
        update={"multi_agent": config.multi_agent.model_copy(update={"load_balancing_strategy": name})}
    )


def warm_up() -> None:
    """Load the models (the first prediction reads the artifacts) outside the measured decisions."""
    from coordination.routing import TaskSpec, route

    route(
        TaskSpec(task_type="build", capabilities=(LEARN_CAPABILITY,), complexity=5, prompt_length=18, source="python"),
        needs_commands=False,
    )
    time.sleep(1.1)  # the pool aggregates it noted a phantom task in expire (ml.predict.AGGREGATE_SECONDS)


def submit(job: Job):
    from coordination.services import task_submit

    return task_submit(
        capabilities=[LEARN_CAPABILITY],
        prompt=job.prompt,
        task_type=job.task_type,
        complexity=job.complexity,
        max_attempts=1,
    )


def wait_done(run, workers: list, ids: list, *, what: str, timeout: float) -> None:
    from django.db import close_old_connections

    from coordination.models import Task

    def done() -> bool:
        close_old_connections()
        check(run, workers)
        return Task.objects.filter(id__in=ids, status__in=Task.TERMINAL_STATUSES).count() == len(ids)

    wait_until(done, timeout=timeout, interval=0.1, what=what)


def run_batch(run, workers: list, batch: list[Job], *, what: str) -> dict:
    """Submit `batch` at once, wait for it: makespan, first-attempt success, where tasks went."""
    from collections import Counter

    from coordination.models import Task

    started = time.time()
    ids = [submit(job).id for job in batch]
    submitted = time.time()
    wait_done(run, workers, ids, what=what, timeout=120 + 10 * len(batch))
    tasks = list(Task.objects.filter(id__in=ids).select_related("pool"))
    ended = max(t.finished_at for t in tasks).timestamp()
    return {
        "tasks": len(ids),
        "ids": [str(i) for i in ids],
        "makespan_s": round(ended - started, 2),
        "submit_s": round(submitted - started, 3),
        "succeeded": sum(t.status == Task.Status.SUCCEEDED for t in tasks),
        "first_attempt_success": round(sum(t.status == Task.Status.SUCCEEDED for t in tasks) / len(tasks), 4),
        "by_pool": dict(Counter(t.pool.name for t in tasks)),
        "by_pool_and_type": dict(Counter(f"{t.pool.name}|{t.task_type}" for t in tasks)),
    }


def adaptation(run, workers: list, rng: random.Random, marker) -> dict:
    """Tasks of the slowed pool's best type, one at a time under predictive, before and after the change."""
    from django.conf import settings

    from coordination.models import Task

    use_strategy(settings, settings.HIVE_CONFIG, "predictive")
    best_type = min(table.SPEED[table.SLOWED_POOL], key=table.SPEED[table.SLOWED_POOL].get)

    def one(job: Job) -> tuple[str, str]:
        task = submit(job)
        wait_done(run, workers, [task.id], what="an adaptation task", timeout=120)
        return str(task.id), Task.objects.select_related("pool").get(id=task.id).pool.name

    before = [one(job) for job in jobs(rng, ADAPT_BEFORE, task_type=best_type)]
    marker.touch()
    after: list[tuple[str, str]] = []
    moved = None
    for job in jobs(rng, run.options.learning_adapt, task_type=best_type):
        after.append(one(job))
        moved = moved_off([pool for _, pool in after])
        if moved is not None:
            break
    return {
        "task_type": best_type,
        "slowed_pool": table.SLOWED_POOL,
        "slow_factor": table.SLOW_FACTOR,
        "before": [pool for _, pool in before],
        "after": [pool for _, pool in after],
        "before_ids": [i for i, _ in before],
        "after_ids": [i for i, _ in after],
        "tasks_until_moved_off": moved,
        "fallbacks_after": fallbacks_of([i for i, _ in after]),
    }


def moved_off(chosen: list[str]) -> int | None:
    """Tasks routed after the change before the first window of ADAPT_WINDOW decisions that begins
    with another pool and gives the slowed pool at most ADAPT_TOLERANCE (routing has left it,
    exploration aside); None if there is none yet."""
    for start in range(0, len(chosen) - ADAPT_WINDOW + 1):
        window = chosen[start : start + ADAPT_WINDOW]
        if window[0] != table.SLOWED_POOL and window.count(table.SLOWED_POOL) <= ADAPT_TOLERANCE:
            return start
    return None


# --- measures -----------------------------------------------------------------------------------------


def _decisions(ids: list[str]):
    from coordination.models import RoutingDecision

    return list(
        RoutingDecision.objects.filter(task_id__in=ids, strategy="predictive").select_related("task", "chosen_pool")
    )


def truly_best(candidates: list[dict], *, task_type: str, complexity: int, slowed: bool) -> str | None:
    """The pool with the lowest estimated wait + expected time to a success by the table."""
    scored = []
    for c in candidates or ():
        pool = c.get("pool")
        if pool not in table.SPEED:
            continue
        seconds = table.mean_seconds(pool, task_type, complexity, slowed=slowed)
        p = table.success_probability(pool, task_type, complexity)
        scored.append(((c.get("wait") or 0.0) + (seconds / p if p > 0 else math.inf), pool))
    return min(scored)[1] if scored else None


def calibration(result: dict) -> dict:
    """While the table is the one the model learned (the predictive batch, the tasks before the
    change) and after the change (the model is stale until corrections and fallbacks catch up)."""
    adapt = result["adaptation"]
    return {
        "stationary": calibration_of(result["batches"]["predictive"]["ids"] + adapt["before_ids"], slowed=False),
        "after_change": calibration_of(adapt["after_ids"], slowed=True),
    }


def calibration_of(ids: list[str], *, slowed: bool) -> dict:
    pairs = []  # (stated confidence, the chosen pool was the best by the table)
    for d in _decisions(ids):
        if d.confidence is None or d.chosen_pool is None or d.fallback in ("only_eligible", "named"):
            continue
        best = truly_best(d.candidates, task_type=d.task.task_type, complexity=d.task.complexity, slowed=slowed)
        pairs.append((d.confidence, best == d.chosen_pool.name))
    deciles = []
    for k in range(10):
        inside = [(c, ok) for c, ok in pairs if min(9, int(c * 10)) == k]
        if inside:
            stated = statistics.fmean(c for c, _ in inside)
            observed = sum(ok for _, ok in inside) / len(inside)
            deciles.append(
                {
                    "decile": k,
                    "decisions": len(inside),
                    "stated": round(stated, 3),
                    "observed": round(observed, 3),
                    "gap": round(abs(stated - observed), 3),
                }
            )
    counted = [d for d in deciles if d["decisions"] >= CALIBRATION_MIN]
    weighted = sum(d["gap"] * d["decisions"] for d in deciles) / len(pairs) if pairs else None
    return {
        "decisions": len(pairs),
        "deciles": deciles,
        "min_decisions": CALIBRATION_MIN,
        "worst_gap": max((d["gap"] for d in counted), default=None),
        "expected_calibration_error": round(weighted, 3) if weighted is not None else None,
    }


def decision_times(result: dict) -> dict:
    """decision_ms of the predictive decisions (route(): matching and strategy, on the submit path):
    all, the batch (submitted at once) and one at a time. Either way the pool aggregates are the
    ones the process's refresher read (ml.predict.PoolStates) when under AGGREGATE_SECONDS old;
    a decision that finds them older reads them itself, inside what is measured here."""
    adapt = result["adaptation"]
    batch = result["batches"]["predictive"]["ids"]
    one_by_one = adapt["before_ids"] + adapt["after_ids"]
    out = {"all": times_of(batch + one_by_one), "batch": times_of(batch), "one_at_a_time": times_of(one_by_one)}
    out["all"]["fallbacks"] = fallbacks_of(batch + one_by_one)
    return out


def fallbacks_of(ids: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in _decisions(ids):
        counts[d.fallback or "none"] = counts.get(d.fallback or "none", 0) + 1
    return counts


def times_of(ids: list[str]) -> dict:
    times = sorted(d.decision_ms for d in _decisions(ids))
    if not times:
        return {"decisions": 0}
    return {
        "decisions": len(times),
        "p50": round(percentile(times, 0.5), 3),
        "p99": round(percentile(times, 0.99), 3),
        "max": round(times[-1], 3),
    }


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def failure_patterns() -> dict:
    """The patterns ml.patterns finds in the whole history, against the causes injected by the table."""
    from ml.features import history
    from ml.patterns import insights

    found = insights(rows=history())
    injected = {(pool, ttype, code) for (pool, ttype), (code, _) in table.CAUSES.items()}
    reported = []
    for p in found.patterns:
        code = re.match(r"exit (-?\d+):", p.signature)
        reported.append(
            {
                "pool": p.pool,
                "task_type": p.task_type,
                "signature": p.signature,
                "failures": p.failures,
                "attempts": p.attempts,
                "rate": round(p.rate, 3),
                "everywhere": p.everywhere,
                "real": code is not None and (p.pool, p.task_type, int(code.group(1))) in injected,
            }
        )
    hits = {
        (r["pool"], r["task_type"], int(re.match(r"exit (-?\d+):", r["signature"]).group(1)))
        for r in reported
        if r["real"]
    }
    return {
        "attempts": found.attempts,
        "injected": len(injected),
        "found": len(hits),
        "reported": len(reported),
        "real": sum(r["real"] for r in reported),
        "patterns": reported,
        "missed": sorted(f"{p}|{t}|exit {c}" for p, t, c in injected - hits),
        "recommendations": [r.text for r in found.recommendations],
    }


def train_at_scale(run, rows: int) -> dict:
    """Build `rows` synthetic attempts in a database of its own, then train on them in a fresh
    process (tests/ml/measure.py): its own peak RSS, its own clock."""
    var = run.world.var / "learning-at-scale"
    var.mkdir(parents=True, exist_ok=True)
    env = run.world.child_env()
    out = {}
    for step in ("build", "train"):
        argv = [sys.executable, "-m", "tests.ml.measure", "--step", step, "--attempts", str(rows), "--var", str(var)]
        done = subprocess.run(argv, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise BenchError(f"training at scale ({step}) failed:\n{done.stderr[-3000:]}")
        out[step] = json.loads(done.stdout.strip().splitlines()[-1])
    out["bench_process_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


# --- report -------------------------------------------------------------------------------------------


def goals(run, r: dict) -> None:
    from bench.scenarios import Goal

    b = r["batches"]
    pred, rr, ll = (b[s]["makespan_s"] for s in ("predictive", "round_robin", "least_loaded"))
    for name, other, target in (("round_robin", rr, 0.20), ("least_loaded", ll, 0.10)):
        shorter = 1 - pred / other
        run.goals.append(
            Goal(
                f"learning: makespan, predictive vs {name}",
                f"≥ {target:.0%} shorter",
                shorter,
                f"{pred:.1f} s vs {other:.1f} s ({shorter:.0%} shorter)",
                shorter >= target,
            )
        )
    points = 100 * (b["predictive"]["first_attempt_success"] - b["round_robin"]["first_attempt_success"])
    run.goals.append(
        Goal(
            "learning: first-attempt success, predictive vs round_robin",
            "≥ 10 points higher",
            points,
            f"{b['predictive']['first_attempt_success']:.0%} vs "
            f"{b['round_robin']['first_attempt_success']:.0%} ({points:+.0f} points)",
            points >= 10,
        )
    )
    duration, success = r["training"].get("duration", {}), r["training"].get("success", {})
    if duration.get("metrics"):
        mae, base = duration["metrics"]["mae_p50"], duration["baseline"]["mae_p50"]
        lower = 1 - mae / base if base else 0.0
        run.goals.append(
            Goal(
                "learning: duration MAE vs per-(pool, type) median",
                "≥ 30% lower",
                lower,
                f"{mae:.3f} s vs {base:.3f} s ({lower:.0%} lower, {duration['metrics']['rows']} held out)",
                lower >= 0.30,
            )
        )
    else:
        run.goals.append(
            Goal(
                "learning: duration MAE vs per-(pool, type) median",
                "≥ 30% lower",
                None,
                f"no model: {duration.get('reason', '-')}",
                False,
            )
        )
    if success.get("metrics"):
        brier, base = success["metrics"]["brier"], success["baseline"]["brier"]
        run.goals.append(
            Goal(
                "learning: success Brier vs base rate per (pool, type)",
                "lower",
                brier,
                f"{brier:.3f} vs {base:.3f} ({success['metrics']['rows']} held-out attempts, "
                f"{success['metrics'].get('folds', 1)} time-ordered folds)",
                brier < base,
            )
        )
    else:
        run.goals.append(
            Goal(
                "learning: success Brier vs base rate per (pool, type)",
                "lower",
                None,
                f"no model: {success.get('reason', '-')}",
                False,
            )
        )
    cal = r["calibration"]["stationary"]
    worst = cal["worst_gap"]
    run.goals.append(
        Goal(
            "learning: confidence calibration, worst decile |stated − observed| (table as learned)",
            "≤ 0.1",
            worst,
            "-"
            if worst is None
            else f"{worst:.2f} ({cal['decisions']} decisions, deciles with ≥ {cal['min_decisions']})",
            worst is not None and worst <= 0.1,
        )
    )
    moved = r["adaptation"]["tasks_until_moved_off"]
    run.goals.append(
        Goal(
            "learning: tasks until routing moves off the pool that got slow",
            "≤ 50",
            moved,
            f"not within {len(r['adaptation']['after'])}" if moved is None else str(moved),
            moved is not None and moved <= 50,
        )
    )
    pat = r["patterns"]
    real = pat["real"] / pat["reported"] if pat["reported"] else 1.0
    run.goals.append(
        Goal(
            "learning: failure patterns, injected causes found / reported that are real",
            "all / ≥ 90%",
            real,
            f"{pat['found']}/{pat['injected']} / {pat['real']}/{pat['reported']} ({real:.0%})",
            pat["found"] == pat["injected"] and real >= 0.9,
        )
    )
    p99 = r["decision_ms"]["all"].get("p99")
    run.goals.append(
        Goal(
            "learning: routing decision time p99 (submit path, predictive)",
            "< 5 ms",
            p99,
            "-" if p99 is None else f"{p99:.2f} ms",
            p99 is not None and p99 < 5,
        )
    )
    scale = r["at_scale"]["train"]
    seconds, rss = scale["train_seconds"], scale["peak_rss_mb"]
    rows = r["at_scale"]["build"]["attempts"]
    run.goals.append(
        Goal(
            f"learning: training on {rows:,} attempts (peak RSS)",
            "< 60 s",
            seconds,
            f"{seconds:.1f} s ({rss:.0f} MB)",
            seconds < 60,
        )
    )


def rows(r: dict) -> list[tuple[str, str]]:
    """The report's rows for this scenario (bench/report.py)."""
    out = []
    h = r["history"]
    out.append(
        (
            f"8. history: {h['tasks']} tasks under round_robin",
            f"{h['makespan_s']:.1f} s, {h['first_attempt_success']:.0%} succeeded",
        )
    )
    for kind in ("duration", "success"):
        t = r["training"].get(kind, {})
        if t.get("metrics"):
            key = "mae_p50" if kind == "duration" else "brier"
            out.append(
                (
                    f"8. {kind} model v{t['version']} ({t['status']}): {key} model / baseline",
                    f"{t['metrics'][key]:.3f} / {t['baseline'][key]:.3f} on {t['metrics']['rows']} held-out "
                    f"attempts, trained in {t['seconds']:.1f} s",
                )
            )
        else:
            out.append((f"8. {kind} model", f"{t.get('status', '-')}: {t.get('reason', '-')}"))
    for name, b in r["batches"].items():
        pools = ", ".join(f"{p} {n}" for p, n in sorted(b["by_pool"].items()))
        out.append(
            (
                f"8. batch of {b['tasks']} under {name}: makespan, first-attempt success",
                f"{b['makespan_s']:.1f} s, {b['first_attempt_success']:.0%} ({pools})",
            )
        )
    a = r["adaptation"]
    out.append(
        (
            f"8. adaptation ({a['task_type']} tasks one at a time): on {a['slowed_pool']} before / after the change",
            f"{a['before'].count(a['slowed_pool'])}/{len(a['before'])} / "
            f"{a['after'].count(a['slowed_pool'])}/{len(a['after'])}; moved off after "
            f"{'-' if a['tasks_until_moved_off'] is None else a['tasks_until_moved_off']} tasks",
        )
    )
    for part, label in (("stationary", "table as learned"), ("after_change", "after the change")):
        cal = r["calibration"][part]
        out.append(
            (
                f"8. calibration by decile, {label} (decile (decisions): stated / observed)",
                "; ".join(
                    f"{d['decile'] / 10:.1f} ({d['decisions']}): {d['stated']:.2f} / {d['observed']:.2f}"
                    for d in cal["deciles"]
                )
                + f"; ECE {cal['expected_calibration_error']}",
            )
        )
    for part, label in (("all", "all"), ("batch", "batch"), ("one_at_a_time", "one at a time")):
        dm = r["decision_ms"][part]
        if dm.get("decisions"):
            out.append(
                (
                    f"8. predictive decision time, {label} ({dm['decisions']}: p50 / p99 / max)",
                    f"{dm['p50']:.2f} / {dm['p99']:.2f} / {dm['max']:.2f} ms",
                )
            )
    out.append(
        (
            "8. predictive fallbacks (all / after the change)",
            f"{r['decision_ms']['all']['fallbacks']} / {a['fallbacks_after']}",
        )
    )
    p = r["patterns"]
    out.append(
        (
            f"8. failure patterns over {p['attempts']} attempts",
            "; ".join(
                f"{x['pool']}|{x['task_type']} `{x['signature']}` {x['failures']}/{x['attempts']}"
                f"{'' if x['real'] else ' (not injected)'}"
                for x in p["patterns"]
            )
            or "none",
        )
    )
    s = r["at_scale"]
    out.append(
        (
            f"8. training on {s['build']['attempts']:,} synthetic attempts: seconds, peak RSS",
            f"{s['train']['train_seconds']:.1f} s, {s['train']['peak_rss_mb']:.0f} MB (bulk insert "
            f"{s['build']['build_seconds']:.0f} s)",
        )
    )
    return out
