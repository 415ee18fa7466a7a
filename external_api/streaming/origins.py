"""Which browser origins may open the event stream.

A browser sends its page's origin with every WebSocket handshake and, unlike `fetch`, applies no
CORS check of its own: without this check any site a logged-in operator visits could read the
stream with the operator's session cookie. Allowed: the origins of
`external_api.api_gateway.cors_origins` (when CORS is enabled; `*` allows any) and the server's
own origin (the page was served by this host). A handshake without an Origin header comes from a
program, not a browser, and is let through: such clients must still authenticate.

The configuration is read on every handshake, so a reloaded configuration (and a test override of
`settings.HIVE_CONFIG`) takes effect without rebuilding the ASGI application.
"""

from __future__ import annotations

from urllib.parse import urlparse

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings


def allowed_origins() -> list[str]:
    gateway = settings.HIVE_CONFIG.external_api.api_gateway
    return list(gateway.cors_origins) if gateway.cors_enabled else []


class StreamOriginValidator:
    """Refuses the handshake of a browser page from an origin that is not allowed.

    Channels' OriginValidator does the pattern matching (exact origins, `.example.com` for a
    domain and its subdomains, `*`); this adds the server's own origin and lets programs (no
    Origin header) through to authentication."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        origin = _header(scope, b"origin")
        if origin is None or origin_allowed(origin, host=_header(scope, b"host")):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


def origin_allowed(origin: str, *, host: str | None) -> bool:
    parsed = urlparse(origin)
    if host and _same_origin(parsed, host):
        return True
    return OriginValidator(None, allowed_origins()).validate_origin(parsed)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin1")
    return None


def _same_origin(origin, host: str) -> bool:
    """The page's origin names this server: same host and port as the handshake's Host header.

    Behind a TLS-terminating proxy the scheme of the handshake may differ from the page's, so
    only host and port are compared (the default port of the origin's own scheme applies)."""
    if not origin.hostname:
        return False
    served = urlparse(f"//{host}")
    default = 443 if origin.scheme in ("https", "wss") else 80
    try:
        origin_port = origin.port or default
        host_port = served.port or default
    except ValueError:
        return False
    return (origin.hostname or "").lower() == (served.hostname or "").lower() and origin_port == host_port
