"""The servers and processes one `hive bench` run uses, all of its own.

A temporary var directory (never the developer's var/) holds the SQLite database, the embedded
Redis socket, the logs and the workspaces. With LEANVIBE_DATABASE_URL pointing at PostgreSQL the
bench creates a scratch database on that server and drops it at the end; with LEANVIBE_REDIS_URL it
uses that Redis, on queues of its own (`hive.bench`, `bench.raw`). Every process it starts is in a
session of its own and is stopped by its process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from hive_project import launch
from hive_project.paths import BASE_DIR

POOL = "bench"
CAPABILITY = "bench"
# The front-door scenarios (3–5) submit to a pool no bench process serves, so their tasks stay queued.
FRONT_POOL = "backend"
FRONT_CAPABILITY = "api"
# Scenario 7 (bench/autoscaling.py): a pool the scaler moves, one fixed at 4, one whose program is rate limited.
SCALED_POOL, SCALED_CAPABILITY = "scaled", "scaled"
FIXED_POOL, FIXED_CAPABILITY = "fixed", "fixed"
RATE_POOL, RATE_CAPABILITY = "ratelimited", "ratelimited"
# Scenario 8 (bench/learning.py): pools that all offer one capability, each running
# bench/learning_agent.py, which is fast or slow, reliable or not by a table the hive never sees.
LEARN_POOLS, LEARN_CAPABILITY, LEARN_CONCURRENCY = ("alpha", "beta", "gamma"), "learn", 2
LEARN_SLOW_MARKER = "learning-slow"  # in the run's var directory: while it exists, one pool is slow
GITHUB_SECRET = "hive-bench-github-secret"
UNLIMITED = 100_000_000  # requests per minute: the bench measures the server, not its rate limits
STOP_GRACE = 15.0


class BenchError(RuntimeError):
    """The bench cannot run (a server is missing, a process did not start); the message says why."""


@dataclass
class World:
    var: Path
    redis_url: str  # redis-py's form: unix:///path or redis://host:port/db
    database_url: str
    embedded_redis: bool
    scratch_database: str | None = None  # PostgreSQL database created for this run
    admin_url: str | None = None  # where to connect to drop it
    redis_proc: subprocess.Popen | None = None
    procs: list[subprocess.Popen] = field(default_factory=list)
    keep: bool = False

    @property
    def broker_url(self) -> str:
        if self.redis_url.startswith("unix://"):
            return "redis+socket://" + self.redis_url.removeprefix("unix://")
        return self.redis_url

    def child_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEANVIBE_")}
        env.update(
            LEANVIBE_VAR_DIR=str(self.var),
            LEANVIBE_CONFIG=str(self.var / "bench.yaml"),
            LEANVIBE_DATABASE_URL=self.database_url,
            LEANVIBE_REDIS_URL=self.redis_url,
            HIVE_BENCH_BROKER_URL=self.broker_url,
            HIVE_BENCH_REDIS_URL=self.redis_url,
            PYTHONUNBUFFERED="1",
            PYTHONPATH=os.pathsep.join(filter(None, [str(BASE_DIR), os.environ.get("PYTHONPATH", "")])),
        )
        env.update(extra)
        return env

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log_path = self.var / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=BASE_DIR,
                env=env or self.child_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc.log_path = log_path  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def raw_celery_env(self) -> dict[str, str]:
        """The peer's worker: its module imported on its own (not through the hive_project package,
        whose __init__ loads the hive's Celery app), and no Django settings to pick up."""
        env = self.child_env(PYTHONPATH=str(Path(__file__).resolve().parent))
        env.pop("DJANGO_SETTINGS_MODULE", None)
        return env

    def stop(self, proc: subprocess.Popen) -> None:
        """SIGTERM to the process group (a warm shutdown), SIGKILL after STOP_GRACE seconds."""
        _killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            pass
        _killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def log_tail(self, proc: subprocess.Popen, chars: int = 3000) -> str:
        path = getattr(proc, "log_path", None)
        return path.read_text(errors="replace")[-chars:] if path and path.exists() else ""


