"""The query parameters of every list endpoint, validated (strict.query) and documented from one place.

A parameter an endpoint does not know, a value outside its choices or range, or a malformed time
is a 400 naming the parameter; `?status=bogus` does not answer an empty list, and `?limit=-1` does
not answer the default page.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from coordination.models import Priority, Task
from external_api.api.strict import StrictSerializer

TASK_PAGE_MAX = 500
EVENTS_PAGE_MAX = 1000
LARGEST_ID = 2**62


@extend_schema_field(OpenApiTypes.DATETIME)
class TimeField(serializers.CharField):
    """An ISO 8601 date-time, compared in UTC (PostgreSQL takes offsets up to ±15:59 only); a time
    without an offset is UTC."""

    def to_internal_value(self, data: str) -> datetime:  # type: ignore[override]  # a CharField's checks, then parsed
        text = super().to_internal_value(data)
        try:
            parsed = parse_datetime(text)
        except ValueError:
            parsed = None
        if parsed is None:
            raise serializers.ValidationError("must be an ISO 8601 date-time")
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed, UTC)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise serializers.ValidationError("is out of range") from None


class TaskQuery(StrictSerializer):
    same_answer_for_same_query = True

    status = serializers.ChoiceField(choices=Task.Status.choices, required=False)
    pool = serializers.CharField(required=False, max_length=40)
    agent = serializers.CharField(required=False, max_length=200)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    type = serializers.CharField(required=False, max_length=64, help_text="task type")
    created_after = TimeField(required=False)
    created_before = TimeField(required=False)
    search = serializers.CharField(required=False, max_length=1000, help_text="text in the prompt")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=TASK_PAGE_MAX, help_text="page size")
    cursor = serializers.CharField(required=False, max_length=2000, help_text="the `next` or `previous` link's cursor")


class TaskEventsQuery(StrictSerializer):
    same_answer_for_same_query = True

    after = serializers.IntegerField(
        required=False, min_value=0, max_value=LARGEST_ID, help_text="only events with a larger id"
    )


class EventQuery(TaskEventsQuery):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=EVENTS_PAGE_MAX)
    type = serializers.CharField(required=False, max_length=63)


class NoQuery(StrictSerializer):
    """Endpoints that take no query parameters (the agent and pool lists, a single object)."""
