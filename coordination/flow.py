"""Flow control for agent pools, shared by all their workers through Redis.

Three limits keep a fleet of LLM agents under its provider's limits:

- `max_concurrent`: a semaphore across every worker of the pool. A holder is a member of the
  sorted set `hive:flow:<pool>:leases` scored by its expiry; the attempt's heartbeat pushes the
  expiry on (`lease_refresh`), so the lease of a worker that dies without releasing lapses after
  `lease_ttl()` and its slot frees itself.
- `max_starts_per_minute`: a sliding one-minute window of starts, `hive:flow:<pool>:starts`.
- a pause: when an agent program reports a provider rate limit, the pool starts nothing until
  `hive:flow:<pool>:paused` expires: the provider's reset time when it gives one, else a capped
  exponential backoff over the reports in a row (`hive:flow:<pool>:streak`).

`admit` checks all three and takes the slot in one Lua script, on the Redis server's clock, so
concurrent workers cannot overshoot and skewed worker clocks do not matter. The worker's adapter
(workers.tasks.execute_task) calls it before it claims the task, and the attempt's heartbeat
refreshes the lease:

    admission = flow.admit(pool=agent.pool, task_id=task_id)
    if not admission.ok:
        flow.task_defer(task_id=task_id, admission=admission)  # stays queued, no attempt spent
        return
    attempt = None
    try:
        attempt = task_claim(...)
        if attempt is not None:
            attempt_run(attempt=attempt, lease=admission.lease)  # heartbeat: flow.lease_refresh
    finally:
        flow.release(pool=agent.pool.name, admission=admission, started=attempt is not None)

When Redis cannot be reached every function fails open (admits, holds nothing) and logs, as the
API's rate limits do: a flow limit must never stop the hive.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.models import AgentPool
from coordination.events import publish
from coordination.metrics import FLOW_DEFERRED, RATE_LIMITED
from coordination.models import Task
from coordination.services import task_send

log = logging.getLogger(__name__)

KEY_PREFIX = "hive:flow"
WINDOW_MS = 60_000
PAUSE_HORIZON = 24 * 3600.0  # a reset time further off than this is taken as a mistake, and capped
POLL_MAX = 5.0  # seconds a task held back by max_concurrent waits before it asks again
WARN_EVERY = 30.0  # seconds between "Redis away" warnings in one process
_jitter = random.Random()

# KEYS: leases, starts, paused. ARGV: member, max_concurrent (0: none), max_starts (0: none), lease ms.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
if paused > now then return {0, 'paused', paused - now} end
local max_running, max_starts, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if max_running > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  if redis.call('ZCARD', KEYS[1]) >= max_running then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {0, 'max_concurrent', tonumber(first[2]) - now}
  end
end
if max_starts > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60000)
  if redis.call('ZCARD', KEYS[2]) >= max_starts then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {0, 'max_starts_per_minute', tonumber(oldest[2]) + 60000 - now}
  end
  redis.call('ZADD', KEYS[2], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[2], 61000)
end
if max_running > 0 then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {1, 'ok', 0}
"""

# KEYS: leases. ARGV: member, lease ms. Returns 1 if the lease was still held, 0 if it had lapsed.
_REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local had = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
if had > now then return 1 end
return 0
"""

# KEYS: paused, streak. ARGV: backoff initial ms, backoff max ms, reset epoch ms (0: none), horizon ms.
# A report while the pool is already paused comes from an attempt started before the pause: it
# does not grow the backoff (it may still push the pause out to a later reset time).
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local streak = tonumber(redis.call('GET', KEYS[2]) or '0')
local initial, cap, reset, horizon = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local wanted = now
if current <= now then
  streak = streak + 1
  local delay = math.min(cap, initial * 2 ^ math.min(streak - 1, 30))
  wanted = now + math.floor(delay)
  redis.call('SET', KEYS[2], streak, 'PX', math.floor(delay + cap))
end
if reset > 0 then wanted = math.max(now + 1000, math.min(reset, now + horizon)) end
if wanted > current then
  redis.call('SET', KEYS[1], wanted)
  redis.call('PEXPIREAT', KEYS[1], wanted)
  return {wanted, streak, 1, now}
end
return {current, streak, 0, now}
"""


