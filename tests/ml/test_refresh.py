"""The pool figures a predictive decision uses: how old they may be, what makes them stale, and the
refresher that reads them off the submit path (ml.predict.PoolStates)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import Agent
from coordination.models import Task
from ml import predict
from ml.predict import PoolStates
from tests.conftest import wait_for
from tests.ml.test_predict import active_task

pytestmark = pytest.mark.django_db


def test_a_change_of_load_or_capacity_is_seen_once_the_figures_are_max_age_old(ml_pools):
    now = [0.0]
    states = PoolStates(max_age=1.0, clock=lambda: now[0], refresh=False)
    fast = ml_pools["fast"]  # 2 agents × concurrency 2
    assert states.get([fast])[fast.id].capacity == 4

    active_task(fast, status=Task.Status.RUNNING)
    Agent.objects.filter(name="fast-0@synthetic").update(status=Agent.Status.OFFLINE)
    now[0] = 0.9
    with CaptureQueriesContext(connection) as queries:
        cached = states.get([fast])[fast.id]
    assert (cached.running, cached.capacity, len(queries)) == (0, 4, 0)  # within the bound: as read

    now[0] = 1.0
    fresh = states.get([fast])[fast.id]
    assert (fresh.running, fresh.capacity) == (1, 2)


def test_a_refresh_puts_new_figures_in_place_and_the_decision_reads_nothing(ml_pools):
    now = [0.0]
    states = PoolStates(max_age=1.0, clock=lambda: now[0], refresh=False)
    fast, slow = ml_pools["fast"], ml_pools["slow"]
    states.get([fast, slow])
    for _ in range(4):
        active_task(slow, predicted=60.0)

    now[0] = 0.8
    states.refresh()  # what the refresher's thread does
    now[0] = 1.5  # past max_age of the first read, not of the refresh
    with CaptureQueriesContext(connection) as queries:
        figures = states.get([fast, slow])
    assert len(queries) == 0
    assert figures[slow.id].queued == 4 and figures[slow.id].wait(fill=0) == pytest.approx(240 / 4)
    assert figures[fast.id].queued == 0


def test_a_new_routing_token_makes_the_figures_stale_at_once(ml_pools):
    states = PoolStates(max_age=60.0, clock=lambda: 0.0, refresh=False)
    fast = ml_pools["fast"]
    assert states.get([fast], token=1)[fast.id].capacity == 4

    fast.concurrency = 3
    fast.save()
    assert states.get([fast], token=1)[fast.id].capacity == 4  # same token: the figures as read
    assert states.get([fast], token=2)[fast.id].capacity == 6


def test_a_refresh_read_under_an_older_token_is_not_put_in_place(ml_pools, monkeypatch):
    states = PoolStates(max_age=60.0, clock=lambda: 0.0, refresh=False)
    fast = ml_pools["fast"]
    states.get([fast], token=1)
    real = predict.read_pool_states

    def pools_change_meanwhile(pools, *, model=""):
        figures = real(pools, model=model)
        monkeypatch.setattr(predict, "read_pool_states", real)
        fast.concurrency = 3
        fast.save()
        assert states.get([fast], token=2)[fast.id].capacity == 6  # a decision on the new pool rows
        return figures  # read on the old ones: capacity 4

    monkeypatch.setattr(predict, "read_pool_states", pools_change_meanwhile)
    states.refresh()

    assert states.get([fast], token=2)[fast.id].capacity == 6


def test_tasks_routed_while_a_refresh_reads_are_counted_after_it(ml_pools, monkeypatch):
    now = [0.0]
    states = PoolStates(max_age=1.0, clock=lambda: now[0], refresh=False)
    fast = ml_pools["fast"]
    states.get([fast])
    states.note(fast.id, seconds=40.0)  # routed before the read began: in the database by then, or never stored
    now[0] = 0.5
    real = predict.read_pool_states

    def routed_meanwhile(pools, *, model=""):
        figures = real(pools, model=model)
        states.note(fast.id, seconds=30.0)  # routed while the read ran: perhaps not in it
        return figures

    monkeypatch.setattr(predict, "read_pool_states", routed_meanwhile)
    states.refresh()

    state = states.get([fast])[fast.id]
    assert (state.queued, state.work) == (1, 30.0)


@pytest.mark.django_db(transaction=True)
def test_the_refresher_reads_committed_changes_in_the_background_and_stops(ml_pools, monkeypatch):
    monkeypatch.setattr(predict, "REFRESH_SECONDS", 0.05)
    checks = []
    states = PoolStates(max_age=3600.0, also=lambda: checks.append(1))  # a decision never reads itself
    fast = ml_pools["fast"]
    try:
        assert states.get([fast])[fast.id].running == 0
        active_task(fast, status=Task.Status.RUNNING)  # committed: the refresher's connection sees it

        wait_for(lambda: states.get([fast])[fast.id].running == 1, timeout=30, what="the refresher to read it")
        assert checks  # the strategy's other checks ran with it
    finally:
        states.stop()
    assert states._thread is None


def test_no_refresher_inside_a_transaction(ml_pools, monkeypatch):
    monkeypatch.setattr(predict, "REFRESH_SECONDS", 0.05)
    states = PoolStates(max_age=1.0)
    states.get([ml_pools["fast"]])  # the test runs in a transaction another connection cannot see
    assert states._thread is None


def test_a_forked_child_starts_its_own_refresher(monkeypatch):
    states = PoolStates(max_age=1.0)
    states._thread = threading.Thread(target=lambda: None)  # the parent's, which a fork does not copy
    predict._after_fork()  # what os.register_at_fork runs in the child
    monkeypatch.setattr(predict, "REFRESH_SECONDS", 0.05)
    monkeypatch.setattr(predict, "connection", SimpleNamespace(in_atomic_block=False))  # outside a transaction
    monkeypatch.setattr(predict.threading, "Thread", StartedOnly)
    states._keep_fresh()  # what a decision's get() does last
    assert isinstance(states._thread, StartedOnly) and states._thread.started


class StartedOnly(threading.Thread):
    """A refresher thread that records being started and does not run."""

    started = False

    def start(self) -> None:
        self.started = True
