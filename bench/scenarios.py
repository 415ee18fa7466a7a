"""The bench's scenarios. Each one measures the hive and, where it has one, its peer in the same run.

1. throughput: N no-op tasks (`true`) through the full hive path (task_submit → route → claim → run
   the subprocess → finish → events) against N tasks through plain Celery on the same Redis with
   the same worker command line: one variant that spawns `true` too, one pure no-op.
2. latency: tasks submitted one at a time to an idle pool; submit → running and submit → finished.
3–5. the front doors (bench/frontdoors.py): the REST API (create and filtered list, and
   the list at 1M rows on PostgreSQL), WebSocket stream fan-out, signed GitHub webhook deliveries.
6. memory: peak RSS of the pool worker during scenario 1; the web process idle and under GET /health.
7. autoscaling (bench/autoscaling.py): a burst on a pool the scaler and `hive up`'s local actuator
   grow from 1 to 4 instances, against a pool fixed at 4; a rate-limited agent program.
8. learning (bench/learning.py): pools that differ by a hidden table; history, training, one batch
   under each strategy, adaptation to a pool that gets slow, failure patterns, training at scale.
9. control-plane (bench/controlplane.py): beat's cycle (reconcile, health, scaling) over 1M task
   rows and 500 agents on PostgreSQL; the statements of one agent heartbeat.

Every wait is bounded; a scenario that cannot finish raises BenchError with the reason.
"""

from __future__ import annotations

import copy
import os
import socket
import statistics
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import memory
from bench.world import CAPABILITY, POOL, BenchError, World, celery_worker_argv, wait_until
from hive_project.launch import free_port

HOST = socket.gethostname()


@dataclass
class Options:
    tasks: int = 2000
    throughput_rounds: int = 1  # scenario 1: every side once per round, medians over the rounds
    latency_tasks: int = 200
    latency_gap: float = 0.02
    concurrency: int = 2
    web_requests: int = 500
    api_requests: int = 1000  # scenario 3, each of POST and GET
    http_concurrency: int = 16  # scenarios 3 and 5
    big_table_rows: int = 1_000_000  # scenario 3, PostgreSQL only
    subscribers: int = 500  # scenario 4
    stream_events: int = 20
    stream_gap: float = 0.2
    webhook_deliveries: int = 500  # scenario 5
    learning_history: int = 360  # scenario 8: tasks of history, under round_robin
    learning_batch: int = 90  # scenario 8: the batch each strategy runs
    learning_adapt: int = 50  # scenario 8: most tasks sent after the change
    learning_train_rows: int = 100_000  # scenario 8: synthetic attempts trained on
    controlplane_rows: int = 1_000_000  # scenario 9, PostgreSQL only: task rows beat's cycle runs over
    controlplane_agents: int = 500  # scenario 9
    controlplane_rounds: int = 7  # scenario 9: measured beat cycles
    profile: bool = False
    results_dir: Path = Path("var/bench")


@dataclass
class Goal:
    name: str
    target: str
    value: float | None
    shown: str
    met: bool | None  # None: not measured in this run

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "short", None: "-"}[self.met]


@dataclass
class Run:
    world: World
    options: Options
    results: dict[str, dict] = field(default_factory=dict)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scenario_of: dict[str, int | None] = field(default_factory=dict)  # results name -> scenario number
    goal_scenario: dict[str, int | None] = field(default_factory=dict)  # goal name -> scenario number
    hive_worker: object = None  # the pool worker, kept between scenarios 1, 2 and 6
    echo: Callable[[str], None] = print


@dataclass
class Scenario:
    number: int
    name: str
    run: Callable[[Run], None] | None
    pending: str = ""


