"""Faults injected into a running batch: nothing accepted is lost, and every effect happens once.

Each scenario runs its own Redis server and its own worker processes (tests/faults/conftest.py),
submits a bounded batch of tasks that each append one line to a marker file, injects its fault,
then checks the invariants (check_batch) and prints one summary line, shown in the "fault suite"
section at the end of the run.

A fault is injected while a task's program is asleep (its attempt started a moment ago), never in
the instant between its effect and the recording of its end: no at-least-once system can tell an
effect that happened there from one that did not, and the point here is the hive's own
bookkeeping.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.conftest import wait_for
from tests.faults.conftest import (
    Outcome,
    check_batch,
    finished_count,
    fresh_running_attempt,
    report,
    settle,
)

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

SLEEP = 0.5  # each task's program sleeps this long before its effect


def test_kill_9_of_a_worker_main_process_mid_batch_loses_nothing(fault_hive, markers):
    from agents.models import Agent

    procs = fault_hive.workers("backend-a", "backend-b")
    fault_hive.control()
    ids = fault_hive.submit(20, markers, sleep=SLEEP)
    wait_for(
        lambda: fresh_running_attempt(agent_name="backend-a@test", ids=ids),
        timeout=60,
        interval=0.02,
        what="a task to start on backend-a",
    )

    os.kill(procs["backend-a"].pid, signal.SIGKILL)  # the main process alone; its pool child is orphaned

    wait_for(lambda: Agent.objects.get(name="backend-a@test").status == "offline", timeout=30, what="backend-a offline")
    settle(ids)
    outcome = check_batch(ids, markers)
    assert outcome.succeeded == 20
    report("kill -9 of a worker's main process", outcome)


def test_kill_9_of_a_pool_child_mid_batch_loses_nothing(fault_hive, markers):
    fault_hive.workers("backend-a", concurrency=2)
    ids = fault_hive.submit(20, markers, sleep=SLEEP)
    victim = wait_for(lambda: fresh_running_attempt(ids=ids), timeout=60, interval=0.02, what="a task to start")

    os.kill(victim.pid, signal.SIGKILL)  # the prefork child running the attempt

    settle(ids)
    outcome = check_batch(ids, markers)
    assert outcome.succeeded == 20
    outcomes = list(victim.task.attempt_set.order_by("number").values_list("outcome", flat=True))
    assert outcomes == ["lost", "succeeded"], outcomes
    report("kill -9 of a pool child", outcome)


def test_sigterm_of_a_worker_mid_batch_finishes_its_task_and_the_rest_run_elsewhere(fault_hive, markers):
    from agents.models import Agent
    from coordination.models import TaskAttempt

    procs = fault_hive.workers("backend-a", "backend-b")
    ids = fault_hive.submit(20, markers, sleep=SLEEP)
    running = wait_for(
        lambda: fresh_running_attempt(agent_name="backend-a@test", ids=ids),
        timeout=60,
        interval=0.02,
        what="a task to start on backend-a",
    )

    os.kill(procs["backend-a"].pid, signal.SIGTERM)  # warm shutdown

    procs["backend-a"].wait(timeout=60)
    assert TaskAttempt.objects.get(id=running.id).outcome == "succeeded", "warm shutdown must finish its task"
    assert Agent.objects.get(name="backend-a@test").status == "offline"
    settle(ids)
    outcome = check_batch(ids, markers)
    assert outcome.succeeded == 20
    assert TaskAttempt.objects.filter(task_id__in=ids).exclude(outcome="succeeded").count() == 0
    report("SIGTERM of a worker", outcome)


def test_redis_restarted_without_persistence_mid_batch_every_task_still_runs_once(fault_hive, markers):
    from coordination.models import Event

    fault_hive.workers("backend-a")
    fault_hive.control()
    ids = fault_hive.submit(20, markers, sleep=0.2)
    wait_for(lambda: finished_count(ids) >= 3, timeout=60, what="the batch to get going")
    assert fault_hive.redis.queued_task_ids(), "messages must still be waiting when Redis goes"

    fault_hive.redis.kill()  # everything in Redis is gone: queued messages and reservations
    fault_hive.redis.start()

    settle(ids)
    outcome = check_batch(ids, markers)
    assert outcome.succeeded == 20
    assert Event.objects.filter(type="tasks.resent").exists(), "the reconciler must have resent lost messages"
    report("Redis restarted without persistence", outcome)


def test_tasks_submitted_while_redis_is_unreachable_are_stored_and_run_when_it_returns(fault_hive, markers):
    from coordination.models import Task

    fault_hive.workers("backend-a")
    fault_hive.control()
    fault_hive.redis.kill()

    ids = fault_hive.submit(10, markers, sleep=0.1)  # today's contract: accepted, stored, sent later

    assert "the reconciler will resend it" in fault_hive.submit_log
    assert Task.objects.filter(id__in=ids, status="queued").count() == 10
    fault_hive.redis.start()
    settle(ids)
    outcome = check_batch(ids, markers)
    assert outcome.succeeded == 10
    report("Redis unreachable while submitting", outcome)


def test_poison_task_that_kills_its_worker_process_ends_dead_after_max_attempts(fault_hive, markers):
    from coordination.models import Task

    fault_hive.workers("backend-a")
    ids = fault_hive.submit(8, markers, sleep=0.1)
    # The program's parent is the pool child that runs the attempt: this kills it, every time.
    poison_id = fault_hive.submit(
        1, markers, first=100, max_attempts=2, command=json.dumps(["sh", "-c", "kill -9 $PPID; sleep 5"])
    )[0]

    settle([*ids, poison_id])
    poison = Task.objects.get(id=poison_id)
    assert poison.status == Task.Status.DEAD
    assert list(poison.attempt_set.values_list("outcome", flat=True)) == ["lost", "lost"]
    time.sleep(3)  # redelivered messages and retries must not start it again
    poison.refresh_from_db()
    assert poison.status == Task.Status.DEAD and poison.attempts == 2
    outcome = check_batch(ids, markers)
    assert outcome.succeeded == 8
    report("poison task", Outcome(outcome.accepted + 1, outcome.succeeded, outcome.dead + 1, 0, outcome.duplicates))


def test_duplicate_messages_and_two_beats_at_once_give_one_effect_per_task(fault_hive, markers):
    from coordination.models import Event, TaskAttempt

    lost_messages = fault_hive.submit(10, markers, sleep=0.1)
    fault_hive.redis.client().flushdb()  # these ten tasks' messages are lost: only a resend runs them
    doubled = fault_hive.submit(10, markers, first=10, sleep=0.1, duplicate=True)  # two messages each
    assert len(fault_hive.redis.queued_task_ids()) == 20
    ids = lost_messages + doubled

    fault_hive.workers("backend-a", concurrency=2)
    fault_hive.control()
    fault_hive.beat("beat-2")  # a second beat: every reconciliation runs twice

    settle(ids)
    outcome = check_batch(ids, markers)
    assert outcome.succeeded == 20
    assert TaskAttempt.objects.filter(task_id__in=ids).count() == 20, "every task must run exactly once"
    assert Event.objects.filter(type="tasks.resent").exists()
    report("duplicate messages and two beats", outcome)


def test_postgresql_restarted_mid_batch_every_accepted_task_still_runs_once(throwaway_postgres, fault_hive, markers):
    """On a cluster of its own, whatever the database under test is: workers, beat and the submitter
    use it (LEANVIBE_DATABASE_URL), and the test reads it with plain SQL."""
    pg = throwaway_postgres
    fault_hive.extra_env["LEANVIBE_DATABASE_URL"] = pg.url
    fault_hive.worker("backend", name="backend-a", wait=False)
    fault_hive.control()
    pg.wait(
        lambda: pg.query("SELECT 1 FROM agents_agent WHERE name = 'backend-a@test' AND status = 'online'"),
        timeout=90,
        what="backend-a online",
    )
    ids = fault_hive.submit(20, markers, sleep=0.3)
    pg.wait(lambda: pg.finished(ids) >= 3 and pg.fresh_attempt(ids), timeout=60, what="a task to start")

    pg.restart(down_for=1.5)  # the running program ends while the database is down

    pg.wait(lambda: pg.finished(ids) == len(ids), timeout=90, what="all accepted tasks to be terminal")
    outcome = check_batch(ids, markers, pg.snapshot(ids))
    assert outcome.succeeded == 20
    report("PostgreSQL restarted", outcome)


def test_kill_9_of_a_worker_holding_a_delayed_retry_the_task_still_runs(fault_hive, markers):
    """A retry waits out its backoff inside the worker that reserved its message; Redis gives a
    dead worker's reservation back only after the visibility timeout (over an hour), so the
    reconciler must not count it as held."""
    from coordination.models import Task

    procs = fault_hive.workers("backend-a")
    fault_hive.control()
    # Three failures, so the third retry waits 2-4 s in the worker: a window wide enough to see it
    # reserved even when a loaded machine makes the submitting process slow to return.
    count = markers / "tries"
    fails_thrice = [
        "sh",
        "-c",
        f'echo x >> {count}; [ "$(wc -l < {count})" -ge 4 ] || exit 1; echo "$HIVE_ATTEMPT" >> {markers / "0"}',
    ]
    ids = fault_hive.submit(1, markers, command=json.dumps(fails_thrice), max_attempts=5)
    client = fault_hive.redis.client()

    def retry_reserved() -> bool:
        task = Task.objects.get(id=ids[0])
        reserved = b"".join(client.hvals("unacked"))
        return task.status == "queued" and task.attempts == 3 and ids[0].encode() in reserved

    wait_for(retry_reserved, timeout=30, interval=0.02, what="the retry's message to be reserved by backend-a")

    os.killpg(procs["backend-a"].pid, signal.SIGKILL)  # the worker and its pool child, with the reservation
    fault_hive.worker("backend", name="backend-b")

    settle(ids, timeout=60)
    outcome = check_batch(ids, markers)
    assert outcome.succeeded == 1
    report("kill -9 of a worker holding a delayed retry", outcome)
