"""Per-route rate limits from the configuration, counted in Redis so all processes share them.

A fixed one-minute window per caller and route: INCR is atomic, so concurrent requests in
several web processes never overshoot the limit; the key is created with its expiry first (SET NX
EX), so a counter never outlives its window.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import BaseThrottle

from external_api import rediscache
from external_api.access import caller_of

log = logging.getLogger(__name__)

WINDOW = 60


def route_limit(path: str) -> tuple[str, int]:
    """(route, requests per minute) for a path: the longest configured route prefix, else the default."""
    best = ("default", settings.GATEWAY.rate_limit_per_minute)
    best_len = -1
    for route in settings.GATEWAY.routes:
        prefix = route.path.rstrip("/")
        if route.rate_limit and path.startswith(prefix) and len(prefix) > best_len:
            best, best_len = (prefix, route.rate_limit), len(prefix)
    return best


def _count(cache_key: str) -> int:
    """This window's count after one more request. On Redis one round trip: SET NX with the
    window's expiry, then INCR, pipelined (Django's add, then incr, took three: add, EXISTS, INCR)."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        try:
            return 1 if cache.add(cache_key, 1, timeout=WINDOW + 5) else cache.incr(cache_key)
        except ValueError:  # expired between add and incr
            cache.add(cache_key, 1, timeout=WINDOW + 5)
            return 1
    key = backend.make_and_validate_key(cache_key)
    pipe = rediscache.client_of(backend, write=True).pipeline(transaction=False)
    pipe.set(key, 0, ex=WINDOW + 5, nx=True)
    pipe.incr(key)
    return int(pipe.execute()[1])


def hit(key: str, limit: int) -> float | None:
    """Count one request; None if allowed, else seconds until the window resets."""
    now = time.time()
    window = int(now // WINDOW)
    try:
        count = _count(f"rl:{key}:{window}")
    except Exception as exc:  # Redis away: let requests through rather than refuse every one
        log.warning("rate limit counter unavailable (%s); not limiting", exc)
        return None
    if count <= limit:
        return None
    return max(1.0, (window + 1) * WINDOW - now)


class RouteRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        route, limit = route_limit(request.path)
        self._wait = hit(f"{route}:{caller_of(request).ident}", limit)
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait
