"""Who is calling: a team member (JWT or session), staff, or an API key with scopes.

A task with its own `command` runs a program of the caller's choosing on a worker, so submitting
one from outside needs the `commands` scope (or staff), besides the pool's allow_commands. Local
submissions (CLI, Python on the hive's machine) are trusted and do not come through here.
"""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.request import Request

from coordination.errors import HiveError
from external_api.models import ApiKey

READ, WRITE, ADMIN, COMMANDS = ApiKey.Scope.READ, ApiKey.Scope.WRITE, ApiKey.Scope.ADMIN, ApiKey.Scope.COMMANDS
COMMANDS_REQUIRED = (
    "a task with its own command needs an API key with the 'commands' scope (or a staff account); "
    "ask an operator for one (hive apikey create --scopes write,commands), or submit a prompt"
)


class ScopeRequired(HiveError):
    code = "scope_required"
    http_status = 403  # an error of the HTTP layer itself (see external_api.errors.http_status)


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
    team_id: int | None
    staff: bool
    scopes: frozenset[str]
    ident: str

    def allows(self, scope: str) -> bool:
        return self.staff or scope in self.scopes or ADMIN in self.scopes


def caller_of(request: Request) -> Caller:
    cached = getattr(request, "_hive_caller", None)
    if cached is not None:
        return cached
    user = request.user
    if isinstance(user, ApiKeyUser):
        key = user.key
        caller = Caller(team_id=key.team_id, staff=False, scopes=frozenset(key.scopes), ident=f"key:{key.prefix}")
    elif user is not None and user.is_authenticated:
        membership = getattr(user, "membership", None)
        scopes = {READ, WRITE} | ({ADMIN} if user.is_staff else set())
        caller = Caller(team_id=membership.team_id if membership else None, staff=user.is_staff,
                        scopes=frozenset(scopes), ident=f"user:{user.pk}")  # fmt: skip
    else:
        caller = Caller(team_id=None, staff=False, scopes=frozenset(), ident=f"ip:{client_ip(request)}")
    request._hive_caller = caller
    return caller


def client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "unknown")
