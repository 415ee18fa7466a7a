"""Pushing committed events to the WebSocket subscribers: one Redis PUBLISH per event.

Every streaming process holds one subscription to the events channel and hands each event to its
own sockets (fanout.py), so an event costs one PUBLISH however many subscribers there are, where a
channel-layer group send costs work per member. The publish runs in one background thread per
process, fed by a queue: the committing thread does not wait for Redis, and one thread sending in
queue order keeps a process's events in the order they were committed. Messages that queued up
while the thread was busy go in one pipeline (one round trip).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

PIPELINE_MAX = 200  # messages sent in one round trip when many queued up

_queue: queue.SimpleQueue[dict[str, Any]] | None = None
_lock = threading.Lock()
_pid: int | None = None


def events_channel() -> str:
    """The Redis pub/sub channel of the events. Pub/sub ignores the database number, so it is
    part of the name: two hives on one Redis server (different databases) stay apart."""
    from redis.connection import parse_url

    return f"hive:stream:events:{parse_url(settings.REDIS_URL).get('db') or 0}"


def encode(message: dict[str, Any]) -> str:
    """The event as JSON, in the form the stream sends it (fanout reuses the text)."""
    return json.dumps(message, separators=(",", ":"), default=str)


def announce(message: dict[str, Any]) -> None:
    """An announcer for `coordination.events`: queue the message for the publishing thread."""
    _sender().put(message)


def _sender() -> queue.SimpleQueue[dict[str, Any]]:
    global _queue, _pid
    with _lock:
        if _queue is None or _pid != os.getpid():  # a forked worker child needs its own thread
            _queue, _pid = queue.SimpleQueue(), os.getpid()
            threading.Thread(target=_publish_forever, args=(_queue,), name="hive-events", daemon=True).start()
        return _queue


def _publish_forever(messages: queue.SimpleQueue[dict[str, Any]]) -> None:
    from coordination.dispatch import redis_client

    client = redis_client()
    channel = events_channel()
    while True:
        batch = [messages.get()]
        while len(batch) < PIPELINE_MAX:
            try:
                batch.append(messages.get_nowait())
            except queue.Empty:
                break
        try:
            if len(batch) == 1:
                client.publish(channel, encode(batch[0]))
            else:
                pipe = client.pipeline(transaction=False)
                for message in batch:
                    pipe.publish(channel, encode(message))
                pipe.execute()
        except Exception:  # the Event rows are the record: a client can replay them (last_event_id)
            log.warning("could not push events %s to the stream", [m.get("id") for m in batch], exc_info=True)
