"""`GET /api/v1/alerts/`: the fleet's alerts, active and recent, newest raise first.

Alerts are about shared hosts and pools, not a team's tasks: every caller with the read scope sees
them all. Filters are validated (a misspelt one or a bad value is a 400 naming it).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from coordination.models import Alert
from coordination.selectors import alerts_filtered
from external_api.api import strict
from external_api.api.queries import TimeField
from external_api.api.views import ERRORS

ALERTS_PAGE_MAX = 500


class AlertQuery(strict.StrictSerializer):
    status = serializers.ChoiceField(choices=["active", "resolved"], required=False)
    level = serializers.ChoiceField(choices=Alert.Level.choices, required=False)
    resource = serializers.ChoiceField(choices=["cpu", "memory", "disk", "queue"], required=False)
    pool = serializers.CharField(required=False, max_length=40, help_text="queue alerts of this pool")
    host = serializers.CharField(required=False, max_length=200, help_text="resource alerts of this host")
    since = TimeField(required=False, help_text="raised at or after")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=ALERTS_PAGE_MAX, help_text="default 100")


class AlertSerializer(serializers.ModelSerializer):
    pool = serializers.CharField(source="pool.name", default=None, allow_null=True, read_only=True)
    status = serializers.CharField(read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "status",
            "subject",
            "resource",
            "level",
            "value",
            "peak",
            "threshold",
            "source",
            "message",
            "recommendation",
            "host",
            "pool",
            "agents",
            "raised_at",
            "updated_at",
            "resolved_at",
            "resolution",
        ]
        read_only_fields = fields


class AlertsView(APIView):
    """Read scope; every caller sees every alert (they concern the shared fleet)."""

    @extend_schema(parameters=[AlertQuery], responses={200: AlertSerializer(many=True), **ERRORS})
    def get(self, request):
        p = strict.query(request, AlertQuery)
        limit = p.pop("limit", 100)
        alerts = alerts_filtered(**p)[:limit]
        return Response(AlertSerializer(alerts, many=True).data)
