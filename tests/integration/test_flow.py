"""Flow control on the real Redis: a semaphore across processes, leases that lapse with their
holder, starts per minute, pause and backoff, and failing open when Redis is away."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from agents.models import AgentPool
from coordination import flow
from coordination.dispatch import redis_client, task_ids_in_broker
from coordination.models import Event, Task
from coordination.services import task_submit
from tests.conftest import ROOT, purge_broker

pytestmark = pytest.mark.integration


@pytest.fixture
def pool_name() -> str:
    """A pool name of this test's own, and its Redis keys removed afterwards."""
    name = f"flow-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis_client()
    keys = [*client.scan_iter(f"hive:flow:{name}:*"), *client.scan_iter(f"test:{name}:*")]
    if keys:
        client.delete(*keys)


def wait_for(predicate, *, timeout: float, what: str) -> None:
    """Poll `predicate` (Redis only, no database) until true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def limited(name: str, **limits) -> AgentPool:
    return AgentPool(name=name, **limits)


def contender(*args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.flow_contender", *map(str, args)],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# --- max_concurrent ---------------------------------------------------------------------------------


def test_admit_over_max_concurrent_refused_until_release(pool_name):
    pool = limited(pool_name, max_concurrent=2)
    first, second = flow.admit(pool=pool, task_id="a"), flow.admit(pool=pool, task_id="b")

    third = flow.admit(pool=pool, task_id="c")
    flow.release(pool=pool_name, admission=first)
    fourth = flow.admit(pool=pool, task_id="c")

    assert first.ok and second.ok and first.lease != second.lease
    assert (third.ok, third.reason) == (False, "max_concurrent")
    assert 0.2 <= third.retry_after <= flow.POLL_MAX * 1.25
    assert fourth.ok
    assert flow.pool_running(pool_name) == 2


def test_semaphore_holds_across_two_processes(pool_name):
    procs = [contender("contend", pool_name, 3, 4, 6, 0.02) for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]

    client = redis_client()
    seen = [int(v) for v in client.lrange(f"test:{pool_name}:seen", 0, -1)]
    assert len(seen) == 2 * 4 * 6  # every round of every thread of both processes ran
    assert max(seen) == 3  # the limit was reached, and never passed
    assert all(int(client.get(f"test:{pool_name}:admitted:{p.pid}")) == 24 for p in procs)
    assert flow.pool_running(pool_name) == 0  # all released


def test_leases_of_killed_process_lapse(pool_name):
    holder = contender("hold", pool_name, 2, 2)
    assert holder.stdout.readline().strip() == "held", holder.stderr.read()
    held_at = time.monotonic()
    pool = limited(pool_name, max_concurrent=2)
    try:
        assert flow.admit(pool=pool, task_id="x").reason == "max_concurrent"
    finally:
        holder.kill()
        holder.wait()

    assert flow.admit(pool=pool, task_id="x").reason == "max_concurrent"  # death releases nothing by itself
    wait_for(lambda: flow.admit(pool=pool, task_id="x").ok, timeout=flow.lease_ttl() + 5, what="leases to lapse")
    assert time.monotonic() - held_at >= flow.lease_ttl() - 0.5


def test_lease_refreshed_by_heartbeat_outlives_its_ttl(pool_name):
    pool = limited(pool_name, max_concurrent=1)
    running = flow.admit(pool=pool, task_id="long")
    deadline = time.monotonic() + flow.lease_ttl() + 1.5

    while time.monotonic() < deadline:
        assert flow.lease_refresh(pool=pool_name, lease=running.lease)
        assert not flow.admit(pool=pool, task_id="other").ok
        time.sleep(0.5)

    wait_for(lambda: flow.admit(pool=pool, task_id="other").ok, timeout=flow.lease_ttl() + 3, what="lapse")
    assert not flow.lease_refresh(pool=pool_name, lease=running.lease)  # lapsed: taken again, and says so


# --- max_starts_per_minute ----------------------------------------------------------------------


def test_starts_per_minute_refused_then_refunded(pool_name):
    pool = limited(pool_name, max_starts_per_minute=3)
    admitted = [flow.admit(pool=pool, task_id=str(n)) for n in range(3)]
    for admission in admitted:
        flow.release(pool=pool_name, admission=admission)  # ending a task gives no start back

    over = flow.admit(pool=pool, task_id="4")
    flow.release(pool=pool_name, admission=admitted[0], started=False)  # that claim found the task taken
    again = flow.admit(pool=pool, task_id="4")

    assert all(a.ok for a in admitted)
    assert (over.ok, over.reason) == (False, "max_starts_per_minute")
    assert 55 <= over.retry_after <= 60 * 1.25
    assert again.ok


def test_no_limits_admits_and_holds_nothing(pool_name):
    admission = flow.admit(pool=limited(pool_name), task_id="t")

    assert (admission.ok, admission.lease) == (True, None)
    assert not list(redis_client().scan_iter(f"hive:flow:{pool_name}:*"))


# --- pause ----------------------------------------------------------------------------------------


def test_pause_backs_off_doubling_to_its_cap(pool_name):
    def report() -> flow.Pause:
        pause = flow.pool_pause(pool=pool_name, backoff_initial=0.4, backoff_max=1.0)
        assert pause is not None
        return pause

    first = report()
    inside = report()  # from an attempt that started before the pause: no growth
    refused = flow.admit(pool=limited(pool_name), task_id="t")
    wait_for(lambda: flow.pool_paused_until(pool_name) is None, timeout=3, what="pause to end")
    second = report()
    wait_for(lambda: flow.pool_paused_until(pool_name) is None, timeout=3, what="pause to end")
    third = report()

    assert (first.streak, round(first.seconds, 1), first.extended) == (1, 0.4, True)
    assert (inside.streak, inside.extended, inside.until) == (1, False, first.until)
    assert (refused.ok, refused.reason) == (False, "paused") and 0.2 <= refused.retry_after <= 0.5
    assert (second.streak, round(second.seconds, 1)) == (2, 0.8)
    assert (third.streak, round(third.seconds, 1)) == (3, 1.0)  # capped at backoff_max


def test_pause_honours_reset_time_and_resume(pool_name):
    reset = time.time() + 30

    pause = flow.pool_pause(pool=pool_name, backoff_initial=1, backoff_max=2, reset_at=reset)

    assert pause is not None and abs(pause.until.timestamp() - reset) < 0.01
    assert flow.pool_paused_until(pool_name) == pause.until
    assert 28 <= flow.admit(pool=limited(pool_name), task_id="t").retry_after <= 30 * 1.25
    flow.pool_resume(pool=pool_name)
    assert flow.pool_paused_until(pool_name) is None
    assert flow.admit(pool=limited(pool_name), task_id="t").ok


def test_clean_run_resets_backoff(pool_name):
    flow.pool_pause(pool=pool_name, backoff_initial=0.2, backoff_max=5)
    wait_for(lambda: flow.pool_paused_until(pool_name) is None, timeout=3, what="pause to end")

    flow.rate_limit_cleared(pool=pool_name)
    pause = flow.pool_pause(pool=pool_name, backoff_initial=0.2, backoff_max=5)

    assert pause is not None and pause.streak == 1


def test_pool_rate_limited_publishes_one_event_per_pause(pool_name, db):
    pool = AgentPool.objects.create(name=pool_name, runner={"rate_limit": {"backoff_initial": 20, "backoff_max": 60}})
    before = REGISTRY.get_sample_value("hive_pool_rate_limited_total", {"pool": pool_name}) or 0

    pause = flow.pool_rate_limited(pool=pool, reason="claude reported API status 429", task_id="abc")
    flow.pool_rate_limited(pool=pool, reason="claude reported API status 429")

    assert pause is not None and round(pause.seconds) == 20
    [event] = Event.objects.filter(type="pool.paused", pool=pool)
    assert event.payload["streak"] == 1 and event.payload["task_id"] == "abc"
    assert event.payload["until"] == pause.until.isoformat()
    assert REGISTRY.get_sample_value("hive_pool_rate_limited_total", {"pool": pool_name}) == before + 2


# --- defer: the task stays queued, no attempt spent ---------------------------------------------------


def test_task_defer_keeps_task_queued_and_resends(pools, django_capture_on_commit_callbacks):
    purge_broker()
    task = task_submit(capabilities=["python"], command=["true"])
    refused = flow.Admission(ok=False, retry_after=30.0, reason="max_concurrent")

    with django_capture_on_commit_callbacks(execute=True):
        assert flow.task_defer(task_id=str(task.id), admission=refused)

    task.refresh_from_db()
    assert (task.status, task.attempts) == (Task.Status.QUEUED, 0)
    assert task.available_at - timezone.now() > timedelta(seconds=28)
    assert str(task.id) in task_ids_in_broker(["hive.backend"])
    assert REGISTRY.get_sample_value("hive_flow_deferred_total", {"pool": "backend", "reason": "max_concurrent"})


def test_task_defer_of_finished_task_does_nothing(pools):
    task = task_submit(capabilities=["python"], command=["true"])
    Task.objects.filter(id=task.id).update(status=Task.Status.CANCELLED)

    assert not flow.task_defer(task_id=str(task.id), admission=flow.Admission(ok=False, retry_after=5, reason="x"))


# --- Redis away -----------------------------------------------------------------------------------


def test_redis_away_fails_open(settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    pool_name = "away"
    pool = limited(pool_name, max_concurrent=1, max_starts_per_minute=1)

    admissions = [flow.admit(pool=pool, task_id=str(n)) for n in range(3)]

    assert all(a.ok and a.reason == "unavailable" and a.lease is None for a in admissions)
    assert flow.pool_paused_until(pool_name) is None
    assert flow.pool_pause(pool=pool_name, backoff_initial=1, backoff_max=2) is None
    assert flow.lease_refresh(pool=pool_name, lease="x")
    flow.release(pool=pool_name, admission=flow.Admission(ok=True, lease="x"))
    assert "flow control unavailable" in caplog.text and "not limiting" in caplog.text
    assert admissions[0].describe() == "flow control is unavailable (Redis); admitted without limits"


def test_paused_until_is_an_aware_datetime(pool_name):
    flow.pool_pause(pool=pool_name, backoff_initial=5, backoff_max=5)

    until = flow.pool_paused_until(pool_name)

    assert until is not None and until.tzinfo is UTC
    assert timedelta(seconds=4) < until - datetime.now(UTC) <= timedelta(seconds=5)