@dataclass(frozen=True)
class Admission:
    """May the task start now? When not: `retry_after` seconds and why (`reason`, a code).

    `lease` names what this start holds (its concurrency slot and its place in the starts
    window); pass the admission to `release` when the attempt ends.
    """

    ok: bool
    retry_after: float = 0.0
    reason: str = ""  # paused | max_concurrent | max_starts_per_minute | unavailable (admitted) | ""
    lease: str | None = None

    def describe(self) -> str:
        return {
            "paused": f"the pool is paused after a provider rate limit; next try in {self.retry_after:.1f}s",
            "max_concurrent": f"the pool runs its max_concurrent tasks; next try in {self.retry_after:.1f}s",
            "max_starts_per_minute": f"the pool used its starts for this minute; next try in {self.retry_after:.1f}s",
            "unavailable": "flow control is unavailable (Redis); admitted without limits",
        }.get(self.reason, "admitted")


@dataclass(frozen=True)
class Pause:
    until: datetime
    seconds: float  # from now until `until`
    streak: int  # rate-limit reports in a row that grew the backoff
    extended: bool  # False when the pool was already paused at least this long


def key(pool: str, what: str) -> str:
    return f"{KEY_PREFIX}:{pool}:{what}"


def lease_ttl() -> float:
    """Seconds a lease lives without a heartbeat: as long as an agent may stay silent."""
    multi = settings.HIVE_CONFIG.multi_agent
    return max(multi.offline_after, 3 * multi.effective_heartbeat_interval)


def admit(*, pool: AgentPool, task_id: str) -> Admission:
    """Check the pool's pause and limits and, when the task may start, take its slot (atomic).

    Reads only `name`, `max_concurrent` and `max_starts_per_minute` from the pool.
    """
    limited = bool(pool.max_concurrent or pool.max_starts_per_minute)
    member = f"{task_id}:{secrets.token_hex(4)}"
    try:
        allowed, reason, wait_ms = _script(_ADMIT)(
            keys=[key(pool.name, "leases"), key(pool.name, "starts"), key(pool.name, "paused")],
            args=[member, pool.max_concurrent or 0, pool.max_starts_per_minute or 0, int(lease_ttl() * 1000)],
        )
    except (redis.RedisError, OSError) as exc:
        _warn_open("admit", exc)
        return Admission(ok=True, reason="unavailable")
    if allowed:
        return Admission(ok=True, lease=member if limited else None)
    reason = reason.decode() if isinstance(reason, bytes) else str(reason)
    wait = max(0.0, int(wait_ms) / 1000)
    if reason == "max_concurrent":  # a slot frees when a holder ends, usually long before its lease lapses
        wait = min(wait, _poll_interval())
    # Spread the waiting tasks out, so they do not all ask again in the same instant.
    return Admission(ok=False, retry_after=round(max(0.2, wait) * _jitter.uniform(1.0, 1.25), 3), reason=reason)


def lease_refresh(*, pool: str, lease: str | None) -> bool:
    """Push a running attempt's lease on (call it from the attempt's heartbeat).

    False when the lease had lapsed (the heartbeat stalled longer than `lease_ttl()`): it is taken
    again, since the attempt does run, and the pool may briefly run more than its limit.
    """
    if lease is None:
        return True
    try:
        held = _script(_REFRESH)(keys=[key(pool, "leases")], args=[lease, int(lease_ttl() * 1000)])
    except (redis.RedisError, OSError) as exc:
        _warn_open("lease_refresh", exc)
        return True
    if not held:
        log.warning("flow lease %s of pool %s had lapsed; taken again", lease, pool)
    return bool(held)


def release(*, pool: str, admission: Admission, started: bool = True) -> None:
    """Give the attempt's slot back. With `started=False` (the claim found the task taken or
    done) the start is not counted against the minute's starts either."""
    if admission.lease is None:
        return
    try:
        pipe = _redis().pipeline()
        pipe.zrem(key(pool, "leases"), admission.lease)
        if not started:
            pipe.zrem(key(pool, "starts"), admission.lease)
        pipe.execute()
    except (redis.RedisError, OSError) as exc:  # the lease lapses by itself
        _warn_open("release", exc)


def pool_running(pool: str) -> int:
    """Leases held now in the pool (for `hive pools` and tests); 0 when Redis is away."""
    try:
        client = _redis()
        now_ms = _server_ms(client)
        return int(client.zcount(key(pool, "leases"), now_ms + 1, "+inf"))
    except (redis.RedisError, OSError) as exc:
        _warn_open("pool_running", exc)
        return 0


