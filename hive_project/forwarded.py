"""The client's address behind a proxy on this host, under WSGI as uvicorn gives it under ASGI.

uvicorn (proxy_headers, forwarded_allow_ips 127.0.0.1) takes the client from `X-Forwarded-For`
when the connection comes from 127.0.0.1; gunicorn leaves REMOTE_ADDR as the socket's peer. The
hive counts failed authentications per client address (external_api.auth_throttle), so both
servers must name the same client: the nearest address in `X-Forwarded-For` that is not a trusted
proxy, and only when the connection itself comes from one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

TRUSTED_PROXIES = frozenset({"127.0.0.1"})

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def client_address(peer: str, forwarded_for: str | None) -> str:
    """The client's address for a connection from `peer` carrying this `X-Forwarded-For`."""
    if peer not in TRUSTED_PROXIES or not forwarded_for:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in TRUSTED_PROXIES:
            return hop
    return hops[0] if hops else peer


class ForwardedFor:
    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        peer = environ.get("REMOTE_ADDR", "")
        environ["REMOTE_ADDR"] = client_address(peer, environ.get("HTTP_X_FORWARDED_FOR"))
        return self.app(environ, start_response)