def bench_config(concurrency: int, var: Path | None = None) -> str:
    marker = str((var or Path(tempfile.gettempdir())) / LEARN_SLOW_MARKER)
    program = str(BASE_DIR / "bench" / "learning_agent.py")
    learning = "".join(
        f"  {name}:\n"
        f"    capabilities: [{LEARN_CAPABILITY}]\n"
        f"    concurrency: {LEARN_CONCURRENCY}\n"
        "    max_instances: 1\n"
        "    max_attempts: 1\n"
        f"    runner: {{kind: command, argv: {json.dumps([sys.executable, '-S', program, name, '{prompt}', marker])}, "
        "timeout: 60, output_format: text}\n"
        for name in LEARN_POOLS
    )
    return (
        "# Written by `hive bench`: one pool whose tasks carry their own command.\n"
        "system: {log_level: WARNING}\n"
        "multi_agent: {load_balancing_strategy: least_loaded, min_agents: 0}\n"
        "# Scenario 7: a short cooldown (default 3 minutes) so a pool is back at its minimum within the\n"
        "# run, and no fleet-wide floor. Beat runs only in scenario 7.\n"
        "scaling: {cooldown_minutes: 0.25, strategies: {scale_down: {min_instances: 0}}}\n"
        "# The bench loads the machine on purpose: a worker must not stop claiming at 80% CPU mid-run.\n"
        "resources: {allocation: {cpu_limit_percent: 100}}\n"
        "agents:\n"
        f"  {POOL}:\n"
        f"    capabilities: [{CAPABILITY}]\n"
        f"    concurrency: {concurrency}\n"
        "    max_instances: 1\n"
        "    max_attempts: 1\n"
        '    runner: {kind: command, argv: ["true"], timeout: 60, output_format: text}\n'
        f"  {SCALED_POOL}:\n"
        f"    capabilities: [{SCALED_CAPABILITY}]\n"
        "    concurrency: 1\n"
        "    min_instances: 1\n"
        "    max_instances: 4\n"
        '    runner: {kind: command, argv: ["true"], timeout: 60, output_format: text}\n'
        f"  {FIXED_POOL}:\n"
        f"    capabilities: [{FIXED_CAPABILITY}]\n"
        "    concurrency: 1\n"
        "    min_instances: 4\n"
        "    max_instances: 4\n"
        '    runner: {kind: command, argv: ["true"], timeout: 60, output_format: text}\n'
        f"  {RATE_POOL}:\n"
        f"    capabilities: [{RATE_CAPABILITY}]\n"
        "    concurrency: 2\n"
        "    min_instances: 1\n"
        "    max_instances: 1\n"
        '    runner: {kind: command, argv: ["python3", "-m", "tests.fake_claude", "{prompt}"], timeout: 60,\n'
        "             rate_limit: {backoff_initial: 1, backoff_max: 4}}\n"
        f"  {FRONT_POOL}:\n"
        f"    capabilities: [{FRONT_CAPABILITY}]\n"
        "    concurrency: 1\n"
        "    max_instances: 1\n"
        '    runner: {kind: command, argv: ["true"], timeout: 60, output_format: text}\n'
        f"{learning}"
        "external_api:\n"
        f"  api_gateway: {{rate_limit_per_minute: {UNLIMITED}, routes: []}}\n"
        f"  webhook_server:\n"
        f"    rate_limit_per_minute: {UNLIMITED}\n"
        "    endpoints: []\n"
        f"    github: {{secret: {GITHUB_SECRET}, capabilities: [{FRONT_CAPABILITY}]}}\n"
    )


@contextmanager
def migrated_world(*, concurrency: int = 1) -> Iterator[World]:
    """A world with Django set up in this process, its database migrated and the configured pools
    synced (the one-process profilers: bench/submit_profile.py, bench/request_profile.py)."""
    world = world_open(concurrency=concurrency)
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        from coordination.fleet import pool_sync

        call_command("migrate", interactive=False, verbosity=0)
        pool_sync(config=settings.HIVE_CONFIG)
        yield world
    finally:
        world_close(world)


def world_open(*, concurrency: int, keep: bool = False) -> World:
    """Make the var directory, start or reach Redis, prepare the database; set this process's env.

    Must run before Django is set up: settings read these variables once.
    """
    var = Path(tempfile.mkdtemp(prefix="hive-bench-"))
    (var / "bench.yaml").write_text(bench_config(concurrency, var))
    given_db = os.environ.get("LEANVIBE_DATABASE_URL") or ""
    given_redis = os.environ.get("LEANVIBE_REDIS_URL") or ""
    world = World(
        var=var,
        redis_url=given_redis,
        database_url=f"sqlite:///{var / 'hive.sqlite3'}",
        embedded_redis=not given_redis,
        keep=keep,
    )
    try:
        if given_db and urlsplit(given_db).scheme.startswith("postgres"):
            world.admin_url = given_db
            world.scratch_database = f"hive_bench_{os.getpid()}"
            _postgres_execute(given_db, f'CREATE DATABASE "{world.scratch_database}"')
            parts = urlsplit(given_db)
            world.database_url = urlunsplit(parts._replace(path="/" + world.scratch_database))
        elif given_db:
            world.database_url = given_db if given_db.startswith("sqlite") else world.database_url
        if world.embedded_redis:
            from hive_project import embedded_redis

            sock = var / "redis.sock"
            world.redis_proc = embedded_redis.start(sock, log_path=var / "logs" / "redis.log")
            world.redis_url = f"unix://{sock}"
    except Exception:
        world_close(world)
        raise
    for key in [k for k in os.environ if k.startswith("LEANVIBE_")]:
        del os.environ[key]
    os.environ.update({k: v for k, v in world.child_env().items() if k.startswith(("LEANVIBE_", "HIVE_BENCH_"))})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")
    return world


def world_close(world: World) -> None:
    for proc in list(world.procs):
        world.stop(proc)
    if world.scratch_database and world.admin_url:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        try:
            _postgres_execute(world.admin_url, f'DROP DATABASE IF EXISTS "{world.scratch_database}" WITH (FORCE)')
        except Exception as exc:  # the run's numbers are kept; say what is left behind
            sys.stderr.write(f"hive bench: could not drop scratch database {world.scratch_database}: {exc}\n")
    if world.redis_proc is not None:
        from hive_project import embedded_redis

        embedded_redis.stop(world.redis_proc)
    if not world.keep:
        shutil.rmtree(world.var, ignore_errors=True)


def _postgres_execute(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True, connect_timeout=5
    ) as conn:
        conn.execute(sql)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_until(predicate, *, timeout: float, interval: float = 0.05, what: str) -> object:
    """launch.wait_until, failing the run with a BenchError that names what did not happen."""
    try:
        return launch.wait_until(predicate, timeout=timeout, interval=interval, what=what)
    except TimeoutError as exc:
        raise BenchError(str(exc)) from None


def celery_worker_argv(app: str, queue: str, node: str, concurrency: int) -> list[str]:
    """The same worker command line for the hive and its peer (as `hive up` starts pool workers)."""
    return launch.worker_argv(queue=queue, node=node, concurrency=concurrency, app=app, loglevel="WARNING")
