"""task_submit enforces the API's bounds for every caller, and every field counts for idempotency."""

from __future__ import annotations

import math

import pytest

from agents.models import AgentPool
from coordination.errors import IdempotencyConflict, InvalidTask
from coordination.json_limits import MAX_JSON_DEPTH
from coordination.models import Event, Task
from coordination.services import task_submit
from coordination.submission import MAX_CAPABILITIES, MAX_PROMPT_CHARS


def submit(**overrides):
    spec = {"capabilities": ["python"], "prompt": "add a health endpoint"} | overrides
    return task_submit(**spec)


def deep(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        pytest.param(
            {"prompt": "x" * (MAX_PROMPT_CHARS + 1)},
            f"prompt must be at most {MAX_PROMPT_CHARS} characters (it has {MAX_PROMPT_CHARS + 1})",
            id="prompt-too-long",
        ),
        pytest.param(
            {"capabilities": ["python"] + [f"cap{i}" for i in range(MAX_CAPABILITIES)]},
            f"capabilities must be at most {MAX_CAPABILITIES} (there are {MAX_CAPABILITIES + 1})",
            id="too-many-capabilities",
        ),
        pytest.param({"capabilities": ["p" * 65]}, "a capability is at most 64 characters", id="capability-too-long"),
        pytest.param(
            {"command": ["echo", "x" * 10_001]},
            "a command argument is at most 10000 characters",
            id="command-arg-too-long",
        ),
        pytest.param(
            {"command": ["true"] * 1001}, "command must have at most 1000 arguments (it has 1001)", id="command-long"
        ),
        pytest.param({"external_ref": "r" * 301}, "external_ref must be at most 300 characters (it has 301)", id="ref"),
        pytest.param({"external_ref": 5}, "external_ref must be a string", id="ref-not-str"),
        pytest.param(
            {"payload": {"a": math.nan}},
            "payload contains NaN or Infinity, which JSON has no number for",
            id="payload-nan",
        ),
        pytest.param(
            {"payload": {"a": -math.inf}},
            "payload contains NaN or Infinity, which JSON has no number for",
            id="payload-inf",
        ),
        pytest.param(
            {"payload": deep(MAX_JSON_DEPTH + 1)},
            f"payload is nested deeper than {MAX_JSON_DEPTH} levels",
            id="payload-deep",
        ),
        pytest.param(
            {"payload": deep(100_000)}, f"payload is nested deeper than {MAX_JSON_DEPTH} levels", id="payload-very-deep"
        ),
        pytest.param(
            {"priority": ["high"]},
            "priority must be one of low, normal, high, critical, not a list",
            id="priority-list",
        ),
    ],
)
def test_task_submit_beyond_the_bounds_raises_invalid_task_and_stores_nothing(pools, overrides, detail):
    with pytest.raises(InvalidTask) as caught:
        submit(**overrides)

    assert caught.value.detail == detail
    assert Task.objects.count() == 0 and Event.objects.count() == 0


def test_task_submit_at_the_bounds_is_accepted(pools):
    task = submit(
        prompt="x" * MAX_PROMPT_CHARS,
        capabilities=["python"] * MAX_CAPABILITIES,
        payload=deep(MAX_JSON_DEPTH),
        external_ref="r" * 300,
    )

    assert task.pool.name == "backend" and len(task.prompt) == MAX_PROMPT_CHARS


@pytest.fixture
def branch_pool(pools):
    """The ios pool's agent needs the payload's `branch` (and `ticket`) on its command line."""
    AgentPool.objects.filter(name="ios").update(
        runner={"kind": "command", "argv": ["agent", "--branch={payload.branch}", "{payload.ticket}", "{prompt}"]}
    )


def test_task_submit_without_the_payload_fields_the_pools_argv_names_raises_invalid_task(branch_pool):
    with pytest.raises(InvalidTask) as caught:
        submit(capabilities=["swift"], payload={"branch": "main"})

    assert caught.value.detail == (
        "pool ios runs its agent with payload field(s) ticket, which the task's payload does not have"
    )
    assert Task.objects.count() == 0 and Event.objects.count() == 0


def test_task_submit_with_the_payload_fields_the_pools_argv_names_is_accepted(branch_pool):
    task = submit(capabilities=["swift"], payload={"branch": "main", "ticket": "T-1"})

    assert task.pool.name == "ios"


def test_task_submit_command_task_needs_no_payload_fields_of_the_agent_argv(branch_pool):
    task = submit(capabilities=["swift"], prompt="", command=["true"])

    assert task.pool.name == "ios"


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        ({"timeout": 30}, "timeout"),
        ({"max_attempts": 1}, "max_attempts"),
        ({"complexity": 4}, "complexity"),
        ({"external_ref": "https://example.com/2"}, "external_ref"),
        ({"task_type": "lint"}, "task_type"),
        ({"command": ["true"]}, "command"),
    ],
)
def test_task_submit_same_key_with_any_other_field_raises_idempotency_conflict(pools, changed, named):
    first = submit(idempotency_key="deploy-7")

    with pytest.raises(IdempotencyConflict) as caught:
        submit(idempotency_key="deploy-7", **changed)

    assert named in caught.value.detail and str(first.id) in caught.value.detail
    assert Task.objects.count() == 1


def test_task_submit_same_key_and_the_pools_own_defaults_spelled_out_returns_the_first_task(pools):
    first = submit(idempotency_key="deploy-8")

    again = submit(idempotency_key="deploy-8", timeout=first.pool.timeout, max_attempts=first.pool.max_attempts)

    assert again.id == first.id and Task.objects.count() == 1


def test_task_submit_same_key_with_an_explicit_timeout_twice_returns_the_first_task(pools):
    first = submit(idempotency_key="deploy-9", timeout=12, max_attempts=2)

    assert submit(idempotency_key="deploy-9", timeout=12.0, max_attempts=2).id == first.id
    with pytest.raises(IdempotencyConflict):
        submit(idempotency_key="deploy-9")
