"""Coordination latency over one session: a DAG of `true` steps, a dependency's end to its
dependents queued (SessionStep.latency, what agent_hive_coordination_latency_seconds observes).

    python -m bench.session_dag [--steps 200] [--shape chain|layers] [--width 10] [--concurrency 2]

`chain`: each step waits for the one before (199 measured hand-offs, one at a time). `layers`:
steps in layers of --width, each waiting for every step of the layer before (hand-offs that
race: the last dependency of a layer to commit queues the next layer). Runs in a world of its own
(bench/world.py): a temporary SQLite database, or a scratch PostgreSQL database when
LEANVIBE_DATABASE_URL names one, an embedded Redis unless LEANVIBE_REDIS_URL is set, one pool
worker. Prints p50, p90, p99 and max; exit 1 when p99 misses --goal-ms.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time

from bench.world import CAPABILITY, POOL, BenchError, celery_worker_argv, wait_until, world_close, world_open


def dag(steps: int, shape: str, width: int) -> dict:
    def step(i: int, deps: list[int]) -> dict:
        return {
            "name": f"s{i}",
            "command": ["true"],
            "capabilities": [CAPABILITY],
            "max_attempts": 1,
            "depends_on": [f"s{d}" for d in deps],
        }

    if shape == "chain":
        return {"name": f"chain of {steps}", "steps": [step(i, [i - 1] if i else []) for i in range(steps)]}
    layered = []
    for i in range(steps):
        layer = i // width
        layered.append(step(i, list(range((layer - 1) * width, min(layer * width, steps))) if layer else []))
    return {"name": f"{steps} steps in layers of {width}", "steps": layered}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--shape", choices=["chain", "layers"], default="chain")
    parser.add_argument("--width", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--goal-ms", type=float, default=100.0)
    args = parser.parse_args()

    world = world_open(concurrency=args.concurrency)
    limits = {
        "LEANVIBE_AGENT_COORDINATION_MAX_PARTICIPANTS": str(args.steps),
        "LEANVIBE_AGENT_COORDINATION_SESSION_TIMEOUT": "3600",
    }
    os.environ.update(limits)
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import close_old_connections

        from agents.models import Agent
        from coordination.fleet import pool_sync
        from coordination.models import CoordinationSession
        from coordination.sessions import session_create

        call_command("migrate", interactive=False, verbosity=0)
        pool_sync(config=settings.HIVE_CONFIG)
        node = f"{POOL}@{socket.gethostname()}"
        worker = world.spawn(
            "worker",
            celery_worker_argv("hive_project", f"hive.{POOL}", node, args.concurrency),
            env=world.child_env(**limits),
        )

        def online() -> bool:
            close_old_connections()
            if worker.poll() is not None:
                raise BenchError(f"the worker exited:\n{world.log_tail(worker)}")
            return Agent.objects.filter(name=node, status="online", pid=worker.pid).exists()

        wait_until(online, timeout=120, interval=0.2, what="the pool worker to come online")
        started = time.monotonic()
        session = session_create(plan=dag(args.steps, args.shape, args.width))

        def ended() -> bool:
            close_old_connections()
            session.refresh_from_db()
            return not session.is_active

        wait_until(ended, timeout=1800, interval=0.2, what="the session to end")
        wall = time.monotonic() - started
        latencies = [s.latency * 1000 for s in session.steps.exclude(latency=None)]
        database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        print(
            f"session {session.id} {session.status} in {wall:.1f}s: {args.steps} steps ({args.shape}), "
            f"{database}, concurrency {args.concurrency}"
        )
        if session.status != CoordinationSession.Status.SUCCEEDED or not latencies:
            print(f"no measurement: {session.reason}")
            return 1
        p99 = percentile(latencies, 0.99)
        print(
            f"coordination latency over {len(latencies)} hand-offs: p50 {statistics.median(latencies):.1f} ms, "
            f"p90 {percentile(latencies, 0.90):.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms "
            f"(goal p99 < {args.goal_ms:g} ms: {'met' if p99 < args.goal_ms else 'missed'})"
        )
        return 0 if p99 < args.goal_ms else 1
    except BenchError as exc:
        world.keep = True
        print(f"bench failed: {exc} (logs in {world.var / 'logs'})", file=sys.stderr)
        return 1
    finally:
        world_close(world)


if __name__ == "__main__":
    sys.exit(main())
