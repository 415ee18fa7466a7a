"""`task_submit` alone, from one process: CPU per call, SQL statements per call, and a profile.

    .venv/bin/python -m bench.submit_profile [-n 500] [--profile]

Runs in a bench world of its own (bench/world.py: a temporary SQLite and embedded Redis, or a
scratch database on LEANVIBE_DATABASE_URL's PostgreSQL server) and submits to the front-door pool,
which no process serves, so only the submitting side is measured. CPU time (this process, every
thread) is what counts on a shared machine; wall time is printed beside it.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import sys
import time


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="cProfile the submits; print the top 40")
    args = parser.parse_args(argv)

    from bench.world import FRONT_CAPABILITY, migrated_world

    with migrated_world():
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from coordination.services import task_submit

        def submit() -> None:
            task_submit(capabilities=[FRONT_CAPABILITY], command=["true"], max_attempts=1)

        for _ in range(20):  # warm: connections, imports, caches
            submit()
        with CaptureQueriesContext(connection) as queries:
            submit()
        print(f"{connection.vendor}: {len(queries)} SQL statements per submit")
        for q in queries.captured_queries:
            print("   ", q["sql"][:150])
        profiler = cProfile.Profile(time.thread_time) if args.profile else None  # CPU of this thread
        started, cpu_started = time.perf_counter(), cpu()
        if profiler:
            profiler.enable()
        for _ in range(args.n):
            submit()
        if profiler:
            profiler.disable()
        wall, used = time.perf_counter() - started, cpu() - cpu_started
        print(
            f"{args.n} submits: {1000 * used / args.n:.2f} ms CPU each, {1000 * wall / args.n:.2f} ms wall each "
            f"({args.n / wall:.0f}/s wall, {args.n / used:.0f}/s per CPU second)"
        )
        if profiler:
            stats = pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative")
            stats.print_stats(40)
            stats.sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
