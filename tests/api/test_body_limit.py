"""Bodies are capped while they arrive: the ASGI application stops reading a chunked body at the
limit (measured by counting what it takes from the server), and a chunked JSON body within the
limit reaches the API and webhooks like any other."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from typing import Any

import pytest

from coordination.models import Task, Team
from tests.api.conftest import api_key
from tests.streaming.test_dashboard_browser import free_port, wait_until_serving

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = 64 * 1024
HUNDRED_MB = 100 * 1024 * 1024


class ChunkedClient:
    """Plays the server's side of the ASGI contract: hands the application a body in chunks (no
    Content-Length, as uvicorn does for `Transfer-Encoding: chunked`), counts what it takes, and
    collects the response."""

    def __init__(self, body_size: int, *, body: bytes | None = None, chunk: int = CHUNK) -> None:
        self.body = body
        self.size = len(body) if body is not None else body_size
        self.chunk = chunk
        self.read = 0
        self.status: int | None = None
        self.headers: dict[bytes, bytes] = {}
        self.response = b""

    async def receive(self) -> dict[str, Any]:
        if self.read >= self.size:
            await asyncio.sleep(3600)  # the client waits for the answer (a disconnect never comes)
        n = min(self.chunk, self.size - self.read)
        data = self.body[self.read : self.read + n] if self.body is not None else b"x" * n
        self.read += n
        return {"type": "http.request", "body": data, "more_body": self.read < self.size}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = dict(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.response += message.get("body", b"")

    def request(self, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> ChunkedClient:
        from hive_project.asgi import application

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver"), (b"transfer-encoding", b"chunked"), *headers],
            "client": ("127.0.0.1", 40000),
            "server": ("testserver", 80),
        }
        asyncio.run(asyncio.wait_for(application(scope, self.receive, self.send), timeout=60))
        return self

    def json(self) -> Any:
        return json.loads(self.response)


def webhook_limit() -> int:
    from external_api.body_limit import body_limit

    return body_limit("/webhooks/custom/")


def test_a_chunked_100mb_body_to_the_webhook_route_is_refused_after_the_limit_and_one_chunk(live_pools):
    client = ChunkedClient(HUNDRED_MB).request("POST", "/webhooks/custom/", [(b"content-type", b"application/json")])
    assert client.status == 413
    assert client.json() == {
        "code": "payload_too_large",
        "detail": f"the request body is larger than {webhook_limit()} bytes",
    }
    assert client.read <= webhook_limit() + CHUNK


def test_a_declared_length_over_the_limit_is_refused_before_any_byte_is_read(live_pools):
    limit = webhook_limit()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(limit + 1).encode())]
    client = ChunkedClient(limit + 1).request("POST", "/webhooks/custom/", headers)
    assert client.status == 413 and client.read == 0


def test_a_chunked_json_api_post_creates_the_task(live_pools):
    key = api_key(Team.objects.create(name="acme"), ["read", "write", "commands"])
    body = json.dumps({"command": ["true"], "capabilities": ["python"], "prompt": "sent in chunks"}).encode()
    headers = [(b"content-type", b"application/json"), (b"x-api-key", key.encode())]
    client = ChunkedClient(0, body=body, chunk=7).request("POST", "/api/v1/tasks/", headers)
    assert client.status == 201, client.response
    assert Task.objects.get(id=client.json()["id"]).prompt == "sent in chunks"


def test_a_chunked_json_webhook_delivery_creates_the_task(live_pools):
    key = api_key(Team.objects.create(name="acme"), ["write", "commands"])
    body = json.dumps({"command": ["true"], "capabilities": ["python"], "prompt": "hooked in chunks"}).encode()
    headers = [(b"content-type", b"application/json"), (b"x-api-key", key.encode())]
    client = ChunkedClient(0, body=body, chunk=10).request("POST", "/webhooks/custom/", headers)
    assert client.status == 201, client.response
    assert Task.objects.get(id=client.json()["task"]).prompt == "hooked in chunks"


# --- through a real server -------------------------------------------------------------------------
def chunked_upload(port: int, path: str, headers: dict[str, str], body: bytes | None, *, total: int = 0):
    """Send a chunked request over a socket: `body` in chunks of 16 bytes, or chunks of filler
    until `total` bytes or the server's answer. Returns (status line, JSON body, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    if body is not None:  # a small body: all of it, then wait for the answer
        frames = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 16]), body[i : i + 16]) for i in range(0, len(body), 16))
        sock.sendall(head.encode() + frames + b"0\r\n\r\n")
        return _answer(sock, b""), len(body)
    sock.sendall(head.encode())
    frame = b"%x\r\n%s\r\n" % (CHUNK, b"x" * CHUNK)
    pending, sent, answer = b"", 0, b""
    sock.setblocking(False)
    try:
        while b"\r\n\r\n" not in answer:
            try:
                answer += sock.recv(65536)
                continue
            except BlockingIOError:
                pass
            if not pending and sent < total:
                pending, sent = frame, sent + CHUNK
            if pending:
                try:
                    pending = pending[sock.send(pending) :]  # a partial send keeps the rest for later
                except BlockingIOError:
                    time.sleep(0.001)
                except (BrokenPipeError, ConnectionResetError):
                    break
            else:
                time.sleep(0.01)
        return _answer(sock, answer), sent
    finally:
        sock.close()


