"""`hive up` as a new user runs it: no database or Redis configured, everything embedded."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from hive_project.launch import free_port
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration]


def hive(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hive_project.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except OSError:
        return 0, {}


@pytest.fixture
def fresh_env():
    var = Path(tempfile.mkdtemp(prefix="hive-up-"))
    env = {k: v for k, v in os.environ.items() if k not in ("LEANVIBE_DATABASE_URL", "LEANVIBE_REDIS_URL")}
    env.update(LEANVIBE_VAR_DIR=str(var), PYTHONUNBUFFERED="1")
    return env, var


def test_hive_up_runs_the_whole_hive_and_ctrl_c_stops_every_child(fresh_env):
    env, var = fresh_env
    port = free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "hive_project.cli", "up", "--port", str(port), "--no-flower"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while get(f"http://127.0.0.1:{port}/ready")[0] != 200:
            assert up.poll() is None, up.stdout.read()
            assert time.monotonic() < deadline, "the web process never became ready"
            time.sleep(0.3)
        children = psutil.Process(up.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        for queue in ("hive.backend", "hive.frontend", "hive.ios", "hive.infrastructure", "hive.control"):
            assert f"-Q {queue}" in names
        assert " beat " in names and "redis-server" in names
        assert (var / "hive.sqlite3").exists() and (var / "redis.sock").exists()

        submitted = subprocess.run(
            [
                sys.executable,
                "-m",
                "hive_project.cli",
                "submit",
                "--command",
                "python3 -c 'print(7 * 6)'",
                "--capability",
                "python",
                "--wait",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        assert "  | 42" in submitted.stdout

        demo = subprocess.run(
            [sys.executable, "-m", "hive_project.cli", "demo"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=200,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "demo finished as expected" in demo.stdout
        assert demo.stdout.count("succeeded  succeeded") == 8 and demo.stdout.count("dead       dead") == 8

        verified = hive(env, "verify", "--url", f"http://127.0.0.1:{port}", "--timeout", "60")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        for check in ("database", "redis", "agents", "canary task", "event stream"):
            assert re.search(rf"^{check}\s+pass", verified.stdout, re.M), verified.stdout

        backed_up = hive(env, "backup", "--to", str(var / "backups"))
        assert backed_up.returncode == 0, backed_up.stderr
        archive = re.search(r"^backup (\S+)", backed_up.stdout, re.M).group(1)
        refused = hive(env, "restore", archive)
        assert refused.returncode == 1 and "the hive is running" in refused.stderr, refused.stderr

        os.kill(up.pid, signal.SIGINT)
        out, _ = up.communicate(timeout=30)
        assert up.returncode == 0
        assert "stopped." in out
        assert not (var / "hive-up.pid").exists()
        restored = hive(env, "restore", archive)
        assert restored.returncode == 0 and "every checksum matches" in restored.stdout, restored.stderr
        for child in children:
            assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, child.cmdline()
    finally:
        if up.poll() is None:  # a failed check: Ctrl-C still stops what hive up started (scaled workers too)
            os.kill(up.pid, signal.SIGINT)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
