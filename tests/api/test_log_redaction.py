"""Secrets never reach the logs: the request lines a real uvicorn process writes (its access log,
and the WebSocket handshakes it logs) show `api_key=[redacted]`, never the key."""

from __future__ import annotations

import logging
import sys
import time
import urllib.request

import pytest

from coordination.models import Team
from hive_project.logredact import SecretQueryFilter, redact
from tests.api.conftest import api_key
from tests.streaming.test_dashboard_browser import free_port, wait_until_serving

pytestmark = pytest.mark.django_db(transaction=True)


def test_redact_replaces_secret_query_values_only():
    line = '127.0.0.1:5 - "GET /ws/events/?pools=backend&api_key=hive_ab_cd&Token=eyJ.x.y&monkey=1 HTTP/1.1" 200'
    assert redact(line) == (
        '127.0.0.1:5 - "GET /ws/events/?pools=backend&api_key=[redacted]&Token=[redacted]&monkey=1 HTTP/1.1" 200'
    )


def test_the_filter_rewrites_a_records_arguments_before_formatting():
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", "/api/v1/tasks/?token=secret", "1.1", 200),
        None,
    )
    assert SecretQueryFilter().filter(record)
    assert record.getMessage() == '1.2.3.4:5 - "GET /api/v1/tasks/?token=[redacted] HTTP/1.1" 200'


def wait_for_text(path, text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text()
        if text in content:
            return content
        time.sleep(0.1)
    pytest.fail(f"{text!r} never appeared in {path}:\n{path.read_text()[-3000:]}")


def websocket_handshake(url: str) -> None:
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    try:
        with connect(url, open_timeout=10) as socket:
            socket.recv(timeout=10)
    except (InvalidStatus, WebSocketException, TimeoutError):
        pass


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["-m", "uvicorn", "hive_project.asgi:application"], id="uvicorn"),
        pytest.param(["-m", "hive_project.cli", "serve", "--access-log"], id="hive-serve"),
    ],
)
def test_a_real_web_process_logs_requests_with_the_key_redacted(argv, hive, pools):
    key = api_key(Team.objects.create(name="acme"), ["read"])
    port = free_port()
    server = hive.spawn("web", [sys.executable, *argv, "--port", str(port)])
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(base, server)

    with urllib.request.urlopen(f"{base}/api/v1/status/?api_key={key}&token=eyJsecret.jwt.value", timeout=10):
        pass
    websocket_handshake(f"ws://127.0.0.1:{port}/ws/events/?api_key={key}")

    log = wait_for_text(server.log_path, '"WebSocket /ws/events/?api_key=[redacted]"')
    assert '"GET /api/v1/status/?api_key=[redacted]&token=[redacted] HTTP/1.1" 200' in log
    assert key not in log and key.split("_", 2)[2] not in log and "eyJsecret" not in log


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["-m", "gunicorn", "hive_project.wsgi:application", "--access-logfile", "-"], id="gunicorn"),
        pytest.param(["-m", "hive_project.cli", "serve", "--role", "gateway", "--access-log"], id="hive-serve-gateway"),
    ],
)
def test_a_real_wsgi_process_logs_requests_with_the_key_redacted(argv, hive, pools):
    key = api_key(Team.objects.create(name="acme"), ["read"])
    port = free_port()
    bind = ["--bind", f"127.0.0.1:{port}"] if "gunicorn" in argv else ["--port", str(port)]
    server = hive.spawn("web", [sys.executable, *argv, *bind])
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(base, server)

    with urllib.request.urlopen(f"{base}/api/v1/status/?api_key={key}&token=eyJsecret.jwt.value", timeout=10):
        pass

    log = wait_for_text(server.log_path, '"GET /api/v1/status/?api_key=[redacted]&token=[redacted] HTTP/1.1" 200')
    assert key not in log and key.split("_", 2)[2] not in log and "eyJsecret" not in log
