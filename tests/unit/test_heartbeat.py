"""An agent's heartbeat: one statement that refreshes the row, counts its load and tells its status."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Agent
from coordination.fleet import agent_heartbeat
from coordination.models import Task
from coordination.processes import HOSTNAME
from coordination.services import task_claim, task_submit
from tests.unit.test_alerts import Consumer


@pytest.fixture
def agent(pools) -> Agent:
    return Agent.objects.create(
        name="backend@beat",
        pool=pools["backend"],
        host=HOSTNAME,
        pid=os.getpid(),
        load=7,
        last_heartbeat=timezone.now() - timedelta(seconds=20),
    )


def running_on(agent: Agent, n: int) -> None:
    for _ in range(n):
        task = task_submit(capabilities=["python"], command=["make", "test"])
        assert task_claim(task_id=str(task.id), agent=agent, pid=os.getpid(), host=HOSTNAME) is not None


def test_agent_heartbeat_refreshes_the_row_counts_running_tasks_and_says_online(agent):
    running_on(agent, 2)
    finished = task_submit(capabilities=["python"], command=["true"])
    Task.objects.filter(id=finished.id).update(status=Task.Status.SUCCEEDED, agent=agent)
    before = agent.last_heartbeat

    with CaptureQueriesContext(connection) as queries:
        status = agent_heartbeat(agent_id=agent.id, resources={"rss_mb": 12.5, "alerts": []})

    assert status == Agent.Status.ONLINE
    assert len(queries) == 1, [q["sql"] for q in queries]
    agent.refresh_from_db()
    assert agent.load == 2  # the running tasks, not the finished one
    assert agent.resources == {"rss_mb": 12.5, "alerts": []}
    assert agent.last_heartbeat > before


def test_agent_heartbeat_of_a_draining_agent_refreshes_it_and_says_draining(agent):
    Agent.objects.filter(id=agent.id).update(status=Agent.Status.DRAINING)

    assert agent_heartbeat(agent_id=agent.id, resources={}) == Agent.Status.DRAINING

    agent.refresh_from_db()
    assert (agent.status, agent.load) == (Agent.Status.DRAINING, 0)


def test_agent_heartbeat_of_an_agent_marked_offline_changes_nothing_and_says_none(agent):
    Agent.objects.filter(id=agent.id).update(status=Agent.Status.OFFLINE)
    before = Agent.objects.get(id=agent.id)

    assert agent_heartbeat(agent_id=agent.id, resources={"rss_mb": 1.0}) is None

    after = Agent.objects.get(id=agent.id)
    assert (after.status, after.last_heartbeat, after.load, after.resources) == (
        Agent.Status.OFFLINE,
        before.last_heartbeat,
        7,
        before.resources,
    )


def heartbeat_of(agent: Agent):
    from workers.agent import Heartbeat

    return Heartbeat(agent=Agent.objects.select_related("pool").get(id=agent.id), consumer=Consumer(), interval=1.0)


def test_heartbeat_beat_sends_one_statement_and_keeps_consuming(agent):
    beat = heartbeat_of(agent)
    beat.watch_resources()  # the first sample of the machine, as the thread's first beat takes it

    with CaptureQueriesContext(connection) as queries:
        beat.beat()

    assert len(queries) == 1, [q["sql"] for q in queries]
    assert beat.consumer.calls == []
    assert Agent.objects.get(id=agent.id).last_heartbeat > agent.last_heartbeat


def test_heartbeat_beat_of_a_draining_agent_stops_consuming_once(agent):
    Agent.objects.filter(id=agent.id).update(status=Agent.Status.DRAINING)
    beat = heartbeat_of(agent)

    beat.beat()
    beat.beat()

    assert beat.consumer.calls == [("cancel", "hive.backend")]


def test_heartbeat_beat_of_an_agent_marked_offline_registers_it_again(agent):
    Agent.objects.filter(id=agent.id).update(status=Agent.Status.OFFLINE)
    beat = heartbeat_of(agent)

    beat.beat()

    again = Agent.objects.get(id=agent.id)
    assert again.status == Agent.Status.ONLINE
    assert again.incarnation != agent.incarnation
    assert beat.agent.incarnation == again.incarnation
