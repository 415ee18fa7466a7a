"""In-process fan-out: one Redis subscription per streaming process, every event handed to the
process's own streams.

broadcast.py PUBLISHes each committed event once. Here one listener per event loop (a web process
has one) holds the only subscription to that channel, parses each event once, builds the frame
that carries it alone once, and offers it to every open stream of the process (`Member.offer`,
which sends it at once when the socket takes it without waiting, and otherwise leaves the rest to
a task of that stream: a slow socket never holds up the others). This is how channels-redis'
RedisPubSubChannelLayer delivers a group message, less what the stream does not need: a Redis
subscription and a dispatch through the consumer's message loop per socket, a task switch per
socket, and a decode and an encode per socket.

A stream joins before it reads where the Event table ends (consumers.py), and `join` returns only
once Redis has confirmed the subscription, so nothing published after the read can pass it by.
While Redis is away the listener reconnects with backoff; events published meanwhile are not
delivered live (the Event rows keep them for replay), and a stream that tries to join is refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from typing import Any, Protocol

import redis.asyncio as aioredis
from django.conf import settings

from external_api.streaming.broadcast import events_channel

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 5.0  # seconds a new stream waits for the subscription before it is refused
IDLE_READ = 5.0  # a quiet subscription still reads this often, so redis-py can check its health
RETRY_MAX = 5.0


class LiveEvent(dict):
    """An event as published, with its JSON text and the frame that sends it alone: a batch sent
    to many sockets is encoded once."""

    __slots__ = ("frame", "text")
    text: str
    frame: str


class Member(Protocol):
    def offer(self, event: LiveEvent) -> None: ...


class Hub:
    """The subscription of one event loop and the streams it feeds."""

    def __init__(self) -> None:
        self.members: set[Member] = set()
        self.subscribed = asyncio.Event()
        self.listener: asyncio.Task | None = None

    async def join(self, member: Member) -> None:
        """Offer `member` every event published from now on. Raises TimeoutError when Redis has
        not confirmed the subscription within JOIN_TIMEOUT (the member is not joined then)."""
        self.members.add(member)
        if self.listener is None or self.listener.done():
            self.listener = asyncio.ensure_future(self._listen())
        try:
            await asyncio.wait_for(self.subscribed.wait(), JOIN_TIMEOUT)
        except BaseException:
            self.members.discard(member)
            raise

    def leave(self, member: Member) -> None:
        self.members.discard(member)

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            client = aioredis.Redis.from_url(
                settings.REDIS_URL, socket_connect_timeout=3, health_check_interval=IDLE_READ
            )
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(events_channel())
                while True:
                    message = await pubsub.get_message(timeout=IDLE_READ)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.subscribed.set()
                        delay = 0.1
                    elif message["type"] == "message":
                        self.deliver(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if self.subscribed.is_set() or delay == 0.1:  # once per outage
                    log.warning("event stream: no events subscription (%r); retrying", err)
            finally:
                self.subscribed.clear()
                await _quietly(pubsub.aclose())
                await _quietly(client.aclose())
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def deliver(self, data: bytes | str) -> None:
        """Parse one published event once and offer it to every member."""
        text = data.decode() if isinstance(data, bytes) else data
        try:
            event = LiveEvent(json.loads(text))
        except ValueError:
            log.warning("event stream: a message on the events channel is not JSON: %r", text[:200])
            return
        event.text = text
        event.frame = '{"type":"batch","events":[' + text + "]}"
        for member in tuple(self.members):
            try:
                member.offer(event)
            except Exception:  # one broken stream must not keep the event from the others
                log.exception("event stream: could not offer event %s", event.get("id"))


async def _quietly(closing: Any) -> None:
    try:
        await closing
    except Exception:  # closing what already broke
        pass


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """The hub of the running event loop (a web process has one loop; tests start several)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub()
    return found
