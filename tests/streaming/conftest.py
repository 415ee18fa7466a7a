"""Helpers for the event-stream tests: WebSocket clients on the real ASGI application and a real
Redis subscription, events published for real (`coordination.events.publish` after commit), and
configuration overrides."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.db import transaction

from coordination.events import publish
from coordination.models import Membership, Team
from external_api.models import ApiKey

TIMEOUT = 10.0  # a receive that times out kills the consumer (asgiref): only for things that must come


class WebsocketCommunicator(ApplicationCommunicator):
    """channels.testing.WebsocketCommunicator, which cannot be imported here: the package
    `channels.testing` imports daphne (for its live-server test case), which the hive does not use."""

    def __init__(self, application, path: str, headers=None, subprotocols=None) -> None:
        from urllib.parse import unquote, urlparse

        parsed = urlparse(path)
        self.scope = {
            "type": "websocket",
            "path": unquote(parsed.path),
            "query_string": parsed.query.encode(),
            "headers": headers or [],
            "subprotocols": subprotocols or [],
        }
        super().__init__(application, self.scope)

    async def connect(self, timeout: float = 1) -> tuple[bool, Any]:
        """(True, chosen subprotocol) when accepted, (False, close code) when refused."""
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        assert response["type"] == "websocket.accept", response
        return True, response.get("subprotocol")

    async def send_json_to(self, data: Any) -> None:
        await self.send_input({"type": "websocket.receive", "text": json.dumps(data)})

    async def receive_from(self, timeout: float = 1) -> str | bytes:
        response = await self.receive_output(timeout)
        assert response["type"] == "websocket.send", f"expected a frame, got {response}"
        return response["text"] if response.get("text") is not None else response["bytes"]

    async def disconnect(self, code: int = 1000, timeout: float = 1) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)


def decompress(data: bytes, algorithm: str) -> bytes:
    if algorithm == "gzip":
        return gzip.decompress(data)
    if algorithm == "zlib":
        return zlib.decompress(data)
    return zlib.decompress(data, -15)


@dataclass
class Stream:
    """One WebSocket client of /ws/events/."""

    communicator: WebsocketCommunicator
    compression: str | None = None
    welcome: dict | None = None
    events: list[dict] = field(default_factory=list)
    batches: list[list[dict]] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)  # everything but batches
    frames: list[str | bytes] = field(default_factory=list)

    async def frame(self, timeout: float = TIMEOUT) -> dict:
        raw = await self.communicator.receive_from(timeout)
        self.frames.append(raw)
        if isinstance(raw, bytes):
            assert self.compression, "a binary frame without compression"
            raw = decompress(raw, self.compression).decode()
        message = json.loads(raw)
        if message["type"] == "batch":
            self.batches.append(message["events"])
            self.events.extend(message["events"])
        else:
            self.messages.append(message)
        return message

    async def until(self, predicate, timeout: float = TIMEOUT) -> dict:
        """Read frames until one satisfies `predicate`."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.frame(timeout)
                if predicate(message):
                    return message

    async def until_events(self, ids: Iterable[int], timeout: float = TIMEOUT) -> None:
        wanted = set(ids)
        async with asyncio.timeout(timeout):
            while not wanted <= {e["id"] for e in self.events}:
                await self.frame(timeout)

    async def message(self, type: str, timeout: float = TIMEOUT) -> dict:
        return await self.until(lambda m: m["type"] == type, timeout)

    async def quiet(self, seconds: float) -> None:
        """Nothing more arrives for `seconds` (the consumer stays alive)."""
        assert await self.communicator.receive_nothing(timeout=seconds, interval=0.02), "an unexpected frame"

    async def send(self, message: dict) -> None:
        await self.communicator.send_json_to(message)

    async def close(self) -> None:
        await self.communicator.disconnect()

    @property
    def ids(self) -> list[int]:
        return [e["id"] for e in self.events]


async def open_stream(
    query: str = "",
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    subprotocols: list[str] | None = None,
    compression: str | None = None,
) -> Stream:
    """A connected, admitted client that has received its welcome."""
    communicator = await connect(query, headers=headers, subprotocols=subprotocols)
    accepted, _ = await communicator.connect(timeout=TIMEOUT)
    assert accepted, "the handshake was refused"
    stream = Stream(communicator, compression=compression)
    first = await stream.frame()
    if first["type"] == "batch" or first["type"] != "welcome":
        raise AssertionError(f"expected a welcome, got {first}")
    stream.welcome = first
    return stream


async def connect(query: str = "", *, headers=None, subprotocols=None) -> WebsocketCommunicator:
    from hive_project.asgi import application

    path = "/ws/events/" + (f"?{query}" if query else "")
    return WebsocketCommunicator(application, path, headers=headers or [], subprotocols=subprotocols)


async def refused_with(query: str = "", *, headers=None, subprotocols=None) -> tuple[int, str]:
    """Connect and expect to be closed: (close code, reason)."""
    communicator = await connect(query, headers=headers, subprotocols=subprotocols)
    accepted, code = await communicator.connect(timeout=TIMEOUT)
    if not accepted:
        return code, ""
    closing = await communicator.receive_output(TIMEOUT)
    assert closing["type"] == "websocket.close", f"expected a close, got {closing}"
    await communicator.disconnect()
    return closing.get("code"), closing.get("reason", "")


def publish_now(type: str, **data: Any) -> int:
    """Publish one event in its own transaction (so it is announced on commit); returns its id."""
    with transaction.atomic():
        return publish(type, **data).id


apublish = database_sync_to_async(publish_now)


def run(coroutine) -> Any:
    return asyncio.run(coroutine)


def make_key(team: Team, scopes: list[str]) -> str:
    prefix, raw = ApiKey.generate()
    ApiKey.objects.create(team=team, name="stream", prefix=prefix, digest=ApiKey.digest_of(raw), scopes=scopes)
    return raw


@dataclass
class World:
    acme: Team
    globex: Team
    acme_key: str
    globex_key: str
    alice: User  # acme member
    staff: User


@pytest.fixture
def world(live_pools) -> World:
    acme, globex = Team.objects.create(name="acme"), Team.objects.create(name="globex")
    alice = User.objects.create_user("alice", password="correct horse battery")
    Membership.objects.create(user=alice, team=acme)
    staff = User.objects.create_user("sam", password="correct horse battery", is_staff=True)
    return World(acme, globex, make_key(acme, ["read"]), make_key(globex, ["read", "write"]), alice, staff)


@pytest.fixture
def stream_config(settings):
    """`stream_config(batch_size=3, ...)` changes external_api.event_streaming for this test;
    `stream_config(cors_origins=[...])` the gateway's origins."""

    def change(**values: Any) -> None:
        config = settings.HIVE_CONFIG
        api = config.external_api
        gateway = {k: values.pop(k) for k in ("cors_origins", "cors_enabled") if k in values}
        api = api.model_copy(
            update={
                "event_streaming": api.event_streaming.model_copy(update=values),
                "api_gateway": api.api_gateway.model_copy(update=gateway),
            }
        )
        settings.HIVE_CONFIG = config.model_copy(update={"external_api": api})

    return change


@pytest.fixture(autouse=True)
def no_stream_leases():
    """Connection leases of an earlier test (a consumer killed by a timeout) must not count here."""
    from coordination.dispatch import redis_client
    from external_api.streaming.connections import KEY

    redis_client().delete(KEY)
    yield
