"""`publish` is the one way a state change leaves the hive.

It writes an `Event` row inside the caller's transaction, and only after that transaction commits
sends the event to the Channels group (WebSocket subscribers) and counts it. A rolled-back change
is never announced. Group sends go through one long-lived event loop per process, so the Redis
connection pool of channels_redis is reused instead of being rebuilt for every event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from django.db import transaction

from coordination.metrics import EVENTS_TOTAL
from coordination.models import Event

log = logging.getLogger(__name__)

EVENTS_GROUP = "hive.events"

_loop: asyncio.AbstractEventLoop | None = None
_queue: asyncio.Queue | None = None
_loop_lock = threading.Lock()
_loop_pid: int | None = None


def publish(
    type: str, *, task: Any = None, agent: Any = None, pool: Any = None, team_id: int | None = None, **payload: Any
) -> Event:
    """Record one event and announce it after commit. Returns the stored row.

    A task's events belong to its team; other events (agents, pools) are visible to every team
    unless `team_id` says otherwise.
    """
    if pool is None and task is not None:
        pool = task.pool if task.pool_id else None
    if task is not None:
        team_id = task.team_id
    event = Event.objects.create(type=type, task=task, agent=agent, pool=pool, team_id=team_id, payload=payload)
    message = event.as_message()
    transaction.on_commit(lambda: _announce(message))
    return event


def _announce(message: dict) -> None:
    EVENTS_TOTAL.labels(type=message["type"]).inc()
    try:
        loop, queue = _background_sender()
        loop.call_soon_threadsafe(queue.put_nowait, message)
    except Exception:  # the Event row is the record; a missed live push is replayable from it
        log.warning("could not push event %s to the stream", message.get("id"), exc_info=True)


def _background_sender() -> tuple[asyncio.AbstractEventLoop, asyncio.Queue]:
    """One loop thread per process with one queue drained by one task, so events reach the group
    in the order they were committed (concurrent sends would overtake each other)."""
    global _loop, _queue, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():  # a forked worker child needs its own loop
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