# --- scenario 1: throughput --------------------------------------------------------------------
def scenario_throughput(run: Run) -> None:
    """Each side runs once per round, the rounds one after the other (raw no-op, raw spawn, the
    django-celery-results peer, the hive; again): a ratio is taken within a round, from sides
    measured seconds apart, and each figure reported is the median over the rounds. On a shared
    machine whose speed drifts within minutes, one round of each side could put the hive and its
    peer in different weather. One round by default: the django-celery-results peer gets slower
    with every round it runs in the same database (docs/benchmarks.md), which would favour the hive."""
    n, c, count = run.options.tasks, run.options.concurrency, run.options.throughput_rounds
    rounds = []
    for number in range(count):
        if count > 1:
            run.echo(f"  round {number + 1} of {count}")
        raw = {variant: raw_throughput(run, variant, n) for variant in ("noop", "spawn_true")}
        rounds.append(
            {"raw_celery": raw, "celery_results": results_throughput(run, n), "hive": hive_throughput(run, n)}
        )
    merged = _median_round(rounds)
    raw, hive = merged["raw_celery"], merged["hive"]
    run.results["throughput"] = {"tasks": n, "concurrency": c, "rounds": count, **merged}
    ratio, to_results = merged["ratio_to_raw_spawn"], merged["ratio_to_celery_results"]
    run.goals.append(
        Goal(
            "full-path throughput vs Celery + django-celery-results (same DB, same spawn)",
            ">= 1.0",
            to_results,
            f"{to_results:.2f}",
            to_results >= 1.0,
        )
    )
    run.goals.append(
        Goal("full-path throughput vs raw Celery (same spawn)", ">= 50%", ratio, f"{ratio:.0%}", ratio >= 0.50)
    )
    sql = hive["sql_per_task"]["total"]
    run.goals.append(Goal("SQL statements per task, full path", "<= 10", sql, f"{sql:.1f}", sql <= 10))
    worker_cpu, peer_cpu = hive["cpu_ms_per_task"]["worker"], raw["spawn_true"]["cpu_ms_per_task"]["worker"]
    run.goals.append(
        Goal(
            "worker CPU per task (pool worker and its programs)",
            "<= 6 ms",
            worker_cpu,
            f"{worker_cpu:.1f} ms (raw Celery, same spawn: {peer_cpu:.1f} ms)",
            worker_cpu <= 6.0,
        )
    )
    # measured while the pool worker runs the same tasks on the same machine: a floor for "alone"
    submits = hive["submit_per_s"]
    run.goals.append(Goal("task_submit from one process", ">= 400/s", submits, f"{submits:.0f}/s", submits >= 400))
    worker_rss = hive["worker_memory"]["rss_mb"]
    raw_rss = raw["spawn_true"]["worker_memory"]["rss_mb"]
    run.goals.append(
        Goal(
            "pool worker peak RSS (main + children) vs raw Celery's",
            "<= 1.3x",
            worker_rss / raw_rss,
            f"{worker_rss:.0f} MB vs {raw_rss:.0f} MB ({worker_rss / raw_rss:.2f}x)",
            worker_rss <= 1.3 * raw_rss,
        )
    )


