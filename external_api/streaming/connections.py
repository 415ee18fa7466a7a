"""Live stream connections, counted across every web process in one Redis sorted set.

Each connection holds a lease: a member of the set whose score is the time it expires. A
process renews the leases of its open connections together, in one command (`hold`), and a
connection removes its lease when it closes; a process that dies without closing its sockets leaves leases that simply run out, so a crash never leaks capacity
for longer than LEASE_SECONDS. Admission is one Lua script (drop expired leases, count, add),
so two processes can never both take the last place.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY = "hive:stream:connections"
LEASE_SECONDS = 60.0
POOL_SIZE = 50  # Redis connections of one process's streams
RENEW_CHUNK = 1000  # leases renewed in one command

_ADMIT = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[4])
return 1
"""

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def client() -> aioredis.Redis:
    """One client per event loop. Its pool makes a command wait for a free connection: redis-py's
    default pool fails past 100 connections in use, and 2,000 streams closing at once (or renewing
    their leases together) would then leave their leases to run out."""
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None:
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=POOL_SIZE, timeout=10, socket_connect_timeout=3, socket_timeout=10
        )
        found = _clients[loop] = aioredis.Redis(connection_pool=pool)
    return found


async def admit(limit: int) -> str | None:
    """A new lease id, or None when `limit` connections are already live."""
    lease = uuid.uuid4().hex
    admitted = await client().eval(_ADMIT, 1, KEY, time.time(), limit, LEASE_SECONDS, lease)
    return lease if admitted else None


async def renew(*leases: str) -> None:
    expires = time.time() + LEASE_SECONDS
    await client().zadd(KEY, dict.fromkeys(leases, expires))  # back even if one had run out


class _Held:
    """The open leases of one event loop, renewed together: one ZADD per LEASE_SECONDS / 3 for
    the whole process, where a renewal per connection would be 2,000 round trips."""

    def __init__(self) -> None:
        self.leases: set[str] = set()
        self.renewer: asyncio.Task | None = None

    async def renew_forever(self) -> None:
        while self.leases:
            await asyncio.sleep(LEASE_SECONDS / 3)
            leases = list(self.leases)
            try:
                for start in range(0, len(leases), RENEW_CHUNK):
                    await renew(*leases[start : start + RENEW_CHUNK])
            except (RedisError, OSError) as err:  # tried again in LEASE_SECONDS / 3, before they run out
                log.warning("event stream: cannot renew %d connections (%s)", len(leases), err)


_held: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Held] = weakref.WeakKeyDictionary()


def hold(lease: str) -> None:
    """Keep renewing `lease` until `drop`."""
    held = _held.setdefault(asyncio.get_running_loop(), _Held())
    held.leases.add(lease)
    if held.renewer is None or held.renewer.done():
        held.renewer = asyncio.ensure_future(held.renew_forever())


def drop(lease: str) -> None:
    held = _held.get(asyncio.get_running_loop())
    if held is not None:
        held.leases.discard(lease)


async def release(lease: str) -> None:
    await client().zrem(KEY, lease)


async def live() -> int:
    redis = client()
    await redis.zremrangebyscore(KEY, "-inf", time.time())
    return await redis.zcard(KEY)