def pool_paused_until(pool: str) -> datetime | None:
    """When the pool's pause ends, or None when it is not paused (or Redis is away)."""
    try:
        value = _redis().get(key(pool, "paused"))
    except (redis.RedisError, OSError) as exc:
        _warn_open("pool_paused_until", exc)
        return None
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def pool_pause(*, pool: str, backoff_initial: float, backoff_max: float, reset_at: float | None = None) -> Pause | None:
    """Pause the pool's new starts after a rate-limit report, until `reset_at` (epoch seconds)
    when the provider gave one, else for backoff_initial x 2^(reports in a row - 1), at most
    backoff_max. Never shortens a pause. None when Redis is away (nothing paused)."""
    reset_ms = int(reset_at * 1000) if reset_at else 0
    try:
        until_ms, streak, extended, now_ms = _script(_PAUSE)(
            keys=[key(pool, "paused"), key(pool, "streak")],
            args=[int(backoff_initial * 1000), int(backoff_max * 1000), reset_ms, int(PAUSE_HORIZON * 1000)],
        )
    except (redis.RedisError, OSError) as exc:
        _warn_open("pool_pause", exc)
        return None
    return Pause(
        until=datetime.fromtimestamp(int(until_ms) / 1000, UTC),
        seconds=max(0.0, (int(until_ms) - int(now_ms)) / 1000),
        streak=int(streak),
        extended=bool(extended),
    )


def pool_resume(*, pool: str) -> None:
    """End a pause now and forget the backoff (an operator's action)."""
    try:
        _redis().delete(key(pool, "paused"), key(pool, "streak"))
    except (redis.RedisError, OSError) as exc:
        _warn_open("pool_resume", exc)


def rate_limit_cleared(*, pool: str) -> None:
    """An attempt ran without a rate limit: the next report starts the backoff from the beginning."""
    try:
        _redis().delete(key(pool, "streak"))
    except (redis.RedisError, OSError) as exc:
        _warn_open("rate_limit_cleared", exc)


def pool_rate_limited(
    *, pool: AgentPool, reason: str, reset_at: float | None = None, task_id: str = ""
) -> Pause | None:
    """The agent program reported a provider rate limit: pause the pool, count it, and say so.

    Backoff bounds come from the pool's `runner.rate_limit`. Publishes `pool.paused` when the
    pause began or grew (not for every report inside one pause).
    """
    rule = (pool.runner or {}).get("rate_limit") or {}
    pause = pool_pause(
        pool=pool.name,
        backoff_initial=float(rule.get("backoff_initial", 30.0)),
        backoff_max=float(rule.get("backoff_max", 900.0)),
        reset_at=reset_at,
    )
    RATE_LIMITED.labels(pool=pool.name).inc()
    if pause is not None and pause.extended:
        publish(
            "pool.paused",
            pool=pool,
            until=pause.until.isoformat(),
            seconds=round(pause.seconds, 3),
            streak=pause.streak,
            reason=reason[:500],
            task_id=task_id,
        )
    return pause


def task_defer(*, task_id: str, admission: Admission) -> bool:
    """Flow control held the task back: it stays queued, due in `retry_after` seconds, and its
    message is sent again with that countdown after commit. No attempt is spent (it was never
    claimed), and while it waits it counts as delayed, not ready, so the scaler does not add
    instances that could not run it either. False when the task is no longer queued."""
    now = timezone.now()
    delay = admission.retry_after
    with transaction.atomic():
        moved = Task.objects.filter(id=task_id, status=Task.Status.QUEUED).update(
            available_at=now + timedelta(seconds=delay), dispatched_at=now, updated_at=now
        )
        if not moved:
            return False
        task = Task.objects.select_related("pool").get(id=task_id)
        transaction.on_commit(lambda: task_send(task, countdown=delay))
    FLOW_DEFERRED.labels(pool=task.routed_pool.name, reason=admission.reason).inc()
    return True


# --- Redis ----------------------------------------------------------------------------------------

_local: dict[str, Any] = {"owner": None, "client": None, "scripts": {}, "warned": 0.0}
_lock = threading.Lock()


def _redis() -> redis.Redis:
    """One client per process and URL (a forked worker child opens its own), with short timeouts:
    a flow check waits a second or two for Redis at most, then fails open."""
    with _lock:
        if _local["owner"] != (os.getpid(), settings.REDIS_URL):
            _local.update(
                owner=(os.getpid(), settings.REDIS_URL),
                client=redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=2),
                scripts={},
            )
        return _local["client"]


def _script(source: str) -> Any:
    client = _redis()
    scripts = _local["scripts"]
    if source not in scripts:
        scripts[source] = client.register_script(source)
    return scripts[source]


def _server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _poll_interval() -> float:
    return min(POLL_MAX, max(0.5, settings.HIVE_CONFIG.multi_agent.effective_heartbeat_interval))


def _warn_open(what: str, exc: BaseException) -> None:
    now = time.monotonic()
    if now - _local["warned"] >= WARN_EVERY or not _local["warned"]:
        _local["warned"] = now
        log.warning("flow control unavailable in %s (%s); not limiting", what, exc)
