"""Who opened the stream: an API key, a JWT access token, or the Django session of the dashboard.

Credentials are looked for in this order, and the first one found decides (a wrong key is
refused, never "rescued" by a session cookie):

- API key: the `X-API-Key` header, `Authorization: Api-Key <key>`, the subprotocol
  `apikey.<key>` (or `hive.key.<key>`), or `?api_key=`;
- JWT access token: the header of `security.event_streaming.authentication`
  (`Authorization: Bearer <token>`), the subprotocol `bearer.<token>` (or `hive.token.<token>`),
  or `?token=`;
- the session cookie (routing.py's middleware has put the user in the scope).

Browsers cannot set headers on a WebSocket: they offer `["hive.v1", "bearer.<token>"]` as
subprotocols and the server answers `hive.v1`, so no secret has to travel in a URL (URLs end up
in logs; the web process redacts `api_key=` and `token=` from its own, see
hive_project/logredact.py). The query parameters stay accepted for programs.

Without any, the stream is refused unless `security.event_streaming.authentication.type` is
`none` or `access_control.subscription_auth_required` is false; such an anonymous viewer sees
only the events that belong to no team. Unknown API keys count against the client's address
(external_api.auth_throttle); a locked-out address is refused with 4429.

An open stream is checked again (`reauthenticate`) at least every heartbeat: a key revoked or
expired, a token past its expiry, a session signed out or a user deactivated closes it with 4401.
Everything here touches the database: call it through `database_sync_to_async`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from rest_framework import exceptions

from external_api.access import READ, Caller, caller_of_key, caller_of_user
from external_api.authentication import api_key_check, api_key_lookup

KEY_SUBPROTOCOLS = ("apikey.", "hive.key.")
TOKEN_SUBPROTOCOLS = ("bearer.", "hive.token.")
CREDENTIAL_SUBPROTOCOLS = KEY_SUBPROTOCOLS + TOKEN_SUBPROTOCOLS

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_THROTTLED = 4429


class StreamAuthError(Exception):
    """Refused: `code` is the WebSocket close code (4401 no or bad credentials, 4403 not allowed,
    4429 too many failed attempts from this address)."""

    def __init__(self, detail: str, code: int = CLOSE_UNAUTHENTICATED) -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class StreamCredential:
    """Who the stream is for, and until when the credential holds (a JWT's expiry, epoch seconds;
    None when only a later check can tell)."""

    caller: Caller
    expires_at: float | None = None


def headers_of(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin1").lower(): v.decode("latin1") for k, v in scope.get("headers", [])}


def query_of(scope: dict[str, Any]) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin1"), keep_blank_values=True)


def address_of(scope: dict[str, Any]) -> str:
    client = scope.get("client") or ("unknown", 0)
    return str(client[0])


def credentials(scope: dict[str, Any]) -> tuple[str, str] | None:
    """("api_key" | "jwt", raw credential) as the client sent it, or None."""
    query, headers = query_of(scope), headers_of(scope)
    protocols = scope.get("subprotocols") or []
    if headers.get("x-api-key"):
        return "api_key", headers["x-api-key"].strip()
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("api-key "):
        return "api_key", authorization[8:].strip()
    if raw := _subprotocol_value(protocols, KEY_SUBPROTOCOLS):
        return "api_key", raw
    if raw := _last(query, "api_key"):
        return "api_key", raw
    auth = settings.HIVE_CONFIG.security.event_streaming.authentication
    value = headers.get(auth.token_header.lower(), "")
    prefix = f"{auth.token_prefix} ".lower()
    if value.lower().startswith(prefix):
        return "jwt", value[len(prefix) :].strip()
    if raw := _subprotocol_value(protocols, TOKEN_SUBPROTOCOLS):
        return "jwt", raw
    if raw := _last(query, "token"):
        return "jwt", raw
    return None


def _subprotocol_value(protocols: list[str], prefixes: tuple[str, ...]) -> str:
    for protocol in protocols:
        for prefix in prefixes:
            if protocol.startswith(prefix) and len(protocol) > len(prefix):
                return protocol[len(prefix) :]
    return ""


def _last(query: dict[str, list[str]], name: str) -> str:
    return (query.get(name) or [""])[-1].strip()


def authenticate(scope: dict[str, Any]) -> StreamCredential:
    """The principal of a new connection, or StreamAuthError. Runs database queries."""
    found = credentials(scope)
    if found is not None:
        kind, raw = found
        if kind == "api_key":
            return StreamCredential(_by_api_key(raw, address=address_of(scope)))
        return _by_token(raw)
    user = scope.get("user")
    if user is not None and user.is_authenticated:
        if not user.is_active:
            raise StreamAuthError("this account is disabled")
        return StreamCredential(caller_of_user(user, kind="session"))
    security = settings.HIVE_CONFIG.security.event_streaming
    if security.authentication.type == "none" or not security.access_control.subscription_auth_required:
        return StreamCredential(Caller(team_id=None, staff=False, scopes=frozenset(), ident="anonymous"))
    raise StreamAuthError(
        "authentication required: an API key (X-API-Key, subprotocol apikey.<key>, ?api_key=), a JWT access "
        "token (Authorization: Bearer, subprotocol bearer.<token>, ?token=) or a session"
    )


def reauthenticate(scope: dict[str, Any], caller: Caller) -> StreamCredential:
    """Check an open stream's credential again; StreamAuthError when it no longer holds or no
    longer names the same principal with the same rights. Counts no failure: a key revoked
    under an open stream is not a guess."""
    found = credentials(scope)
    if found is not None:
        kind, raw = found
        fresh = StreamCredential(_by_api_key(raw, address=None)) if kind == "api_key" else _by_token(raw)
    elif caller.kind == "session":
        fresh = StreamCredential(_session_caller(scope))
    else:
        return StreamCredential(caller)  # anonymous: nothing to expire
    if (fresh.caller.team_id, fresh.caller.staff, fresh.caller.ident) != (caller.team_id, caller.staff, caller.ident):
        raise StreamAuthError("the credential's team or rights changed; connect again")
    return fresh


def _by_api_key(raw: str, *, address: str | None) -> Caller:
    try:
        key = api_key_check(raw, address=address) if address else api_key_lookup(raw)
    except exceptions.Throttled as err:
        raise StreamAuthError(str(err.detail), code=CLOSE_THROTTLED) from None
    except exceptions.AuthenticationFailed as err:
        raise StreamAuthError(str(err.detail)) from None
    if not key.allows(READ):
        raise StreamAuthError("this API key lacks the read scope", code=CLOSE_FORBIDDEN)
    return caller_of_key(key)


def _by_token(raw: str) -> StreamCredential:
    from rest_framework_simplejwt.authentication import JWTAuthentication
    from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

    backend = JWTAuthentication()
    try:
        token = backend.get_validated_token(raw.encode())
        user = backend.get_user(token)
    except (InvalidToken, TokenError):
        raise StreamAuthError("invalid or expired token") from None
    except exceptions.AuthenticationFailed as err:  # user inactive or gone
        raise StreamAuthError(str(err.detail)) from None
    expires = token.get("exp")
    return StreamCredential(caller_of_user(user, kind="jwt"), float(expires) if expires is not None else None)


def _session_caller(scope: dict[str, Any]) -> Caller:
    """The session's user read afresh from the session store (the scope's copy is the one from the
    handshake): signed out, expired, password changed or deactivated means refused."""
    from django.contrib.auth import get_user

    session = scope.get("session")
    key = getattr(session, "session_key", None)
    if not key:
        raise StreamAuthError("the session ended")
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
    # Verifies the session hash like a request would; get_user reads only the request's session.
    user = get_user(SimpleNamespace(session=store))  # type: ignore[arg-type]  # stubs want a whole HttpRequest
    if not user.is_authenticated or not user.is_active:
        raise StreamAuthError("the session ended")
    return caller_of_user(user, kind="session")
