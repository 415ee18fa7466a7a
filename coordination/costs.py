"""What the hive spends: the agents' reported cost of every attempt, added up as asked.

The cost of an attempt is what its program reported (Claude Code's `total_cost_usd`, or the
pool's configured field or pattern for other programs); attempts that reported nothing count as
zero and are counted apart, so a total never pretends to be complete when it is not.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDay

from coordination.errors import Invalid
from coordination.models import TaskAttempt, Team

GROUPS = {
    "pool": "task__pool__name",
    "team": "task__team__name",
    "task_type": "task__task_type",
    "task": "task_id",
    "day": "day",
}


def spend(
    *, group_by: str = "pool", since: datetime | None = None, until: datetime | None = None, team: Team | None = None
) -> list[dict[str, Any]]:
    """Spend per group, largest first: `{group, cost_usd, attempts, priced_attempts}` rows.

    `team` limits the rows to one team's tasks (None: every team, for staff and the CLI).
    Raises Invalid naming the accepted groups for any other `group_by`.
    """
    if group_by not in GROUPS:
        raise Invalid(f"group_by must be one of {', '.join(GROUPS)}, not {group_by!r}")
    attempts: QuerySet[TaskAttempt] = TaskAttempt.objects.all()
    if since is not None:
        attempts = attempts.filter(started_at__gte=since)
    if until is not None:
        attempts = attempts.filter(started_at__lt=until)
    if team is not None:
        attempts = attempts.filter(task__team=team)
    if group_by == "day":
        attempts = attempts.annotate(day=TruncDay("started_at"))
    field = GROUPS[group_by]
    rows = (
        attempts.values(field)
        .annotate(
            cost=Coalesce(
                Sum("cost_usd"), Value(Decimal(0)), output_field=DecimalField(max_digits=14, decimal_places=6)
            ),
            attempts=Count("id"),
            priced=Count("id", filter=Q(cost_usd__isnull=False)),
        )
        .order_by("-cost", field)
    )
    return [
        {
            "group": _label(row[field]),
            "cost_usd": row["cost"].quantize(Decimal("0.000001")),
            "attempts": row["attempts"],
            "priced_attempts": row["priced"],
        }
        for row in rows
    ]


def _label(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    return "-" if value is None else str(value)
