"""Rechecking open streams' credentials, one database read per credential at a time.

Every stream checks its credential again at least every heartbeat (consumers.py). Streams that
share a credential (a dashboard's many tabs, a fleet of programs on one API key) share the read:
a check that started at most `share` seconds before a stream's turn answers for it too, so 2,000
streams on one key cost one read per `share` seconds, not 2,000 per heartbeat, and the answer a
stream acts on is never older than `share`. What the answer means for each stream (same
principal, same rights) is still decided per stream (auth.reauthenticate).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from channels.db import database_sync_to_async

from external_api.access import Caller
from external_api.streaming.auth import StreamCredential, credentials, reauthenticate

_reads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, tuple[float, asyncio.Future]]] = (
    weakref.WeakKeyDictionary()
)


def _key(scope: dict[str, Any], caller: Caller) -> tuple:
    found = credentials(scope)
    if found is not None:
        return (*found, caller.ident)
    session = getattr(scope.get("session"), "session_key", None)
    return ("session", session, caller.ident)


async def recheck(scope: dict[str, Any], caller: Caller, *, share: float) -> StreamCredential:
    """auth.reauthenticate for this stream, from a read shared with the streams of the same
    credential that started at most `share` seconds ago (StreamAuthError when it no longer holds)."""
    reads = _reads.setdefault(asyncio.get_running_loop(), {})
    key = _key(scope, caller)
    now = time.monotonic()
    found = reads.get(key)
    if found is None or now - found[0] > share:
        for stale in [k for k, (started, _) in reads.items() if now - started > share]:
            del reads[stale]
        future = asyncio.ensure_future(database_sync_to_async(reauthenticate)(scope, caller))
        reads[key] = found = (now, future)
    return await asyncio.shield(found[1])
