"""Scenario 7, autoscaling: the hive's scaler and `hive up`'s local actuator against a fixed pool,
and a rate-limited agent program.

The burst: a pool at 1 instance (min 1, max 4, concurrency 1) gets 40 tasks that sleep 2 s; the
same burst goes to a pool fixed at 4 instances. Both pools' workers are run by
`hive_project.actuator.LocalActuator`, the code `hive up` runs, in a thread of the bench; beat and
the control worker run as `hive up` starts them, so decisions come at `scaling.interval_seconds`
(default 5 s). The bench configuration sets a short cooldown (scaling.cooldown_minutes 0.25, 15 s)
so the pool is back at its minimum within the run, and no fleet floor
(scaling.strategies.scale_down.min_instances 0, multi_agent.min_agents 0).

Measured: burst → a second instance consuming (its first claim); back to the minimum after the
burst (the last surplus worker process gone); attempts killed by scale-in; burst completion and
worker-seconds over the burst plus an idle tail, against the fixed pool.

The rate-limit run: a program (tests/fake_claude.py) reports a 429 for its first N starts; the
pool pauses (backoff 1 s doubling to 4 s), the refused starts are given back, every task succeeds.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bench.world import (
    FIXED_CAPABILITY,
    FIXED_POOL,
    RATE_CAPABILITY,
    RATE_POOL,
    SCALED_CAPABILITY,
    SCALED_POOL,
    BenchError,
    wait_until,
)
from hive_project.actuator import LocalActuator, PoolPlan, node_name
from hive_project.launch import celery_argv, worker_argv

HOST = socket.gethostname()
BURST = 40
SLEEP_SECONDS = 2.0
TAIL_SECONDS = 60.0  # idle time after the burst over which worker-seconds are counted
RATE_TASKS = 6
RATE_REFUSALS = 3
# The workers, beat and the control worker of this scenario only: the machine is shared, and a
# worker over resources.allocation's CPU limit (80%) stops claiming, which is not what is measured.
SCENARIO_ENV = {f"LEANVIBE_RESOURCES_ALLOCATION_{what}_LIMIT_PERCENT": "100" for what in ("CPU", "MEMORY", "DISK")}


def scenario_autoscaling(run) -> None:
    from django.conf import settings

    from coordination.fleet import pool_sync

    pool_sync(config=settings.HIVE_CONFIG)
    scaling = settings.HIVE_CONFIG.scaling
    load_before = os.getloadavg()
    world = run.world
    env = world.child_env(**SCENARIO_ENV)
    control = world.spawn(
        "control", worker_argv(queue="hive.control", node=f"control@{HOST}", concurrency=1, fair=False), env=env
    )
    beat = world.spawn(
        "beat", celery_argv("beat", "--loglevel", "INFO", "-s", str(world.var / "beat-schedule")), env=env
    )
    try:
        run.echo(f"  a pool fixed at 4 instances: {BURST} tasks of {SLEEP_SECONDS:g} s…")
        fixed = burst_run(run, pool=FIXED_POOL, capability=FIXED_CAPABILITY, instances=4, env=env)
        run.echo(f"  a pool at 1 instance (max 4), scaled: {BURST} tasks of {SLEEP_SECONDS:g} s…")
        scaled = burst_run(run, pool=SCALED_POOL, capability=SCALED_CAPABILITY, instances=1, env=env)
        run.echo(f"  a rate-limited program: {RATE_TASKS} tasks, 429 for the first {RATE_REFUSALS} starts…")
        limited = rate_limit_run(run, env=env)
    finally:
        world.stop(beat)
        world.stop(control)
    load_after = os.getloadavg()
    window = {"fixed": fixed["burst_seconds"] + TAIL_SECONDS, "scaled": scaled["burst_seconds"] + TAIL_SECONDS}
    result = {
        "burst": {"tasks": BURST, "sleep_seconds": SLEEP_SECONDS, "tail_seconds": TAIL_SECONDS},
        "settings": {
            "interval_seconds": scaling.interval_seconds,
            "cooldown_seconds": scaling.cooldown_seconds,
            "scale_up_threshold": scaling.strategies.scale_up.threshold,
            "scale_down_threshold": scaling.strategies.scale_down.threshold,
        },
        "fixed": fixed,
        "scaled": scaled,
        "rate_limit": limited,
        "window_seconds": window,
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
    }
    run.results["autoscaling"] = result
    _goals(run, result, interval=scaling.interval_seconds, cooldown=scaling.cooldown_seconds)
    run.notes.append(
        f"7. autoscaling: cooldown set to {scaling.cooldown_seconds:g} s in the bench configuration "
        f"(default 180 s), interval {scaling.interval_seconds:g} s (the default); worker-seconds over the burst "
        f"plus a {TAIL_SECONDS:g} s idle tail; load average (1 min) {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after on {os.cpu_count()} cores (a machine shared with other work)"
    )


def burst_run(run, *, pool: str, capability: str, instances: int, env: dict[str, str]) -> dict:
    """Bring the pool to `instances` workers, send the burst, wait for it and an idle tail."""
    from django.db import close_old_connections

    from agents.models import Agent
    from coordination.models import ScalingDecision, Task, TaskAttempt
    from coordination.services import task_submit

    world = run.world
    lines: list[str] = []
    actuator = LocalActuator(
        plans=[PoolPlan(name=pool, concurrency=1, timeout=60.0)],
        env=env,
        logs=world.var / "logs",
        host=HOST,
        echo=_recorder(lines),
    )
    stop = threading.Event()
    thread = _actuator_thread(actuator, stop, lines)
    try:

        def ready() -> bool:
            close_old_connections()
            _check(thread, lines)
            online = Agent.objects.filter(pool__name=pool, status="online").count()
            return online == instances and actuator.running_processes(pool) == instances

        wait_until(ready, timeout=300, interval=0.2, what=f"{instances} worker(s) of pool {pool} online")
        time.sleep(2.0)  # the consumers take messages a moment after the agents are online
        started = time.time()
        since = datetime.fromtimestamp(started, tz=UTC)
        ids = [task_submit(capabilities=[capability], command=["sleep", f"{SLEEP_SECONDS:g}"]).id for _ in range(BURST)]
        batch = Task.objects.filter(id__in=ids)

        def finished() -> bool:
            close_old_connections()
            _check(thread, lines)
            return batch.filter(status__in=Task.TERMINAL_STATUSES).count() == BURST

        wait_until(finished, timeout=900, interval=0.2, what=f"the burst on pool {pool}")
        ended = max(batch.values_list("finished_at", flat=True)).timestamp()
        tail_end = ended + TAIL_SECONDS
        while time.time() < tail_end:
            _check(thread, lines)
            time.sleep(0.5)
    finally:
        stop.set()
        thread.join(timeout=120)
    close_old_connections()
    attempts = TaskAttempt.objects.filter(task_id__in=ids)
    first = node_name(pool, 1, HOST)
    others = attempts.exclude(agent__name=first).order_by("started_at").values_list("started_at", flat=True)
    second_claim = others.first()
    decisions = list(
        ScalingDecision.objects.filter(pool__name=pool, created_at__gte=since)
        .order_by("created_at")
        .values_list("created_at", "previous", "desired", "reason")
    )
    grown = next((at for at, previous, desired, _ in decisions if desired > previous), None)
    spans = [s for s in actuator.spans if s.pool == pool]
    surplus_ends = [s.ended for s in spans if s.ended is not None and started <= s.ended <= tail_end]
    open_at_tail = [s for s in spans if s.started <= tail_end and (s.ended is None or s.ended > tail_end)]
    back = max(surplus_ends) - ended if surplus_ends and len(open_at_tail) == instances else None
    statuses = dict(batch.order_by().values_list("status").annotate(n=_count()).values_list("status", "n"))
    return {
        "pool": pool,
        "instances_before": instances,
        "burst_seconds": round(ended - started, 2),
        "tasks_per_s": round(BURST / (ended - started), 2),
        "statuses": statuses,
        "attempts": attempts.count(),
        "lost_attempts": attempts.filter(outcome=TaskAttempt.Outcome.LOST).count(),
        "not_succeeded_attempts": attempts.exclude(outcome=TaskAttempt.Outcome.SUCCEEDED).count(),
        "tasks_retried": batch.filter(attempts__gt=1).count(),
        "agents": sorted(set(attempts.values_list("agent__name", flat=True))),
        "decision_after_s": round(grown.timestamp() - started, 2) if grown else None,
        "second_instance_consuming_after_s": round(second_claim.timestamp() - started, 2) if second_claim else None,
        # when each instance started during the burst registered (its worker ready to consume)
        "online_after_s": sorted(
            round(at.timestamp() - started, 2)
            for at in Agent.objects.filter(pool__name=pool, started_at__gte=since).values_list("started_at", flat=True)
        ),
        "back_to_minimum_after_s": round(back, 2) if back is not None else None,
        "max_instances": _max_concurrent(spans),
        "worker_seconds": round(sum(s.seconds(start=started, end=tail_end) for s in spans), 1),
        "decisions": [
            {"at_s": round(at.timestamp() - started, 2), "previous": p, "desired": d, "reason": r}
            for at, p, d, r in decisions
        ],
        "spans": [
            {
                "node": s.node,
                "pid": s.pid,
                "from_s": round(s.started - started, 2),
                "to_s": None if s.ended is None else round(s.ended - started, 2),
                "end": s.end,
            }
            for s in spans
        ],
        "actuator_log": lines[:200],
        "killed_by_supervisor": sum("killing" in line for line in lines),
    }


def rate_limit_run(run, *, env: dict[str, str]) -> dict:
    """Tasks whose program reports a 429 for its first RATE_REFUSALS starts (across the pool)."""
    from django.db import close_old_connections

    from agents.models import Agent
    from coordination.models import Event, Task, TaskAttempt
    from coordination.services import task_submit

    world = run.world
    counter = world.var / "rate-limit-starts"
    counter.unlink(missing_ok=True)
    lines: list[str] = []
    actuator = LocalActuator(
        plans=[PoolPlan(name=RATE_POOL, concurrency=2, timeout=60.0)],
        env=env,
        logs=world.var / "logs",
        host=HOST,
        echo=_recorder(lines),
    )
    stop = threading.Event()
    thread = _actuator_thread(actuator, stop, lines)
    try:

        def ready() -> bool:
            close_old_connections()
            _check(thread, lines)
            return Agent.objects.filter(pool__name=RATE_POOL, status="online").exists()

        wait_until(ready, timeout=300, interval=0.2, what=f"the worker of pool {RATE_POOL} online")
        time.sleep(1.0)
        started = time.time()
        ids = [
            task_submit(
                prompt=f"rate limited {RATE_REFUSALS} {counter}", capabilities=[RATE_CAPABILITY], max_attempts=1
            ).id
            for _ in range(RATE_TASKS)
        ]
        batch = Task.objects.filter(id__in=ids)

        def finished() -> bool:
            close_old_connections()
            _check(thread, lines)
            return batch.filter(status__in=Task.TERMINAL_STATUSES).count() == RATE_TASKS

        wait_until(finished, timeout=300, interval=0.2, what="the rate-limited tasks")
        seconds = max(batch.values_list("finished_at", flat=True)).timestamp() - started
    finally:
        stop.set()
        thread.join(timeout=120)
    close_old_connections()
    attempts = TaskAttempt.objects.filter(task_id__in=ids)
    refused = attempts.filter(error__contains="rate limited by the provider")
    # A refused start is given back: the task's max_attempts grows by one for each (workers/attempt.py).
    spent = sum(
        max(0, n_refused - (max_attempts - 1))
        for max_attempts, n_refused in ((t.max_attempts, refused.filter(task_id=t.id).count()) for t in batch)
    )
    pauses = list(
        Event.objects.filter(type="pool.paused", pool__name=RATE_POOL)
        .order_by("id")
        .values_list("created_at", "payload")
    )
    pause_end = max((datetime.fromisoformat(p["until"]).timestamp() for _, p in pauses), default=None)
    succeeded_starts = sorted(
        a.timestamp() for a in attempts.filter(outcome="succeeded").values_list("started_at", flat=True)
    )
    resumed = next((t for t in succeeded_starts if pause_end is not None and t >= pause_end - 0.05), None)
    return {
        "tasks": RATE_TASKS,
        "refusals": RATE_REFUSALS,
        "seconds": round(seconds, 2),
        "statuses": dict(batch.order_by().values_list("status").annotate(n=_count()).values_list("status", "n")),
        "refused_starts": refused.count(),
        "attempts_spent_by_rate_limits": spent,
        "pauses": len(pauses),
        "paused_seconds": [p.get("seconds") for _, p in pauses],
        "resumed_after_pause_s": round(resumed - pause_end, 2) if resumed is not None else None,
        "program_starts": counter.read_text().count("start") if counter.exists() else 0,
    }


def _goals(run, result: dict, *, interval: float, cooldown: float) -> None:
    from bench.scenarios import Goal

    fixed, scaled, limited = result["fixed"], result["scaled"], result["rate_limit"]
    second = scaled["second_instance_consuming_after_s"]
    run.goals.append(
        Goal(
            "burst → a second instance consuming",
            "≤ 10 s",
            second,
            "never" if second is None else f"{second:.1f} s",
            second is not None and second <= 10,
        )
    )
    back, bound = scaled["back_to_minimum_after_s"], cooldown + interval
    run.goals.append(
        Goal(
            "back to the minimum after the burst",
            f"≤ cooldown + interval ({bound:g} s)",
            back,
            f"not within {TAIL_SECONDS:g} s" if back is None else f"{back:.1f} s",
            back is not None and back <= bound,
        )
    )
    killed = scaled["lost_attempts"] + scaled["tasks_retried"] + scaled["killed_by_supervisor"]
    run.goals.append(Goal("attempts killed by scale-in", "0", killed, str(killed), killed == 0))
    ratio = scaled["burst_seconds"] / fixed["burst_seconds"]
    run.goals.append(
        Goal(
            "burst completion vs a pool fixed at 4",
            "within 25%",
            ratio,
            f"{scaled['burst_seconds']:.1f} s vs {fixed['burst_seconds']:.1f} s (+{ratio - 1:.0%})",
            ratio <= 1.25,
        )
    )
    saved = 1 - scaled["worker_seconds"] / fixed["worker_seconds"]
    run.goals.append(
        Goal(
            "worker-seconds vs the fixed pool (burst + idle tail)",
            "≥ 30% fewer",
            saved,
            f"{scaled['worker_seconds']:.0f} vs {fixed['worker_seconds']:.0f} ({saved:.0%} fewer)",
            saved >= 0.30,
        )
    )
    ok = limited["statuses"] == {"succeeded": limited["tasks"]}
    paused = limited["pauses"] > 0 and limited["resumed_after_pause_s"] is not None
    spent = limited["attempts_spent_by_rate_limits"]
    run.goals.append(
        Goal(
            "rate limit: attempts spent, pool paused and resumed, tasks succeeded",
            "0; yes; all",
            spent,
            f"{spent}; {'yes' if paused else 'no'}; {limited['statuses'].get('succeeded', 0)}/{limited['tasks']}",
            spent == 0 and paused and ok,
        )
    )


def rows(result: dict) -> list[tuple[str, str]]:
    """The report's rows for this scenario (bench/report.py)."""
    fixed, scaled, limited = result["fixed"], result["scaled"], result["rate_limit"]
    tail = result["burst"]["tail_seconds"]

    def maybe(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} s"

    return [
        (
            f"7. burst of {result['burst']['tasks']} × {result['burst']['sleep_seconds']:g} s: fixed 4 / scaled 1→4",
            f"{fixed['burst_seconds']:.1f} s / {scaled['burst_seconds']:.1f} s (up to {scaled['max_instances']} "
            f"instances)",
        ),
        (
            "7. scaled: decision / new workers online / second instance consuming (after the burst began)",
            f"{maybe(scaled['decision_after_s'])} / {', '.join(f'{t:.1f}' for t in scaled['online_after_s']) or '-'} s"
            f" / {maybe(scaled['second_instance_consuming_after_s'])}",
        ),
        ("7. scaled: back to the minimum after the burst ended", maybe(scaled["back_to_minimum_after_s"])),
        (
            f"7. worker-seconds, burst + {tail:g} s idle: fixed / scaled",
            f"{fixed['worker_seconds']:.0f} / {scaled['worker_seconds']:.0f}",
        ),
        (
            "7. scaled: lost attempts / retried tasks / workers killed",
            f"{scaled['lost_attempts']} / {scaled['tasks_retried']} / {scaled['killed_by_supervisor']}",
        ),
        (
            f"7. rate limit: {limited['tasks']} tasks, 429 for the first {limited['refusals']} starts",
            f"{limited['statuses']}, {limited['refused_starts']} refused starts, {limited['pauses']} pause(s), "
            f"resumed {maybe(limited['resumed_after_pause_s'])} after the pause, "
            f"{limited['attempts_spent_by_rate_limits']} attempts spent, {limited['seconds']:.1f} s",
        ),
        (
            "7. load average (1 min) before / after",
            f"{result['load_average']['before'][0]:.1f} / {result['load_average']['after'][0]:.1f}",
        ),
    ]


def _max_concurrent(spans: list) -> int:
    edges = sorted([(s.started, 1) for s in spans] + [(s.ended, -1) for s in spans if s.ended is not None])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def _recorder(lines: list[str]) -> Callable[[str], None]:
    began = time.time()

    def echo(line: str) -> None:
        lines.append(f"{time.time() - began:7.2f}s {line}")

    return echo


def _actuator_thread(actuator: LocalActuator, stop: threading.Event, lines: list[str]) -> threading.Thread:
    """`hive up`'s supervision of the pool's workers, in a thread; a failure lands in `lines`."""

    def supervise() -> None:
        try:
            actuator.run(stop)
        except Exception as exc:
            lines.append(f"the actuator failed: {exc!r}")
            raise

    thread = threading.Thread(target=supervise, name="actuator", daemon=True)
    thread.start()
    return thread


def _check(thread: threading.Thread, lines: list[str]) -> None:
    if not thread.is_alive():
        raise BenchError("the actuator stopped:\n" + "\n".join(lines[-20:]))


def _count():
    from django.db.models import Count

    return Count("id")
