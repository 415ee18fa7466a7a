"""Each kind of runner through a real worker: the pool's agent program (Claude Code's JSON), a
python callable, and a git worktree workspace."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest

from agents.models import AgentPool
from coordination.models import Task
from coordination.services import task_submit
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished(task: Task) -> bool:
    task.refresh_from_db()
    return task.is_terminal


def test_agent_program_with_claude_json_output_is_read_into_the_attempt(hive):
    hive.worker("infrastructure")  # its runner: python -m tests.fake_claude {prompt}, claude-json
    task = task_submit(capabilities=["terraform"], prompt="plan the VPC")
    wait_for(lambda: finished(task), timeout=30, what="the agent task")

    assert task.status == Task.Status.SUCCEEDED
    attempt = task.attempt_set.get()
    assert (attempt.session_id, attempt.num_turns, attempt.cost_usd) == ("sess-123", 4, Decimal("0.012300"))
    assert task.result["result"] == "done: plan the VPC"
    progress = [line for e in task.events.filter(type="task.progress") for line in e.payload["lines"]]
    assert "working on: plan the VPC" in progress  # stream-json shown as the assistant's text


def test_agent_reporting_is_error_fails_the_attempt(hive):
    hive.worker("infrastructure")
    task = task_submit(capabilities=["terraform"], prompt="please fail", max_attempts=1)
    wait_for(lambda: finished(task), timeout=30, what="the agent task")
    assert task.status == Task.Status.DEAD
    attempt = task.attempt_set.get()
    assert attempt.exit_code == 0 and attempt.is_error
    assert "claude reported error_during_execution: done: please fail" in task.error


def test_python_runner_calls_the_dotted_path_in_a_workspace_of_its_own(hive):
    hive.worker("frontend")  # its runner: tests.sample_callables:echo_prompt
    task = task_submit(capabilities=["react"], prompt="render the login page")
    wait_for(lambda: finished(task), timeout=30, what="the python task")
    assert task.status == Task.Status.SUCCEEDED, task.error
    assert task.result["value"] == {"echo": "render the login page", "files": ["seen.txt", "task.json"]}


def test_worktree_workspace_runs_each_attempt_in_a_checkout_of_the_pools_repository(hive, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=h@example.com", "-c", "user.name=hive", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "README").write_text("from the repository\n")
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    hive.worker("backend")
    AgentPool.objects.filter(name="backend").update(workspace={"repository": str(repo), "keep": False})

    command = [sys.executable, "-c", "import os; print(open('README').read().strip(), os.getcwd())"]
    task = task_submit(capabilities=["python"], command=command)
    wait_for(lambda: finished(task), timeout=30, what="the task in a worktree")

    assert task.status == Task.Status.SUCCEEDED, task.error
    attempt = task.attempt_set.get()
    assert attempt.output_tail.startswith("from the repository ")
    assert attempt.workspace in attempt.output_tail  # it ran inside its own worktree
    listed = subprocess.run([*git, "worktree", "list"], capture_output=True, text=True, check=True).stdout
    assert attempt.workspace not in listed  # released after the attempt
