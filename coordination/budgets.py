"""Daily budgets: once today's spend reaches a pool's or a team's `budget_usd_per_day`, their new
prompt tasks wait queued, with the reason, until the UTC day turns or the budget is raised.

Today's spend is what the attempts *started* today (UTC) reported (`TaskAttempt.cost_usd`); an
attempt that reported nothing counts as zero. The worker asks before it claims a task, beside flow
control (workers.tasks.execute_task):

    hold = budgets.task_budget_admit(task_id=task_id)    # None: it may start
    if hold is not None:
        budgets.task_hold(task_id=task_id, hold=hold)     # stays queued, no attempt spent
        return

A held task's message is sent again after `multi_agent.budget_recheck_interval` seconds (sooner
when the day turns first), and at once when an operator raises the budget (`team_budget_set`,
`pool_sync`); the reconciler resends a message the broker lost. Nothing is dropped: a held task is
an ordinary queued task that may also be cancelled.

Command tasks are never held: their program is the submitter's own argv, not the pool's agent, and
the hive reads no cost from it, so a budget could neither see what they spend nor save anything by
stopping them. Tasks already running finish: a budget is checked before a start, so the day's spend
can pass it by what the running attempts report.

Keeping the check cheap: one query by primary key for the task and its budgets (read fresh, so a
raised budget counts at once), and only when a budget is set, today's spend — one aggregate over
the indexed `TaskAttempt.started_at`, cached in Redis for `SPEND_TTL` seconds and dropped when an
attempt with a cost ends (`spend_changed`). Without Redis the sum is computed every time.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, Literal

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from coordination.errors import Invalid
from coordination.events import publish
from coordination.metrics import FLOW_DEFERRED
from coordination.models import Task, TaskAttempt, Team
from coordination.services import task_send

log = logging.getLogger(__name__)

Scope = Literal["pool", "team"]
KEY_PREFIX = "hive:budget"
SPEND_TTL = 15  # seconds today's spend is kept in Redis at most
MAX_BUDGET = Decimal("999999")
_jitter = random.Random()


@dataclass(frozen=True)
class Hold:
    """A pool's or a team's spent budget, which keeps a prompt task queued."""

    scope: Scope
    name: str
    spent: Decimal
    budget: Decimal

    def describe(self) -> str:
        return (
            f"budget: {self.scope} {self.name} has spent ${self.spent:.4f} of its ${self.budget:.2f} a day "
            "(UTC); the task waits until the day turns or the budget is raised"
        )

    def payload(self) -> dict[str, Any]:
        return {
            "reason": "budget",
            "scope": self.scope,
            "name": self.name,
            "spent": f"{self.spent:.6f}",
            "budget": f"{self.budget:.6f}",
            "detail": self.describe(),
        }


def day_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The UTC day holding `now`: [00:00, next 00:00)."""
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def spent_today(*, scope: Scope, ident: int, now: datetime | None = None) -> Decimal:
    """USD reported by the attempts of the pool's (`scope="pool"`) or team's tasks that started in
    the UTC day of `now` (default: now). Cached in Redis for at most SPEND_TTL seconds."""
    start, end = day_bounds(now or timezone.now())
    key = _key(scope, ident, start)
    cached = _cache_get(key)
    if cached is not None:
        return cached
    lookup = "task__pool_id" if scope == "pool" else "task__team_id"
    total = TaskAttempt.objects.filter(started_at__gte=start, started_at__lt=end, **{lookup: ident}).aggregate(
        total=Sum("cost_usd")
    )["total"] or Decimal(0)
    _cache_set(key, total)
    return total


def spend_changed(*, pool_id: int | None, team_id: int | None, started_at: datetime) -> None:
    """An attempt started at `started_at` reported a cost: forget the cached spend of its day, so
    the next check sums again."""
    start, _ = day_bounds(started_at)
    keys = [_key(scope, ident, start) for scope, ident in (("pool", pool_id), ("team", team_id)) if ident]
    if keys:
        try:
            _redis().delete(*keys)
        except (redis.RedisError, OSError) as exc:  # the entry lapses after SPEND_TTL anyway
            log.warning("could not drop the cached spend (%s)", exc)


def task_budget_admit(*, task_id: str, now: datetime | None = None) -> Hold | None:
    """May this queued task start, as far as budgets go? None when it may (and a hold it had is
    lifted, with a `task.released` event), or the Hold that keeps it queued: the pool's budget is
    asked first, then the team's. Command tasks, tasks no longer queued and tasks without a budget
    are never held."""
    row = (
        Task.objects.filter(id=task_id, status=Task.Status.QUEUED)
        .values(
            "command",
            "hold_reason",
            "pool_id",
            "pool__name",
            "pool__budget_usd_per_day",
            "team_id",
            "team__name",
            "team__budget_usd_per_day",
        )
        .first()
    )
    if row is None or row["command"]:
        return None
    hold = _over_budget(row, now=now)
    if hold is None and row["hold_reason"]:
        _released(task_id=task_id)
    return hold


def _over_budget(row: Mapping[str, Any], *, now: datetime | None) -> Hold | None:
    for scope in ("pool", "team"):
        budget, ident = row[f"{scope}__budget_usd_per_day"], row[f"{scope}_id"]
        if budget is None or ident is None:
            continue
        spent = spent_today(scope=scope, ident=ident, now=now)
        if spent >= budget:
            return Hold(scope=scope, name=row[f"{scope}__name"], spent=spent, budget=budget)
    return None


