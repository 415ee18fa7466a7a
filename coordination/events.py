"""`publish` is the one way a state change leaves the hive.

It writes an `Event` row inside the caller's transaction, and only after that transaction commits
sends the event to the Channels group (WebSocket subscribers) and counts it. A rolled-back change
is never announced. Group sends go through one long-lived event loop per process, so the Redis
connection pool of channels_redis is reused instead of being rebuilt for every event.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from django.db import transaction

from coordination.metrics import EVENTS_TOTAL
from coordination.models import Event

log = logging.getLogger(__name__)

EVENTS_GROUP = "hive.events"

_loop: asyncio.AbstractEventLoop | None = None
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
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return
        loop = _background_loop()
        asyncio.run_coroutine_threadsafe(layer.group_send(EVENTS_GROUP, {"type": "hive.event", "event": message}), loop)
    except Exception:  # the Event row is the record; a missed live push is replayable from it
        log.warning("could not push event %s to the stream", message.get("id"), exc_info=True)


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid
    import os

    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():  # a forked worker child needs its own loop
            _loop = asyncio.new_event_loop()
            _loop_pid = os.getpid()
            threading.Thread(target=_loop.run_forever, name="hive-events", daemon=True).start()
        return _loop
