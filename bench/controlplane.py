"""Scenario 9: the control plane at a million task rows — beat's cycle and an agent's heartbeat.

On PostgreSQL the task table is filled to `controlplane_rows` rows (default 1,000,000) with
bench/frontdoors.py's COPY helper, then shaped like a hive that has run for a month: a few
queued tasks spread over the pools (fresh: nothing for the reconciler to resend), two running
tasks per live agent with a running attempt each, every other row finished (succeeded, failed,
cancelled, dead) with its finished attempt; `controlplane_agents` agents (default 500) spread over
the pools and 50 hosts, most online, some draining, some offline long ago, one host reporting a
memory warning. Then beat's jobs run in this process exactly as the control worker runs them
(workers.tasks: `hive.reconcile`, `hive.session_reconcile`, `hive.monitor`, `hive.scale`), one
unmeasured round first, then `controlplane_rounds` measured rounds; before each round (untimed)
the live agents, running attempts and queued tasks are made fresh again, as heartbeats and
dispatch keep them in a running hive. The cycle is the four jobs one after the other.

The heartbeat: `workers.agent.Heartbeat.beat()` of one of the online agents, counted with an
execute_wrapper plus Django's connection health checks (a `SELECT 1` that bypasses the wrapper).

On SQLite the cycle is not measured at this size ("skipped (SQLite)"); the heartbeat's statements are.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from bench.scenarios import Goal, Run, _clear_queue, percentiles

ROWS = 1_000_000
AGENTS = 500
HOSTS = 50
QUEUED = 2_000  # tasks waiting in the database, spread over the pools
RUNNING_PER_AGENT = 2
ROUNDS = 7
HEARTBEATS = 30
CYCLE_GOAL_S = 1.0
AGENT_PREFIX = "cp-"  # this scenario's agents: <pool>@cp-<n>


@dataclass
class Counter:
    """Statements sent through Django's cursors on one connection, and health-check round trips."""

    statements: int = 0
    sample: list[str] = field(default_factory=list)

    def __call__(self, execute, sql, params, many, context):
        self.statements += 1
        if len(self.sample) < 40:
            self.sample.append(" ".join(str(sql).split())[:200])
        return execute(sql, params, many, context)


def counted(fn: Callable[[], object]) -> tuple[float, Counter]:
    """Run `fn` once; (seconds, statements counted)."""
    from django.db import connection

    counter = Counter()
    usable = connection.is_usable

    def is_usable() -> bool:  # Django's CONN_HEALTH_CHECKS probe: one SELECT 1 on PostgreSQL
        if connection.vendor == "postgresql":
            counter.statements += 1
            counter.sample.append("SELECT 1 (connection health check)")
        return usable()

    connection.is_usable = is_usable  # type: ignore[method-assign]
    try:
        with connection.execute_wrapper(counter):
            started = time.perf_counter()
            fn()
            seconds = time.perf_counter() - started
    finally:
        del connection.is_usable
    return seconds, counter


# --- filling ---------------------------------------------------------------------------------------
def _fill(run: Run, *, rows: int, agents: int) -> dict:
    from bench.frontdoors import _copy_tasks
    from coordination.models import Task

    started = time.perf_counter()
    existing = Task.objects.count()  # scenario 3 may have filled the table already
    if existing < rows:
        _template_task(run)
        run.echo(f"  COPY {rows - existing:,} task rows…")
        _copy_tasks(rows - existing)
    copied = time.perf_counter()
    run.echo(f"  {agents} agents; shaping the statuses, attempts of every started task…")
    _agents_create(agents)
    _shape()
    return {
        "rows": Task.objects.count(),
        "copy_seconds": round(copied - started, 1),
        "shape_seconds": round(time.perf_counter() - copied, 1),
    }


def _template_task(run: Run) -> None:
    """A task of the front pool as the API makes one: the row `_copy_tasks` copies."""
    import redis

    from bench.world import FRONT_CAPABILITY, FRONT_POOL
    from coordination.models import Task
    from coordination.services import task_submit

    if not Task.objects.filter(pool__name=FRONT_POOL).exists():
        task_submit(capabilities=[FRONT_CAPABILITY], prompt="bench", command=["true"], max_attempts=1)
        _clear_queue(redis.Redis.from_url(run.world.redis_url), f"hive.{FRONT_POOL}")


