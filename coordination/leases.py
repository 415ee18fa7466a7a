"""Named leases in the database: one holder at a time, until the lease expires.

A lease is taken with one conditional UPDATE (free, expired, or already mine -> mine until
`now + ttl`), so two processes racing for it cannot both win, on SQLite or PostgreSQL, and a
holder that dies loses it when it expires. Nothing but the database is needed.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q

from coordination.models import Lease
from coordination.processes import HOSTNAME


def lease_holder() -> str:
    """This process, as a lease holder (a forked child is a different holder from its parent)."""
    return f"{HOSTNAME}:{os.getpid()}"


def lease_acquire(*, name: str, holder: str, ttl: float, now: datetime) -> bool:
    """Take or renew the lease `name` for `ttl` seconds. True when `holder` holds it now."""
    expires = now + timedelta(seconds=ttl)
    taken = (
        Lease.objects.filter(name=name)
        .filter(Q(expires_at__lte=now) | Q(holder=holder))
        .update(holder=holder, expires_at=expires)
    )
    if taken:
        return True
    if Lease.objects.filter(name=name).exists():
        return False
    try:
        with transaction.atomic():
            Lease.objects.create(name=name, holder=holder, expires_at=expires)
    except IntegrityError:  # another process created it first, and holds it
        return False
    return True


def lease_release(*, name: str, holder: str) -> bool:
    """Give the lease up before it expires. False when `holder` did not hold it."""
    return bool(Lease.objects.filter(name=name, holder=holder).update(holder="", expires_at=RELEASED))


RELEASED = datetime(1970, 1, 1, tzinfo=UTC)
