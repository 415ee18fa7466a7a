"""SQL statements per task in a bench worker: loaded with `celery worker -I sql_count` (the peers)
or `-I bench.sql_count` (the hive), never by the hive itself.

Each worker process counts the statements its tasks send through Django's cursors (an
`execute_wrapper` on every connection, installed when a task starts), from `task_prerun` to
`task_postrun`: the task's body and, for the django-celery-results peer, the storing of its
result. After each task it adds its count to a Redis hash (one pipelined HINCRBY pair, a small
cost the bench pays on both sides alike). What is counted: every statement Django executes,
with SQLite's `BEGIN IMMEDIATE` and savepoints; not COMMIT (the driver's commit(), no cursor),
nor what other threads of the worker send (agent heartbeats), nor what happens between tasks.
"""

from __future__ import annotations

import os

import redis
from celery.signals import task_postrun, task_prerun

KEY = "bench:sql"
# With HIVE_BENCH_SQL_SAMPLE=<path>, each worker process writes the statements of its third task there
# (the first ones also pay one-time work: the agent's row, caches).
SAMPLE_TASK = 3

_count = 0
_tasks = 0
_statements: list[str] = []
_client: redis.Redis | None = None


def _counter(execute, sql, params, many, context):
    global _count
    _count += 1
    if _tasks == SAMPLE_TASK - 1 and os.environ.get("HIVE_BENCH_SQL_SAMPLE"):
        _statements.append(" ".join(str(sql).split())[:160])
    return execute(sql, params, many, context)


@task_prerun.connect
def _start(**_: object) -> None:
    global _count
    from django.db import connections

    for connection in connections.all():
        if _counter not in connection.execute_wrappers:
            connection.execute_wrappers.append(_counter)
    _count = 0


@task_postrun.connect
def _record(**_: object) -> None:
    global _client, _tasks
    _tasks += 1
    sample = os.environ.get("HIVE_BENCH_SQL_SAMPLE")
    if sample and _tasks == SAMPLE_TASK:
        with open(sample, "a") as out:
            out.write(f"# process {os.getpid()}: {_count} statements in one task\n" + "\n".join(_statements) + "\n")
    if _client is None:
        _client = redis.Redis.from_url(os.environ.get("HIVE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    pipe = _client.pipeline(transaction=False)
    pipe.hincrby(KEY, "statements", _count)
    pipe.hincrby(KEY, "tasks", 1)
    pipe.execute()


def read_and_reset(client: redis.Redis) -> tuple[int, int]:
    """(statements, tasks) recorded since the last reset; clears them."""
    pipe = client.pipeline()
    pipe.hmget(KEY, "statements", "tasks")
    pipe.delete(KEY)
    (statements, tasks), _ = pipe.execute()
    return int(statements or 0), int(tasks or 0)
