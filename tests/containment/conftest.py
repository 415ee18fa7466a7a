"""Containment tests switch users and start bubblewrap, so they need root (CI runs as root): they
fail loudly, never skip, where it is missing.

Contained programs are run with the machine's own Python (`/usr/bin/python3`), which any user
may run; the suite's virtualenv Python may live where the runner user cannot go (under /root).
The probe they run is copied out of the checkout to /var/tmp, where the runner user can read it
and the sandbox sees it (the checkout may be under /tmp, which the sandbox covers).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import psutil
import pytest

RUNNER = "hive-agent"
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def runner_user():
    """The unprivileged user pools run as in these tests, created as `hive up` creates it."""
    from agents.runners.containment import lookup_user
    from hive_project.cli.up import ensure_system_user

    if os.geteuid() != 0:
        pytest.fail("containment tests switch users and must run as root (CI does)")
    for tool in ("bwrap", "setpriv"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: apt-get install bubblewrap util-linux (.ci/run does)")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.fail(f"{SYSTEM_PYTHON} is needed to run probes as the runner user")
    ensure_system_user(RUNNER)
    return lookup_user(RUNNER)


@functools.cache
def probe_script() -> str:
    """The probe, copied where any user and the sandbox can read it (removed at exit)."""
    home = Path(tempfile.mkdtemp(prefix="hive-probe-", dir="/var/tmp"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    home.chmod(0o755)
    script = home / "probe.py"
    shutil.copyfile(Path(__file__).with_name("probe.py"), script)
    script.chmod(0o644)
    return str(script)


def probe_command(spec: dict) -> list[str]:
    return [SYSTEM_PYTHON, probe_script(), json.dumps(spec)]


def probe_report(output: str) -> dict:
    """The probe's report from a task's output (its `PROBE {...}` line)."""
    for line in reversed(output.splitlines()):
        if line.startswith("PROBE "):
            return json.loads(line.removeprefix("PROBE "))
    raise AssertionError(f"the probe printed no report:\n{output[-3000:]}")


def contain_pool(name: str, **runner: object) -> None:
    """Change a pool's runner where the worker reads it (the database row), after its worker synced it."""
    from agents.models import AgentPool

    pool = AgentPool.objects.get(name=name)
    pool.runner = {**pool.runner, **runner}
    pool.save(update_fields=["runner"])


def marked(marker: str) -> list[psutil.Process]:
    """Live processes anywhere on the machine whose command line carries `marker`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and marker in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def wait_gone(marker: str, *, within: float = 3.0) -> list[psutil.Process]:
    """Wait until no process carries `marker`; returns the survivors (empty when all are gone)."""
    deadline = time.monotonic() + within
    while (left := marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture
def reaper():
    """Markers a test's programs carry; whatever survives a failing test is killed here."""
    markers: list[str] = []
    yield markers
    for marker in markers:
        for proc in marked(marker):
            try:
                proc.kill()
            except psutil.Error:
                pass


def stubborn_tree(marker: str, seconds: int = 120) -> list[str]:
    """A program that ignores SIGTERM and starts a child that ignores it too; both carry `marker`."""
    child = f"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep({seconds})  # {marker}"
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"subprocess.Popen([sys.executable, '-c', {child!r}])\n"
        "print('started', flush=True)\n"
        f"time.sleep({seconds})  # {marker}\n"
    )
    return [SYSTEM_PYTHON, "-c", script]


def var() -> Path:
    from hive_project.paths import var_dir

    return var_dir()
