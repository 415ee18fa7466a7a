"""Who is calling: the one principal type of the API and the event stream.

A `Caller` is a team member (JWT or session), staff, an API key with scopes, or an anonymous
client. The REST gateway builds one per request (`caller_of`), the stream per connection
(`external_api.streaming.auth`); both ask `coordination.selectors` what it may see.

A task with its own `command` runs a program of the caller's choosing on a worker, so submitting
one from outside needs the `commands` scope (or staff), besides the pool's allow_commands. Local
submissions (CLI, Python on the hive's machine) are trusted and do not come through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rest_framework.request import Request

from coordination.errors import HiveError
from coordination.selectors import event_message_visible_to
from external_api.models import ApiKey

READ, WRITE, ADMIN, COMMANDS = ApiKey.Scope.READ, ApiKey.Scope.WRITE, ApiKey.Scope.ADMIN, ApiKey.Scope.COMMANDS
COMMANDS_REQUIRED = (
    "a task with its own command needs an API key with the 'commands' scope (or a staff account); "
    "ask an operator for one (hive apikey create --scopes write,commands), or submit a prompt"
)


class ScopeRequired(HiveError):
    code = "scope_required"
    http_status = 403  # an error of the HTTP layer itself (see external_api.errors.http_status)


CallerKind = Literal["api_key", "jwt", "session", "anonymous"]


class ApiKeyUser:
    """What `request.user` is for a request authenticated by an API key."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    is_active = True
    pk = None
    id = None

    def __init__(self, key: ApiKey) -> None:
        self.key = key
        self.username = f"apikey:{key.prefix}"

    def __str__(self) -> str:
        return self.username


@dataclass(frozen=True)
class Caller:
    """A principal: its team (None: none), whether it is staff, its scopes, a stable `ident` for
    rate limits and logs (`key:<prefix>`, `user:<pk>`, `ip:<address>`, `anonymous`) and how it
    authenticated."""

    team_id: int | None
    staff: bool
    scopes: frozenset[str]
    ident: str
    kind: CallerKind = "anonymous"

    def allows(self, scope: str) -> bool:
        return self.staff or scope in self.scopes or ADMIN in self.scopes

    def sees(self, event: Mapping[str, Any]) -> bool:
        """Whether a published event (`Event.as_message()`) is this caller's to see."""
        return event_message_visible_to(event, team_id=self.team_id, staff=self.staff)


def caller_of_key(key: ApiKey) -> Caller:
    return Caller(
        team_id=key.team_id, staff=False, scopes=frozenset(key.scopes), ident=f"key:{key.prefix}", kind="api_key"
    )


def caller_of_user(user: Any, *, kind: CallerKind) -> Caller:
    """A signed-in user: read and write on their team's tasks, admin too when staff."""
    membership = getattr(user, "membership", None)
    scopes = {READ, WRITE} | ({ADMIN} if user.is_staff else set())
    return Caller(
        team_id=membership.team_id if membership else None,
        staff=bool(user.is_staff),
        scopes=frozenset(scopes),
        ident=f"user:{user.pk}",
        kind=kind,
    )


def caller_of(request: Request) -> Caller:
    cached = getattr(request, "_hive_caller", None)
    if cached is not None:
        return cached
    user = request.user
    if isinstance(user, ApiKeyUser):
        caller = caller_of_key(user.key)
    elif user is not None and user.is_authenticated:
        # JWTAuthentication leaves the validated token in request.auth; a session has none
        caller = caller_of_user(user, kind="session" if request.auth is None else "jwt")
    else:
        caller = Caller(team_id=None, staff=False, scopes=frozenset(), ident=f"ip:{client_ip(request)}")
    request._hive_caller = caller  # type: ignore[attr-defined]
    return caller


def client_ip(request: Any) -> str:
    return request.META.get("REMOTE_ADDR", "unknown")
