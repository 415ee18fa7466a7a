"""Cost rules and daily budgets as single functions: the configuration keys, reading a program's
cost (workers.attempt.with_cost), today's spend with an injected clock, holding and releasing a
task (coordination.budgets). Real database and Redis; the workers are in
tests/integration/test_budgets.py."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from agents.models import Agent
from agents.runners.process import ProcessOutcome
from coordination import budgets
from coordination.errors import Invalid
from coordination.fleet import pool_sync
from coordination.models import Event, Task, TaskAttempt, Team
from coordination.processes import HOSTNAME
from coordination.results import AttemptResult
from coordination.services import attempt_finish, task_claim, task_submit
from hive_project.config import ConfigError, load_config
from workers.attempt import with_cost

POOL = "agents: {backend: {capabilities: [python], %s}}\n"


def config(tmp_path, text: str):
    path = tmp_path / "hive.yaml"
    path.write_text(text)
    return load_config(path, environ={})


@pytest.fixture(autouse=True)
def no_cached_spend():
    """Today's spend is cached in Redis, which outlives each test's database."""
    client = budgets._redis()
    keys = list(client.scan_iter(f"{budgets.KEY_PREFIX}:*"))
    if keys:
        client.delete(*keys)


# --- configuration --------------------------------------------------------------------------------


def test_config_cost_and_budget_keys_reach_the_pool(tmp_path):
    loaded = config(tmp_path, POOL % "budget_usd_per_day: 12.5, runner: {output_format: text, cost_field: usage.cost}")
    pool = loaded.agents["backend"]

    assert pool.budget_usd_per_day == Decimal("12.5")
    assert (pool.runner.cost_field, pool.runner.cost_pattern) == ("usage.cost", None)
    assert loaded.multi_agent.budget_recheck_interval == 60.0


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("budget_usd_per_day: -1", "agents.backend.budget_usd_per_day = -1: expected"),
        ("budget_usd_per_day: true", "agents.backend.budget_usd_per_day = True: expected a number >= 0"),
        ("budget_usd_per_day: 0.0000001", "agents.backend.budget_usd_per_day = 1e-07: expected"),
        (
            "runner: {output_format: text, cost_field: 'usage..cost'}",
            "agents.backend.runner.cost_field = 'usage..cost': expected a JSON field name",
        ),
        (
            "runner: {output_format: text, cost_pattern: 'cost: \\$[0-9.]+'}",
            "agents.backend.runner.cost_pattern = 'cost: \\\\$[0-9.]+': expected a regular expression with exactly one group",
        ),
        (
            "runner: {output_format: text, cost_pattern: 'cost ([0-9.]+'}",
            "agents.backend.runner.cost_pattern = 'cost ([0-9.]+': expected a regular expression (missing )",
        ),
        (
            "runner: {output_format: text, cost_field: c, cost_pattern: '(x)'}",
            "agents.backend.runner.cost_pattern = '(x)': expected not both cost_field and cost_pattern",
        ),
        (
            "runner: {cost_field: total_cost}",
            "agents.backend.runner.cost_field = 'total_cost': expected only with output_format text or kind python",
        ),
    ],
)
def test_config_bad_cost_or_budget_key_names_it(tmp_path, fragment, message):
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, POOL % fragment)

    assert str(caught.value).startswith(message), str(caught.value)


def test_config_budget_recheck_interval_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match=r"^multi_agent.budget_recheck_interval = 0: expected a number > 0"):
        config(tmp_path, "multi_agent: {budget_recheck_interval: 0}\n")


# --- reading a program's cost -----------------------------------------------------------------------


def _outcome(*lines: str) -> ProcessOutcome:
    return ProcessOutcome(exit_code=0, timed_out=False, stopped=False, duration=0.1, tail=list(lines))


@pytest.mark.parametrize(
    ("runner", "command", "lines", "expected"),
    [
        (
            {"cost_field": "usage.cost_usd"},
            None,
            ['{"usage": {"cost_usd": 0.5}}', '{"usage": {"cost_usd": 0.25}}', '{"other": 1}'],
            Decimal("0.25"),
        ),
        (
            {"cost_pattern": r"Total cost: \$(\S+)"},
            None,
            ["Total cost: $n/a", "Total cost: $1,234.50", "bye"],
            Decimal("1234.50"),
        ),
        ({"cost_pattern": r"Total cost: \$(\S+)"}, None, ["no cost here"], None),
        ({"cost_field": "usage.cost_usd"}, ["sh", "-c", "echo"], ['{"usage": {"cost_usd": 0.5}}'], None),
        ({}, None, ['{"usage": {"cost_usd": 0.5}}'], None),
    ],
    ids=["field-last-value", "pattern-last-number", "pattern-nothing", "command-task-not-read", "no-rule"],
)
def test_with_cost_reads_the_pools_rule_from_its_agent_programs_output(pools, runner, command, lines, expected):
    pool = pools["ios"]
    pool.runner = {**pool.runner, **runner}
    task = Task(pool=pool, command=command, prompt="p", timeout=5)
    result = AttemptResult(outcome=TaskAttempt.Outcome.SUCCEEDED)

    assert with_cost(result, _outcome(*lines), "text", task).cost_usd == expected


def test_with_cost_leaves_claude_json_to_the_claude_reader(pools):
    pool = pools["ios"]
    pool.runner = {**pool.runner, "cost_field": "usage.cost_usd"}
    result = AttemptResult(outcome=TaskAttempt.Outcome.SUCCEEDED, cost_usd=Decimal("0.0123"))

    task = Task(pool=pool, prompt="p", timeout=5)
    assert with_cost(result, _outcome('{"usage": {"cost_usd": 9}}'), "claude-json", task).cost_usd == Decimal("0.0123")


# --- today's spend ----------------------------------------------------------------------------------


def _spent(pool, *, cost: str | None, team: Team | None = None, started_at: datetime | None = None) -> Task:
    agent, _ = Agent.objects.get_or_create(
        name=f"{pool.name}@budget", defaults={"pool": pool, "host": HOSTNAME, "pid": os.getpid()}
    )
    task = task_submit(prompt="spend", capabilities=list(pool.capabilities)[:1], team=team)
    attempt = task_claim(task_id=str(task.id), agent=agent, pid=os.getpid(), host=HOSTNAME)
    attempt_finish(
        attempt_id=attempt.id,
        result=AttemptResult(outcome=TaskAttempt.Outcome.SUCCEEDED, cost_usd=Decimal(cost) if cost else None),
    )
    if started_at is not None:
        TaskAttempt.objects.filter(id=attempt.id).update(started_at=started_at)
    return task


def test_spent_today_adds_the_attempts_started_in_the_utc_day_of_the_clock(pools):
    backend = pools["backend"]
    now = timezone.now()
    _spent(backend, cost="0.50")
    _spent(backend, cost="0.25")
    _spent(backend, cost=None)
    _spent(backend, cost="7", started_at=now - timedelta(days=1))
    _spent(pools["ios"], cost="3")

    assert budgets.spent_today(scope="pool", ident=backend.id, now=now) == Decimal("0.75")
    assert budgets.spent_today(scope="pool", ident=backend.id, now=now - timedelta(days=1)) == Decimal("7")
    assert budgets.spent_today(scope="pool", ident=backend.id, now=now + timedelta(days=1)) == Decimal("0")


def test_spent_today_is_cached_until_a_priced_attempt_ends(pools):
    backend = pools["backend"]
    _spent(backend, cost="0.50")
    assert budgets.spent_today(scope="pool", ident=backend.id) == Decimal("0.5")
    later = _spent(backend, cost="0.25")

    assert budgets.spent_today(scope="pool", ident=backend.id) == Decimal("0.5")  # the cached sum
    attempt = later.attempt_set.get()
    budgets.spend_changed(pool_id=backend.id, team_id=later.team_id, started_at=attempt.started_at)
    assert budgets.spent_today(scope="pool", ident=backend.id) == Decimal("0.75")


def test_day_bounds_are_utc_midnights():
    start, end = budgets.day_bounds(datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC))

    assert (start, end) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))


def test_recheck_delay_ends_just_after_midnight_when_that_comes_first(settings):
    late = datetime(2026, 3, 1, 23, 59, 50, tzinfo=UTC)

    assert 11.0 <= budgets.recheck_delay(now=late) <= 11.0 * 1.1
    assert 60.0 <= budgets.recheck_delay(now=datetime(2026, 3, 1, 12, tzinfo=UTC)) <= 66.0


# --- holding and releasing ---------------------------------------------------------------------------


def test_task_budget_admit_holds_prompt_tasks_of_a_spent_team_but_never_command_tasks(pools):
    acme = Team.objects.create(name="acme", budget_usd_per_day=Decimal("0.5"))
    _spent(pools["backend"], cost="0.5", team=acme)
    prompt = task_submit(prompt="more", capabilities=["python"], team=acme)
    command = task_submit(command=["true"], capabilities=["python"], team=acme)
    other = task_submit(prompt="more", capabilities=["python"])

    hold = budgets.task_budget_admit(task_id=str(prompt.id))

    assert hold == budgets.Hold(scope="team", name="acme", spent=Decimal("0.5"), budget=Decimal("0.5"))
    assert budgets.task_budget_admit(task_id=str(command.id)) is None
    assert budgets.task_budget_admit(task_id=str(other.id)) is None
    tomorrow = timezone.now() + timedelta(days=1)
    assert budgets.task_budget_admit(task_id=str(prompt.id), now=tomorrow) is None


def test_task_budget_admit_asks_the_pools_budget_first(pools):
    backend = pools["backend"]
    backend.budget_usd_per_day = Decimal("0.1")
    backend.save()
    acme = Team.objects.create(name="acme", budget_usd_per_day=Decimal("0.1"))
    _spent(backend, cost="0.2", team=acme)
    task = task_submit(prompt="more", capabilities=["python"], team=acme)

    hold = budgets.task_budget_admit(task_id=str(task.id))

    assert (hold.scope, hold.name, hold.spent) == ("pool", "backend", Decimal("0.2"))
    assert "pool backend has spent $0.2000 of its $0.10 a day" in hold.describe()


def test_task_hold_keeps_the_task_queued_and_publishes_held_once_per_hold(pools, django_capture_on_commit_callbacks):
    acme = Team.objects.create(name="acme", budget_usd_per_day=Decimal("0"))
    task = task_submit(prompt="more", capabilities=["python"], team=acme)
    hold = budgets.task_budget_admit(task_id=str(task.id))
    assert hold is not None and hold.spent == Decimal("0")  # a budget of 0 holds every prompt task

    with django_capture_on_commit_callbacks(execute=False):
        assert budgets.task_hold(task_id=str(task.id), hold=hold)
        assert budgets.task_hold(task_id=str(task.id), hold=hold)  # the next recheck, still over

    task.refresh_from_db()
    assert (task.status, task.attempts) == (Task.Status.QUEUED, 0)
    assert task.hold_reason.startswith("budget: team acme has spent $0.0000 of its $0.00 a day")
    assert task.available_at > timezone.now() + timedelta(seconds=50)
    [held] = Event.objects.filter(task=task, type="task.held")
    assert held.payload | {"detail": "", "retry_after": 0} == {
        "reason": "budget",
        "scope": "team",
        "name": "acme",
        "spent": "0.000000",
        "budget": "0.000000",
        "detail": "",
        "retry_after": 0,
    }

    budgets.team_budget_set(team=acme, budget=Decimal("1"))
    assert budgets.task_budget_admit(task_id=str(task.id)) is None
    task.refresh_from_db()
    assert task.hold_reason == ""
    assert Event.objects.filter(task=task, type="task.released").count() == 1


def test_team_budget_set_sends_the_held_tasks_again_now(pools, django_capture_on_commit_callbacks):
    acme = Team.objects.create(name="acme", budget_usd_per_day=Decimal("0"))
    held = task_submit(prompt="held", capabilities=["python"], team=acme)
    budgets.task_hold(task_id=str(held.id), hold=budgets.task_budget_admit(task_id=str(held.id)))
    waiting_until = Task.objects.get(id=held.id).available_at

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        budgets.team_budget_set(team=acme, budget=Decimal("2.5"))

    held.refresh_from_db()
    assert held.available_at < waiting_until and held.available_at <= timezone.now()
    assert callbacks, "the held task's message is sent after commit"
    assert Team.objects.get(id=acme.id).budget_usd_per_day == Decimal("2.5")
    event = Event.objects.get(type="team.budget")
    assert (event.team_id, event.payload["budget"], event.payload["previous"]) == (acme.id, "2.500000", "0.000000")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12.50", Decimal("12.50")), ("$3", Decimal("3")), ("0", Decimal("0")), ("none", None), ("NONE", None)],
)
def test_budget_parse_reads_amounts_and_none(text, expected):
    assert budgets.budget_parse(text) == expected


@pytest.mark.parametrize("text", ["-1", "ten", "nan", "inf", "0.0000001", "1e9"])
def test_budget_parse_refuses_anything_else_naming_the_value(text):
    with pytest.raises(Invalid, match=f"budget: {text!r} is not an amount of USD"):
        budgets.budget_parse(text)


def test_pool_sync_copies_the_budget_and_a_raise_releases_the_held_tasks(tmp_path, pools):
    [backend] = pool_sync(config=config(tmp_path, POOL % "budget_usd_per_day: 0"))
    assert backend.budget_usd_per_day == Decimal("0")
    task = task_submit(prompt="held", capabilities=["python"])
    budgets.task_hold(task_id=str(task.id), hold=budgets.task_budget_admit(task_id=str(task.id)))

    [backend] = pool_sync(config=config(tmp_path, POOL % "budget_usd_per_day: 5"))

    assert backend.budget_usd_per_day == Decimal("5")
    assert Task.objects.get(id=task.id).available_at <= timezone.now()


def test_submit_wait_prints_why_a_task_is_held(capsys):
    from hive_project.cli.follow import _print_event

    hold = budgets.Hold(scope="pool", name="backend", spent=Decimal("3"), budget=Decimal("2.5"))
    _print_event(Event(type="task.held", payload=hold.payload(), created_at=timezone.now()), show_output=True)

    assert "held budget: pool backend has spent $3.0000 of its $2.50 a day (UTC)" in capsys.readouterr().out
