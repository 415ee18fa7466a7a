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


@pytest.fixture
def runner_in_an_extra_group(runner_user) -> Iterator[int]:
    """The runner user with one supplementary group more, removed afterwards."""
    import grp

    name = "hive-test-extra"
    subprocess.run(["groupadd", "-f", name], check=True)
    subprocess.run(["usermod", "-aG", name, RUNNER], check=True)
    try:
        yield grp.getgrnam(name).gr_gid
    finally:
        subprocess.run(["gpasswd", "-d", RUNNER, name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)


@pytest.mark.parametrize("sandbox", [False, True], ids=["run_as", "run_as+sandbox"])
def test_contained_program_starts_through_the_helper_with_the_users_uid_gid_and_groups(
    runner_in_an_extra_group, workspace_root, sandbox
):
    from agents.runners import process

    assert process._HELPER is not None, "make install builds .venv/bin/hive-pdeathsig (agents/runners/pdeathsig.c)"
    containment = contained(sandbox)
    command, preexec = process._with_parent_death_signal(["id"], dict(os.environ), containment=containment)
    assert command[0] == process._HELPER and preexec is None
    ws = workspace.prepare({"root": str(workspace_root)}, "task-g", 1)

    outcome = run(["sh", "-c", "id -u; id -g; id -G"], ws, containment)

    user = containment.user
    assert outcome.exit_code == 0, outcome.tail
    uid, gid, groups = outcome.tail
    assert (int(uid), int(gid)) == (user.uid, user.gid)
    assert runner_in_an_extra_group in user.groups
    held = {user.gid, *user.groups}  # as initgroups(3) sets them
    if sandbox:  # bwrap's user namespace maps only the user's own gid; the others show as the overflow gid
        overflow = int(Path("/proc/sys/kernel/overflowgid").read_text())
        held = [g if g == user.gid else overflow for g in held]
    assert sorted(map(int, groups.split())) == sorted(held)


def test_helper_switching_users_ends_the_program_if_the_worker_is_already_gone(runner_user):
    """The window setpriv left open: a worker killed between starting the program and the
    parent-death signal being set. The helper sees that its parent is not the worker and ends."""
    from agents.runners import process

    switch = f"--user={runner_user.uid}:{runner_user.gid}:{','.join(map(str, runner_user.groups))}"
    gone = subprocess.run([process._HELPER, switch, "1", "/usr/bin/id", "-u"], capture_output=True, text=True)
    ours = subprocess.run(
        [process._HELPER, switch, str(os.getpid()), "/usr/bin/id", "-u"], capture_output=True, text=True
    )
    bad = subprocess.run([process._HELPER, "--user=x", str(os.getpid()), "/usr/bin/id"], capture_output=True, text=True)

    assert gone.returncode == -signal.SIGKILL and gone.stdout == ""
    assert ours.returncode == 0 and ours.stdout == f"{runner_user.uid}\n"
    assert bad.returncode == 127 and "--user must be UID:GID:GROUPS" in bad.stderr and bad.stdout == ""


def test_helper_starts_a_program_behind_a_closed_directory_and_leaves_it_no_capabilities(runner_user):
    """As `setpriv --reuid` does: the exec still holds the worker's rights (a venv's interpreter
    under /root is reachable), the program then runs as the user with no capability at all."""
    from agents.runners import process

    closed = Path(tempfile.mkdtemp(prefix="hive-closed-"))  # 0700, root's
    try:
        shutil.copy("/usr/bin/cat", closed / "cat")
        switch = f"--user={runner_user.uid}:{runner_user.gid}:{','.join(map(str, runner_user.groups))}"
        ran = subprocess.run(
            [process._HELPER, switch, str(os.getpid()), str(closed / "cat"), "/proc/self/status"],
            capture_output=True,
            text=True,
        )
        peek = subprocess.run(
            [process._HELPER, switch, str(os.getpid()), "/usr/bin/ls", str(closed)], capture_output=True, text=True
        )
    finally:
        shutil.rmtree(closed)

    assert ran.returncode == 0, ran.stderr
    status = dict(line.split(":\t", 1) for line in ran.stdout.splitlines() if ":\t" in line)
    assert status["Uid"].split()[0] == str(runner_user.uid)
    assert {status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")} == {"0000000000000000"}
    assert peek.returncode != 0 and "Permission denied" in peek.stderr  # the program itself cannot
