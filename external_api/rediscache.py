"""The Django cache's Redis client, built once per connection pool instead of once per call.

Django's RedisCacheClient.get_client makes a new `redis.Redis` for every cache operation, and
redis-py fills each new client's table of response callbacks (some 170 entries): a third of a
millisecond per operation, paid twice per API request (the address's lockout check and the rate
limit's counter). A client is only a handle on its pool, safe to share between threads; the pool
and its connections are Django's, as before.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

_lock = threading.Lock()
_clients: dict[int, tuple[Any, Any]] = {}  # id(pool) -> (pool, its client)


def redis_cache() -> RedisCache | None:
    """The default cache when it is Redis (this thread's handle on it), else None."""
    backend = caches["default"]
    return backend if isinstance(backend, RedisCache) else None


def client_of(backend: RedisCache, *, write: bool) -> Any:
    """A redis.Redis on the pool Django's own get_client(write=...) would use."""
    cache_client: Any = backend._cache  # Django's RedisCacheClient (its private pool, client class, serializer)
    pool = cache_client._get_connection_pool(write)
    found = _clients.get(id(pool))
    if found is not None and found[0] is pool:
        return found[1]
    client = cache_client._client(connection_pool=pool)
    with _lock:
        if len(_clients) > 256:  # pools of threads that are gone: forget them
            _clients.clear()
        _clients[id(pool)] = (pool, client)
    return client


def get_many(backend: RedisCache, keys: list[str]) -> dict[str, Any]:
    """backend.get_many(keys) with the shared client: one MGET, values decoded as Django stores them."""
    made = [backend.make_and_validate_key(key) for key in keys]
    values = client_of(backend, write=False).mget(made)
    cache_client: Any = backend._cache
    loads = cache_client._serializer.loads
    return {key: loads(value) for key, value in zip(keys, values, strict=True) if value is not None}