def _agents_create(n: int) -> None:
    from django.utils import timezone

    from agents.models import Agent, AgentPool

    pools = list(AgentPool.objects.filter(enabled=True).order_by("id"))
    now = timezone.now()
    rows = []
    for i in range(n):
        pool = pools[i % len(pools)]
        host = f"cp-host-{i % HOSTS}"
        status = Agent.Status.OFFLINE if i % 10 == 9 else Agent.Status.DRAINING if i % 50 == 3 else Agent.Status.ONLINE
        gone = status == Agent.Status.OFFLINE
        alerts = (
            [
                {
                    "resource": "memory",
                    "level": "warning",
                    "value": 86.0,
                    "threshold": 85.0,
                    "source": "resources.thresholds.warning",
                }
            ]
            if host == "cp-host-0"
            else []
        )
        rows.append(
            Agent(
                name=f"{pool.name}@{AGENT_PREFIX}{i}",
                pool=pool,
                status=status,
                host=host,
                pid=10_000 + i,
                concurrency=RUNNING_PER_AGENT,
                load=0 if gone else RUNNING_PER_AGENT,
                resources={
                    "rss_mb": 310.5,
                    "processes": 3,
                    "cpu_percent": 35.0,
                    "memory_percent": 86.0 if alerts else 48.0,
                    "disk_percent": 41.0,
                    "claiming": True,
                    "alerts": alerts,
                },
                last_heartbeat=now - timedelta(days=3) if gone else now,
                started_at=now - timedelta(days=4 if gone else 1),
                stopped_at=now - timedelta(days=3) if gone else None,
            )
        )
    Agent.objects.bulk_create(rows, batch_size=500)


def _shape() -> None:
    """Statuses, pools, agents and attempts of the copied rows, in a few statements on the server."""
    from django.db import connection

    from agents.models import Agent, AgentPool
    from coordination.models import Task, TaskAttempt

    t, a, g, p = (m._meta.db_table for m in (Task, TaskAttempt, Agent, AgentPool))
    live = f"SELECT id, pool_id, row_number() OVER (ORDER BY id) AS k FROM {g} WHERE status <> 'offline' AND name LIKE %(cp)s"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {g} WHERE status <> 'offline' AND name LIKE %s", [f"%@{AGENT_PREFIX}%"])
        running = cursor.fetchone()[0] * RUNNING_PER_AGENT
        params = {"cp": f"%@{AGENT_PREFIX}%", "queued": QUEUED, "running": running}
        # Few active tasks: the first QUEUED queued and `running` running rows stay; the others finished.
        cursor.execute(
            f"""UPDATE {t} SET status = 'succeeded' WHERE status IN ('queued', 'running', 'pending') AND id NOT IN (
                  (SELECT id FROM {t} WHERE status = 'queued' ORDER BY id LIMIT %(queued)s)
                  UNION ALL (SELECT id FROM {t} WHERE status = 'running' ORDER BY id LIMIT %(running)s))""",
            params,
        )
        cursor.execute(
            f"""WITH live AS ({live}), n AS (SELECT count(*) AS c FROM live),
                  run AS (SELECT id, row_number() OVER (ORDER BY id) AS k FROM {t} WHERE status = 'running')
                UPDATE {t} SET agent_id = live.id, pool_id = live.pool_id, attempts = 1,
                  queued_at = now() - interval '70 seconds', dispatched_at = now() - interval '70 seconds',
                  available_at = now() - interval '70 seconds', started_at = now() - interval '60 seconds'
                FROM run, live, n WHERE {t}.id = run.id AND live.k = 1 + (run.k - 1) %% n.c""",
            params,
        )
        cursor.execute(
            f"""WITH pools AS (SELECT id, row_number() OVER (ORDER BY id) AS k FROM {p} WHERE enabled),
                  n AS (SELECT count(*) AS c FROM pools),
                  q AS (SELECT id, row_number() OVER (ORDER BY id) AS k FROM {t} WHERE status = 'queued')
                UPDATE {t} SET pool_id = pools.id, agent_id = NULL, queued_at = now(), dispatched_at = now(),
                  available_at = now(), hold_reason = ''
                FROM q, pools, n WHERE {t}.id = q.id AND pools.k = 1 + (q.k - 1) %% n.c""",
            params,
        )
        cursor.execute(
            f"UPDATE {t} SET status = 'pending', dispatched_at = NULL WHERE id IN "
            f"(SELECT id FROM {t} WHERE status = 'queued' ORDER BY id DESC LIMIT 5)"
        )
        # One attempt per started task: running ones on their agent, finished ones on any agent (the
        # finished task rows keep the copied row's timestamps: beat never reads them, and rewriting
        # a million rows would double the filling time).
        cursor.execute(f"SELECT array_agg(id ORDER BY id) FROM {g} WHERE name LIKE %s", [f"%@{AGENT_PREFIX}%"])
        every_agent = cursor.fetchone()[0]
        cursor.execute(
            f"""INSERT INTO {a} (task_id, number, agent_id, host, pid, pgid, workspace, outcome, started_at,
                  heartbeat_at, finished_at, exit_code, is_error, error, session_id, cost_usd, num_turns,
                  log_path, output_tail)
                SELECT t.id, 1,
                  CASE WHEN t.status = 'running' THEN t.agent_id
                       ELSE (%(agents)s::bigint[])[1 + abs(hashtext(t.id::text)) %% cardinality(%(agents)s::bigint[])] END,
                  'cp-host', 4242, NULL, '',
                  CASE t.status WHEN 'running' THEN 'running' WHEN 'succeeded' THEN 'succeeded'
                       WHEN 'cancelled' THEN 'cancelled' WHEN 'dead' THEN 'lost' ELSE 'failed' END,
                  CASE WHEN t.status = 'running' THEN t.started_at ELSE t.created_at + interval '2 seconds' END,
                  CASE WHEN t.status = 'running' THEN now() ELSE t.created_at + interval '62 seconds' END,
                  CASE WHEN t.status = 'running' THEN NULL ELSE t.created_at + interval '62 seconds' END,
                  CASE WHEN t.status IN ('succeeded', 'running') THEN 0 ELSE 1 END,
                  t.status IN ('failed', 'dead'), '', '', 0.0125, 3, '', ''
                FROM {t} t WHERE t.status NOT IN ('queued', 'pending')""",
            {"agents": every_agent},
        )
        for table in (t, a, g):
            cursor.execute(f"VACUUM ANALYZE {table}")


