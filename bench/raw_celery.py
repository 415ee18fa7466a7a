"""The peer of the hive in `hive bench`: a tiny Celery app with no Django, no database, no hive.

It runs on the same Redis as the hive and with the broker settings the hive relies on for its
delivery guarantees (late acks, prefetch 1, the same priority lists), so the difference measured is
what the hive adds: routing, claims, attempts, workspaces, events. Each task records that it ended
in Redis (a counter and the latest end time), because a result backend would cost the peer more
than the hive pays for its own bookkeeping.

Started by the bench as `celery -A raw_celery worker -Q bench.raw ...` with this directory on
PYTHONPATH (so that nothing of the hive is imported), HIVE_BENCH_BROKER_URL (Celery's form) and
HIVE_BENCH_REDIS_URL (redis-py's form) in its environment.
"""

from __future__ import annotations

import os
import subprocess
import time

import redis
from celery import Celery

QUEUE = "bench.raw"
DONE_COUNTER = "bench:raw:done"
LAST_END = "bench:raw:last-end"
PRIORITY = 6  # the step a normal-priority hive task is sent with

app = Celery("hive_bench_raw", set_as_current=False, fixups=[])  # fixups=[]: never Django
app.conf.update(
    broker_url=os.environ.get("HIVE_BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"),
    broker_connection_retry_on_startup=True,
    broker_transport_options={"priority_steps": [0, 3, 6, 9], "sep": ":", "queue_order_strategy": "priority"},
    result_backend=None,
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
)

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ.get("HIVE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    return _client


def record_end() -> None:
    """Count this task as ended and keep the latest end time (ZADD GT keeps the maximum)."""
    pipe = _redis().pipeline(transaction=False)
    pipe.incr(DONE_COUNTER)
    pipe.zadd(LAST_END, {"t": time.time()}, gt=True)
    pipe.execute()


@app.task(name="bench.spawn_true")
def spawn_true() -> None:
    """Pays the same process spawn as a hive task running `true`."""
    subprocess.run(["true"], check=True)
    record_end()


@app.task(name="bench.noop")
def noop() -> None:
    record_end()
