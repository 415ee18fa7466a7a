"""Coordination sessions through real Redis, real worker processes and real subprocesses: results
passed along a DAG, failures, consensus, fan-out, timeout, every worker restarted mid-session, and
the `hive session` command as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from coordination.models import CoordinationSession, SessionStep, Task
from coordination.sessions import session_create
from tests.conftest import ROOT, child_env, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
PY = sys.executable


def py(code: str, *args: str, caps: tuple[str, ...] = ("python",), **extra) -> dict:
    return {"command": [PY, "-c", code, *args], "capabilities": list(caps), **extra}


def ended(session: CoordinationSession) -> CoordinationSession | None:
    session.refresh_from_db()
    return None if session.is_active else session


def steps_of(session: CoordinationSession) -> dict[str, SessionStep]:
    return {s.name: s for s in session.steps.select_related("task__pool", "task__agent")}


def test_session_dag_of_three_hands_a_and_b_results_to_c(hive):
    hive.worker("backend", concurrency=2)
    read_files = "import json; print('files', json.load(open('steps/a.json'))['result'], json.load(open('steps/b.json'))['result'])"
    session = session_create(
        plan={
            "name": "pass it along",
            "mode": "dag",
            "steps": [
                {"name": "a", **py("print('computing'); print('alpha')")},
                {"name": "b", **py("print('beta')")},
                {
                    "name": "c",
                    "depends_on": ["a", "b"],
                    **py(
                        f"import sys; print('argv', sys.argv[1], sys.argv[2]); {read_files}",
                        "{steps.a.result}",
                        "{steps.b.result}",
                    ),
                },
            ],
        }
    )

    wait_for(lambda: ended(session), timeout=60, what="the session to end")

    assert session.status == "succeeded", session.reason
    steps = steps_of(session)
    c = steps["c"]
    assert "argv computing\nalpha beta" in c.output_tail
    assert "files computing\nalpha beta" in c.output_tail
    assert c.task.payload["steps"]["a"]["result"] == "computing\nalpha"
    a_end = max(steps["a"].finished_at, steps["b"].finished_at)
    assert c.queued_at >= a_end and c.latency == pytest.approx((c.queued_at - a_end).total_seconds(), abs=1e-3)
    assert c.latency < 2.0


def test_session_failed_step_cancels_its_dependents_and_the_session_fails(hive, marker_dir):
    hive.worker("backend")
    marker = marker_dir / "never"
    session = session_create(
        plan={
            "name": "break early",
            "steps": [
                {"name": "a", **py("import sys; print('broken'); sys.exit(3)", max_attempts=1)},
                {"name": "b", "depends_on": ["a"], **py(f"open({str(marker)!r}, 'w')")},
                {"name": "c", "depends_on": ["b"], **py(f"open({str(marker)!r}, 'w')")},
            ],
        }
    )

    wait_for(lambda: ended(session), timeout=60, what="the session to end")

    assert session.status == "failed"
    assert session.reason == "step a failed: exited with status 3"
    steps = steps_of(session)
    assert (steps["a"].status, steps["a"].task.status) == ("failed", "dead")
    assert (steps["b"].status, steps["b"].reason, steps["b"].task) == ("cancelled", "dependency a failed", None)
    assert (steps["c"].status, steps["c"].reason) == ("cancelled", "dependency b was cancelled")
    assert not marker.exists()
    assert Task.objects.count() == 1


def consensus_plan(threshold: float) -> dict:
    return {
        "name": f"ship on friday? ({threshold})",
        "mode": "consensus",
        "consensus_threshold": threshold,
        "steps": [
            {"name": "alice", **py("import json; print(json.dumps({'vote': ' Yes', 'why': 'tests pass'}))")},
            {"name": "bob", **py("print('I looked at the diff'); print('YES ')")},
            {"name": "carol", **py("print('no')")},
        ],
    }


def test_session_consensus_of_three_with_two_agreeing_fails_0_7_and_passes_0_6(hive):
    hive.worker("backend", concurrency=3)
    strict = session_create(plan=consensus_plan(0.7))
    lenient = session_create(plan=consensus_plan(0.6))

    wait_for(lambda: ended(strict) and ended(lenient), timeout=60, what="both sessions to end")

    assert strict.status == "no_consensus"
    assert strict.decision["answer"] is None and strict.decision["share"] == 0.6667
    assert strict.decision["tally"] == {"yes": 2, "no": 1}
    assert "no answer reached 0.7 of 3 participants" in strict.reason
    assert lenient.status == "succeeded"
    assert (lenient.decision["answer"], lenient.decision["tally"]) == ("yes", {"yes": 2, "no": 1})


def test_session_fan_out_to_two_pools_runs_on_both_and_collects_both_results(hive):
    hive.worker("frontend")
    hive.worker("ios")
    session = session_create(
        plan={
            "name": "check the ui everywhere",
            "mode": "fan_out",
            "steps": [
                {
                    "name": "check",
                    "targets": ["frontend", "ios"],
                    **py("import os; print('checked in', os.environ['HIVE_TASK_ID'][:8])", caps=("ui",)),
                },
            ],
        }
    )

    wait_for(lambda: ended(session), timeout=60, what="the session to end")

    assert session.status == "succeeded", session.reason
    steps = steps_of(session)
    assert {n: (s.task.pool.name, s.task.agent.name) for n, s in steps.items()} == {
        "check-frontend": ("frontend", "frontend@test"),
        "check-ios": ("ios", "ios@test"),
    }
    assert session.decision["results"] == {n: f"checked in {s.task_id.hex[:8]}" for n, s in steps.items()}
    assert (session.decision["succeeded"], session.decision["failed"]) == (2, 0)


def test_session_past_its_timeout_cancels_the_running_step_and_times_out(hive):
    hive.worker("backend")
    hive.control()
    session = session_create(
        plan={
            "name": "too slow",
            "timeout": 3,
            "steps": [
                {"name": "slow", "command": ["sh", "-c", "sleep 60; echo never"], "capabilities": ["python"]},
                {"name": "after", "depends_on": ["slow"], "command": ["true"], "capabilities": ["python"]},
            ],
        }
    )
    attempt = wait_for(
        lambda: (
            SessionStep.objects.filter(session=session, name="slow", status="running").exists()
            and Task.objects.get(session_step__session=session).attempt_set.filter(pgid__isnull=False).first()
        ),
        timeout=30,
        what="the slow step to run",
    )

    wait_for(lambda: ended(session), timeout=30, what="the session to time out")

    assert (session.status, session.reason) == ("timed_out", "the session ran past its timeout of 3s")
    steps = steps_of(session)
    assert steps["slow"].status == "cancelled" and steps["slow"].task.status == "cancelled"
    assert (steps["after"].status, steps["after"].task) == ("cancelled", None)
    wait_for(lambda: not _group_alive(attempt.pgid), timeout=10, what="the slow program to be killed")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_session_survives_every_worker_killed_mid_session(hive, marker_dir):
    first = [hive.worker("backend"), *hive.control()]
    step = "import sys, time; time.sleep(1.5); open(sys.argv[1], 'a').write(sys.argv[2] + '\\n'); print(sys.argv[2])"
    session = session_create(
        plan={
            "name": "keep going",
            "steps": [
                {"name": "a", **py(step, str(marker_dir / "a"), "one")},
                {"name": "b", "depends_on": ["a"], **py(step, str(marker_dir / "b"), "{steps.a.result}-two")},
                {"name": "c", "depends_on": ["b"], **py(step, str(marker_dir / "c"), "{steps.b.result}-three")},
            ],
        }
    )
    wait_for(
        lambda: SessionStep.objects.filter(session=session, name="b", status="running").exists(),
        timeout=30,
        what="step b to run",
    )

    for proc in first:  # every worker, the control worker and beat, at once
        os.killpg(proc.pid, signal.SIGKILL)
    for proc in first:
        proc.wait()
    hive.worker("backend", name="backend-new")
    hive.control()

    wait_for(lambda: ended(session), timeout=90, what="the session to finish after the restart")
    assert session.status == "succeeded", session.reason
    steps = steps_of(session)
    assert steps["c"].output_tail.strip() == "one-two-three"
    assert (marker_dir / "c").read_text() == "one-two-three\n"
    assert steps["c"].task.agent.name == "backend-new@test"


# --- the command line -------------------------------------------------------------------------------


def hive_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "-m", "hive_project.cli", *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_hive_session_create_wait_prints_the_id_follows_and_exits_0_then_show_and_list(hive, tmp_path):
    hive.worker("backend")
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "name: greet\nmode: dag\nsteps:\n"
        "  - {name: hello, command: [echo, hello], capabilities: [python]}\n"
        "  - {name: world, depends_on: [hello], command: [echo, '{steps.hello.result} world'], capabilities: [python]}\n"
    )

    done = hive_cli("session", "create", str(plan), "--wait")

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    session = CoordinationSession.objects.get()
    assert lines[0] == str(session.id)
    assert any("step hello queued on pool backend" in line for line in lines)
    assert any("step world succeeded" in line for line in lines)
    assert lines[-1].startswith(f"session {session.id} ") and "succeeded" in lines[-1]
    shown = hive_cli("session", "show", str(session.id)[:8])
    assert shown.returncode == 0 and "hello world" in shown.stdout and "ms" in shown.stdout
    as_json = json.loads(hive_cli("session", "show", str(session.id), "--json").stdout)
    assert [s["status"] for s in as_json["steps"]] == ["succeeded", "succeeded"]
    listed = hive_cli("session", "list")
    assert str(session.id)[:8] in listed.stdout and "2/2" in listed.stdout


def test_hive_session_create_wait_exits_1_when_the_session_fails_and_refusals_exit_2(hive, tmp_path):
    hive.worker("backend")
    failing = tmp_path / "failing.yaml"
    failing.write_text(
        "name: doomed\nsteps:\n  - {name: x, command: [sh, -c, 'exit 4'], capabilities: [python], max_attempts: 1}\n"
    )
    cyclic = tmp_path / "cyclic.json"
    cyclic.write_text(
        json.dumps(
            {
                "name": "loop",
                "steps": [
                    {"name": "a", "command": ["true"], "capabilities": ["python"], "depends_on": ["b"]},
                    {"name": "b", "command": ["true"], "capabilities": ["python"], "depends_on": ["a"]},
                ],
            }
        )
    )

    done = hive_cli("session", "create", str(failing), "--wait")
    refused = hive_cli("session", "create", str(cyclic))

    assert done.returncode == 1
    assert "failed: step x failed: exited with status 4" in done.stdout.splitlines()[-1]
    assert refused.returncode == 2
    assert refused.stderr.strip() == "hive: invalid_session: the steps form a cycle: a -> b -> a"
    assert CoordinationSession.objects.count() == 1
