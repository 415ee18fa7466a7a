"""`publish` is the one way a state change leaves the hive.

It writes an `Event` row inside the caller's transaction, and only after that transaction commits
hands the event to every registered announcer (the WebSocket stream registers one) and counts it.
A rolled-back change is never announced. Coordination knows nothing of how events travel further:
the streaming app registers its announcer when Django starts (`register_announcer`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

from coordination.metrics import EVENTS_TOTAL
from coordination.models import Event
from coordination.rows import row_insert

log = logging.getLogger(__name__)

Announcer = Callable[[dict[str, Any]], None]
_announcers: list[Announcer] = []


def register_announcer(announcer: Announcer) -> None:
    """Have `announcer(message)` called after commit for every event (once per function)."""
    if announcer not in _announcers:
        _announcers.append(announcer)


def publish(
    type: str, *, task: Any = None, agent: Any = None, pool: Any = None, team_id: int | None = None, **payload: Any
) -> Event:
    """Record one event and announce it after commit. Returns the stored row.

    A task's events belong to its team; other events (agents, pools) are visible to every team
    unless `team_id` says otherwise.
    """
    event = event_row(type, task=task, agent=agent, pool=pool, team_id=team_id, **payload)
    row_insert(event)  # Event.objects.create's INSERT, compiled once
    announce_after_commit(event)
    return event


def event_row(
    type: str, *, task: Any = None, agent: Any = None, pool: Any = None, team_id: int | None = None, **payload: Any
) -> Event:
    """The unsaved Event `publish` would store (for a caller that inserts it with other rows);
    once stored, `announce_after_commit(event)`."""
    if pool is None and task is not None:
        pool = task.pool if task.pool_id else None
    if task is not None:
        team_id = task.team_id
    return Event(type=type, task=task, agent=agent, pool=pool, team_id=team_id, payload=payload)


def published(event: Event) -> Event:
    """Announce after commit an event row the caller's own statement wrote (the claim writes its
    `task.running` in a WITH of its UPDATE, coordination.claims), exactly as `publish` does."""
    announce_after_commit(event)
    return event


def announce_after_commit(event: Event) -> None:
    """Announce a stored event once its transaction commits (now, outside a transaction)."""
    message = event.as_message()
    transaction.on_commit(lambda: _announce(message))


def _announce(message: dict[str, Any]) -> None:
    EVENTS_TOTAL.labels(type=message["type"]).inc()
    for announcer in _announcers:
        try:
            announcer(message)
        except Exception:  # the Event row is the record; a missed live push is replayable from it
            log.warning("could not announce event %s", message.get("id"), exc_info=True)
