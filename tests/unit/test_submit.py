"""task_submit: what is refused (and leaves no trace), what is stored, and when the message is sent."""

from __future__ import annotations

import pytest

from agents.models import AgentPool
from coordination.dispatch import task_ids_in_broker
from coordination.errors import IdempotencyConflict, InvalidTask, NoEligiblePool
from coordination.models import DEFAULT_TEAM, Event, Task, Team
from coordination.services import task_submit
from external_api.errors import http_status
from tests.conftest import purge_broker

CAPS = "capabilities must be a non-empty list of strings"
ARGV = "command must be a non-empty list of strings (an argv)"
TIMEOUT = "timeout must be a number of seconds above 0 and at most 86400"
ATTEMPTS = "max_attempts must be an integer from 1 to 20"
COMPLEXITY = "complexity must be an integer from 1 to 10"
KEY = "idempotency key must be 1 to 200 characters"
TASK_TYPE = "task_type must be a string of 1 to 64 characters"

BAD_INPUTS = [
    pytest.param({"capabilities": []}, CAPS, id="capabilities-empty"),
    pytest.param({"capabilities": "python"}, CAPS, id="capabilities-str"),
    pytest.param({"capabilities": None}, CAPS, id="capabilities-none"),
    pytest.param({"capabilities": ["python", 3]}, CAPS, id="capability-not-str"),
    pytest.param({"capabilities": ["python", "  "]}, CAPS, id="capability-blank"),
    pytest.param({"prompt": "", "command": "echo hi"}, ARGV, id="command-str"),
    pytest.param({"prompt": "", "command": []}, ARGV, id="command-empty"),
    pytest.param({"prompt": "", "command": ["", "x"]}, ARGV, id="command-blank-program"),
    pytest.param({"prompt": "", "command": ["echo", 1]}, ARGV, id="command-non-str-arg"),
    pytest.param({"prompt": ""}, "a task needs a prompt or a command", id="neither-prompt-nor-command"),
    pytest.param({"prompt": "   "}, "a task needs a prompt or a command", id="prompt-blank"),
    pytest.param({"prompt": 5}, "prompt must be a string", id="prompt-not-str"),
    pytest.param({"payload": [1, 2]}, "payload must be a JSON object", id="payload-list"),
    pytest.param({"payload": "x=1"}, "payload must be a JSON object", id="payload-str"),
    pytest.param(
        {"priority": "urgent"}, "priority must be one of low, normal, high, critical, not 'urgent'", id="priority"
    ),
    pytest.param({"task_type": "x" * 65}, TASK_TYPE, id="task-type-too-long"),
    pytest.param({"task_type": ""}, TASK_TYPE, id="task-type-empty"),
    pytest.param({"complexity": 0}, COMPLEXITY, id="complexity-0"),
    pytest.param({"complexity": 11}, COMPLEXITY, id="complexity-11"),
    pytest.param({"complexity": 2.5}, COMPLEXITY, id="complexity-float"),
    pytest.param({"timeout": 0}, TIMEOUT, id="timeout-0"),
    pytest.param({"timeout": -5}, TIMEOUT, id="timeout-negative"),
    pytest.param({"timeout": 86401}, TIMEOUT, id="timeout-too-big"),
    pytest.param({"timeout": True}, TIMEOUT, id="timeout-bool"),
    pytest.param({"max_attempts": 0}, ATTEMPTS, id="max-attempts-0"),
    pytest.param({"max_attempts": 21}, ATTEMPTS, id="max-attempts-21"),
    pytest.param({"max_attempts": True}, ATTEMPTS, id="max-attempts-bool"),
    pytest.param({"max_attempts": 2.0}, ATTEMPTS, id="max-attempts-float"),
    pytest.param({"idempotency_key": "k" * 201}, KEY, id="idempotency-key-too-long"),
    pytest.param({"idempotency_key": ""}, KEY, id="idempotency-key-empty"),
    pytest.param(
        {"source": "email"},
        "source must be one of api, cli, python, webhook, github, slack, demo, session",
        id="source",
    ),
]


