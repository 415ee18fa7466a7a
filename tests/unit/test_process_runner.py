"""run_process with real small programs: exit codes, output, logs, timeouts, stops and leftovers."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agents.runners.process import ProcessOutcome, run_process

PY = sys.executable
# A program that ignores SIGTERM and starts a child that ignores it too, then prints both pids.
STUBBORN_TREE = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def all_gone(pids: list[int], *, within: float = 2.0) -> bool:
    """True once none of the pids runs; a SIGKILLed process may take a moment to be scheduled and die."""
    deadline = time.monotonic() + within
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def pids_in(outcome: ProcessOutcome) -> list[int]:
    return [int(line) for line in outcome.tail if line.strip().isdigit()]


@pytest.fixture
def spawned() -> Iterator[list[int]]:
    """Pids a test's programs printed; whatever survives a failing test is killed here."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def run(argv: list[str], tmp_path: Path, *, keep_going=lambda: True, timeout: float = 20.0, **kw) -> ProcessOutcome:
    return run_process(
        argv,
        cwd=tmp_path,
        env=dict(os.environ),
        timeout=timeout,
        log_path=tmp_path / "logs" / "1.log",
        keep_going=keep_going,
        poll_interval=0.02,
        check_interval=0.1,
        **kw,
    )


def test_run_process_normal_exit_reports_code_tail_and_log(tmp_path):
    started: list[int] = []

    outcome = run(["sh", "-c", "echo hello; echo oops >&2; exit 3"], tmp_path, on_start=started.append)

    assert (outcome.exit_code, outcome.timed_out, outcome.stopped, outcome.start_error) == (3, False, False, "")
    assert outcome.tail == ["hello", "oops"]
    assert (tmp_path / "logs" / "1.log").read_text() == "hello\noops\n"
    assert len(started) == 1 and started[0] > 0


def test_run_process_runs_in_cwd_with_env(tmp_path):
    outcome = run_process(
        ["sh", "-c", 'pwd; echo "$GREETING"'],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "GREETING": "hi"},
        timeout=10,
        log_path=tmp_path / "x.log",
        keep_going=lambda: True,
    )

    assert outcome.exit_code == 0
    assert outcome.tail == [str(tmp_path), "hi"]


def test_run_process_tail_keeps_only_the_last_lines(tmp_path):
    outcome = run([PY, "-c", "for i in range(500): print(i)"], tmp_path)

    assert outcome.tail == [str(i) for i in range(300, 500)]
    assert len((tmp_path / "logs" / "1.log").read_text().splitlines()) == 500


def test_run_process_timeout_kills_a_tree_that_ignores_sigterm(tmp_path, spawned):
    started = time.monotonic()

    outcome = run([PY, "-c", STUBBORN_TREE], tmp_path, timeout=1.0, on_start=spawned.append)

    spawned.extend(pids_in(outcome))
    assert outcome.timed_out is True and outcome.stopped is False
    assert outcome.exit_code == -signal.SIGKILL
    assert len(spawned) == 2, outcome.tail
    assert all_gone(spawned)
    assert time.monotonic() - started < 5
    assert (tmp_path / "logs" / "1.log").read_text().endswith("[hive] timed out after 1s; process tree killed\n")


def test_run_process_keep_going_false_stops_within_two_seconds(tmp_path, spawned):
    stop_at = time.monotonic() + 0.3

    outcome = run(
        [PY, "-c", STUBBORN_TREE], tmp_path, keep_going=lambda: time.monotonic() < stop_at, on_start=spawned.append
    )

    spawned.extend(pids_in(outcome))
    assert outcome.stopped is True and outcome.timed_out is False
    assert outcome.duration < 2.5
    assert all_gone(spawned)
    assert "[hive] stopped (cancelled or superseded)" in (tmp_path / "logs" / "1.log").read_text()


def test_run_process_missing_program_returns_start_error(tmp_path):
    outcome = run(["hive-no-such-program", "--help"], tmp_path)

    assert outcome.start_error.startswith("cannot start 'hive-no-such-program': ")
    assert "No such file" in outcome.start_error
    assert (outcome.exit_code, outcome.timed_out, outcome.stopped) == (None, False, False)
    assert outcome.tail == [outcome.start_error]
    assert (tmp_path / "logs" / "1.log").read_text() == outcome.start_error + "\n"


