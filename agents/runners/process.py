"""Run one agent program: own process group, streamed output, timeout and cancel kill the tree.

The program gets a new session (so its whole tree is one process group we can signal) and,
through PR_SET_PDEATHSIG, is killed if the worker process running it dies. Output is read line by
line into the attempt's log file and handed to `on_output` in batches. With a `Containment`
(agents.runners.containment) it runs as the pool's user and/or in the bubblewrap sandbox; its
working directory and log file then belong to that user.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from agents.runners import containment as contain
from agents.runners.containment import Containment

TAIL_LINES = 200
KILL_GRACE = 1.0

_prctl: Callable[..., int] | None
try:
    _libc = ctypes.CDLL("libc.so.6", use_errno=True)
    _prctl = _libc.prctl
except OSError:  # not Linux: no parent-death signal, the reconciler still kills the group
    _prctl = None
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_subreaper = False


def _adopt_orphans() -> None:
    """Make this process the reaper of its orphaned descendants (Linux), so a program that
    daemonizes a child and exits leaves that child here, where the cleanup finds it."""
    global _subreaper
    if _prctl is not None and not _subreaper:
        _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        _subreaper = True


_SETPRIV = shutil.which("setpriv")
HELPER_NAME = "hive-pdeathsig"  # agents/runners/pdeathsig.c, built by `make install` next to the venv's python


def _find_helper() -> str | None:
    beside = os.path.join(os.path.dirname(sys.executable), HELPER_NAME)
    return beside if os.access(beside, os.X_OK) else shutil.which(HELPER_NAME)


_HELPER = _find_helper()


def _with_parent_death_signal(
    argv: list[str], env: dict[str, str], *, containment: Containment | None = None, cwd: Path | None = None
) -> tuple[list[str], Callable[[], None] | None]:
    """The argv to start, and a preexec function if one is still needed.

    An uncontained program starts through `hive-pdeathsig` (agents/runners/pdeathsig.c), which sets
    SIGKILL as its parent-death signal and execs it, so Popen can use vfork: a `preexec_fn` forces a
    full fork() of the worker process, the largest single cost of starting a short task. Without
    the helper, util-linux's `setpriv --pdeathsig KILL` does the same at about twice its cost (a
    dynamically linked program that sets up its locale), and without either the preexec function.
    A contained program starts through the helper too, which then also switches to the
    containment's user (or, without it, through setpriv); bwrap, when sandboxed, comes after it.
    """
    contained = containment is not None and containment.active
    if not contained and _HELPER is None and _SETPRIV is None:
        return argv, _die_with_parent
    program = argv[0]
    if os.sep not in program:
        found = shutil.which(program, path=env.get("PATH"))
        if found is None:  # the same error Popen gives, before setpriv would turn it into exit 127
            raise FileNotFoundError(2, "No such file or directory", program)
        user = containment.user if containment is not None else None
        if user is not None:  # looked up as the user who runs it
            program = contain.which(program, path=env.get("PATH"), user=user) or ""
            if not program:
                raise PermissionError(13, f"not runnable by {user.name} (installed where it cannot go)", argv[0])
        else:
            program = found
    if not contained and _HELPER is not None:
        return [_HELPER, str(os.getpid()), program, *argv[1:]], None
    command = contain.command(
        [program, *argv[1:]],
        containment,
        workspace=cwd or Path.cwd(),
        setpriv=_SETPRIV,
        helper=_HELPER,
        parent=os.getpid(),
    )
    return command, None if _HELPER is not None or _SETPRIV is not None else _die_with_parent


def _die_with_parent() -> None:
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass
class ProcessOutcome:
    exit_code: int | None
    timed_out: bool
    stopped: bool
    duration: float
    tail: list[str]
    start_error: str = ""


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    log_path: Path,
    keep_going: Callable[[], bool],
    on_start: Callable[[int], None] = lambda pgid: None,
    on_output: Callable[[list[str]], None] = lambda lines: None,
    poll_interval: float = 0.1,
    check_interval: float = 0.5,
    output_interval: float = 0.5,
    containment: Containment | None = None,
) -> ProcessOutcome:
    """Run `argv` in `cwd` to its end, its timeout, or until `keep_going()` says stop.

    With `containment`, the program runs as its user (cwd, recursively, and the log file are
    handed to that user first) and/or in its sandbox; the kill of the process tree is the same.
    """
    started = time.monotonic()
    _adopt_orphans()
    me = os.getpid()
    children_before = {p.pid for p in descendants(me)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab", buffering=0) as log:
        try:
            if containment is not None and containment.user is not None:
                hand_over(cwd, uid=containment.user.uid, gid=containment.user.gid)
                os.fchown(log.fileno(), containment.user.uid, containment.user.gid)
            env = contain.environment(env, containment, workspace=cwd)
            command, preexec = _with_parent_death_signal(list(argv), env, containment=containment, cwd=cwd)
            proc = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
            )
        except OSError as exc:
            message = f"cannot start {argv[0]!r}: {exc.strerror or exc}"
            log.write((message + "\n").encode())
            return ProcessOutcome(None, False, False, 0.0, [message], start_error=message)
        on_start(proc.pid)
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        pending: list[str] = []
        lock = threading.Lock()

        def read() -> None:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                log.write(raw)
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with lock:
                    tail.append(line)
                    pending.append(line)

        reader = threading.Thread(target=read, name="runner-output", daemon=True)
        reader.start()

        def flush() -> None:
            with lock:
                batch = pending[:]
                pending.clear()
            if batch:
                on_output(batch)

        deadline = started + timeout
        # The first check one poll in: a program that is done by then costs no check at all.
        next_output = time.monotonic()
        next_check = next_output + poll_interval
        timed_out = stopped = False
        seen: dict[int, psutil.Process] = {}  # descendants met while running, even if they leave the group
        while proc.poll() is None:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if now >= next_check:
                next_check = now + check_interval
                _remember_descendants(proc.pid, seen)
                if not keep_going():
                    stopped = True
                    break
            if now >= next_output:
                next_output = now + output_interval
                flush()
            try:  # returns as soon as the program exits: a short task does not wait out the interval
                proc.wait(timeout=poll_interval)
            except subprocess.TimeoutExpired:
                pass
        kill_tree(proc, graceful=timed_out or stopped, also=list(seen.values()))
        _reap_adopted(me, children_before)
        reader.join(timeout=2.0)
        flush()
        if timed_out:
            log.write(f"[hive] timed out after {timeout:g}s; process tree killed\n".encode())
        elif stopped:
            log.write(b"[hive] stopped (cancelled or superseded); process tree killed\n")
        return ProcessOutcome(
            exit_code=proc.returncode,
            timed_out=timed_out,
            stopped=stopped,
            duration=time.monotonic() - started,
            tail=list(tail),
        )


def hand_over(path: Path, *, uid: int, gid: int) -> None:
    """Make `path` and everything in it belong to uid:gid, symlinks themselves and not their targets."""
    os.chown(path, uid, gid, follow_symlinks=False)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def _reap_adopted(me: int, children_before: set[int]) -> None:
    """Kill and reap what the program left behind and this process adopted."""
    leftovers = [p for p in descendants(me) if p.pid not in children_before]
    for p in leftovers:
        _signal(p, signal.SIGKILL)
    psutil.wait_procs(leftovers, timeout=2)


def _remember_descendants(pid: int, seen: dict[int, psutil.Process]) -> None:
    for child in descendants(pid):
        seen.setdefault(child.pid, child)


# Linux lists a thread's children in /proc/<pid>/task/<tid>/children: a few small reads, where
# psutil's children() reads /proc/<pid>/stat of every process on the machine (a few ms per call,
# three calls per attempt).
_PROC_CHILDREN = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def descendants(pid: int) -> list[psutil.Process]:
    """Every live descendant of `pid` (empty when it is gone), children before grandchildren."""
    if not _PROC_CHILDREN:
        try:
            return psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            return []
    found: list[psutil.Process] = []
    parents = [pid]
    while parents:
        for child in _children_of(parents.pop(0)):
            try:
                found.append(psutil.Process(child))  # records the start time: a reused pid is never signalled
            except psutil.Error:
                continue
            parents.append(child)
    return found


def _children_of(pid: int) -> list[int]:
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:  # the process is gone
        return []
    pids: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                pids.extend(int(p) for p in f.read().split())
        except OSError:  # the thread ended meanwhile
            continue
    return pids


def kill_tree(proc: subprocess.Popen, *, graceful: bool, also: Sequence[psutil.Process] = ()) -> None:
    """End the program and everything it started, including processes that left its group.

    With `graceful`, SIGTERM first and SIGKILL after KILL_GRACE seconds for what ignores it.
    After a normal exit the remaining members of the group are killed outright: an attempt leaves
    nothing running behind it.
    """
    pgid = proc.pid
    tree = descendants(proc.pid)
    known = {p.pid for p in tree}
    # psutil.Process checks the creation time before signalling, so a reused pid is never hit
    tree += [p for p in also if p.pid not in known]
    if graceful:
        _signal_group(pgid, signal.SIGTERM)
        for p in tree:
            _signal(p, signal.SIGTERM)
        try:
            proc.wait(timeout=KILL_GRACE)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(pgid, signal.SIGKILL)
    for p in tree:
        _signal(p, signal.SIGKILL)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal(p: psutil.Process, sig: int) -> None:
    try:
        p.send_signal(sig)
    except psutil.Error:
        pass