def task_hold(*, task_id: str, hold: Hold, now: datetime | None = None) -> bool:
    """Keep the task queued for its spent budget, as flow.task_defer does: no attempt spent, due
    again after the recheck interval (or when the UTC day turns, if sooner), its message sent again
    with that countdown after commit. `hold_reason` says why; `task.held` is published once per
    hold (when the reason is first set), not at every recheck. False when the task is no longer
    queued."""
    now = now or timezone.now()
    delay = recheck_delay(now=now)
    text = hold.describe()
    fields = {
        "hold_reason": text,
        "available_at": now + timedelta(seconds=delay),
        "dispatched_at": now,
        "updated_at": now,
    }
    with transaction.atomic():
        queued = Task.objects.filter(id=task_id, status=Task.Status.QUEUED)
        first = queued.filter(hold_reason="").update(**fields)
        if not first and not queued.update(**fields):
            return False
        task = Task.objects.select_related("pool").get(id=task_id)
        if first:
            publish("task.held", task=task, retry_after=round(delay, 3), **hold.payload())
        transaction.on_commit(lambda: task_send(task, countdown=delay))
    FLOW_DEFERRED.labels(pool=task.routed_pool.name, reason="budget").inc()
    return True


def recheck_delay(*, now: datetime) -> float:
    """Seconds until a held task asks again: the configured interval, or until just after the UTC
    day turns when that is sooner; spread a little so held tasks do not all ask at once."""
    interval = settings.HIVE_CONFIG.multi_agent.budget_recheck_interval
    _, midnight = day_bounds(now)
    until_midnight = (midnight - now).total_seconds() + 1.0
    return round(max(0.5, min(interval, until_midnight)) * _jitter.uniform(1.0, 1.1), 3)


def _released(*, task_id: str) -> None:
    with transaction.atomic():
        if Task.objects.filter(id=task_id, status=Task.Status.QUEUED).exclude(hold_reason="").update(hold_reason=""):
            task = Task.objects.select_related("pool").get(id=task_id)
            publish("task.released", task=task, reason="budget")


def held_release(*, pool_id: int | None = None, team_id: int | None = None) -> int:
    """A budget was raised (or removed): the pool's or team's held tasks ask again now rather than
    after their recheck interval. The worker decides; a task still over a budget is held again
    without a second `task.held`. Returns how many were sent."""
    held = Task.objects.filter(status=Task.Status.QUEUED).exclude(hold_reason="")
    if pool_id is not None:
        held = held.filter(pool_id=pool_id)
    if team_id is not None:
        held = held.filter(team_id=team_id)
    now = timezone.now()
    with transaction.atomic():
        tasks = list(held.select_related("pool"))
        Task.objects.filter(id__in=[t.id for t in tasks]).update(available_at=now, dispatched_at=now, updated_at=now)
        for task in tasks:
            transaction.on_commit(partial(task_send, task))
    return len(tasks)


def budget_parse(text: str) -> Decimal | None:
    """A budget as an operator writes it: "12.50", "$12.50", "0" (hold every prompt task), or
    "none" (no limit). Invalid naming the value otherwise."""
    value = text.strip().lower()
    if value in ("none", "off", ""):
        return None
    try:
        amount = Decimal(value.lstrip("$").replace(",", ""))
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0 or amount > MAX_BUDGET or amount != amount.quantize(Decimal("1e-6")):
        raise Invalid(f"budget: {text!r} is not an amount of USD from 0 to {MAX_BUDGET} (at most 6 decimals) or 'none'")
    return amount


def team_budget_set(*, team: Team, budget: Decimal | None) -> Team:
    """Set (or, with None, remove) the team's daily budget; its held tasks ask again at once.
    Publishes `team.budget` (visible to the team)."""
    if budget is not None:
        budget = budget_parse(str(budget))
    with transaction.atomic():
        previous = team.budget_usd_per_day
        Team.objects.filter(id=team.id).update(budget_usd_per_day=budget)
        team.budget_usd_per_day = budget
        publish(
            "team.budget",
            team_id=team.id,
            team=team.name,
            budget=None if budget is None else f"{budget:.6f}",
            previous=None if previous is None else f"{previous:.6f}",
        )
        held_release(team_id=team.id)
    return team


# --- Redis ----------------------------------------------------------------------------------------

_local: dict[str, Any] = {"owner": None, "client": None}
_lock = threading.Lock()


def _redis() -> redis.Redis:
    """One client per process and URL, with short timeouts: a budget check waits a second for
    Redis at most, then sums in the database."""
    with _lock:
        if _local["owner"] != (os.getpid(), settings.REDIS_URL):
            _local.update(
                owner=(os.getpid(), settings.REDIS_URL),
                client=redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1),
            )
        return _local["client"]


def _key(scope: str, ident: int, day: datetime) -> str:
    return f"{KEY_PREFIX}:{scope}:{ident}:{day:%Y-%m-%d}"


def _cache_get(key: str) -> Decimal | None:
    try:
        value = _redis().get(key)
    except (redis.RedisError, OSError):
        return None
    return None if value is None else Decimal(value.decode() if isinstance(value, bytes) else value)


def _cache_set(key: str, value: Decimal) -> None:
    try:
        _redis().set(key, str(value), ex=SPEND_TTL)
    except (redis.RedisError, OSError):
        pass
