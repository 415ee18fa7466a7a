"""`hive verify`: the deployment guide's health verification, against the running hive.

Each check does the real thing: the database answers and has every migration; Redis answers a
PING; every enabled pool that should have instances has an online agent; a canary task goes from
submit to succeeded through a real worker; and the event stream, opened with a short-lived
read-only key, delivers the canary's events.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.db import connection


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


CANARY_COMMAND = ["true"]


def hive_verify(*, url: str, timeout: float = 60.0) -> list[Check]:
    """Run every check; a failing check does not stop the others (unless the database is away)."""
    checks = [_database()]
    if not checks[0].ok:
        return checks
    checks.append(_redis())
    checks.append(_agents())
    checks.extend(_canary_and_stream(url=url, timeout=timeout))
    return checks


def _database() -> Check:
    from django.db.migrations.executor import MigrationExecutor

    try:
        connection.ensure_connection()
        pending = MigrationExecutor(connection).migration_plan(MigrationExecutor(connection).loader.graph.leaf_nodes())
    except Exception as exc:
        return Check("database", False, f"cannot reach it: {exc}".splitlines()[0])
    if pending:
        return Check("database", False, f"{len(pending)} migration(s) not applied: run `hive up` or `hive migrate`")
    return Check("database", True, f"{connection.vendor}, migrated")


def _redis() -> Check:
    from coordination.dispatch import redis_client

    try:
        started = time.monotonic()
        redis_client().ping()
    except Exception as exc:
        return Check("redis", False, f"no answer: {exc}")
    return Check("redis", True, f"PING answered in {(time.monotonic() - started) * 1000:.1f} ms")


def _agents() -> Check:
    from agents.models import Agent, AgentPool

    missing, seen = [], []
    for pool in AgentPool.objects.filter(enabled=True).order_by("name"):
        live = Agent.objects.live().filter(pool=pool).count()
        if live:
            seen.append(f"{pool.name} {live}")
        elif pool.desired_instances > 0:
            missing.append(pool.name)
    if missing:
        return Check("agents", False, f"no online agent in pool(s) {', '.join(missing)}")
    return Check("agents", True, "online: " + (", ".join(seen) or "none needed"))


def _canary_and_stream(*, url: str, timeout: float) -> list[Check]:
    from agents.models import AgentPool
    from coordination.errors import HiveError
    from coordination.models import Task
    from coordination.services import task_submit, team_default
    from external_api.services import apikey_create, apikey_revoke

    pool = AgentPool.objects.filter(enabled=True, allow_commands=True).order_by("name").first()
    if pool is None:
        reason = "no enabled pool allows commands, so no canary can run"
        return [Check("canary task", False, reason), Check("event stream", False, reason)]
    key, raw = apikey_create(name="hive verify (temporary)", scopes=["read"], team=team_default())
    try:
        holder: dict[str, object] = {}

        def submit() -> str:
            task = task_submit(
                command=CANARY_COMMAND,
                capabilities=list(pool.capabilities),
                task_type="canary",
                timeout=30,
                max_attempts=1,
                source="cli",
            )
            holder["task"] = task
            return str(task.id)

        try:
            seen = asyncio.run(_stream_events(url=url, key=raw, submit=submit, timeout=timeout))
            stream_error = ""
        except HiveError as exc:
            return [Check("canary task", False, f"refused: {exc.detail}"), Check("event stream", False, "not tried")]
        except Exception as exc:  # the stream did not answer; the canary may still have run
            seen, stream_error = [], f"{type(exc).__name__}: {exc}"
        task = holder.get("task")
        if not isinstance(task, Task):
            return [Check("canary task", False, "not submitted"), Check("event stream", False, stream_error)]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task.refresh_from_db()
            if task.is_terminal:
                break
            time.sleep(0.2)
        elapsed = ((task.finished_at or task.updated_at) - task.created_at).total_seconds()
        canary = (
            Check("canary task", True, f"{task.short_id} succeeded on {task.routed_pool.name} in {elapsed:.2f}s")
            if task.status == Task.Status.SUCCEEDED
            else Check(
                "canary task", False, f"{task.short_id} is {task.status} after {timeout:g}s {task.error}".strip()
            )
        )
        if stream_error:
            stream = Check("event stream", False, stream_error)
        elif "task.succeeded" in seen:
            stream = Check("event stream", True, f"delivered {', '.join(seen)}")
        else:
            stream = Check("event stream", False, f"only delivered {seen or 'nothing'} within {timeout:g}s")
        return [canary, stream]
    finally:
        apikey_revoke(prefix=key.prefix)


async def _stream_events(*, url: str, key: str, submit: Callable[[], str], timeout: float) -> list[str]:
    """Open the stream, submit the canary, and collect its event types until it succeeded or failed."""
    import websockets
    from asgiref.sync import sync_to_async

    parts = urlsplit(url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    stream = f"{scheme}://{parts.netloc}/ws/events/?batch_size=1&flush_interval=0.05"
    seen: list[str] = []
    async with websockets.connect(stream, additional_headers={"X-API-Key": key}, open_timeout=10) as socket:
        task_id = await sync_to_async(submit)()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(socket.recv(), timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            message = json.loads(raw)
            events = message.get("events", [message]) if isinstance(message, dict) else []
            for event in events:
                if isinstance(event, dict) and str(event.get("task_id") or event.get("task") or "") == task_id:
                    seen.append(str(event.get("type")))
            if {"task.succeeded", "task.failed", "task.dead"} & set(seen):
                break
    return seen
