"""run_process with a Containment, on real programs: the workspace and log are the runner user's,
and the timeout, stop, leftover and worker-death guarantees hold inside the sandbox."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agents.runners import workspace
from agents.runners.containment import Containment, plan
from agents.runners.process import ProcessOutcome, run_process
from tests.containment.conftest import RUNNER, SYSTEM_PYTHON, marked, stubborn_tree, wait_gone

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def workspace_root() -> Iterator[Path]:
    """A workspace root the runner user may pass through (pytest's tmp_path is closed to it)."""
    root = Path(tempfile.mkdtemp(prefix="hive-contain-"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def contained(sandbox: bool, **runner: object) -> Containment:
    return plan({"run_as": RUNNER, "sandbox": "bubblewrap" if sandbox else "none", **runner}, pool="test")


def run(argv: list[str], ws: Path, containment: Containment, **kw) -> ProcessOutcome:
    kw.setdefault("timeout", 20.0)
    kw.setdefault("keep_going", lambda: True)
    return run_process(
        argv,
        cwd=ws,
        env=dict(os.environ),
        log_path=ws.parent / "logs" / "1.log",
        poll_interval=0.02,
        check_interval=0.1,
        containment=containment,
        **kw,
    )


@pytest.mark.parametrize("sandbox", [False, True], ids=["run_as", "run_as+sandbox"])
def test_run_process_as_the_runner_user_hands_it_the_workspace_and_the_log(runner_user, workspace_root, sandbox):
    ws = workspace.prepare({"root": str(workspace_root)}, "task-a", 1)
    (ws / "task.json").write_text("{}")  # written by the worker before the start, as execute does

    outcome = run(["sh", "-c", "id -u; echo made > made.txt; cat task.json"], ws, contained(sandbox))

    assert outcome.exit_code == 0, outcome.tail
    assert outcome.tail == [str(runner_user.uid), "{}"]
    log = ws.parent / "logs" / "1.log"
    for path in (ws, ws / "task.json", ws / "made.txt", log):
        assert path.stat().st_uid == runner_user.uid, path
    assert oct(ws.stat().st_mode & 0o777) == "0o700" and oct(ws.parent.stat().st_mode & 0o777) == "0o711"


def test_run_process_timeout_in_the_sandbox_kills_a_tree_that_ignores_sigterm(runner_user, workspace_root, reaper):
    marker = f"hive-marker-{uuid.uuid4().hex}"
    reaper.append(marker)
    ws = workspace.prepare({"root": str(workspace_root)}, "task-t", 1)

    outcome = run(stubborn_tree(marker), ws, contained(True), timeout=2.0)

    assert outcome.timed_out and outcome.tail[:1] == ["started"]
    assert wait_gone(marker) == [], "a process of the timed-out tree survived"


def test_run_process_stop_in_the_sandbox_kills_the_tree(runner_user, workspace_root, reaper):
    marker = f"hive-marker-{uuid.uuid4().hex}"
    reaper.append(marker)
    ws = workspace.prepare({"root": str(workspace_root)}, "task-s", 1)
    seen: list[str] = []

    started = time.monotonic()
    outcome = run(
        stubborn_tree(marker),
        ws,
        contained(True),
        keep_going=lambda: not seen,
        on_output=seen.extend,
        output_interval=0.05,
    )

    assert outcome.stopped and not outcome.timed_out
    assert time.monotonic() - started < 10
    assert wait_gone(marker) == [], "a process of the stopped tree survived"


def test_run_process_in_the_sandbox_leaves_no_daemon_behind(runner_user, workspace_root, reaper):
    marker = f"hive-marker-{uuid.uuid4().hex}"
    reaper.append(marker)
    ws = workspace.prepare({"root": str(workspace_root)}, "task-d", 1)
    daemon = textwrap.dedent(f"""
        import os, time
        if os.fork() == 0:
            os.setsid()  # leaves the runner's process group
            if os.fork() == 0:
                time.sleep(120)  # {marker}
            os._exit(0)
        print("parent leaves", flush=True)
    """)

    outcome = run([SYSTEM_PYTHON, "-c", daemon], ws, contained(True))

    assert outcome.exit_code == 0 and outcome.tail == ["parent leaves"]
    assert wait_gone(marker) == [], "the daemon outlived its sandbox"


def program_running(marker: str) -> bool:
    """The program itself runs: setpriv's and bwrap's command lines carry the marker too, from before
    setpriv sets the parent-death signal, and a worker killed in that moment is not what is tested."""
    for proc in marked(marker):
        try:
            if proc.name().startswith("python"):
                return True
        except psutil.Error:
            continue
    return False


@pytest.mark.parametrize("sandbox", [False, True], ids=["run_as", "run_as+sandbox"])
def test_contained_program_dies_with_its_worker(runner_user, workspace_root, reaper, sandbox):
    marker = f"hive-marker-{uuid.uuid4().hex}"
    reaper.append(marker)
    ws = workspace.prepare({"root": str(workspace_root)}, "task-w", 1)
    # the marker is assembled in the worker, so that only the program's command line carries it
    worker = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from agents.runners.containment import plan
        from agents.runners.process import run_process
        c = plan({{"run_as": {RUNNER!r}, "sandbox": {"bubblewrap" if sandbox else "none"!r}}}, pool="test")
        program = "import time; time.sleep(120)  # hive-marker-" + sys.argv[1]
        run_process([{SYSTEM_PYTHON!r}, "-c", program], cwd=Path({str(ws)!r}),
                    env=dict(os.environ), timeout=120,
                    log_path=Path({str(ws.parent / "w.log")!r}), keep_going=lambda: True)
    """).replace("keep_going=lambda: True)", "keep_going=lambda: True, containment=c)")
    proc = subprocess.Popen(
        [sys.executable, "-c", worker, marker.removeprefix("hive-marker-")], cwd=ROOT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 20
        while not program_running(marker):
            assert proc.poll() is None, "the worker stopped before its program started"
            assert time.monotonic() < deadline, "the contained program never started"
            time.sleep(0.05)

        os.kill(proc.pid, signal.SIGKILL)  # the worker only; its program is in a group of its own
        proc.wait()

        assert wait_gone(marker) == [], "the contained program outlived its worker"
    finally:
        if proc.poll() is None:
            proc.kill()