def _answer(sock: socket.socket, answer: bytes) -> tuple[str, Any]:
    sock.setblocking(True)
    sock.settimeout(10)
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head_end = answer.index(b"\r\n\r\n") + 4
    fields = {
        name.lower(): value
        for name, value in (line.split(b": ", 1) for line in answer[: head_end - 4].split(b"\r\n")[1:])
    }
    length = int(fields[b"content-length"])
    while len(answer) < head_end + length:
        answer += sock.recv(65536)
    return answer.split(b"\r\n", 1)[0].decode(), json.loads(answer[head_end : head_end + length])


def test_a_real_server_answers_a_chunked_flood_early_and_takes_a_chunked_task(hive, pools):
    key = api_key(Team.objects.create(name="acme"), ["read", "write", "commands"])
    port = free_port()
    server = hive.spawn("web", [sys.executable, "-m", "hive_project.cli", "serve", "--port", str(port)])
    wait_until_serving(f"http://127.0.0.1:{port}", server)

    (status, body), sent = chunked_upload(
        port, "/webhooks/custom/", {"Content-Type": "application/json"}, None, total=HUNDRED_MB
    )
    assert status.startswith("HTTP/1.1 413 ") and body["code"] == "payload_too_large"
    assert sent < HUNDRED_MB / 4  # answered long before the flood ended (socket buffers hold a few MB)

    task = json.dumps({"command": ["true"], "capabilities": ["python"], "prompt": "chunked over TCP"}).encode()
    headers = {"Content-Type": "application/json", "X-API-Key": key}
    (status, body), _ = chunked_upload(port, "/api/v1/tasks/", headers, task)
    assert status == "HTTP/1.1 201 Created", body
    assert Task.objects.get(id=body["id"]).prompt == "chunked over TCP"


def test_the_gunicorn_roles_answer_a_chunked_flood_early_and_take_a_chunked_task(hive, pools):
    """`hive serve --role webhooks|gateway` run under gunicorn (WSGI): the same caps, the same answers."""
    key = api_key(Team.objects.create(name="acme"), ["read", "write", "commands"])
    ports = {role: free_port() for role in ("webhooks", "gateway")}
    for role, port in ports.items():
        argv = [
            sys.executable,
            "-m",
            "hive_project.cli",
            "serve",
            "--role",
            role,
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        server = hive.spawn(f"web-{role}", argv)
        wait_until_serving(f"http://127.0.0.1:{port}", server)
        assert "gunicorn" in server.log_path.read_text().lower()

    (status, body), sent = chunked_upload(
        ports["webhooks"], "/webhooks/custom/", {"Content-Type": "application/json"}, None, total=HUNDRED_MB
    )
    assert status.startswith("HTTP/1.1 413 ") and body["code"] == "payload_too_large"
    assert sent < HUNDRED_MB / 4

    task = json.dumps({"command": ["true"], "capabilities": ["python"], "prompt": "chunked to gunicorn"}).encode()
    headers = {"Content-Type": "application/json", "X-API-Key": key}
    (status, body), _ = chunked_upload(ports["gateway"], "/api/v1/tasks/", headers, task)
    assert status == "HTTP/1.1 201 Created", body
    assert Task.objects.get(id=body["id"]).prompt == "chunked to gunicorn"
