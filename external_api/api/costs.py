"""`GET /api/v1/costs/`: what the agents spent, grouped by pool, team, task type, day or task.

A thin adapter over coordination.costs.spend. Team members and their API keys see their own team's
spend only (by pool too: their tasks' share of each pool); staff see every team's, or one team's
with `?team=`.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from coordination.costs import GROUPS, spend
from coordination.models import Team
from external_api.access import caller_of
from external_api.api import strict
from external_api.api.queries import TimeField
from external_api.api.strict import StrictSerializer
from external_api.api.views import ERRORS

DEFAULT_SINCE_DAYS = 30
MONEY: dict[str, Any] = {"max_digits": 16, "decimal_places": 6}


class CostQuery(StrictSerializer):
    group_by = serializers.ChoiceField(choices=list(GROUPS), required=False, default="pool")
    since = TimeField(
        required=False, help_text=f"attempts started at or after this time (default: {DEFAULT_SINCE_DAYS} days ago)"
    )
    until = TimeField(required=False, help_text="attempts started before this time (default: no end)")
    team = serializers.CharField(required=False, max_length=100, help_text="staff: one team's spend only")

    def validate(self, attrs: dict) -> dict:
        since, until = attrs.get("since"), attrs.get("until")
        if since is not None and until is not None and until <= since:
            raise serializers.ValidationError({"until": ["must be after since"]})
        return attrs


class CostRowSerializer(serializers.Serializer):
    group = serializers.CharField(help_text="the pool, team, task type, day (YYYY-MM-DD) or task id; '-' for none")
    cost_usd = serializers.DecimalField(**MONEY, help_text="USD the attempts reported")
    attempts = serializers.IntegerField(help_text="attempts started in the period")
    priced_attempts = serializers.IntegerField(help_text="of them, those whose program reported a cost")


class CostsSerializer(serializers.Serializer):
    group_by = serializers.ChoiceField(choices=list(GROUPS))
    since = serializers.DateTimeField()
    until = serializers.DateTimeField(allow_null=True)
    team = serializers.CharField(allow_null=True, help_text="the team the rows are limited to; null: every team")
    total_usd = serializers.DecimalField(**MONEY)
    rows = CostRowSerializer(many=True, help_text="largest spend first")


class CostsView(APIView):
    """Spend from the attempts' reported cost (Claude Code's total_cost_usd, or a pool's
    runner.cost_field / cost_pattern). Read scope; scoped to the caller's team unless staff."""

    @extend_schema(parameters=[CostQuery], responses={200: CostsSerializer, **ERRORS})
    def get(self, request):
        p = strict.query(request, CostQuery)
        caller = caller_of(request)
        since = p.get("since") or timezone.now() - timedelta(days=DEFAULT_SINCE_DAYS)
        team = self._team(caller, p.get("team"))
        if team is None and not caller.staff:  # a member of no team has spent nothing the hive can show
            rows: list[dict] = []
        else:
            rows = spend(group_by=p["group_by"], since=since, until=p.get("until"), team=team)
        body = {
            "group_by": p["group_by"],
            "since": since,
            "until": p.get("until"),
            "team": team.name if team else None,
            "total_usd": sum((r["cost_usd"] for r in rows), Decimal(0)),
            "rows": rows,
        }
        return Response(CostsSerializer(body).data)

    @staticmethod
    def _team(caller, name: str | None) -> Team | None:
        own = Team.objects.filter(id=caller.team_id).first() if caller.team_id else None
        if name is None:
            return None if caller.staff else own
        if not caller.staff:
            if own is None or own.name != name:
                raise PermissionDenied("only staff may see another team's spend")
            return own
        team = Team.objects.filter(name=name).first()
        if team is None:
            raise serializers.ValidationError({"team": [f"no team named {name!r}"]})
        return team
