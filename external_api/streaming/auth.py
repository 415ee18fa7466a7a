"""Who opened the stream: an API key, a JWT access token, or the Django session of the dashboard.

Credentials are looked for in this order, and the first one found decides (a wrong key is
refused, never "rescued" by a session cookie):

- API key: `?api_key=`, the `X-API-Key` header, `Authorization: Api-Key <key>`, or the
  subprotocol `hive.key.<key>` (browsers cannot set headers on a WebSocket);
- JWT access token: `?token=`, the header of `security.event_streaming.authentication`
  (`Authorization: Bearer <token>`), or the subprotocol `hive.token.<token>`;
- the session cookie (AuthMiddlewareStack has put the user in the scope).

Without any, the stream is refused unless `security.event_streaming.authentication.type` is
`none` or `access_control.subscription_auth_required` is false; such an anonymous viewer sees
only the events that belong to no team. Everything here touches the database: call it through
`database_sync_to_async`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from django.conf import settings
from rest_framework import exceptions

from external_api.access import READ
from external_api.authentication import api_key_lookup

KEY_SUBPROTOCOL = "hive.key."
TOKEN_SUBPROTOCOL = "hive.token."


class StreamAuthError(Exception):
    """Refused: `code` is the WebSocket close code (4401 no or bad credentials, 4403 not allowed)."""

    def __init__(self, detail: str, code: int = 4401) -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class Viewer:
    team_id: int | None
    staff: bool
    ident: str
    kind: str  # api_key | jwt | session | anonymous

    def sees(self, event: dict) -> bool:
        """Staff see everything; everyone else their team's events and the team-less ones."""
        return self.staff or event.get("team") is None or event.get("team") == self.team_id


def headers_of(scope) -> dict[str, str]:
    return {k.decode("latin1").lower(): v.decode("latin1") for k, v in scope.get("headers", [])}


def query_of(scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin1"), keep_blank_values=True)


def credentials(scope) -> tuple[str, str] | None:
    """("api_key" | "jwt", raw credential) as the client sent it, or None."""
    query, headers = query_of(scope), headers_of(scope)
    protocols = scope.get("subprotocols") or []
    if raw := _last(query, "api_key"):
        return "api_key", raw
    if headers.get("x-api-key"):
        return "api_key", headers["x-api-key"].strip()
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("api-key "):
        return "api_key", authorization[8:].strip()
    for protocol in protocols:
        if protocol.startswith(KEY_SUBPROTOCOL):
            return "api_key", protocol[len(KEY_SUBPROTOCOL) :]
    if raw := _last(query, "token"):
        return "jwt", raw
    auth = settings.HIVE_CONFIG.security.event_streaming.authentication
    value = headers.get(auth.token_header.lower(), "")
    prefix = f"{auth.token_prefix} ".lower()
    if value.lower().startswith(prefix):
        return "jwt", value[len(prefix) :].strip()
    for protocol in protocols:
        if protocol.startswith(TOKEN_SUBPROTOCOL):
            return "jwt", protocol[len(TOKEN_SUBPROTOCOL) :]
    return None


def _last(query: dict[str, list[str]], name: str) -> str:
    return (query.get(name) or [""])[-1].strip()


def authenticate(scope) -> Viewer:
    """The viewer of this connection, or StreamAuthError. Runs database queries."""
    found = credentials(scope)
    if found is not None:
        kind, raw = found
        return _by_api_key(raw) if kind == "api_key" else _by_token(raw)
    user = scope.get("user")
    if user is not None and user.is_authenticated:
        if not user.is_active:
            raise StreamAuthError("this account is disabled")
        return _of_user(user, kind="session")
    security = settings.HIVE_CONFIG.security.event_streaming
    if security.authentication.type == "none" or not security.access_control.subscription_auth_required:
        return Viewer(team_id=None, staff=False, ident="anonymous", kind="anonymous")
    raise StreamAuthError(
        "authentication required: an API key (?api_key=, X-API-Key), a JWT access token (?token=, "
        "Authorization: Bearer) or a session"
    )


def _by_api_key(raw: str) -> Viewer:
    try:
        key = api_key_lookup(raw)
    except exceptions.AuthenticationFailed as err:
        raise StreamAuthError(str(err.detail)) from None
    if not key.allows(READ):
        raise StreamAuthError("this API key lacks the read scope", code=4403)
    return Viewer(team_id=key.team_id, staff=False, ident=f"key:{key.prefix}", kind="api_key")


def _by_token(raw: str) -> Viewer:
    from rest_framework_simplejwt.authentication import JWTAuthentication
    from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

    backend = JWTAuthentication()
    try:
        user = backend.get_user(backend.get_validated_token(raw.encode()))
    except (InvalidToken, TokenError):
        raise StreamAuthError("invalid or expired token") from None
    except exceptions.AuthenticationFailed as err:
        raise StreamAuthError(str(err.detail)) from None
    return _of_user(user, kind="jwt")


def _of_user(user, *, kind: str) -> Viewer:
    membership = getattr(user, "membership", None)
    return Viewer(team_id=membership.team_id if membership else None, staff=bool(user.is_staff),
                  ident=f"user:{user.pk}", kind=kind)  # fmt: skip