def test_run_process_on_output_receives_lines_in_batches(tmp_path):
    batches: list[list[str]] = []
    program = "import time\nprint('a\\nb\\nc', flush=True)\ntime.sleep(0.6)\nprint('d\\ne', flush=True)"

    outcome = run([PY, "-c", program], tmp_path, on_output=batches.append, output_interval=0.2)

    assert outcome.exit_code == 0
    assert [line for batch in batches for line in batch] == ["a", "b", "c", "d", "e"]
    assert len(batches) >= 2
    assert not any({"c", "d"} <= set(batch) for batch in batches)  # the pause separates batches


def test_run_process_background_grandchild_is_killed_after_normal_exit(tmp_path, spawned):
    outcome = run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], tmp_path)

    spawned.extend(pids_in(outcome))
    assert outcome.exit_code == 0
    assert len(spawned) == 1
    assert all_gone(spawned)


def test_run_process_grandchild_in_its_own_session_is_killed_after_normal_exit(tmp_path, spawned):
    program = (
        "import subprocess\n"
        "p = subprocess.Popen(['sleep', '60'], start_new_session=True,\n"
        "    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(p.pid, flush=True)\n"
    )

    outcome = run([PY, "-c", program], tmp_path)

    spawned.extend(pids_in(outcome))
    assert len(spawned) == 1
    assert all_gone(spawned, within=1.0)


# --- the parent-death signal: an agent program never outlives the worker process that started it
PDEATHSIG_PROBE = (
    "import ctypes, signal; v = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(v)); print(v.value)"
)


def test_run_process_program_gets_sigkill_as_its_parent_death_signal(tmp_path):
    outcome = run([PY, "-c", PDEATHSIG_PROBE], tmp_path)

    assert outcome.exit_code == 0
    assert outcome.tail == [str(int(signal.SIGKILL))]


def test_uncontained_program_starts_through_the_built_helper_not_setpriv():
    from agents.runners import process

    assert process._HELPER is not None, "make install builds .venv/bin/hive-pdeathsig (agents/runners/pdeathsig.c)"

    command, preexec = process._with_parent_death_signal(["true", "x"], dict(os.environ))

    assert preexec is None  # Popen can use vfork
    assert command[:2] == [process._HELPER, str(os.getpid())]
    assert os.path.basename(command[2]) == "true" and os.path.isabs(command[2]) and command[3:] == ["x"]


def test_pdeathsig_helper_ends_a_program_whose_parent_is_already_gone():
    import subprocess

    from agents.runners import process

    assert process._HELPER is not None
    # the pid given is not this process: as if the worker had died before the signal was set
    gone = subprocess.run([process._HELPER, "1", "/bin/echo", "ran"], capture_output=True, text=True)
    ours = subprocess.run([process._HELPER, str(os.getpid()), "/bin/echo", "ran"], capture_output=True, text=True)
    bad = subprocess.run([process._HELPER, "x", "/bin/echo", "ran"], capture_output=True, text=True)

    assert gone.returncode == -signal.SIGKILL and gone.stdout == ""
    assert ours.returncode == 0 and ours.stdout == "ran\n"
    assert bad.returncode == 127 and "PARENT must be a pid" in bad.stderr


def test_uncontained_program_dies_with_the_worker_process(tmp_path, spawned):
    import subprocess
    import textwrap

    pid_file = tmp_path / "program.pid"
    worker = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from agents.runners.process import run_process
        run_process(["sh", "-c", "echo $$ > {pid_file}; exec sleep 120"], cwd=Path({str(tmp_path)!r}),
                    env=dict(os.environ), timeout=120, log_path=Path({str(tmp_path / "w.log")!r}),
                    keep_going=lambda: True)
    """)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([PY, "-c", worker], cwd=root, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert proc.poll() is None, "the worker stopped before its program started"
            assert time.monotonic() < deadline, "the program never started"
            time.sleep(0.05)
        program = int(pid_file.read_text())
        spawned.append(program)
        assert alive(program)

        os.kill(proc.pid, signal.SIGKILL)  # the worker only; its program is in a session of its own
        proc.wait()

        assert all_gone([program], within=5.0), "the program outlived its worker"
    finally:
        if proc.poll() is None:
            proc.kill()
