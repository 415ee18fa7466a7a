"""`hive serve`: one front door in this process, under gunicorn (WSGI) or uvicorn (ASGI)."""

from __future__ import annotations

import logging

import click

from hive_project.cli import fail, main, setup_django

# gunicorn threads per worker: requests one worker serves at once, each with its own database connection
DEFAULT_THREADS = 8
SERVE_PORTS = {"webhooks": "webhook_server", "gateway": "api_gateway", "streaming": "event_streaming"}


@main.command()
@click.option(
    "--host", default=None, help="Default: external_api.webhook_server.host for --role webhooks, else 127.0.0.1."
)
@click.option(
    "--port",
    default=None,
    type=click.IntRange(1, 65535),
    help="Default: the role's external_api.<webhook_server|api_gateway|event_streaming>.port, 8000 for all.",
)
@click.option(
    "--role",
    default="all",
    show_default=True,
    type=click.Choice(["all", "gateway", "webhooks", "streaming"]),
    help="Serve one front door (production runs each as its own process) or all of them.",
)
@click.option(
    "--server",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "gunicorn", "uvicorn"]),
    help="auto: gunicorn (WSGI, threaded workers) for gateway and webhooks, uvicorn (ASGI) for streaming and all.",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="gunicorn worker processes. Default: WEB_CONCURRENCY, else one per core.",
)
@click.option(
    "--threads",
    default=DEFAULT_THREADS,
    show_default=True,
    type=click.IntRange(1, 256),
    help="gunicorn threads per worker (each keeps one database connection).",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request line (secret query parameters such as api_key= are redacted).",
)
def serve(host, port, role, server, workers, threads, access_log) -> None:
    """Serve a front door: gateway (API, admin, dashboard), webhooks, streaming, or all.

    The gateway and webhook roles run under gunicorn (WSGI): each worker thread keeps one
    persistent database connection (database.conn_max_age). Streaming and all, which carry
    WebSockets, run under uvicorn (ASGI), whose database connections come from a pool on
    PostgreSQL (database.connection_pool_size, max_overflow, pool_timeout, pool_recycle). Every
    role also answers /health, /ready and /metrics. SIGTERM finishes the requests in flight.
    """
    import os

    from hive_project.launch import mark_web_process

    if server == "auto":
        server = "gunicorn" if role in ("gateway", "webhooks") else "uvicorn"
    if server == "gunicorn" and role in ("all", "streaming"):
        fail(f"--role {role} serves WebSockets, which gunicorn (WSGI) cannot: use --server uvicorn")
    os.environ["LEANVIBE_SERVE_ROLE"] = role  # read by the settings, so set before Django loads
    mark_web_process("asgi" if server == "uvicorn" else "wsgi")
    setup_django()
    from django.conf import settings

    api = settings.HIVE_CONFIG.external_api
    if port is None:
        port = getattr(api, SERVE_PORTS[role]).port if role in SERVE_PORTS else 8000
    if host is None:
        host = api.webhook_server.host if role == "webhooks" else "127.0.0.1"
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    if server == "gunicorn":
        from hive_project import wsgi_server

        wsgi_server.serve(
            host=host,
            port=port,
            workers=workers or wsgi_server.default_workers(),
            threads=threads,
            access_log=access_log,
            log_level=level,
        )
        return
    import uvicorn

    # log_config=None: uvicorn's own loggers propagate to the hive's handlers (logging.*), so its
    # lines are JSON when the rest are.
    uvicorn.run(
        "hive_project.asgi:application",
        host=host,
        port=port,
        # websockets' sans-I/O protocol: about a third less CPU per frame written than the legacy
        # one (no per-send drain and state coroutines); it still waits while the socket's
        # buffer is full, so a slow client's events queue (and are dropped past
        # consumers.INBOX_LIMIT) in the stream, not in memory without bound.
        ws="websockets-sansio",
        # No permessage-deflate: browsers offer it, and it would compress every frame for every
        # socket, keeping a compressor (tens of KB) per connection; a client that wants
        # compression asks the stream for it (`compress=`: whole batches, binary frames).
        ws_per_message_deflate=False,
        lifespan="off",
        log_config=None,
        log_level=level,
        access_log=access_log,
    )