def _median_round(rounds: list[dict]) -> dict:
    """The rounds of scenario 1 as one: the round whose hive ÷ django-celery-results ratio is the
    median gives the detailed figures (memory, statements), and every rate, CPU figure and ratio is
    replaced by its median over the rounds; each round's rates are kept beside it (`per_round`)."""

    def ratios(one: dict) -> dict[str, float]:
        hive = one["hive"]["tasks_per_s"]
        return {
            "ratio_to_raw_spawn": hive / one["raw_celery"]["spawn_true"]["tasks_per_s"],
            "ratio_to_raw_noop": hive / one["raw_celery"]["noop"]["tasks_per_s"],
            "ratio_to_celery_results": hive / one["celery_results"]["tasks_per_s"],
        }

    each = [ratios(one) for one in rounds]
    order = sorted(range(len(rounds)), key=lambda i: each[i]["ratio_to_celery_results"])
    merged = copy.deepcopy(rounds[order[len(order) // 2]])
    sides = [("raw_celery", "noop"), ("raw_celery", "spawn_true"), ("celery_results", None), ("hive", None)]
    for group, variant in sides:
        figures = [one[group][variant] if variant else one[group] for one in rounds]
        target = merged[group][variant] if variant else merged[group]
        for key in ("tasks_per_s", "submit_per_s"):
            if key in target:
                target[key] = round(statistics.median(f[key] for f in figures), 1)
                target.setdefault("per_round", {})[key] = [f[key] for f in figures]
        for key in target.get("cpu_ms_per_task", {}):
            target["cpu_ms_per_task"][key] = round(statistics.median(f["cpu_ms_per_task"][key] for f in figures), 2)
            target.setdefault("per_round", {})[f"cpu_ms_{key}"] = [f["cpu_ms_per_task"][key] for f in figures]
    for key in each[0]:
        merged[key] = round(statistics.median(r[key] for r in each), 3)
        merged.setdefault("per_round", {})[key] = [round(r[key], 3) for r in each]
    return merged


def raw_throughput(run: Run, variant: str, n: int) -> dict:
    import redis

    from bench import raw_celery

    world = run.world
    client = redis.Redis.from_url(world.redis_url)
    _clear_queue(client, raw_celery.QUEUE)
    client.delete(raw_celery.DONE_COUNTER, raw_celery.LAST_END)
    argv = celery_worker_argv("raw_celery", raw_celery.QUEUE, f"raw@{HOST}", run.options.concurrency)
    worker = world.spawn(f"raw-worker-{variant}", argv, env=world.raw_celery_env())
    try:
        done = lambda: int(client.get(raw_celery.DONE_COUNTER) or 0)  # noqa: E731
        warm = 2 * run.options.concurrency
        for _ in range(warm):  # the worker is ready when it has run these (imports done, pool up)
            raw_celery.app.send_task(f"bench.{variant}", queue=raw_celery.QUEUE, priority=raw_celery.PRIORITY)
        wait_until(lambda: _alive(world, worker) and done() >= warm, timeout=120, what=f"raw Celery worker ({variant})")
        client.delete(raw_celery.DONE_COUNTER, raw_celery.LAST_END)
        run.echo(f"  raw Celery, {variant}: {n} tasks…")
        with memory.Sampler(worker.pid) as sampler:
            started, sender_start = time.time(), sender_cpu()
            for _ in range(n):
                raw_celery.app.send_task(f"bench.{variant}", queue=raw_celery.QUEUE, priority=raw_celery.PRIORITY)
            sent, sender_used = time.time(), sender_cpu() - sender_start
            wait_until(
                lambda: _alive(world, worker) and done() >= n,
                timeout=60 + n * 0.2,
                what=f"{n} raw Celery tasks ({variant})",
            )
        ended = client.zscore(raw_celery.LAST_END, "t")
    finally:
        world.stop(worker)
    seconds = ended - started
    return {
        "tasks": n,
        "seconds": round(seconds, 3),
        "tasks_per_s": round(n / seconds, 1),
        "send_seconds": round(sent - started, 3),
        "worker_memory": sampler.peak.as_dict(),
        "cpu_ms_per_task": {
            "worker": round(1000 * sampler.cpu_used / n, 2),
            "sender": round(1000 * sender_used / n, 2),
        },
    }


def results_throughput(run: Run, n: int) -> dict:
    """The django-celery-results peer (bench/results_celery.py): the same spawn of `true`, and a
    result row per task in the hive's database; time runs to the last row's `date_done`."""
    import subprocess
    import sys

    import redis

    from bench import raw_celery, results_celery, sql_count

    world = run.world
    client = redis.Redis.from_url(world.redis_url)
    queue = results_celery.QUEUE
    _clear_queue(client, queue)
    env = dict(world.raw_celery_env(), HIVE_BENCH_DATABASE_URL=world.database_url)
    migrate = subprocess.run(
        [sys.executable, "-c", "import results_celery; results_celery.migrate()"],
        env=env,
        cwd=world.var,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if migrate.returncode:
        raise BenchError(f"the django-celery-results peer could not migrate:\n{migrate.stderr[-2000:]}")
    argv = celery_worker_argv("results_celery", queue, f"results@{HOST}", run.options.concurrency) + ["-I", "sql_count"]
    sample = run.options.results_dir / "sql-celery-results-task.txt"
    run.options.results_dir.mkdir(parents=True, exist_ok=True)
    sample.unlink(missing_ok=True)
    worker = world.spawn("results-worker", argv, env=dict(env, HIVE_BENCH_SQL_SAMPLE=str(sample)))

    def send() -> None:
        raw_celery.app.send_task(
            results_celery.TASK, queue=queue, priority=results_celery.PRIORITY, ignore_result=False
        )

    try:
        warm = 2 * run.options.concurrency
        for _ in range(warm):
            send()
        wait_until(
            lambda: _alive(world, worker) and _result_rows()[0] >= warm,
            timeout=120,
            what="the django-celery-results peer's worker",
        )
        _result_rows(clear=True)
        sql_count.read_and_reset(client)
        run.echo(f"  Celery + django-celery-results, spawn_true: {n} tasks…")
        with memory.Sampler(worker.pid) as sampler:
            started, sender_start = time.time(), sender_cpu()
            for _ in range(n):
                send()
            sent, sender_used = time.time(), sender_cpu() - sender_start
            wait_until(
                lambda: _alive(world, worker) and _result_rows()[0] >= n,
                timeout=60 + n * 0.5,
                interval=0.2,
                what=f"{n} django-celery-results tasks",
            )
        statements, counted = sql_count.read_and_reset(client)
    finally:
        world.stop(worker)
    seconds = _result_rows()[1] - started
    return {
        "tasks": n,
        "seconds": round(seconds, 3),
        "tasks_per_s": round(n / seconds, 1),
        "send_seconds": round(sent - started, 3),
        "worker_memory": sampler.peak.as_dict(),
        "sql_per_task": {
            "worker": round(statements / max(counted, 1), 2),
            "total": round(statements / max(counted, 1), 2),
        },
        "cpu_ms_per_task": {
            "worker": round(1000 * sampler.cpu_used / n, 2),
            "sender": round(1000 * sender_used / n, 2),
        },
    }


def _result_rows(*, clear: bool = False) -> tuple[int, float]:
    """(successful result rows, the latest `date_done` as a Unix time) in the peer's table."""
    from django.db import close_old_connections, connection

    from bench.results_celery import TABLE

    close_old_connections()
    with connection.cursor() as cursor:
        if clear:
            cursor.execute(f"DELETE FROM {TABLE}")
            return 0, 0.0
        cursor.execute(f"SELECT count(*), max(date_done) FROM {TABLE} WHERE status = 'SUCCESS'")
        count, last = cursor.fetchone()
    if isinstance(last, str):  # SQLite hands back text in UTC
        last = datetime.fromisoformat(last).replace(tzinfo=UTC)
    return count, last.timestamp() if last else 0.0


def hive_throughput(run: Run, n: int) -> dict:
    import redis
    from django.db import connection
    from django.db.models import Count, Max

    from bench import sql_count
    from coordination.models import Event, Task
    from coordination.services import task_submit

    worker = hive_worker(run)
    pid = worker.pid
    profilers = _profilers(run, pid) if run.options.profile else []
    run.echo(f"  hive full path: {n} tasks…")
    client = redis.Redis.from_url(run.world.redis_url)
    sql_count.read_and_reset(client)
    submit_statements = 0

    def count(execute, sql, params, many, context):  # the submitting side's statements
        nonlocal submit_statements
        submit_statements += 1
        return execute(sql, params, many, context)

    try:
        with memory.Sampler(pid) as sampler:
            started, sender_start = time.time(), sender_cpu()
            since = datetime.fromtimestamp(started, tz=UTC)
            with connection.execute_wrapper(count):
                for _ in range(n):
                    task_submit(capabilities=[CAPABILITY], command=["true"], max_attempts=1)
            sent, sender_used = time.time(), sender_cpu() - sender_start
            batch = Task.objects.filter(pool__name=POOL, created_at__gte=since)
            wait_until(
                lambda: _alive(run.world, worker) and _terminal(batch) >= n,
                timeout=60 + n * 0.5,
                interval=0.2,
                what=f"{n} hive tasks",
            )
    finally:
        for profiler in profilers:
            profiler.stop()
    ended = batch.aggregate(last=Max("finished_at"))["last"].timestamp()
    statuses = dict(batch.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    events = Event.objects.filter(task__in=batch).count()
    worker_statements, counted = sql_count.read_and_reset(client)
    sql = {"submit": round(submit_statements / n, 2), "worker": round(worker_statements / max(counted, 1), 2)}
    sql["total"] = round(sql["submit"] + sql["worker"], 2)
    seconds = ended - started
    result = {
        "tasks": n,
        "seconds": round(seconds, 3),
        "tasks_per_s": round(n / seconds, 1),
        "submit_seconds": round(sent - started, 3),
        "submit_per_s": round(n / (sent - started), 1),
        "statuses": statuses,
        "events": events,
        "sql_per_task": sql,
        "worker_memory": sampler.peak.as_dict(),
        "cpu_ms_per_task": {
            "worker": round(1000 * sampler.cpu_used / n, 2),
            "sender": round(1000 * sender_used / n, 2),
        },
    }
    if profilers:
        result["profile"] = _profile_summaries(run)
    return result


def hive_worker(run: Run):
    """The pool worker (started once, then reused), online and warmed up."""
    from django.conf import settings
    from django.db import close_old_connections

    from agents.models import Agent
    from coordination.fleet import pool_sync

    if run.hive_worker is not None and run.hive_worker.poll() is None:
        return run.hive_worker
    import redis

    pool_sync(config=settings.HIVE_CONFIG)
    _clear_queue(redis.Redis.from_url(run.world.redis_url), f"hive.{POOL}")
    node = f"{POOL}@{HOST}"
    argv = celery_worker_argv("hive_project", f"hive.{POOL}", node, run.options.concurrency) + ["-I", "bench.sql_count"]
    run.options.results_dir.mkdir(parents=True, exist_ok=True)
    sample = run.options.results_dir / "sql-hive-task.txt"
    sample.unlink(missing_ok=True)
    worker = run.world.spawn("hive-worker", argv, env=run.world.child_env(HIVE_BENCH_SQL_SAMPLE=str(sample)))

    def online() -> bool:
        close_old_connections()
        return _alive(run.world, worker) and Agent.objects.filter(name=node, status="online", pid=worker.pid).exists()

    wait_until(online, timeout=120, interval=0.2, what="the hive pool worker to come online")
    run.hive_worker = worker
    _warm_up(run, worker)
    return worker


def _warm_up(run: Run, worker) -> None:
    from coordination.models import Task
    from coordination.services import task_submit

    ids = [
        task_submit(capabilities=[CAPABILITY], command=["true"], max_attempts=1).id
        for _ in range(2 * run.options.concurrency)
    ]
    batch = Task.objects.filter(id__in=ids)
    wait_until(
        lambda: _alive(run.world, worker) and _terminal(batch) == len(ids),
        timeout=60,
        interval=0.1,
        what="the warm-up tasks",
    )


def sender_cpu() -> float:
    """CPU time of this (the submitting) process, every thread included."""
    t = os.times()
    return t.user + t.system


def _terminal(queryset) -> int:
    from coordination.models import Task

    return queryset.filter(status__in=Task.TERMINAL_STATUSES).count()


def _profilers(run: Run, worker_pid: int) -> list:
    from bench.profiling import Profiler

    out = run.options.results_dir
    out.mkdir(parents=True, exist_ok=True)
    return [
        Profiler(worker_pid, out / "profile-worker.txt", subprocesses=True),
        Profiler(os.getpid(), out / "profile-submit.txt"),
    ]


def _profile_summaries(run: Run) -> dict:
    from bench.profiling import render, summarise

    out = run.options.results_dir
    worker = summarise(out / "profile-worker.txt")
    submit = summarise(out / "profile-submit.txt", focus="task_submit")
    text = render(worker, "pool worker") + "\n\n" + render(submit, "submitting process")
    (out / "profile-summary.txt").write_text(text + "\n")
    run.echo(text)
    return {"worker": worker, "submit": submit}


# --- scenario 2: latency at low load ------------------------------------------------------------
def scenario_latency(run: Run) -> None:
    from django.db import close_old_connections

    from coordination.models import Task
    from coordination.services import task_submit

    worker = hive_worker(run)
    m = run.options.latency_tasks
    run.echo(f"  latency: {m} tasks one at a time…")
    samples: list[tuple[float, str]] = []
    for _ in range(m):
        submitted = time.time()
        task = task_submit(capabilities=[CAPABILITY], command=["true"], max_attempts=1)
        samples.append((submitted, str(task.id)))
        done = Task.objects.filter(id=task.id, status__in=Task.TERMINAL_STATUSES)
        wait_until(
            lambda done=done: _alive(run.world, worker) and done.exists(),
            timeout=60,
            interval=0.005,
            what=f"task {task.id}",
        )
        time.sleep(run.options.latency_gap)
    close_old_connections()
    rows = {
        str(i): (s, f)
        for i, s, f in Task.objects.filter(id__in=[t for _, t in samples]).values_list(
            "id", "started_at", "finished_at"
        )
    }
    to_running = [1000 * (rows[t][0].timestamp() - s) for s, t in samples]
    to_finished = [1000 * (rows[t][1].timestamp() - s) for s, t in samples]
    run.results["latency"] = {
        "tasks": m,
        "gap_s": run.options.latency_gap,
        "submit_to_running_ms": percentiles(to_running),
        "submit_to_finished_ms": percentiles(to_finished),
        "raw_ms": {
            "submit_to_running": [round(x, 2) for x in to_running],
            "submit_to_finished": [round(x, 2) for x in to_finished],
        },
    }
    p99 = run.results["latency"]["submit_to_running_ms"]["p99"]
    run.goals.append(Goal("submit → running p99, idle pool", "< 50 ms", p99, f"{p99:.1f} ms", p99 < 50))


def percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": round(cuts[49], 2),
        "p95": round(cuts[94], 2),
        "p99": round(cuts[98], 2),
        "max": round(max(values), 2),
        "mean": round(statistics.fmean(values), 2),
    }


# --- scenario 6: memory ----------------------------------------------------------------------------
def scenario_memory(run: Run) -> None:
    """The worker's peak comes from scenario 1 (measured under load); here the web process."""
    import sys

    port = free_port()
    web = run.world.spawn(
        "web", [sys.executable, "-m", "hive_project.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    )
    url = f"http://127.0.0.1:{port}/health"
    try:
        wait_until(
            lambda: _alive(run.world, web) and _get(url) == 200,
            timeout=90,
            interval=0.2,
            what="the web process to answer /health",
        )
        time.sleep(1.0)
        idle = max((memory.measure(web.pid, with_pss=True) for _ in range(5)), key=lambda s: s.rss_mb)
        run.echo(f"  web process: {run.options.web_requests} GET /health…")
        deadline = time.monotonic() + 60
        served = 0
        with memory.Sampler(web.pid, interval=0.05) as sampler:
            started = time.monotonic()
            while served < run.options.web_requests and time.monotonic() < deadline:
                served += _get(url) == 200
            elapsed = time.monotonic() - started
    finally:
        run.world.stop(web)
    worker = run.results.get("throughput", {}).get("hive", {}).get("worker_memory")
    run.results["memory"] = {
        "worker_under_load": worker,
        "web_idle": idle.as_dict(),
        "web_under_health_loop": sampler.peak.as_dict(),
        "web_requests": served,
        "web_requests_per_s": round(served / elapsed, 1) if elapsed else None,
    }
    if worker is None:
        run.notes.append("the worker's peak RSS is measured during scenario 1, which this run skipped")


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
            return response.status
    except OSError:
        return 0


# --- shared -------------------------------------------------------------------------------------
def _alive(world: World, proc) -> bool:
    if proc.poll() is not None:
        raise BenchError(f"a bench process exited with {proc.returncode}:\n{world.log_tail(proc)}")
    return True


def _clear_queue(client, queue: str) -> None:
    client.delete(queue, *(f"{queue}:{step}" for step in (3, 6, 9)))


def _front_door(name: str) -> Callable[[Run], None]:
    def scenario(run: Run) -> None:
        from bench import frontdoors

        getattr(frontdoors, name)(run)

    return scenario


def _autoscaling(run: Run) -> None:
    from bench.autoscaling import scenario_autoscaling

    scenario_autoscaling(run)


def _learning(run: Run) -> None:
    from bench.learning import scenario_learning

    scenario_learning(run)


def _controlplane(run: Run) -> None:
    from bench.controlplane import scenario_controlplane

    scenario_controlplane(run)


SCENARIOS: list[Scenario] = [
    Scenario(1, "throughput", scenario_throughput),
    Scenario(2, "latency", scenario_latency),
    Scenario(3, "api", _front_door("scenario_api")),
    Scenario(4, "stream-fanout", _front_door("scenario_stream")),
    Scenario(5, "webhooks", _front_door("scenario_webhooks")),
    Scenario(6, "memory", scenario_memory),
    Scenario(7, "autoscaling", _autoscaling),
    Scenario(8, "learning", _learning),
    Scenario(9, "control-plane", _controlplane),
]
