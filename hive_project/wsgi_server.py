"""The gateway and webhook roles under gunicorn (WSGI, threaded workers); the stream stays on uvicorn.

Why: under ASGI every request's synchronous part runs on a thread that Django does not keep, so a
persistent database connection cannot be reused and each request drew one from a pool (PostgreSQL)
or opened one (SQLite). A gunicorn `gthread` worker keeps its threads, so each keeps one
connection (`database.conn_max_age`) for as long as it lives; `hive bench -s 3` measures both
servers in one run.

What stays true under it, as under uvicorn: bodies are capped while they arrive
(external_api.body_limit.WsgiBodyLimit), request lines in the access log have their secret query
parameters redacted (hive_project.logredact, on `gunicorn.access`), gunicorn's own lines go to the
hive's log handlers (JSON when the rest are), SIGTERM finishes the requests in flight before the
workers exit (`graceful_timeout`), SIGINT (Ctrl-C) stops at once.
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

GRACEFUL_TIMEOUT = 20  # seconds SIGTERM leaves the requests in flight; Kubernetes waits 30 by default
KEEPALIVE = 5  # seconds a kept-alive connection waits for its next request


def default_workers() -> int:
    """One worker process per core this process may run on (WEB_CONCURRENCY overrides, as gunicorn's own)."""
    if os.environ.get("WEB_CONCURRENCY", "").isdigit():
        return max(1, int(os.environ["WEB_CONCURRENCY"]))
    return max(1, len(os.sched_getaffinity(0)))


class HiveLogger(Logger):
    """gunicorn's loggers without gunicorn's handlers: their records propagate to the handlers the
    hive's settings configured (logging.*), and request lines pass the secret-query filter."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True
        from hive_project import logredact

        logredact.install()


class HiveWsgiServer(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from hive_project.wsgi import application

        return application


def serve(*, host: str, port: int, workers: int, threads: int, access_log: bool, log_level: str) -> None:
    """Run gunicorn in this process until SIGTERM or SIGINT. Django is set up already (the caller
    read its settings): the application is loaded once before the workers fork, and opens no
    connection until a request needs one, so none is shared across a fork."""
    HiveWsgiServer(
        {
            "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
            "worker_class": "gthread",
            "workers": workers,
            "threads": threads,
            "preload_app": True,
            "keepalive": KEEPALIVE,
            "graceful_timeout": GRACEFUL_TIMEOUT,
            "logger_class": HiveLogger,
            "accesslog": "-" if access_log else None,
            "loglevel": log_level,
            "proc_name": "hive-serve",
            # A proxy in front (nginx, the ingress) sets X-Forwarded-*; uvicorn trusts them from
            # 127.0.0.1 only, and so does this.
            "forwarded_allow_ips": "127.0.0.1",
        }
    ).run()
