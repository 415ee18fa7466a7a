"""`GET /api/v1/costs/` with every persona: team members and their keys see their own team's spend
only, staff every team's (or one with `?team=`); strict query validation; the OpenAPI schema; and
a held task's reason in the task detail."""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from agents.models import Agent
from coordination import budgets
from coordination.models import Event, Task, TaskAttempt, Team
from coordination.processes import HOSTNAME
from coordination.results import AttemptResult
from coordination.services import attempt_finish, task_claim, task_submit

pytestmark = pytest.mark.django_db

URL = "/api/v1/costs/"


@pytest.fixture(autouse=True)
def no_cached_spend():
    """Today's spend per team is cached in Redis, which outlives each test's database."""
    client = budgets._redis()
    keys = list(client.scan_iter(f"{budgets.KEY_PREFIX}:*"))
    if keys:
        client.delete(*keys)


def spent(pool, team: Team | None, cost: str, *, task_type: str = "general", days_ago: int = 0) -> Task:
    agent, _ = Agent.objects.get_or_create(
        name=f"{pool.name}@costs", defaults={"pool": pool, "host": HOSTNAME, "pid": os.getpid()}
    )
    task = task_submit(prompt="work", capabilities=list(pool.capabilities)[:1], team=team, task_type=task_type)
    attempt = task_claim(task_id=str(task.id), agent=agent, pid=os.getpid(), host=HOSTNAME)
    attempt_finish(attempt_id=attempt.id, result=AttemptResult(outcome="succeeded", cost_usd=Decimal(cost)))
    if days_ago:
        TaskAttempt.objects.filter(id=attempt.id).update(started_at=timezone.now() - timedelta(days=days_ago))
    return task


@pytest.fixture
def spending(pools, teams):
    acme, globex = teams
    spent(pools["backend"], acme, "0.50", task_type="bugfix")
    spent(pools["ios"], acme, "0.25")
    spent(pools["backend"], globex, "2.00")
    spent(pools["backend"], acme, "9.00", days_ago=3)
    return acme, globex


def rows(response) -> dict[str, str]:
    assert response.status_code == 200, response.content
    return {row["group"]: row["cost_usd"] for row in response.json()["rows"]}


@pytest.mark.parametrize("who", ["owner", "teammate", "reader"])
def test_costs_of_a_team_member_or_key_are_their_own_teams_only(personas, spending, who):
    client = personas[who].client

    by_pool = client.get(URL, {"group_by": "pool"})
    by_team = client.get(URL, {"group_by": "team"})

    assert rows(by_pool) == {"backend": "9.500000", "ios": "0.250000"}
    assert rows(by_team) == {"acme": "9.750000"}
    assert by_pool.json()["team"] == "acme" and by_pool.json()["total_usd"] == "9.750000"


def test_costs_of_an_outsider_show_nothing_of_another_team(personas, spending):
    assert rows(personas["outsider"].client.get(URL, {"group_by": "team"})) == {"globex": "2.000000"}


def test_costs_of_staff_cover_every_team_or_the_one_asked(personas, spending):
    staff = personas["staff"].client

    assert rows(staff.get(URL, {"group_by": "team"})) == {"acme": "9.750000", "globex": "2.000000"}
    assert rows(staff.get(URL, {"group_by": "pool", "team": "globex"})) == {"backend": "2.000000"}
    assert staff.get(URL, {"team": "globex"}).json()["team"] == "globex"


def test_costs_since_and_until_bound_the_attempts_start(personas, spending):
    staff = personas["staff"].client
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    since = (today - timedelta(days=1)).isoformat()

    recent = staff.get(URL, {"group_by": "pool", "since": since})
    older = staff.get(URL, {"group_by": "day", "until": since, "since": (today - timedelta(days=10)).isoformat()})

    assert rows(recent) == {"backend": "2.500000", "ios": "0.250000"}
    assert rows(older) == {(today - timedelta(days=3)).date().isoformat(): "9.000000"}


def test_costs_by_task_type_and_task(personas, spending):
    owner = personas["owner"].client

    assert rows(owner.get(URL, {"group_by": "task_type"})) == {"general": "9.250000", "bugfix": "0.500000"}
    by_task = owner.get(URL, {"group_by": "task"}).json()["rows"]
    assert {r["group"] for r in by_task} == {str(t.id) for t in Task.objects.filter(team__name="acme")}


