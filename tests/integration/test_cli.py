"""The `hive` command as a user runs it: a real process, its output and its exit code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from coordination.models import Event, Task
from tests.conftest import ROOT, child_env, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def hive_cli(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hive_project.cli", *args],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_submit_wait_prints_the_run_and_exits_0_on_success(hive):
    hive.worker("backend")
    done = hive_cli("submit", "--command", "python3 -c 'print(6 * 7)'", "--capability", "python", "--wait")
    assert done.returncode == 0, done.stderr
    assert "routed to pool backend" in done.stdout
    assert "running attempt 1 on backend@test" in done.stdout
    assert "  | 42" in done.stdout
    assert "succeeded" in done.stdout.splitlines()[-1]
    assert Task.objects.get().status == Task.Status.SUCCEEDED


def test_submit_wait_exits_1_when_the_task_fails(hive):
    hive.worker("backend")
    done = hive_cli(
        "submit", "--command", "sh -c 'echo broken >&2; exit 4'", "-c", "python", "--max-attempts", "1", "--wait"
    )
    assert done.returncode == 1
    assert "broken" in done.stdout
    assert "dead: exited with status 4" in done.stdout


def test_prompt_task_on_a_pool_whose_agent_program_is_missing_fails_at_once_with_the_reason(hive):
    hive.worker("backend")  # its runner is a program that does not exist
    done = hive_cli("submit", "make the flaky test pass", "-c", "python", "--wait")
    assert done.returncode == 1
    assert "agent program 'hive-test-agent-not-installed' is not installed" in done.stdout
    task = Task.objects.get()
    assert task.status == Task.Status.FAILED and task.attempts == 1
    pools = hive_cli("pools")
    assert "agent program 'hive-test-agent-not-installed' is not installed on this machine" in pools.stdout


def test_impossible_task_is_refused_with_one_line_naming_the_pools_and_nothing_is_stored(live_pools):
    done = hive_cli("submit", "--command", "true", "-c", "python", "-c", "swift")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("hive: no_eligible_pool: no pool offers python+swift:")
    assert "backend offers api, database, microservices, python" in line
    assert "ios offers app_store, mobile, swift, ui" in line
    assert Task.objects.count() == 0 and Event.objects.count() == 0


def test_bad_input_on_the_cli_is_one_line_and_exit_2(live_pools):
    done = hive_cli("submit", "--command", "true", "-c", "python", "--payload", "{not json")
    assert done.returncode == 2 and done.stderr.startswith("hive: invalid_task: --payload is not JSON")
    done = hive_cli("cancel", "ffffffff")
    assert done.returncode == 2 and done.stderr.strip() == "hive: not_found: no task 'ffffffff'"
    assert Task.objects.count() == 0


def test_tasks_agents_show_cancel_retry_redrive(hive):
    hive.worker("backend")
    submitted = hive_cli("submit", "--command", "sh -c 'exit 9'", "-c", "python", "--max-attempts", "1", "--wait")
    task = Task.objects.get()
    assert submitted.returncode == 1 and task.status == Task.Status.DEAD

    listing = hive_cli("tasks", "--status", "dead")
    assert task.short_id in listing.stdout and "dead" in listing.stdout
    assert "backend@test" in hive_cli("agents").stdout
    shown = hive_cli("show", task.short_id)
    assert "exited with status 9" in shown.stdout and "task.dead" in shown.stdout

    refused = hive_cli("cancel", task.short_id)
    assert refused.returncode == 2
    assert refused.stderr.strip().endswith("is dead: only pending, queued or running tasks can be cancelled")
    again = hive_cli("redrive", task.short_id)
    assert again.returncode == 0 and "queued" in again.stdout
    wait_for(lambda: Task.objects.get().attempts == 2 and Task.objects.get().status == "dead", what="second death")
    assert hive_cli("retry", task.short_id).returncode == 0


def test_check_config_accepts_the_guide_configmap_and_names_a_bad_key(tmp_path):
    ok = hive_cli("check-config", str(ROOT / "tests" / "fixtures" / "guide_configmap.yaml"))
    assert ok.returncode == 0 and "configuration ok" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("multi_agent:\n  max_agents: lots\n")
    refused = hive_cli("check-config", str(bad))
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "multi_agent.max_agents" in line and "'lots'" in line
