"""Claude Code runs read right, through a real worker: tests/fake_claude.py prints the documented output
of a turn limit and of an API overload (tests/claude_fixtures.py) as the infrastructure pool's program."""

from __future__ import annotations

from decimal import Decimal

import pytest

from coordination.models import Task
from coordination.services import task_submit
from tests import claude_fixtures as fixtures
from tests.conftest import wait_for
from tests.integration.test_cli import hive_cli

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TURN_LIMIT = (
    "claude stopped at its turn limit after 3 turns [terminal_reason: max_turns]: Reached maximum number of turns (3)"
)


def finished(task: Task) -> bool:
    task.refresh_from_db()
    return task.is_terminal


def progress_of(task: Task) -> list[str]:
    return [
        line for event in task.events.filter(type="task.progress").order_by("id") for line in event.payload["lines"]
    ]


def test_turn_limit_fails_the_task_at_once_with_the_reason(hive):
    hive.worker("infrastructure")  # its runner: python3 -m tests.fake_claude {prompt}, claude-json
    task = task_submit(capabilities=["terraform"], prompt="hit the turn limit", max_attempts=3)
    wait_for(lambda: finished(task), timeout=30, what="the agent task")

    assert (task.status, task.attempts, task.error) == (Task.Status.FAILED, 1, TURN_LIMIT)
    attempt = task.attempt_set.get()
    assert (attempt.exit_code, attempt.is_error, attempt.error) == (1, True, TURN_LIMIT)
    assert (attempt.session_id, attempt.num_turns, attempt.cost_usd) == (fixtures.SESSION, 3, Decimal("0.412800"))
    assert list(task.events.filter(type="task.retrying")) == []
    progress = progress_of(task)
    assert progress[1:] == ["[tool Bash] ls -la", "[tool result] total 0", f"[result] {TURN_LIMIT}"]
    assert progress[0].startswith(f"[init] session {fixtures.SESSION} started, model {fixtures.MODEL}, 6 tools")

    shown = hive_cli("show", task.short_id).stdout
    assert fixtures.SESSION in shown and "$0.4128" in shown
    assert f"#1 error: {TURN_LIMIT}" in shown


def test_overloaded_api_is_retried_and_the_next_attempt_succeeds(hive):
    hive.worker("infrastructure")
    task = task_submit(capabilities=["terraform"], prompt="plan the VPC, overloaded once", max_attempts=3)
    wait_for(lambda: finished(task), timeout=30, what="the agent task")

    assert (task.status, task.attempts) == (Task.Status.SUCCEEDED, 2)
    first, second = task.attempt_set.order_by("number")
    assert (first.outcome, first.error) == ("failed", "claude API error 529 (API overloaded)")
    assert (second.outcome, second.session_id, second.num_turns) == ("succeeded", "sess-123", 4)
    (retrying,) = task.events.filter(type="task.retrying")
    assert retrying.payload["error"] == "claude API error 529 (API overloaded)"
    assert task.result["result"] == "done: plan the VPC, overloaded once"

    shown = hive_cli("show", task.short_id).stdout
    assert "#1 error: claude API error 529 (API overloaded)" in shown
    assert "#2 result: done: plan the VPC, overloaded once" in shown
    assert "sess-123" in shown and "$0.0123" in shown