def test_costs_of_another_team_for_a_non_staff_caller_is_403(personas, spending):
    response = personas["owner"].client.get(URL, {"team": "globex"})

    assert response.status_code == 403
    assert response.json() == {"code": "permission_denied", "detail": "only staff may see another team's spend"}
    assert rows(personas["owner"].client.get(URL, {"team": "acme"})) == {"backend": "9.500000", "ios": "0.250000"}


def test_costs_without_credentials_is_401(personas, spending):
    response = personas["anonymous"].client.get(URL)

    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"group_by": "colour"}, "group_by", '"colour" is not a valid choice.'),
        ({"since": "yesterday"}, "since", "must be an ISO 8601 date-time"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until", "must be after since"),
        ({"grouped_by": "pool"}, "grouped_by", "unknown field; the fields are group_by, since, team, until"),
        ({"team": "nobody"}, "team", "no team named 'nobody'"),
    ],
)
def test_costs_bad_query_is_400_naming_the_parameter(personas, spending, query, field, message):
    response = personas["staff"].client.get(URL, query)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid" and response.json()["fields"] == {field: [message]}


def test_costs_repeated_parameter_is_400(personas, spending):
    response = personas["staff"].client.get(URL + "?group_by=pool&group_by=team")

    assert response.status_code == 400 and response.json()["fields"] == {"group_by": ["give this parameter once"]}


def test_costs_are_documented_in_the_schema(personas):
    schema = personas["staff"].client.get("/api/schema/?format=json").json()

    operation = schema["paths"]["/api/v1/costs/"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) >= {"group_by", "since", "until", "team"}
    assert set(parameters["group_by"]["schema"]["enum"]) == {"pool", "team", "task_type", "day", "task"}
    assert {"200", "400", "401", "403"} <= set(operation["responses"])


def test_task_detail_shows_why_a_queued_task_is_held(personas, acme_task):
    acme = Team.objects.get(name="acme")
    acme.budget_usd_per_day = Decimal("0")
    acme.save()
    budgets.task_hold(task_id=acme_task["id"], hold=budgets.task_budget_admit(task_id=acme_task["id"]))

    detail = personas["teammate"].client.get(f"/api/v1/tasks/{acme_task['id']}/").json()
    listed = personas["owner"].client.get("/api/v1/tasks/").json()["results"]

    assert detail["hold_reason"] == (
        "budget: team acme has spent $0.0000 of its $0.00 a day (UTC); the task waits "
        "until the day turns or the budget is raised"
    )
    assert listed[0]["hold_reason"] == detail["hold_reason"]
    Task.objects.filter(id=acme_task["id"]).update(status=Task.Status.CANCELLED)
    assert personas["owner"].client.get(f"/api/v1/tasks/{acme_task['id']}/").json()["hold_reason"] == ""


def test_admin_team_budget_change_publishes_it_and_releases_held_tasks(client, personas, acme_task):
    from django.contrib.auth.models import User

    acme = Team.objects.get(name="acme")
    budgets.team_budget_set(team=acme, budget=Decimal("0"))
    budgets.task_hold(task_id=acme_task["id"], hold=budgets.task_budget_admit(task_id=acme_task["id"]))
    User.objects.create_superuser("root", password="admin password 1")
    client.login(username="root", password="admin password 1")

    listing = client.get("/admin/coordination/team/").content.decode()
    response = client.post(
        f"/admin/coordination/team/{acme.id}/change/", {"name": "acme", "budget_usd_per_day": "3.5"}, follow=True
    )

    assert "acme" in listing and "$0.0000" in listing  # spent today
    assert response.status_code == 200
    assert Team.objects.get(id=acme.id).budget_usd_per_day == Decimal("3.5")
    assert Task.objects.get(id=acme_task["id"]).available_at <= timezone.now()  # sent again now
    assert [e.payload["budget"] for e in Event.objects.filter(type="team.budget").order_by("id")] == [
        "0.000000",
        "3.500000",
    ]
