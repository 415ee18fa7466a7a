"""A stand-in for a pool worker in the flow-control tests: a real process that takes flow leases.

python -m tests.flow_contender contend POOL MAX_CONCURRENT THREADS ROUNDS HOLD_SECONDS
    each thread admits, marks itself inside (a Redis counter), holds, leaves, releases;
    every value the counter reached is pushed to test:<pool>:seen for the test to read.
python -m tests.flow_contender hold POOL MAX_CONCURRENT N
    takes N leases, prints "held", and sleeps until killed (it never releases).
"""

from __future__ import annotations

import os
import sys
import threading
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")
django.setup()

from agents.models import AgentPool  # noqa: E402
from coordination import flow  # noqa: E402
from coordination.dispatch import redis_client  # noqa: E402


def contend(pool_name: str, max_concurrent: int, threads: int, rounds: int, hold: float) -> None:
    pool = AgentPool(name=pool_name, max_concurrent=max_concurrent)
    client = redis_client()
    inside, seen = f"test:{pool_name}:inside", f"test:{pool_name}:seen"

    def worker(index: int) -> None:
        done = 0
        while done < rounds:
            admission = flow.admit(pool=pool, task_id=f"{os.getpid()}-{index}-{done}")
            if not admission.ok:
                time.sleep(0.005)
                continue
            client.rpush(seen, client.incr(inside))
            time.sleep(hold)
            client.decr(inside)
            flow.release(pool=pool_name, admission=admission)
            client.incr(f"test:{pool_name}:admitted:{os.getpid()}")
            done += 1

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()


def hold(pool_name: str, max_concurrent: int, count: int) -> None:
    pool = AgentPool(name=pool_name, max_concurrent=max_concurrent)
    for n in range(count):
        admission = flow.admit(pool=pool, task_id=f"held-{n}")
        if not admission.ok:
            sys.exit(f"could not take lease {n}: {admission.reason}")
    print("held", flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "contend":
        contend(args[0], int(args[1]), int(args[2]), int(args[3]), float(args[4]))
    else:
        hold(args[0], int(args[1]), int(args[2]))