def submit(**overrides):
    spec = {"capabilities": ["python"], "prompt": "add a health endpoint"} | overrides
    return task_submit(**spec)


def assert_nothing_stored() -> None:
    assert Task.objects.count() == 0
    assert Event.objects.count() == 0


# --- refused ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "detail"), BAD_INPUTS)
def test_task_submit_bad_input_raises_invalid_task_and_stores_nothing(pools, overrides, detail):
    with pytest.raises(InvalidTask) as caught:
        submit(**overrides)

    assert caught.value.detail == detail
    assert (caught.value.code, http_status(caught.value)) == ("invalid_task", 400)
    assert_nothing_stored()


def test_task_submit_bool_complexity_raises_invalid_task(pools):
    with pytest.raises(InvalidTask, match="complexity"):
        submit(complexity=True)


def test_task_submit_non_numeric_timeout_raises_invalid_task(pools):
    with pytest.raises(InvalidTask, match="timeout"):
        submit(timeout="soon")


def test_task_submit_impossible_capabilities_raises_no_eligible_pool_naming_every_pool(pools):
    with pytest.raises(NoEligiblePool) as caught:
        submit(capabilities=["swift", "python"])

    detail = caught.value.detail
    assert detail.startswith("no pool offers python+swift: ")
    assert (caught.value.code, http_status(caught.value)) == ("no_eligible_pool", 422)
    for pool in pools.values():
        assert f"{pool.name} offers {', '.join(sorted(pool.capabilities))}" in detail
    assert_nothing_stored()


def test_task_submit_disabled_pool_is_not_eligible(pools):
    AgentPool.objects.filter(name="ios").update(enabled=False)

    with pytest.raises(NoEligiblePool, match="no pool offers swift"):
        submit(capabilities=["swift"])
    assert_nothing_stored()


def test_task_submit_command_to_pool_refusing_commands_raises_naming_the_pool(pools):
    AgentPool.objects.filter(name="backend").update(allow_commands=False)

    with pytest.raises(NoEligiblePool) as caught:
        submit(prompt="", capabilities=["python"], command=["pytest", "-q"])

    assert caught.value.detail.startswith("no pool that offers python allows commands (")
    assert "backend offers api, database, microservices, python" in caught.value.detail
    assert_nothing_stored()
    # a prompt for the same pool is still taken
    assert submit(capabilities=["python"]).pool.name == "backend"


def test_task_submit_command_goes_to_the_pool_that_allows_commands(pools):
    AgentPool.objects.filter(name="frontend").update(allow_commands=False)

    task = submit(prompt="", capabilities=["ui"], command=["make", "ui"])

    assert task.pool.name == "ios"


# --- stored -----------------------------------------------------------------------------------------


def test_task_submit_without_limits_takes_timeout_and_attempts_from_the_pool(pools):
    backend = pools["backend"]
    backend.max_attempts = 5
    backend.runner = backend.runner | {"timeout": 42}
    backend.save()

    task = submit(capabilities=[" Python", "API", "python"])

    stored = Task.objects.get()
    assert stored.id == task.id
    assert stored.pool.name == "backend"
    assert stored.status == Task.Status.QUEUED
    assert stored.timeout == 42.0
    assert (stored.max_attempts, stored.attempt_budget, stored.attempts) == (5, 5, 0)
    assert stored.capabilities == ["api", "python"]
    assert stored.queued_at is not None and stored.available_at == stored.queued_at


def test_task_submit_explicit_limits_override_the_pool(pools):
    task = submit(timeout=7.5, max_attempts=9, priority="high", complexity=4)

    task.refresh_from_db()
    assert (task.timeout, task.max_attempts, task.attempt_budget) == (7.5, 9, 9)
    assert (task.priority, task.complexity) == ("high", 4)


