"""Which browser origins may open the event stream.

A browser sends its page's origin with every WebSocket handshake and, unlike `fetch`, applies no
CORS check of its own: a page on any site the user visits can open a socket to the hive, and
the browser adds the hive's session cookie. So the stream checks the origin itself, the way
CORS treats credentials:

- The server's own origin (the Origin's host and port are the handshake's Host) is always
  allowed: the dashboard was served by this host.
- `security.event_streaming.allowed_origins` lists other origins, one by one. The configuration
  refuses `*` there.
- A socket that brings its own credential (an API key or a JWT, in a header, the query or a
  subprotocol) is not riding on the user's cookie: the page had to hold the secret. For those,
  the API gateway's CORS origins apply too (`external_api.api_gateway.cors_origins`, when CORS is
  on), `*` included — as for `fetch` without credentials.
- A socket without an Origin header comes from a program, not a browser; it must authenticate
  like any other.

A socket authenticated by the session cookie (or by nothing, when anonymous streams are on) from
any other origin — a foreign site, another port of the same host, `null` (sandboxed frames,
`file:` pages) — is refused. The configuration is read on every handshake, so a reloaded
configuration (and a test override of `settings.HIVE_CONFIG`) takes effect at once.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import ParseResult, urlparse

from channels.security.websocket import OriginValidator
from django.conf import settings


def origin_of(scope: dict[str, Any]) -> str | None:
    """The handshake's Origin header, or None when there is none (not a browser)."""
    return _header(scope, b"origin")


def origin_allowed(origin: str, *, host: str | None, own_credential: bool) -> bool:
    """Whether a page from `origin` may open the stream on the server named by `host`.

    `own_credential`: the socket authenticates with an API key or JWT it sends itself, not with
    the cookie the browser adds."""
    try:
        parsed = urlparse(origin)
    except ValueError:
        return False
    if host and _same_origin(parsed, host):
        return True
    if _matches(parsed, settings.HIVE_CONFIG.security.event_streaming.allowed_origins):
        return True
    gateway = settings.HIVE_CONFIG.external_api.api_gateway
    return own_credential and gateway.cors_enabled and _matches(parsed, gateway.cors_origins)


def host_of(scope: dict[str, Any]) -> str | None:
    return _header(scope, b"host")


def _matches(origin: ParseResult, patterns: list[str]) -> bool:
    # Channels' matcher: exact scheme, host and port ('*' matches anything, `null` nothing else)
    try:
        return bool(patterns) and OriginValidator(None, list(patterns)).validate_origin(origin)
    except ValueError:  # a port out of range
        return False


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin1")
    return None


def _same_origin(origin: ParseResult, host: str) -> bool:
    """The page's origin names this server: same host and port as the handshake's Host header.

    Behind a TLS-terminating proxy the scheme of the handshake may differ from the page's, so
    only host and port are compared (the default port of the origin's own scheme applies)."""
    if origin.scheme not in ("http", "https") or not origin.hostname:
        return False
    served = urlparse(f"//{host}")
    default = 443 if origin.scheme == "https" else 80
    try:
        origin_port = origin.port or default
        host_port = served.port or default
    except ValueError:
        return False
    return (origin.hostname or "").lower() == (served.hostname or "").lower() and origin_port == host_port
