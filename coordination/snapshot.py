"""The enabled pools and the default team, read once per process and again only when they change.

Every submit needs both. Reading them costs two ORM queries (about a third of `task_submit`);
checking whether they changed costs one indexed read of a single row: `RoutingToken`, which
database triggers replace in the same transaction as any write to a pool or team row, whoever
makes it (admin, API, CLI, `QuerySet.update`, raw SQL, another process).

Correctness rests on three rules:

- The token is read before the rows. A change committed between the two reads leaves a snapshot
  newer than its token: the next call sees another token and reads again. (Rows read first could
  pair an old snapshot with the new token, for ever.)
- Inside a transaction nothing is cached or served from the cache: the transaction may have
  changed pools itself, which its own reads see and the token (deferred to commit on PostgreSQL)
  does not say yet.
- No token row (a database flushed by a test): nothing is cached.

Callers get their own copies of the cached rows, so changing one (a test's `pool.save()`) cannot
change what the next submit sees.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from django.db import connection
from django.db.models import Model
from django.db.models.base import ModelState

from agents.models import AgentPool
from coordination.models import DEFAULT_TEAM, RoutingToken, Team

TOKEN = "routing"
M = TypeVar("M", bound=Model)
_TOKEN_SQL = f"SELECT token FROM {RoutingToken._meta.db_table} WHERE name = %s"


@dataclass(frozen=True)
class Snapshot:
    token: int | None
    pools: tuple[AgentPool, ...]  # enabled, by name
    team: Team | None  # the default team; None until someone creates it

    def copies(self, pools: Iterable[AgentPool]) -> list[AgentPool]:
        """Copies of (some of) `pools`, for a caller to keep or change."""
        return [_copy(p) for p in pools]

    def default_team(self) -> Team | None:
        return _copy(self.team) if self.team is not None else None


def _copy(row: M) -> M:
    """A copy of a row just read (no related rows cached), at a tenth of `copy.copy`'s cost."""
    clone = row.__class__.__new__(row.__class__)
    clone.__dict__.update(row.__dict__)
    state = clone._state = ModelState()
    state.db, state.adding = row._state.db, row._state.adding
    return clone


_cached: Snapshot | None = None  # replaced whole, never changed: threads may read it at any time


def routing_snapshot() -> Snapshot:
    """The enabled pools and the default team as the database has them now (see the module's rules)."""
    global _cached
    if connection.in_atomic_block:
        return _read(token=None)
    with connection.cursor() as cursor:
        cursor.execute(_TOKEN_SQL, [TOKEN])
        row = cursor.fetchone()
    token = row[0] if row else None
    cached = _cached
    if token is not None and cached is not None and cached.token == token:
        return cached
    fresh = _read(token=token)
    if token is not None:
        _cached = fresh
    return fresh


def cached_snapshot() -> Snapshot | None:
    """The snapshot last read, without checking its token: only for a caller that checks the token
    itself in the statement that relies on it (`token_guard`), outside any transaction."""
    if connection.in_atomic_block:
        return None
    return _cached


def routing_snapshot_changed() -> bool:
    """Read the snapshot (outside a transaction: cached again); whether it differs from the one
    cached before. For a caller whose statement stored nothing under `token_guard`."""
    before = _cached
    return routing_snapshot() is not before


def token_guard(snapshot: Snapshot) -> tuple[str, tuple[str, int | None]]:
    """SQL (and its parameters) true only while the routing token is still `snapshot`'s: a write
    made under this condition was routed on the pools and team the database holds at that moment."""
    return f"EXISTS (SELECT 1 FROM {RoutingToken._meta.db_table} WHERE name = %s AND token = %s)", (
        TOKEN,
        snapshot.token,
    )


def _read(*, token: int | None) -> Snapshot:
    pools = tuple(AgentPool.objects.filter(enabled=True).order_by("name"))
    team = Team.objects.filter(name=DEFAULT_TEAM).first()
    return Snapshot(token=token, pools=pools, team=team)


def forget() -> None:
    """Drop this process's snapshot (tests that change the token table by hand)."""
    global _cached
    _cached = None
