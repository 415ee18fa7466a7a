"""The gateway's API keys, remembered per process for a few seconds after each database read.

A script or CI job sends the same key with every request; reading its row each time was one
query (and its ORM compile) per request. A key that read as active answers again from this
process's memory for `RECHECK_SECONDS`, then from the database again. So a revocation made
elsewhere (another process, `hive apikey revoke` on another machine, an UPDATE) stops a key in
every gateway process within `RECHECK_SECONDS`; one made in this process (apikey_revoke, a save
or delete of the row) stops it at once. Expiry is checked on every request against the clock.
A key that does not check out (unknown, wrong secret, revoked, expired) is never remembered.

Entries are keyed by the SHA-256 of the full key (what the database stores), never the key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from external_api.models import ApiKey

RECHECK_SECONDS = 5.0
MAX_ENTRIES = 10_000  # more distinct keys than this in one window: forget the stale ones first

_lock = threading.Lock()
_known: dict[str, tuple[float, ApiKey]] = {}  # digest of the full key -> (monotonic read time, the row as read)
clock: Callable[[], float] = time.monotonic  # tests replace it to pass the recheck bound without waiting


def recall(raw: str) -> ApiKey | None:
    """The key this process read for `raw` at most RECHECK_SECONDS ago, if any."""
    found = _known.get(ApiKey.digest_of(raw))
    if found is None or clock() - found[0] > RECHECK_SECONDS:
        return None
    return found[1]


def remember(raw: str, key: ApiKey) -> None:
    """Remember a key that was just read from the database and checked out (secret and active)."""
    now = clock()
    with _lock:
        if len(_known) >= MAX_ENTRIES:
            for digest in [d for d, (at, _) in _known.items() if now - at > RECHECK_SECONDS]:
                del _known[digest]
            if len(_known) >= MAX_ENTRIES:
                _known.clear()
        _known[ApiKey.digest_of(raw)] = (now, key)


def forget(key: ApiKey | None = None) -> None:
    """Drop what this process remembers of `key` (every key when None): it was revoked or changed here."""
    with _lock:
        if key is None:
            _known.clear()
            return
        for digest in [d for d, (_, known) in _known.items() if known.id == key.id]:
            del _known[digest]


@receiver(post_save, sender=ApiKey, dispatch_uid="hive-keycache-saved")
@receiver(post_delete, sender=ApiKey, dispatch_uid="hive-keycache-deleted")
def _on_key_changed(sender: type, instance: ApiKey, **kwargs: object) -> None:
    forget(instance)
