"""Supervised child processes: how `hive up` (and the bench, through the local actuator) start,
restart and stop the hive's processes.

Each child runs in a session of its own, its output appended to one log file. Two ways to stop:

- `terminate()`: SIGTERM to the child's main process only. For a Celery worker that is the warm
  shutdown: it stops consuming and waits for the tasks it runs. Not to the process group: the
  prefork pool processes reset SIGTERM to its default, so a signal to the group would kill the
  pool process that runs an attempt.
- `signal(sig)`: to the whole process group (a web server, beat, or the last resort SIGKILL).
"""

from __future__ import annotations

import os
import signal as signals
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

MAX_BACKOFF = 30.0
Echo = Callable[[str], None]


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0
    log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_file is not None:
            self.log_file.close()  # the previous run's: the child holds its own copy
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv, stdout=self.log_file, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        self.started_at = time.monotonic()

    def running(self) -> bool:
        return self.live() is not None

    def live(self) -> subprocess.Popen | None:
        """The child's process while it runs; None before its first start and once it exited."""
        proc = self.proc
        return proc if proc is not None and proc.poll() is None else None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def signal(self, sig: int) -> None:
        """Send `sig` to the child's whole process group."""
        if (proc := self.live()) is not None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        """SIGTERM to the main process only: a Celery worker's warm shutdown (see the module doc)."""
        if (proc := self.live()) is not None:
            try:
                os.kill(proc.pid, signals.SIGTERM)
            except ProcessLookupError:
                pass

    def close_log(self) -> None:
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


def restart_if_dead(child: Child, *, echo: Echo) -> None:
    """Restart a child that died: at once when it had run for a minute, else after a backoff that
    doubles with each quick crash (up to MAX_BACKOFF). Each step is said through `echo` and in the
    child's log."""
    if child.running():
        return
    now = time.monotonic()
    if child.next_start == 0.0:
        code = child.proc.returncode if child.proc else None
        quick = now - child.started_at < 60
        delay = min(MAX_BACKOFF, 2.0**child.restarts) if quick else 1.0
        child.restarts = child.restarts + 1 if quick else 0
        child.next_start = now + delay
        echo(f"crashed   {child.name} (exit {code}); restarting in {delay:.0f}s, see {child.log_path}")
        log_line(child, f"hive up: {child.name} exited ({code}); restarting in {delay:.0f}s")
    elif now >= child.next_start:
        child.next_start = 0.0
        child.start()
        if child.running():
            echo(f"restarted {child.name} (pid {child.pid})")
            log_line(child, f"hive up: restarted {child.name} (pid {child.pid})")


def log_line(child: Child, line: str) -> None:
    """Append one time-stamped line of the supervisor's to the child's log."""
    try:
        with open(child.log_path, "a") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
    except OSError:
        pass