def test_task_submit_valid_task_publishes_one_task_queued_event(pools):
    task = submit(prompt="", command=["make", "test"], source="cli")

    event = Event.objects.get()
    assert event.type == "task.queued"
    assert event.task_id == task.id
    assert event.pool.name == "backend"
    assert event.payload == {
        "priority": "normal",
        "source": "cli",
        "title": "make test",
        "capabilities": ["python"],
    }


# --- idempotency -----------------------------------------------------------------------------------


def test_task_submit_same_key_same_content_returns_the_first_task(pools):
    first = submit(idempotency_key="gh-42", capabilities=["python", "api"])

    again = submit(idempotency_key="gh-42", capabilities=["API", "python"])

    assert again.id == first.id
    assert Task.objects.count() == 1
    assert Event.objects.filter(type="task.queued").count() == 1


@pytest.mark.parametrize(
    "changed",
    [{"prompt": "something else"}, {"priority": "critical"}, {"capabilities": ["database"]}, {"payload": {"a": 1}}],
    ids=["prompt", "priority", "capabilities", "payload"],
)
def test_task_submit_same_key_other_content_raises_idempotency_conflict(pools, changed):
    first = submit(idempotency_key="gh-42")

    with pytest.raises(IdempotencyConflict) as caught:
        submit(idempotency_key="gh-42", **changed)

    assert (caught.value.code, http_status(caught.value)) == ("idempotency_conflict", 409)
    assert "'gh-42'" in caught.value.detail and str(first.id) in caught.value.detail
    assert Task.objects.count() == 1


def test_task_submit_same_key_in_another_team_is_another_task(pools):
    red, blue = Team.objects.create(name="red"), Team.objects.create(name="blue")

    first = submit(idempotency_key="gh-42", team=red)
    other = submit(idempotency_key="gh-42", team=blue, prompt="different content is fine")

    assert first.id != other.id
    assert submit(idempotency_key="gh-42", team=red).id == first.id
    assert Task.objects.count() == 2


def test_task_submit_without_team_belongs_to_the_default_team(pools):
    task = submit()

    assert task.team.name == DEFAULT_TEAM
    assert Event.objects.get().team_id == task.team_id


# --- the broker message -----------------------------------------------------------------------------


@pytest.fixture
def clean_broker():
    purge_broker()
    yield
    purge_broker()


def test_task_submit_before_commit_sends_nothing_to_the_broker(pools, clean_broker):
    task = submit()

    assert str(task.id) not in task_ids_in_broker(["hive.backend"])


def test_task_submit_after_commit_sends_the_message_to_the_pools_queue(
    pools, clean_broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        task = submit(capabilities=["docker"], priority="critical")

    assert task.pool.name == "infrastructure"
    assert task_ids_in_broker(["hive.infrastructure"]) == {str(task.id)}
    assert task_ids_in_broker(["hive.backend", "hive.frontend", "hive.ios"]) == set()


def test_task_submit_refused_task_registers_no_commit_callback(pools, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(InvalidTask):
        submit(priority="urgent")

    assert callbacks == []


@pytest.mark.parametrize(("timeout", "outcome"), [(30, "same task"), (60, "conflict")])
def test_task_submit_raced_by_the_same_key_compares_every_field_with_the_winner(pools, monkeypatch, timeout, outcome):
    from coordination import services

    real_route = services.route
    winner: list[Task] = []

    def racing_route(*args, **kwargs):
        # another submit with the key stores first, after this one found no task with it
        monkeypatch.setattr(services, "route", real_route)
        winner.append(task_submit(capabilities=["python"], prompt="p", idempotency_key="k", timeout=30))
        return real_route(*args, **kwargs)

    monkeypatch.setattr(services, "route", racing_route)
    if outcome == "same task":
        assert task_submit(capabilities=["python"], prompt="p", idempotency_key="k", timeout=timeout) == winner[0]
    else:
        with pytest.raises(IdempotencyConflict, match="with another timeout"):
            task_submit(capabilities=["python"], prompt="p", idempotency_key="k", timeout=timeout)
    assert Task.objects.count() == 1
