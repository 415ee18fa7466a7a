"""coordination.selectors: the reads the API, the stream, the CLI and /metrics share."""

from __future__ import annotations

import pytest

from agents.models import Agent
from coordination import selectors
from coordination.dispatch import redis_client
from coordination.models import Event, Task, Team
from coordination.services import task_submit
from external_api.access import Caller
from tests.conftest import purge_broker

pytestmark = pytest.mark.django_db


@pytest.fixture
def teams(pools) -> tuple[Team, Team]:
    return Team.objects.create(name="acme"), Team.objects.create(name="globex")


PRINCIPALS = {
    "staff": {"team_id": None, "staff": True},
    "acme": {"team_id": "acme", "staff": False},
    "no team": {"team_id": None, "staff": False},
}


@pytest.mark.parametrize("who", PRINCIPALS)
def test_event_visibility_stored_and_published_agree(who, teams):
    acme, globex = teams
    principal = dict(PRINCIPALS[who], team_id=acme.id if PRINCIPALS[who]["team_id"] else None)
    events = [Event.objects.create(type="custom.x", team=team) for team in (acme, globex, None)]
    stored = {event.id for event in selectors.events_visible_to(**principal)}
    published = {event.id for event in events if selectors.event_message_visible_to(event.as_message(), **principal)}
    caller = Caller(team_id=principal["team_id"], staff=principal["staff"], scopes=frozenset(), ident="test")
    assert stored == published == {event.id for event in events if caller.sees(event.as_message())}
    expected = {"staff": [0, 1, 2], "acme": [0, 2], "no team": [2]}[who]
    assert stored == {events[i].id for i in expected}


def test_tasks_visible_to_a_team_staff_and_nobody(teams):
    acme, globex = teams
    mine = task_submit(capabilities=["python"], command=["true"], team=acme)
    theirs = task_submit(capabilities=["python"], command=["true"], team=globex)
    assert set(selectors.tasks_visible_to(team_id=acme.id, staff=False)) == {mine}
    assert set(selectors.tasks_visible_to(team_id=None, staff=True)) == {mine, theirs}
    assert not selectors.tasks_visible_to(team_id=None, staff=False).exists()


def test_counts_by_status_name_every_status(teams, pools):
    acme, _ = teams
    task_submit(capabilities=["python"], command=["true"], team=acme)
    task = task_submit(capabilities=["python"], command=["true"], team=acme)
    Task.objects.filter(id=task.id).update(status=Task.Status.RUNNING)
    Agent.objects.create(name="backend@x", pool=pools["backend"], status=Agent.Status.ONLINE)
    assert selectors.task_counts_by_status() == {s: {"queued": 1, "running": 1}.get(s, 0) for s in Task.Status.values}
    assert selectors.task_counts_by_status(active_only=True) == {"pending": 0, "queued": 1, "running": 1}
    assert sorted(selectors.task_counts_by_status_and_pool()) == [("queued", "backend", 1), ("running", "backend", 1)]
    assert selectors.agent_counts_by_status()["online"] == 1
    assert selectors.agent_counts_by_status_and_pool() == [("online", "backend", 1)]


def test_pool_summaries_count_tasks_and_live_agents(teams, pools):
    acme, _ = teams
    task_submit(capabilities=["python"], command=["true"], team=acme)
    Agent.objects.create(name="backend@a", pool=pools["backend"], status=Agent.Status.ONLINE)
    Agent.objects.create(name="backend@b", pool=pools["backend"], status=Agent.Status.OFFLINE)
    backend = selectors.pools_with_counts().get(name="backend")
    assert (backend.queued, backend.running, backend.agents_online) == (1, 0, 1)
    purge_broker()
    redis_client().rpush("hive.backend:3", "a message at the high priority step")
    try:
        assert selectors.pool_queue_depths([backend]) == {"hive.backend": 1}
    finally:
        purge_broker()


def test_pool_queue_depths_are_empty_when_redis_does_not_answer(pools, monkeypatch):
    def down(queues):
        raise ConnectionError("refused")

    monkeypatch.setattr(selectors, "queue_depths", down)
    assert selectors.pool_queue_depths() == {}
