"""Pushing committed events to the WebSocket subscribers through the Channels layer.

Group sends go through one long-lived event loop per process, so the Redis connection pool of
channels_redis is reused instead of being rebuilt for every event, and one queue drained by one
task keeps events in the order they were committed (concurrent sends would overtake each other).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)

EVENTS_GROUP = "hive.events"

_loop: asyncio.AbstractEventLoop | None = None
_queue: asyncio.Queue | None = None
_loop_lock = threading.Lock()
_loop_pid: int | None = None


def announce(message: dict[str, Any]) -> None:
    """An announcer for `coordination.events`: queue the message for the group send."""
    loop, queue = _background_sender()
    loop.call_soon_threadsafe(queue.put_nowait, message)


def _background_sender() -> tuple[asyncio.AbstractEventLoop, asyncio.Queue]:
    global _loop, _queue, _loop_pid
    with _loop_lock:
        if _loop is None or _queue is None or _loop_pid != os.getpid():  # a forked worker child needs its own loop
            loop = asyncio.new_event_loop()
            queue: asyncio.Queue = asyncio.Queue()
            loop.call_soon(lambda: loop.create_task(_drain(queue)))
            threading.Thread(target=loop.run_forever, name="hive-events", daemon=True).start()
            _loop, _queue, _loop_pid = loop, queue, os.getpid()
        return _loop, _queue


async def _drain(queue: asyncio.Queue) -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    while True:
        message = await queue.get()
        if layer is None:
            continue
        try:
            await layer.group_send(EVENTS_GROUP, {"type": "hive.event", "event": message})
        except Exception:
            log.warning("could not push event %s to the stream", message.get("id"), exc_info=True)
