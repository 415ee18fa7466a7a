"""The pool worker's side of a task, in one process: `hive.execute_task` (flow control, claim,
workspace, program start and reap, finish, events) on tasks running `true`, CPU per task and a
profile.

    .venv/bin/python -m bench.worker_profile [-n 300] [--profile]

Runs in a bench world of its own (bench/world.py) and calls the Celery task in this process with
`apply()`, as a worker would deliver it (its hostname and routing key), after submitting each task
untimed. What it leaves out from a real worker: Celery's consumer and prefork pool, and the event
announcer's thread, which runs beside (its CPU is counted: every thread of this process). CPU of
this process and of the programs it reaped is printed beside wall time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import socket
import sys
import time


def cpu() -> tuple[float, float]:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="cProfile the tasks' thread; print the top 50")
    args = parser.parse_args(argv)

    from bench.world import CAPABILITY, POOL, migrated_world

    with migrated_world() as world:
        import redis

        from coordination.models import Task
        from coordination.services import task_submit
        from workers.tasks import execute_task

        node, queue = f"profile@{socket.gethostname()}", f"hive.{POOL}"
        broker = redis.Redis.from_url(world.redis_url)

        def submit() -> str:
            return str(task_submit(capabilities=[CAPABILITY], command=["true"], max_attempts=1).id)

        def deliver(task_id: str) -> None:
            execute_task.apply(args=[task_id], hostname=node, routing_key=queue)

        # submits also publish each task's message, which no worker consumes here: dropped as they come
        for _ in range(20):  # warm: the agent row, connections, caches, compiled and prepared statements
            deliver(submit())
        profiler = cProfile.Profile(time.thread_time) if args.profile else None
        spent, started = 0.0, cpu()
        wall = 0.0
        for _ in range(args.n):
            task_id = submit()
            before, clock = cpu(), time.perf_counter()
            if profiler:
                profiler.enable()
            deliver(task_id)
            if profiler:
                profiler.disable()
            after = cpu()
            wall += time.perf_counter() - clock
            spent += (after[0] - before[0]) + (after[1] - before[1])
            broker.delete(queue)
        children = cpu()[1] - started[1]
        done = Task.objects.filter(pool__name=POOL, status=Task.Status.SUCCEEDED).count()
        print(
            f"{args.n} tasks ({done} succeeded in all): {1000 * spent / args.n:.2f} ms CPU each "
            f"(programs {1000 * children / args.n:.2f}), {1000 * wall / args.n:.2f} ms wall each"
        )
        if profiler:
            stats = pstats.Stats(profiler, stream=sys.stdout)
            stats.sort_stats("cumulative").print_stats(50)
    return 0


if __name__ == "__main__":
    sys.exit(main())
