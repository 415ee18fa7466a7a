"""A local HTTP server that receives the hive's alert webhooks: the standard library's http.server on
127.0.0.1 in a thread of the test, recording every POST. It can refuse the first N requests (503 or
the statuses given; 3xx with a Location) to show which deliveries are retried."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    def __init__(self, *, fail_first: int = 0, statuses: tuple[int, ...] = ()) -> None:
        self.bodies: list[dict] = []  # the JSON of every POST answered 200
        self.refused = 0
        self.statuses = list(statuses) or [503] * fail_first  # answered in turn before any 200
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver.lock:
                    status = receiver.statuses[receiver.refused] if receiver.refused < len(receiver.statuses) else 200
                    if status == 200:
                        receiver.bodies.append(json.loads(raw))
                    else:
                        receiver.refused += 1
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self, type: str) -> list[dict]:
        with self.lock:
            return [body for body in self.bodies if body.get("event") == type]
