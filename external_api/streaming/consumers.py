"""`/ws/events/`: the hive's events, live, filtered, batched, optionally compressed, replayable.

Protocol (every frame the server sends is JSON text, except compressed batches):

- connect: `/ws/events/` with a credential (the `X-API-Key` or `Authorization: Bearer` header,
  the subprotocols `["hive.v1", "bearer.<token>"]` or `["hive.v1", "apikey.<key>"]` answered
  with `hive.v1`, the session, or `?api_key=` / `?token=`; see auth.py) plus optional filters
  (`event_types`, `pools`, `agents`, `tasks`, `priorities`, lists comma-separated),
  `last_event_id`, `compress` (`gzip`, `zlib`, `deflate` or `1` for the configured algorithm;
  honoured when `compression_enabled`), `batch_size` and `flush_interval` (at most the
  configured ones).
- `{"type": "welcome", "connection", "viewer", "filters", "head", ...}` once accepted; `head` is
  the newest event id visible to the viewer when the stream started.
- `{"type": "batch", "events": [...]}`: up to `batch_size` events, sent when full or
  `flush_interval` seconds after the first one waits; `"replay": true` for stored events. With
  compression it is a binary frame: the same JSON, compressed.
- `{"type": "replayed", "from", "count", "last_event_id", "truncated"}` after a replay.
- `{"type": "heartbeat", "last_event_id", "at"}` every `heartbeat_interval`: the client has
  every event up to `last_event_id` that its filters let through; reconnect with it.
- client → server: `{"action": "subscribe", <filters>, "last_event_id": N}` (replaces the
  filters; with `last_event_id`, replays stored events after N), answered by
  `{"type": "subscribed", "filters"}`; `{"action": "ping"}` → `{"type": "pong"}`. A bad message
  gets `{"type": "error", "code", "detail"}` and changes nothing.

Close codes: 4400 bad connect parameters, 4401 not authenticated — also when the credential of
an open stream stops being valid (checked at least every heartbeat and when a JWT expires) —,
4403 not allowed (a browser page from an origin that may not use the session, see origins.py;
an API key without the read scope), 4429 too many connections (`max_connections`, counted in
Redis across processes) or too many failed authentications from the address, 1013 streaming
disabled or Redis unavailable.

Live events come from the process's one Redis subscription (fanout.py), which offers each event
to every stream of the process. A stream with nothing queued or in progress decides and sends it
at once, in the hub's turn (eager.py); otherwise the event waits in the stream's queue for its
own task, so a slow socket holds up only itself (its queue is bounded: past INBOX_LIMIT waiting
events it drops new ones, as the channel layer's capacity did). Replay and live events meet without gap or duplicate: the stream joins the
subscription before it reads the Event table, live events wait in its queue while a replay runs
(both hold the stream's order lock), and a live event already replayed (or at or below the
client's `last_event_id`) is dropped by id.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import logging
import time
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from redis.exceptions import RedisError

from coordination.models import Event, Task
from coordination.selectors import events_visible_to
from external_api.access import Caller
from external_api.streaming import connections, eager, fanout, rechecks
from external_api.streaming.auth import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHENTICATED,
    CREDENTIAL_SUBPROTOCOLS,
    StreamAuthError,
    authenticate,
    credentials,
)
from external_api.streaming.auth import query_of as _query_of
from external_api.streaming.broadcast import encode
from external_api.streaming.filters import FilterError, Filters
from external_api.streaming.metrics import BATCH_SIZE, CONNECTIONS_ACTIVE, CONNECTIONS_REFUSED, EVENTS_CONSUMED
from external_api.streaming.origins import host_of, origin_allowed, origin_of

log = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_TOO_MANY = 4429
CLOSE_TRY_AGAIN = 1013

SUBPROTOCOLS = ("hive.v1", "hive.events")  # answered when offered, in this order of preference
RECHECK_MAX = 30.0  # an open stream's credential is checked again at least this often (seconds)
RECHECK_SHARE = 1.0  # streams of one credential share a check this recent (at most a quarter heartbeat)
REPLAY_CHUNK = 500
REPLAY_LIMIT = 10_000  # beyond this a client pages through GET /api/v1/events/?after=
MIN_FLUSH_INTERVAL = 0.05
PRIORITY_CACHE = 10_000
UNAVAILABLE = "the stream is unavailable, try again later"
GAP_WAIT = 0.25  # how long a live event waits for an earlier one that has not arrived
INBOX_LIMIT = 1000  # live events waiting for one stream's socket; past it new ones are dropped
ALGORITHMS = ("gzip", "zlib", "deflate")


def stream_config():
    return settings.HIVE_CONFIG.external_api.event_streaming


def compress(data: bytes, algorithm: str) -> bytes:
    """gzip (RFC 1952), zlib (RFC 1950) or raw deflate (RFC 1951): DecompressionStream's
    "gzip", "deflate" and "deflate-raw" in a browser."""
    if algorithm == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if algorithm == "zlib":
        return zlib.compress(data, 6)
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


@dataclass(frozen=True)
class Options:
    filters: Filters
    last_event_id: int | None
    compression: str | None
    batch_size: int
    flush_interval: float


def parse_options(query: dict[str, list[str]], conf) -> Options:
    """The connect parameters, or FilterError naming the bad one."""

    def last(name: str) -> str:
        return (query.get(name) or [""])[-1].strip()

    filters = Filters.parse(query) if Filters.named_in(query) else Filters.configured()
    requested = last("compress").lower()
    if requested in ("", "0", "false", "no", "none"):
        compression = None
    elif requested in ("1", "true", "yes"):
        compression = conf.compression_algorithm
    elif requested in ALGORITHMS:
        compression = requested
    else:
        raise FilterError(f"compress: {requested[:20]!r} is not one of {', '.join(ALGORITHMS)}")
    if not conf.compression_enabled:
        compression = None
    batch_size = _number(last("batch_size"), "batch_size", int, 1, conf.batch_size, conf.batch_size)
    flush_interval = _number(
        last("flush_interval"), "flush_interval", float, MIN_FLUSH_INTERVAL, conf.flush_interval, conf.flush_interval
    )
    return Options(filters, last_event_id(last("last_event_id") or None), compression, batch_size, flush_interval)


def last_event_id(raw: Any) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise FilterError("last_event_id: expected an event id (an integer ≥ 0)") from None
    if value < 0 or isinstance(raw, bool):
        raise FilterError("last_event_id: expected an event id (an integer ≥ 0)")
    return value


def _number(raw: str, name: str, kind, low, high, default):
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise FilterError(f"{name}: expected a number") from None
    if not low <= value <= high:
        raise FilterError(f"{name}: expected {low} to {high}")
    return value


def choose_subprotocol(offered: list[str]) -> str | None:
    """A browser fails the handshake unless one offered subprotocol is echoed; a credential
    carried as a subprotocol is never echoed (response headers get logged by proxies)."""
    for protocol in SUBPROTOCOLS:
        if protocol in offered:
            return protocol
    plain = [p for p in offered if not p.startswith(CREDENTIAL_SUBPROTOCOLS)]
    return plain[0] if plain else None


def visible_events(caller: Caller) -> QuerySet[Event]:
    return events_visible_to(team_id=caller.team_id, staff=caller.staff)


def _events_after(events: QuerySet[Event], after: int, limit: int) -> list[dict]:
    rows = events.filter(id__gt=after).select_related("agent", "pool").order_by("id")[:limit]
    return [event.as_message() for event in rows]


def _head(events: QuerySet[Event]) -> int:
    return events.order_by("-id").values_list("id", flat=True).first() or 0


def _task_priority(task_id: str) -> str | None:
    return Task.objects.filter(id=task_id).values_list("priority", flat=True).first()


def _type_label(event_type: str) -> str:
    return "custom" if event_type.startswith("custom.") else event_type


@functools.lru_cache(maxsize=1024)
def consumed(event_type: str, kind: str) -> Any:
    """The counter of events of a type sent to a kind of subscriber (labels() takes a lock and
    builds a key on every call, once per event per socket)."""
    return EVENTS_CONSUMED.labels(event_type=_type_label(event_type), subscriber=kind)


class EventStreamConsumer(AsyncWebsocketConsumer):
    viewer: Caller | None = None
    hub: fanout.Hub | None = None
    lease: str | None = None
    expires_at: float | None = None  # when the stream's JWT runs out
    ended = False  # the server closed the stream: nothing more is sent

    @property
    def principal(self) -> Caller:
        """Who the stream is for: set with the lease once connect admits the stream, before any
        event or disconnect reads it."""
        if self.viewer is None:
            raise RuntimeError("the event stream has no viewer before it is admitted")
        return self.viewer

    # --- connect and disconnect -----------------------------------------------------------------
    async def connect(self) -> None:
        self.conf = stream_config()
        self.pending: list[dict] = []
        self.cursor = 0  # every event up to here that the filters pass has been sent
        self.seen = 0  # the newest live event decided on (sent, pending or dropped)
        self.floor = 0  # live events at or below this id are the client's already
        self.replayed: set[int] = set()
        self.priorities: OrderedDict[str, str | None] = OrderedDict()
        self.background: set[asyncio.Task] = set()
        self.timer: asyncio.TimerHandle | None = None
        self.send_lock = asyncio.Lock()
        self.order_lock = asyncio.Lock()
        self.held: dict[int, dict] = {}  # live events waiting for an earlier one
        self.released = 0
        self.gap_timer: asyncio.TimerHandle | None = None
        self.inbox: deque[fanout.LiveEvent] = deque()
        self.inbox_ready = asyncio.Event()
        self.live = False  # live_loop runs: a live event may be decided as it arrives
        self.dropped = 0
        subprotocol = choose_subprotocol(self.scope.get("subprotocols") or [])

        if not (self.conf.enabled and settings.HIVE_CONFIG.external_api.enabled):
            return await self.refuse(CLOSE_TRY_AGAIN, "event streaming is disabled", "disabled", subprotocol)
        origin = origin_of(self.scope)
        own_credential = credentials(self.scope) is not None
        if origin is not None and not origin_allowed(origin, host=host_of(self.scope), own_credential=own_credential):
            detail = f"a page from {origin[:80]} may not open this stream"
            return await self.refuse(CLOSE_FORBIDDEN, detail, "origin", subprotocol)
        try:
            credential = await database_sync_to_async(authenticate)(self.scope)
        except StreamAuthError as err:
            reason = {CLOSE_UNAUTHENTICATED: "unauthenticated", CLOSE_FORBIDDEN: "forbidden"}.get(err.code, "throttled")
            return await self.refuse(err.code, str(err), reason, subprotocol)
        viewer = credential.caller
        self.expires_at = credential.expires_at
        try:
            options = parse_options(_query_of(self.scope), self.conf)
        except FilterError as err:
            return await self.refuse(CLOSE_BAD_REQUEST, str(err), "bad_request", subprotocol)

        await self.accept(subprotocol)
        try:
            lease = await connections.admit(self.conf.max_connections)
        except (RedisError, OSError) as err:
            log.warning("event stream: cannot count connections (%s)", err)
            return await self.refuse(CLOSE_TRY_AGAIN, UNAVAILABLE, "redis", None, accepted=True)
        if lease is None:
            limit = f"too many connections: the limit is {self.conf.max_connections}"
            return await self.refuse(CLOSE_TOO_MANY, limit, "max_connections", None, accepted=True)
        self.viewer, self.lease = viewer, lease
        CONNECTIONS_ACTIVE.labels(connection_type=viewer.kind).inc()
        self.filters = options.filters
        self.batch_size = options.batch_size
        self.flush_interval = options.flush_interval
        self.compression = options.compression

        hub = fanout.hub()
        try:
            await hub.join(self)
        except (RedisError, OSError, TimeoutError) as err:
            log.warning("event stream: cannot subscribe to the events (%s)", err)
            return await self.refuse(CLOSE_TRY_AGAIN, UNAVAILABLE, "redis", None, accepted=True)
        self.hub = hub
        self.cursor = await database_sync_to_async(_head)(visible_events(viewer))
        self.released = await database_sync_to_async(_head)(Event.objects.all())  # live events come after this id
        await self.send_message(
            {
                "type": "welcome",
                "connection": lease,
                "head": self.cursor,
                "filters": self.filters.as_dict(),
                "viewer": {"ident": viewer.ident, "kind": viewer.kind, "team": viewer.team_id, "staff": viewer.staff},
                "batch_size": self.batch_size,
                "flush_interval": self.flush_interval,
                "heartbeat_interval": self.conf.heartbeat_interval,
                "compression": self.compression,
            }
        )
        self.spawn(self.heartbeat_loop())
        connections.hold(lease)
        self.spawn(self.credential_loop())
        if options.last_event_id is not None:
            await self.replay(options.last_event_id)
        self.live = True
        self.spawn(self.live_loop())  # after the first replay: live events waited in the inbox

    async def refuse(self, code: int, detail: str, reason: str, subprotocol: str | None, *, accepted: bool = False):
        """Accept, then close with `code`: a browser cannot read why a handshake was refused."""
        CONNECTIONS_REFUSED.labels(reason=reason).inc()
        if not accepted:
            await self.accept(subprotocol)
        await self.close(code=code, reason=detail.encode()[:120].decode(errors="ignore"))

    async def disconnect(self, code: int) -> None:
        for timer in (getattr(self, "timer", None), getattr(self, "gap_timer", None)):
            if timer is not None:
                timer.cancel()
        for task in list(getattr(self, "background", ())):
            task.cancel()
        if self.hub is not None:
            self.hub.leave(self)
            self.hub = None
        if self.lease is not None:
            connections.drop(self.lease)
            CONNECTIONS_ACTIVE.labels(connection_type=self.principal.kind).dec()
            try:
                await connections.release(self.lease)
            except (RedisError, OSError) as err:  # the lease runs out by itself
                log.warning("event stream: cannot release connection %s (%s)", self.lease, err)
            self.lease = None

    # --- from the client --------------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.lease is None:
            return
        if text_data is None:
            return await self.error("bad_frame", "send JSON text frames")
        try:
            message = json.loads(text_data)
        except ValueError:
            return await self.error("invalid_json", "the message is not JSON")
        if not isinstance(message, dict):
            return await self.error("invalid_message", "expected a JSON object with an action")
        action = message.get("action")
        if action == "subscribe":
            return await self.subscribe(message)
        if action == "ping":
            return await self.send_message({"type": "pong", "last_event_id": self.cursor})
        await self.error("unknown_action", f"unknown action {str(action)[:40]!r}; expected subscribe or ping")

    async def subscribe(self, message: dict) -> None:
        try:
            filters = Filters.parse(message) if Filters.named_in(message) else Filters.configured()
            after = last_event_id(message.get("last_event_id"))
        except FilterError as err:
            return await self.error("invalid_filter", str(err))
        async with self.order_lock:  # no live event is decided while the filters change
            await self.flush()  # what waits was chosen by the old filters
            self.filters = filters
            await self.send_message({"type": "subscribed", "filters": filters.as_dict(), "last_event_id": self.cursor})
            if after is not None:
                await self._replay(after)

    async def error(self, code: str, detail: str) -> None:
        await self.send_message({"type": "error", "code": code, "detail": detail})

    # --- replay -----------------------------------------------------------------------------------
    async def replay(self, after: int) -> None:
        """Send the stored events after `after` that the viewer may see and the filters pass."""
        async with self.order_lock:  # no held live event may slip in between
            await self._replay(after)

    async def _replay(self, after: int) -> None:
        await self.flush()
        self.floor = self.cursor = after
        self.replayed = set()
        events = visible_events(self.principal).filter(self.filters.q())
        count, last, truncated = 0, after, False
        while True:
            limit = min(REPLAY_CHUNK, REPLAY_LIMIT - count)
            if limit <= 0:
                truncated = bool(await database_sync_to_async(_events_after)(events, last, 1))
                break
            rows = await database_sync_to_async(_events_after)(events, last, limit)
            for start in range(0, len(rows), self.batch_size):
                await self.send_batch(rows[start : start + self.batch_size], replay=True)
            self.replayed.update(row["id"] for row in rows)
            count += len(rows)
            if rows:
                last = rows[-1]["id"]
            if len(rows) < limit:
                break
        await self.send_message(
            {"type": "replayed", "from": after, "count": count, "last_event_id": self.cursor, "truncated": truncated}
        )

    # --- live events ------------------------------------------------------------------------------
    def offer(self, event: fanout.LiveEvent) -> None:
        """Called by the hub for every published event; never waits.

        When nothing is queued or being decided for this stream (the usual case), the event is
        decided and sent at once (eager.start), without a task switch per stream; a send that has
        to wait goes on as a task holding the order lock, and the events after it queue here for
        live_loop, behind it. Otherwise the event joins the queue."""
        if self.ended:
            return
        if self.live and not self.inbox and not self.order_lock.locked():
            task = eager.start(self.live_event(event), "event stream %s: live event", self.lease)
            if task is not None:
                self.background.add(task)
                task.add_done_callback(self.background.discard)
            return
        if len(self.inbox) >= INBOX_LIMIT:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("event stream %s: the client reads too slowly, %d events dropped", self.lease, self.dropped)
            return
        self.inbox.append(event)
        self.inbox_ready.set()

    async def live_loop(self) -> None:
        while not self.ended:
            await self.inbox_ready.wait()
            self.inbox_ready.clear()
            while self.inbox and not self.ended:
                await self.live_event(self.inbox.popleft())

    async def live_event(self, event: dict) -> None:
        """One event from coordination.events.publish, via the process's subscription.

        Every subscriber is sent every event, so the ids it sees are contiguous (the database
        counts them). Publishers announce concurrently and can overtake each other by a few
        milliseconds: an event that comes before its predecessor waits (at most GAP_WAIT, the
        predecessor may have been rolled back) and is released in id order."""
        if self.lease is None or self.ended:
            return
        async with self.order_lock:
            if event["id"] <= self.released:  # late, or from before this stream started
                return await self.decide(event)
            self.held[event["id"]] = event
            while self.released + 1 in self.held:
                self.released += 1
                await self.decide(self.held.pop(self.released))
            self._watch_gap()

    def _watch_gap(self) -> None:
        if not self.held and self.gap_timer is not None:
            self.gap_timer.cancel()
            self.gap_timer = None
        elif self.held and self.gap_timer is None:
            self.gap_timer = asyncio.get_running_loop().call_later(GAP_WAIT, lambda: self.spawn(self._skip_gap()))

    async def _skip_gap(self) -> None:
        async with self.order_lock:
            self.gap_timer = None
            if self.held:
                self.released = min(self.held) - 1
            while self.released + 1 in self.held:
                self.released += 1
                await self.decide(self.held.pop(self.released))
            self._watch_gap()

    async def decide(self, event: dict) -> None:
        """Send (in the next batch) or drop one live event, in the order of the calls."""
        event_id = event["id"]
        wanted = (
            event_id > self.floor
            and event_id not in self.replayed
            and self.principal.sees(event)
            and self.filters.matches(event, await self.priority_of(event) if self.filters.priorities else None)
        )
        # no await from here on: a timed flush must see `seen` and `pending` change together
        self.seen = max(self.seen, event_id)
        if not wanted:
            if not self.pending:
                self.cursor = max(self.cursor, event_id)
            return
        self.pending.append(event)
        if len(self.pending) >= self.batch_size:
            await self.flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.flush_interval, self._timed_flush)

    async def priority_of(self, event: dict) -> str | None:
        task_id = event.get("task")
        if not task_id:
            return None
        if task_id not in self.priorities:
            known = event["payload"].get("priority") if event["type"] == "task.queued" else None
            self.priorities[task_id] = known or await database_sync_to_async(_task_priority)(task_id)
            if len(self.priorities) > PRIORITY_CACHE:
                self.priorities.popitem(last=False)
        return self.priorities[task_id]

    def _timed_flush(self) -> None:
        self.timer = None
        self.spawn(self.flush())

    async def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        async with self.send_lock:
            events, self.pending, seen = self.pending, [], self.seen
            events.sort(key=lambda event: event["id"])  # concurrent publishers may deliver out of order
            if events:
                await self._send_batch(events, replay=False)
            self.cursor = max(self.cursor, seen)

    async def send_batch(self, events: list[dict], *, replay: bool) -> None:
        async with self.send_lock:
            await self._send_batch(events, replay=replay)

    async def _send_batch(self, events: list[dict], *, replay: bool) -> None:
        if self.ended:
            return
        if len(events) == 1 and isinstance(events[0], fanout.LiveEvent) and not replay:
            data = events[0].frame  # one live event alone: the same frame for every socket
        else:  # a live event carries its JSON text, shared by every socket it goes to
            texts = ",".join(getattr(event, "text", None) or encode(event) for event in events)
            data = '{"type":"batch","events":[' + texts + ('],"replay":true}' if replay else "]}")
        if self.compression:
            await self.send(bytes_data=compress(data.encode(), self.compression))
        else:
            await self.send(text_data=data)
        self.cursor = max(self.cursor, max(event["id"] for event in events))
        BATCH_SIZE.observe(len(events))
        for event in events:
            consumed(event["type"], self.principal.kind).inc()

    async def send_message(self, body: dict) -> None:
        async with self.send_lock:
            if not self.ended:
                await self.send(text_data=json.dumps(body, default=str))

    # --- background -------------------------------------------------------------------------------
    def spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(self._logged(coroutine))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _logged(self, coroutine) -> None:
        try:
            await coroutine
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("event stream %s: background work failed", self.lease)

    async def heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.conf.heartbeat_interval)
            await self.send_message(
                {"type": "heartbeat", "last_event_id": self.cursor, "at": timezone.now().isoformat()}
            )

    async def credential_loop(self) -> None:
        """Check the credential again at least every heartbeat (and when a JWT expires); close
        with its code (4401) once it no longer holds. A database that does not answer leaves the
        stream as it is until the next check."""
        while self.lease is not None and not self.ended:
            await asyncio.sleep(self.recheck_delay())
            try:
                share = min(RECHECK_SHARE, self.conf.heartbeat_interval / 4)
                fresh = await rechecks.recheck(self.scope, self.principal, share=share)
            except StreamAuthError as err:
                log.info("event stream %s (%s): closed, %s", self.lease, self.principal.ident, err)
                CONNECTIONS_REFUSED.labels(reason="credential_ended").inc()
                return await self.end(err.code, str(err))
            except Exception as err:  # the database is away: keep serving, check again later
                log.warning("event stream %s: cannot check its credential (%s)", self.lease, err)
                continue
            self.expires_at = fresh.expires_at

    def recheck_delay(self) -> float:
        delay = min(self.conf.heartbeat_interval, RECHECK_MAX)
        if self.expires_at is not None:  # a moment after expiry, so the token is surely refused
            delay = min(delay, max(0.05, self.expires_at - time.time() + 0.05))
        return delay

    async def end(self, code: int, detail: str) -> None:
        """Close from the server's side; nothing is sent after this."""
        async with self.send_lock:
            self.ended = True
            for timer in (self.timer, self.gap_timer):
                if timer is not None:
                    timer.cancel()
            await self.close(code=code, reason=detail.encode()[:120].decode(errors="ignore"))
