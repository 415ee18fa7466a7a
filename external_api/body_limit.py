"""Request bodies are capped while they arrive, before Django sees them.

Django's ASGI handler spools a whole request body before any view or middleware runs, so a cap
checked in Django comes after the server has read everything the client chose to send (168 MB
of a chunked upload to the webhook route, unauthenticated, before its 413). This pure ASGI
middleware sits in front:

- a declared `Content-Length` over the limit is answered 413 at once, without reading;
- a body without `Content-Length` (chunked, or HTTP/2) is read chunk by chunk and counted; once
  the count passes the limit it stops reading and answers 413, so at most the limit plus one
  chunk is ever read. A body within the limit is handed to Django whole, with the
  `Content-Length` it turned out to have: DRF ignores a body whose length was not declared,
  which made a chunked JSON POST look empty ("capabilities: This field is required").

Under WSGI (gunicorn, the gateway and webhook roles) `WsgiBodyLimit` does the same in front of
Django's WSGI handler: a declared length is checked without reading, a chunked body is read from
`wsgi.input` chunk by chunk and counted, and one within the limit reaches Django whole, with the
`CONTENT_LENGTH` it turned out to have (Django reads nothing of a body without one).

The limit is `external_api.webhook_server.max_payload_size` (and the stricter
`security.webhook_server.request_validation.max_payload_size`) under `/webhooks/`, and
`external_api.api_gateway.max_request_size` everywhere else. Both are read per request, so a
reloaded configuration applies at once. The 413 is JSON `{code, detail}` like every API error.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WEBHOOK_PREFIX = "/webhooks/"


def body_limit(path: str) -> int:
    """Bytes a request body to `path` may have."""
    config = settings.HIVE_CONFIG
    if path.startswith(WEBHOOK_PREFIX):
        server = config.external_api.webhook_server
        return min(server.max_payload_bytes, config.security.webhook_server.request_validation.max_payload_bytes)
    return config.external_api.api_gateway.max_request_bytes


class BodyLimitMiddleware:
    """Wraps an ASGI application; only HTTP requests are looked at."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = body_limit(scope.get("path", ""))
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return await _error(send, 400, "bad_request", "Content-Length is not a number")
            if int(declared) > limit:
                return await _error(send, 413, "payload_too_large", f"the request body is larger than {limit} bytes")
            # the server frames the body by its declared length: it cannot grow past it
            return await self.app(scope, receive, send)
        return await self._undeclared(scope, receive, send, limit)

    async def _undeclared(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return await self.app(scope, _replay([message], receive), send)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await _error(send, 413, "payload_too_large", f"the request body is larger than {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if size == 0 and len(chunks) <= 1:  # no body at all (a GET): nothing to declare
            return await self.app(scope, _replay([{"type": "http.request", "body": b""}], receive), send)
        headers = [(k, v) for k, v in scope.get("headers", []) if k not in (b"content-length", b"transfer-encoding")]
        headers.append((b"content-length", str(size).encode()))
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app({**scope, "headers": headers}, _replay([whole], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """`receive` that first returns `messages`, then defers to the server (for disconnects)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin1")
    return None


async def _error(send: Send, status: int, code: str, detail: str) -> None:
    """Answer without reading the rest of the body; `connection: close` tells the server not to
    wait for it on a kept-alive connection."""
    body = json.dumps({"code": code, "detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- WSGI -------------------------------------------------------------------------------------------
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
READ_CHUNK = 64 * 1024


class WsgiBodyLimit:
    """Wraps a WSGI application the way BodyLimitMiddleware wraps an ASGI one."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        limit = body_limit(environ.get("PATH_INFO", ""))
        declared = environ.get("CONTENT_LENGTH") or None
        if declared is not None:
            if not declared.strip().isdigit():
                return _wsgi_error(environ, start_response, 400, "bad_request", "Content-Length is not a number")
            if int(declared) > limit:
                return _wsgi_error(environ, start_response, 413, "payload_too_large", _too_large(limit))
            return self.app(environ, start_response)
        if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return self.app(environ, start_response)  # no body at all
        stream, chunks, size = environ["wsgi.input"], [], 0
        while chunk := stream.read(READ_CHUNK):
            size += len(chunk)
            if size > limit:
                return _wsgi_error(environ, start_response, 413, "payload_too_large", _too_large(limit))
            chunks.append(chunk)
        environ["wsgi.input"] = io.BytesIO(b"".join(chunks))
        environ["CONTENT_LENGTH"] = str(size)
        return self.app(environ, start_response)


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


class _ThenStopReading(list):
    """The error's body; once the server has sent it, the connection reads no more. gunicorn
    ignores an application's `Connection: close` and, to keep the connection alive, would read
    and discard the rest of the body (a flood) before the next request: shutting the socket's
    reading side makes that read end at once, and the connection closes."""

    def __init__(self, body: bytes, sock: socket.socket | None) -> None:
        super().__init__([body])
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RD)
            except OSError:  # the client is gone already
                pass


def _wsgi_error(
    environ: dict[str, Any], start_response: Callable[..., Any], status: int, code: str, detail: str
) -> list[bytes]:
    body = json.dumps({"code": code, "detail": detail}).encode()
    reason = {400: "Bad Request", 413: "Request Entity Too Large"}[status]
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")],
    )
    return _ThenStopReading(body, environ.get("gunicorn.socket"))