def _freshen() -> None:
    """What a running hive's heartbeats and dispatch keep fresh (untimed, before each round)."""
    from django.utils import timezone

    from agents.models import Agent
    from coordination.models import Task, TaskAttempt

    now = timezone.now()
    Agent.objects.filter(name__contains=f"@{AGENT_PREFIX}").exclude(status=Agent.Status.OFFLINE).update(
        last_heartbeat=now
    )
    TaskAttempt.objects.filter(outcome=TaskAttempt.Outcome.RUNNING).update(heartbeat_at=now)
    Task.objects.filter(status=Task.Status.QUEUED).update(dispatched_at=now)


# --- measuring -------------------------------------------------------------------------------------
def beat_jobs() -> list[tuple[str, Callable[[], object]]]:
    """Beat's frequent jobs (settings.CELERY_BEAT_SCHEDULE), as the control worker runs them."""
    from workers import tasks

    return [
        ("reconcile", tasks.reconcile_hive),
        ("session-reconcile", tasks.reconcile_sessions),
        ("monitor (health)", tasks.monitor),
        ("scale", tasks.scale_pools),
    ]


def _cycle(run: Run, rounds: int) -> dict:
    jobs = beat_jobs()
    _freshen()
    warm = {name: counted(job)[1].statements for name, job in jobs}  # one-off work: alerts raised, decisions
    seconds: dict[str, list[float]] = {name: [] for name, _ in jobs}
    statements: dict[str, int] = {}
    samples: dict[str, list[str]] = {}
    cycles: list[float] = []
    for _ in range(rounds):
        _freshen()
        total = 0.0
        for name, job in jobs:
            spent, counter = counted(job)
            seconds[name].append(spent)
            statements[name] = counter.statements
            samples[name] = counter.sample
            total += spent
        cycles.append(total)
    ms = lambda values: {"p50": round(1000 * statistics.median(values), 1), "max": round(1000 * max(values), 1)}  # noqa: E731
    result = {
        "rounds": rounds,
        "cycle_ms": ms(cycles),
        "jobs": {name: {**ms(seconds[name]), "statements": statements[name]} for name, _ in jobs},
        "warm_round_statements": warm,
    }
    for name, _ in jobs:
        run.echo(
            f"    {name}: p50 {result['jobs'][name]['p50']} ms, max {result['jobs'][name]['max']} ms, "
            f"{statements[name]} statements"
        )
    run.options.results_dir.mkdir(parents=True, exist_ok=True)
    (run.options.results_dir / "controlplane-statements.txt").write_text(
        "".join(f"# {name}\n" + "\n".join(lines) + "\n" for name, lines in samples.items())
    )
    return result


