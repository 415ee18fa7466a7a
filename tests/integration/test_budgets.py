"""Cost accounting and daily budgets through real workers and real agent programs.

- a `text` pool reads what its program (tests/priced_agent.py) says it spent, by JSON field or by
  pattern, into the attempt;
- a spent team budget holds the team's next prompt task (its program, tests/fake_claude.py, reports
  total_cost_usd 0.0123): the task stays queued with the reason in `hive show` and the API, command
  tasks and other teams' tasks still run, and raising the budget with `hive team budget` releases it
  at once;
- a spent pool budget holds, asking again at each recheck with one `task.held` event for the hold,
  until the UTC day turns.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from coordination import budgets
from coordination.models import Event, Task, TaskAttempt, Team
from coordination.services import task_submit
from tests.conftest import ROOT, child_env, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PRICED = '["python3", "-m", "tests.priced_agent", "{prompt}"]'


def hive_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hive_project.cli", *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def ended(task: Task) -> Task:
    wait_for(
        lambda: Task.objects.filter(id=task.id, status__in=Task.TERMINAL_STATUSES).exists(),
        timeout=30,
        what=f"task {task.short_id} to end",
    )
    return Task.objects.get(id=task.id)


def held(task: Task) -> Event:
    return wait_for(
        lambda: Event.objects.filter(task=task, type="task.held").first(),
        timeout=30,
        what=f"task {task.short_id} to be held",
    )


@pytest.mark.parametrize(
    ("rule", "prompt", "expected"),
    [
        ({"LEANVIBE_AGENTS_IOS_RUNNER_COST_FIELD": "usage.cost_usd"}, "json 0.42", Decimal("0.42")),
        ({"LEANVIBE_AGENTS_IOS_RUNNER_COST_PATTERN": r"Total cost: \$(\S+)"}, "text 1.25", Decimal("1.25")),
    ],
    ids=["cost_field", "cost_pattern"],
)
def test_a_text_pool_reads_what_its_program_says_it_spent(hive, rule, prompt, expected):
    hive.worker("ios", LEANVIBE_AGENTS_IOS_RUNNER_ARGV=PRICED, **rule)
    priced = task_submit(prompt=prompt, capabilities=["swift"])
    silent = task_submit(prompt="nothing to say", capabilities=["swift"])
    command = task_submit(command=["python3", "-m", "tests.priced_agent", prompt], capabilities=["swift"])

    assert ended(priced).status == ended(silent).status == ended(command).status == "succeeded"
    assert TaskAttempt.objects.get(task=priced).cost_usd == expected
    assert TaskAttempt.objects.get(task=silent).cost_usd is None
    assert TaskAttempt.objects.get(task=command).cost_usd is None  # not the pool's agent program: not read
    costs = hive_cli("costs", "--by", "pool")
    assert costs.returncode == 0 and f"{expected:.4f}" in costs.stdout, costs.stdout + costs.stderr


def test_a_spent_team_budget_holds_prompt_tasks_until_it_is_raised(hive):
    acme = Team.objects.create(name="acme")
    budgets.team_budget_set(team=acme, budget=Decimal("0.01"))
    hive.worker("infrastructure", concurrency=2)  # a held task asks again after 60 s (the default)
    first = task_submit(prompt="first", capabilities=["kubernetes"], team=acme)
    assert ended(first).status == "succeeded"  # spent 0.0123 of 0.01: the budget is gone for today

    second = task_submit(prompt="second", capabilities=["kubernetes"], team=acme)
    event = held(second)
    command = task_submit(
        command=["python3", "-c", "print('no budget needed')"], capabilities=["kubernetes"], team=acme
    )
    others = task_submit(prompt="another team's", capabilities=["kubernetes"])

    assert ended(command).status == "succeeded" and ended(others).status == "succeeded"
    assert event.payload | {"retry_after": 0} == {
        "reason": "budget",
        "scope": "team",
        "name": "acme",
        "spent": "0.012300",
        "budget": "0.010000",
        "retry_after": 0,
        "detail": "budget: team acme has spent $0.0123 of its $0.01 a day (UTC); the task "
        "waits until the day turns or the budget is raised",
    }
    assert event.payload["retry_after"] >= 60
    task = Task.objects.get(id=second.id)
    assert (task.status, task.attempts) == ("queued", 0)
    shown = hive_cli("show", str(second.id))
    assert "held: budget: team acme has spent $0.0123 of its $0.01 a day" in shown.stdout, shown.stdout
    staff = APIClient()
    staff.force_authenticate(User.objects.create_user("sam", is_staff=True))
    detail = staff.get(f"/api/v1/tasks/{second.id}/").json()
    assert detail["status"] == "queued" and detail["hold_reason"].startswith("budget: team acme has spent")

    refused = hive_cli("team", "budget", "acme", "ten")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "budget: 'ten' is not an amount of USD" in refused.stderr
    assert Team.objects.get(id=acme.id).budget_usd_per_day == Decimal("0.01")

    raised = hive_cli("team", "budget", "acme", "0.05")

    assert raised.returncode == 0 and "team acme: budget $0.05 a day (spent $0.0123 today)" in raised.stdout
    task = ended(second)  # at once, not after its 60 s recheck (ended() waits 30 s at most)
    assert (task.status, task.attempts, task.hold_reason) == ("succeeded", 1, "")
    assert Event.objects.filter(task=second, type="task.released").count() == 1
    # the worker drops the cached sum just after it records the attempt's end
    wait_for(
        lambda: budgets.spent_today(scope="team", ident=acme.id) == Decimal("0.0246"),
        timeout=20,
        what="today's spend to include the second task",
    )
    listed = hive_cli("team", "list")
    assert "acme" in listed.stdout and "$0.05" in listed.stdout and "$0.0246" in listed.stdout, listed.stdout


def test_a_spent_pool_budget_holds_until_the_utc_day_turns(hive):
    hive.worker(
        "infrastructure",
        LEANVIBE_AGENTS_INFRASTRUCTURE_BUDGET_USD_PER_DAY="0.01",
        LEANVIBE_MULTI_AGENT_BUDGET_RECHECK_INTERVAL="0.5",
    )
    first = task_submit(prompt="first", capabilities=["kubernetes"])
    assert ended(first).status == "succeeded"
    second = task_submit(prompt="second", capabilities=["kubernetes"])
    event = held(second)
    assert (event.payload["scope"], event.payload["name"], event.payload["spent"]) == (
        "pool",
        "infrastructure",
        "0.012300",
    )
    # it asks again every half second and stays held, with one event for the hold
    for _ in range(3):
        asked = Task.objects.get(id=second.id).dispatched_at
        wait_for(lambda: Task.objects.get(id=second.id).dispatched_at > asked, timeout=10, what="a recheck")  # noqa: B023
    task = Task.objects.get(id=second.id)
    assert (task.status, task.attempts) == ("queued", 0)
    assert Event.objects.filter(task=second, type="task.held").count() == 1

    # The day turns: the spend was yesterday's. (At a real midnight the cached sum's key, which
    # holds the date, changes too; here the cache entry of today is dropped by hand.)
    TaskAttempt.objects.filter(task=first).update(
        started_at=TaskAttempt.objects.get(task=first).started_at - timedelta(days=1)
    )
    client = budgets._redis()
    client.delete(*client.scan_iter(f"{budgets.KEY_PREFIX}:*"))

    task = ended(second)
    assert (task.status, task.attempts) == ("succeeded", 1)
    assert Event.objects.filter(task=second, type="task.held").count() == 1
    assert Event.objects.filter(task=second, type="task.released").count() == 1
