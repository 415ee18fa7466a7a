"""The Django admin console: lists with filters and search, task detail with attempts and events,
and the operator actions, driven as a logged-in staff user."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from agents.models import Agent
from coordination.models import Task
from coordination.services import task_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, pools):
    User.objects.create_superuser("root", password="admin password 1")
    client.login(username="root", password="admin password 1")
    return client


def test_admin_needs_a_staff_login(client):
    response = client.get("/admin/coordination/task/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_task_list_filters_and_search(admin_client):
    task_submit(capabilities=["python"], prompt="fix the flaky login test")
    task_submit(capabilities=["react"], prompt="restyle the header")
    page = admin_client.get("/admin/coordination/task/?q=flaky").content.decode()
    assert "fix the flaky login test" in page and "restyle the header" not in page
    page = admin_client.get(
        f"/admin/coordination/task/?pool__id__exact={Task.objects.get(prompt__contains='restyle').pool_id}"
    )
    assert "restyle the header" in page.content.decode()
    assert "fix the flaky" not in page.content.decode()


def test_task_detail_shows_attempts_and_events(admin_client):
    task = task_submit(capabilities=["python"], prompt="explain the outage")
    page = admin_client.get(f"/admin/coordination/task/{task.id}/change/").content.decode()
    assert "explain the outage" in page and "task.queued" in page and "Task attempts" in page


def test_cancel_action_cancels_and_reports_refusals(admin_client):
    queued = task_submit(capabilities=["python"], prompt="one")
    done = task_submit(capabilities=["python"], prompt="two")
    Task.objects.filter(id=done.id).update(status=Task.Status.SUCCEEDED)
    response = admin_client.post(
        "/admin/coordination/task/",
        {"action": "cancel", "_selected_action": [str(queued.id), str(done.id)]},
        follow=True,
    )
    page = response.content.decode()
    assert "Cancelled 1 task(s)" in page
    assert "only pending, queued or running tasks can be cancelled" in page
    assert Task.objects.get(id=queued.id).status == Task.Status.CANCELLED
    assert Task.objects.get(id=done.id).status == Task.Status.SUCCEEDED


def test_redrive_action_requeues_dead_tasks(admin_client):
    task = task_submit(capabilities=["python"], prompt="dead one")
    Task.objects.filter(id=task.id).update(status=Task.Status.DEAD, attempts=3)
    admin_client.post("/admin/coordination/task/", {"action": "redrive", "_selected_action": [str(task.id)]})
    task.refresh_from_db()
    assert task.status == Task.Status.QUEUED and task.max_attempts == 6


def test_drain_action_marks_the_agent_draining(admin_client, pools):
    agent = Agent.objects.create(name="backend@box", pool=pools["backend"])
    response = admin_client.post(
        "/admin/agents/agent/", {"action": "drain", "_selected_action": [str(agent.id)]}, follow=True
    )
    assert "Draining 1 agent(s)" in response.content.decode()
    assert Agent.objects.get(id=agent.id).status == Agent.Status.DRAINING


def test_pool_list_shows_whether_the_agent_program_is_installed(admin_client):
    page = admin_client.get("/admin/agents/agentpool/").content.decode()
    assert "agent program &#x27;hive-test-agent-not-installed&#x27; is not installed" in page
    assert "echo: installed" in page