class _Consumer:
    """Stands where the Celery consumer is: the heartbeat calls it only when draining or over limits."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def cancel_task_queue(self, queue: str) -> None:
        self.calls.append(f"cancel {queue}")

    def add_task_queue(self, queue: str) -> None:
        self.calls.append(f"add {queue}")


def _heartbeats(n: int) -> dict:
    from agents.models import Agent
    from workers.agent import Heartbeat, heartbeat_interval

    agent = (
        Agent.objects.select_related("pool")
        .filter(status=Agent.Status.ONLINE, name__contains=f"@{AGENT_PREFIX}")
        .order_by("id")
        .first()
    )
    if agent is None:  # SQLite: no filled table; one agent of the bench pool
        from agents.models import AgentPool
        from bench.world import POOL
        from coordination.fleet import agent_register

        agent = agent_register(
            name=f"{POOL}@{AGENT_PREFIX}heartbeat",
            pool=AgentPool.objects.get(name=POOL),
            host="cp-host",
            pid=1,
            concurrency=2,
        )
    consumer = _Consumer()
    beat = Heartbeat(agent=agent, consumer=consumer, interval=heartbeat_interval())
    beat.beat()  # the first one samples the machine for the first time
    runs = [counted(beat.beat) for _ in range(n)]
    counts = [c.statements for _, c in runs]
    return {
        "heartbeats": n,
        "statements": {"max": max(counts), "mean": round(statistics.fmean(counts), 2)},
        "latency_ms": percentiles([1000 * s for s, _ in runs]),
        "sample": runs[-1][1].sample,
        "consumer_calls": consumer.calls,
    }


def scenario_controlplane(run: Run) -> None:
    from django.conf import settings
    from django.db import connection

    from coordination.fleet import pool_sync

    pool_sync(config=settings.HIVE_CONFIG)
    result: dict = {}
    rows, agents = run.options.controlplane_rows, run.options.controlplane_agents
    if connection.vendor != "postgresql":
        result["skipped"] = (
            f"SQLite: the beat cycle at {rows:,} task rows is measured on PostgreSQL only "
            "(set LEANVIBE_DATABASE_URL to a PostgreSQL server)"
        )
    else:
        result["fill"] = _fill(run, rows=rows, agents=agents)
        result["agents"] = agents
        run.echo(
            f"  beat's cycle at {result['fill']['rows']:,} task rows, {agents} agents: "
            f"{run.options.controlplane_rounds} rounds…"
        )
        result["cycle"] = _cycle(run, run.options.controlplane_rounds)
    run.echo(f"  {HEARTBEATS} agent heartbeats…")
    result["heartbeat"] = _heartbeats(HEARTBEATS)
    run.results["controlplane"] = result
    goal = f"beat cycle (reconcile, health, scaling) at {rows:,} tasks, {agents} agents"
    if result.get("skipped"):
        run.goals.append(Goal(goal, "< 1 s", None, "skipped (SQLite)", None))
    else:
        cycle = result["cycle"]["cycle_ms"]
        run.goals.append(
            Goal(
                goal,
                "< 1 s",
                cycle["max"],
                f"p50 {cycle['p50']:.0f} / max {cycle['max']:.0f} ms",
                cycle["max"] < 1000 * CYCLE_GOAL_S,
            )
        )
    per = result["heartbeat"]["statements"]["max"]
    run.goals.append(Goal("SQL statements per agent heartbeat", "1", per, str(per), per == 1))


def rows(results: dict) -> list[tuple[str, str]]:
    """The report's lines for scenario 9."""
    out: list[tuple[str, str]] = []
    if results.get("skipped"):
        out.append(("9. beat cycle at 1M task rows", "skipped (SQLite)"))
    else:
        cycle = results["cycle"]
        out.append(
            (
                f"9. beat cycle at {results['fill']['rows']:,} task rows, {results['agents']} agents",
                f"p50 {cycle['cycle_ms']['p50']:.0f} / max {cycle['cycle_ms']['max']:.0f} ms",
            )
        )
        for name, job in cycle["jobs"].items():
            out.append(
                (f"9. {name}", f"p50 {job['p50']:.0f} / max {job['max']:.0f} ms, {job['statements']} statements")
            )
    beat = results["heartbeat"]
    out.append(
        (
            "9. agent heartbeat",
            f"{beat['statements']['max']} statements, p50 {beat['latency_ms']['p50']:.1f} ms",
        )
    )
    return out
