"""Shared fixtures: pools from the test configuration, real Celery worker processes, beat."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hive_project.launch import celery_argv, worker_argv

ROOT = Path(__file__).resolve().parent.parent


def wait_for(
    predicate: Callable[[], object], *, timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> object:
    """Poll until `predicate()` is truthy; fail the test with `what` after `timeout` seconds."""
    from django.db import close_old_connections

    deadline = time.monotonic() + timeout
    while True:
        close_old_connections()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what or predicate}")
        time.sleep(interval)


def database_url_for_children() -> str:
    """The URL of the database under test, so worker processes use the same one."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgresql://{auth}@{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{s['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, LEANVIBE_DATABASE_URL=database_url_for_children(), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


@pytest.fixture(autouse=True, scope="session")
def model_fits_remembered():
    """The same seeded history fits the same model: tests/fit_cache.py keeps each fit for the run."""
    from ml import training
    from tests.fit_cache import remembering

    real = training._fit_duration, training._fit_success
    training._fit_duration = remembering(real[0])  # type: ignore[assignment]
    training._fit_success = remembering(real[1])  # type: ignore[assignment]
    yield
    training._fit_duration, training._fit_success = real


@pytest.fixture(autouse=True)
def no_pool_figures_refresher(monkeypatch):
    """No thread of ml.predict refreshes pool figures behind a test: its connection would not see the
    test's transaction (tests/ml/test_refresh.py turns it on where it is the subject)."""
    from ml import predict

    monkeypatch.setattr(predict, "REFRESH_SECONDS", None)


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked `postgresql` are about PostgreSQL itself: deselected (not skipped) on SQLite, so
    a SQLite run shows no skip, and CI's PostgreSQL pass runs them."""
    if os.environ.get("LEANVIBE_DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        return
    kept = [item for item in items if item.get_closest_marker("postgresql") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.fixture
def pools(db):
    from django.conf import settings

    from coordination.fleet import pool_sync

    return {p.name: p for p in pool_sync(config=settings.HIVE_CONFIG)}


@pytest.fixture
def live_pools(transactional_db):
    from django.conf import settings

    from coordination.fleet import pool_sync

    return {p.name: p for p in pool_sync(config=settings.HIVE_CONFIG)}


class Processes:
    """Real Celery processes started by a test, all stopped at its end."""

    def __init__(self, tmp_path: Path) -> None:
        self.procs: list[subprocess.Popen] = []
        self.logs = tmp_path

    def spawn(self, name: str, argv: list[str], **env: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=child_env(**env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        proc.log_path = self.logs / f"{name}.log"  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def worker(
        self, pool: str, *, name: str | None = None, concurrency: int = 1, wait: bool = True, **env: str
    ) -> subprocess.Popen:
        """A pool worker; returns once its agent is registered online."""
        from agents.models import Agent

        node = f"{name or pool}@test"
        argv = worker_argv(queue=f"hive.{pool}", node=node, concurrency=concurrency, fair=False)
        proc = self.spawn(node.replace("@", "-"), argv, **env)
        proc.node = node  # type: ignore[attr-defined]
        if wait:
            started = time.monotonic()
            wait_for(
                lambda: self._check(proc) and Agent.objects.filter(name=node, status="online", pid=proc.pid).exists(),
                timeout=60,
                what=f"worker {node} to come online",
            )
            # the agent is online a moment before the consumer takes messages
            time.sleep(max(0.0, 0.3 - (time.monotonic() - started)))
        return proc

    def control(self, **env: str) -> tuple[subprocess.Popen, subprocess.Popen]:
        """The control worker and beat: reconciliation runs every second or so. `env` (LEANVIBE_*
        variables) configures both."""
        worker = self.spawn(
            "control", worker_argv(queue="hive.control", node="control@test", concurrency=1, fair=False), **env
        )
        beat = self.spawn(
            "beat", celery_argv("beat", "--loglevel", "INFO", "-s", str(self.logs / "beat-schedule")), **env
        )
        return worker, beat

    def _check(self, proc: subprocess.Popen) -> bool:
        if proc.poll() is not None:
            pytest.fail(f"process exited with {proc.returncode}:\n{proc.log_path.read_text()[-3000:]}")
        return True

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                _killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def purge_broker() -> None:
    """Drop messages and reservations a previous test left in the broker."""
    from coordination.dispatch import redis_client

    client = redis_client()
    keys = [k for pattern in ("hive.*", "unacked*", "_kombu*", "hive:*") for k in client.scan_iter(pattern)]
    if keys:
        client.delete(*keys)


@pytest.fixture
def hive(live_pools, tmp_path) -> Iterator[Processes]:
    """Start real workers with `hive.worker(pool)`; they are stopped before the database is reset."""
    purge_broker()
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


@pytest.fixture
def marker_dir(tmp_path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Hashing stays real (Django's hasher interface) but cheap, so persona fixtures are fast."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def webhook_sources_read_every_time(settings):
    """Tests change sources with UPDATEs (no signal) and expect the next delivery to see the change:
    they run without the web process's source cache; tests/webhooks/test_source_cache.py turns it on."""
    settings.WEBHOOK_SOURCE_CACHE_SECONDS = 0


@pytest.fixture(autouse=True)
def no_authentication_lockouts():
    """Failed-authentication counters live in Redis, which outlives each test's database: a test
    that tries wrong keys or passwords must not lock the next test's client (127.0.0.1) out."""
    yield
    from django.conf import settings

    if not settings.configured:
        return
    try:
        from coordination.dispatch import redis_client

        client = redis_client()
        keys = list(client.scan_iter("*authfail:*"))
        if keys:
            client.delete(*keys)
    except Exception:  # a test that stopped Redis: nothing was counted in it
        pass
