"""A small load generator for the front-door scenarios: HTTP/1.1 with keep-alive over asyncio streams.

Only the standard library: one connection per concurrent client, requests sent one after another on
it, each timed from the first byte written to the last byte of the body read. Enough for loopback
measurements of a uvicorn process; not a general HTTP client (no TLS, no redirects).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Outcome:
    latencies_ms: list[float]
    statuses: dict[int, int]
    seconds: float
    errors: int = 0

    @property
    def per_s(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None

    async def send(self, request: Request) -> tuple[int, bytes]:
        for attempt in (0, 1):  # the server may have closed an idle keep-alive connection
            if self.writer is None:
                await self._open()
            try:
                return await self._exchange(request)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, request: Request) -> tuple[int, bytes]:
        head = [
            f"{request.method} {request.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Content-Length: {len(request.body)}",
            "Connection: keep-alive",
        ]
        head += [f"{k}: {v}" for k, v in request.headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body)
        await self.writer.drain()
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body


def json_request(method: str, path: str, body: dict | None = None, headers: dict[str, str] | None = None) -> Request:
    data = json.dumps(body).encode() if body is not None else b""
    return Request(method, path, {"Content-Type": "application/json", **(headers or {})}, data)


async def _drive(host: str, port: int, requests: list[Request], concurrency: int) -> Outcome:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    index = 0

    async def client() -> None:
        nonlocal index, errors
        conn = Connection(host, port)
        try:
            while index < len(requests):
                request = requests[index]
                index += 1
                start = time.perf_counter()
                try:
                    status, _ = await asyncio.wait_for(conn.send(request), timeout=30)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    await conn.close()
                    continue
                latencies.append(1000 * (time.perf_counter() - start))
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(max(1, min(concurrency, len(requests))))))
    return Outcome(latencies, statuses, time.perf_counter() - started, errors)


def drive(host: str, port: int, requests: list[Request], concurrency: int) -> Outcome:
    """Send the requests with `concurrency` keep-alive connections; latency and status of each."""
    return asyncio.run(_drive(host, port, requests, concurrency))
