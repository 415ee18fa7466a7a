"""Starting the hive's processes: the command lines `hive up`, the bench and the tests all use.

One place for the worker command line, a free port and a bounded wait, so a change to how a pool
worker starts (a flag, a queue) reaches every caller.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable

APP = "hive_project"

_web_server: str | None = None  # "asgi" or "wsgi" in a process that serves HTTP
_worker = False  # set by hive_project.celery_worker, the pool and control workers' entry point


def mark_web_process(server: str = "asgi") -> None:
    """Call before the settings load in a process that serves HTTP: "asgi" (uvicorn: `hive serve
    --role all|streaming`, hive_project.asgi) draws its database connections from a pool;
    "wsgi" (gunicorn: `hive serve --role gateway|webhooks`) keeps one persistent connection per
    worker thread, on SQLite too. Kept in the process, not in a variable, so the processes it
    starts do not inherit it."""
    global _web_server
    _web_server = server


def is_web_process() -> bool:
    """An ASGI web process (its database connections come from a pool)."""
    return _web_server == "asgi"


def is_wsgi_process() -> bool:
    return _web_server == "wsgi"


def mark_worker_process() -> None:
    """Call before the settings load in a process that will run a Celery worker."""
    global _worker
    _worker = True


def is_worker_process(argv: list[str] | None = None) -> bool:
    """Is this process a Celery worker (`hive_project.celery_worker` or `celery -A … worker …`, a
    pool's or the control worker)?

    Such a process serves no HTTP: it leaves out the HTTP apps (admin, sessions, DRF, the API
    schema: hive_project.settings) and the login throttle (external_api.apps), which saves memory
    in the main process and in every pool child forked from it."""
    if argv is None and _worker:
        return True
    args = sys.argv if argv is None else argv
    return bool(args) and os.path.basename(args[0]) in ("celery", "__main__.py") and "worker" in args[1:]


WORKER_MODULE = "hive_project.celery_worker"


def celery_argv(*args: str, app: str = APP) -> list[str]:
    """`celery -A <app> …` with this interpreter, so children run in the same virtualenv."""
    return [sys.executable, "-m", "celery", "-A", app, *args]


def worker_argv(
    *, queue: str, node: str, concurrency: int, app: str = APP, loglevel: str = "INFO", fair: bool = True
) -> list[str]:
    """A Celery worker consuming one queue under one node name (the agent's name for pool workers).

    Gossip and mingle are off: workers learn nothing from each other that the database does not
    already hold, and both cost a second or more at start. The hive's own workers start through
    hive_project.celery_worker, without Celery's command-line umbrella and its plugins (memory);
    another app (the bench's peers) through `celery -A <app> worker`, as its users start it.
    """
    options = ["-Q", queue, "-n", node, "-c", str(concurrency)]
    if app == APP:
        argv = [sys.executable, "-m", WORKER_MODULE, *options]
    else:
        argv = celery_argv("worker", *options, app=app)
    if fair:
        argv += ["-O", "fair"]
    return [*argv, "--without-gossip", "--without-mingle", "--loglevel", loglevel]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the caller binds it soon after)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], *, timeout: float, interval: float = 0.05, what: str) -> object:
    """Poll `predicate` until it returns something truthy, and return that; TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
