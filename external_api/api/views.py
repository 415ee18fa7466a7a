"""The REST gateway: thin adapters that call coordination and agents services."""

from __future__ import annotations

from datetime import UTC

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.models import Agent, AgentPool
from coordination import services
from coordination.errors import HiveError
from coordination.events import publish
from coordination.fleet import agent_drain
from coordination.models import Task, Team
from coordination.selectors import (
    events_visible_to,
    pool_queue_depths,
    pools_with_counts,
    task_counts_by_status,
    tasks_visible_to,
)
from external_api.access import ADMIN, COMMANDS, COMMANDS_REQUIRED, ScopeRequired, caller_of
from external_api.api import serializers as s
from hive_project.health import readiness

ERROR = inline_serializer("Error", {"code": serializers.CharField(), "detail": serializers.CharField()})
ERRORS = {code: OpenApiResponse(ERROR) for code in (400, 401, 403, 404, 409, 413, 422, 429)}
UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


class TaskCursor(CursorPagination):
    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


TASK_FILTERS = [
    OpenApiParameter("status", OpenApiTypes.STR, enum=Task.Status.values),
    OpenApiParameter("pool", OpenApiTypes.STR),
    OpenApiParameter("agent", OpenApiTypes.STR),
    OpenApiParameter("priority", OpenApiTypes.STR, enum=["low", "normal", "high", "critical"]),
    OpenApiParameter("type", OpenApiTypes.STR, description="task type"),
    OpenApiParameter("created_after", OpenApiTypes.DATETIME),
    OpenApiParameter("created_before", OpenApiTypes.DATETIME),
    OpenApiParameter("search", OpenApiTypes.STR, description="text in the prompt"),
]


def parse_time(value: str | None, name: str):
    from django.utils.dateparse import parse_datetime

    if not value:
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise HiveError(f"{name} must be an ISO 8601 date-time", code="invalid")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    try:  # PostgreSQL takes offsets up to ±15:59 only: compare in UTC
        return parsed.astimezone(UTC)
    except OverflowError:
        raise HiveError(f"{name} is out of range", code="invalid") from None


@extend_schema_view(
    list=extend_schema(parameters=TASK_FILTERS, responses={200: s.TaskSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(responses={200: s.TaskDetailSerializer, **ERRORS}),
)
class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.TaskSerializer
    pagination_class = TaskCursor
    lookup_field = "id"
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        caller = caller_of(self.request)
        qs = tasks_visible_to(team_id=caller.team_id, staff=caller.staff).select_related("pool", "agent", "team")
        if self.action != "list":
            return qs
        p = self.request.query_params
        if p.get("status"):
            qs = qs.filter(status=p["status"])
        if p.get("pool"):
            qs = qs.filter(pool__name=p["pool"])
        if p.get("agent"):
            qs = qs.filter(agent__name=p["agent"])
        if p.get("priority"):
            qs = qs.filter(priority=p["priority"])
        if p.get("type"):
            qs = qs.filter(task_type=p["type"])
        if after := parse_time(p.get("created_after"), "created_after"):
            qs = qs.filter(created_at__gte=after)
        if before := parse_time(p.get("created_before"), "created_before"):
            qs = qs.filter(created_at__lt=before)
        if p.get("search"):
            qs = qs.filter(prompt__icontains=p["search"])
        return qs

    def get_serializer_class(self):
        return s.TaskDetailSerializer if self.action == "retrieve" else s.TaskSerializer

    def get_object(self) -> Task:
        return get_object_or_404(self.get_queryset(), id=self.kwargs["id"])

    @extend_schema(
        request=s.TaskCreateSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
        responses={201: s.TaskSerializer, 200: s.TaskSerializer, **ERRORS},
    )
    def create(self, request):
        data = s.TaskCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        caller = caller_of(request)
        if data.validated_data.get("command") and not caller.allows(COMMANDS):
            raise ScopeRequired(COMMANDS_REQUIRED)
        team = Team.objects.get(id=caller.team_id) if caller.team_id else None
        if team is None and not caller.staff:
            raise HiveError("this account belongs to no team, so it cannot submit tasks", code="no_team")
        key = request.headers.get("Idempotency-Key") or None
        existed = bool(key) and Task.objects.filter(team=team or services.team_default(), idempotency_key=key).exists()
        task = services.task_submit(**data.validated_data, idempotency_key=key, source="api", team=team)
        return Response(s.TaskSerializer(task).data, status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED)

    def _act(self, action_name: str) -> Response:
        task = self.get_object()
        task = getattr(services, f"task_{action_name}")(task=task)
        return Response(s.TaskSerializer(task).data)

    @extend_schema(request=None, responses={200: s.TaskSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def cancel(self, request, id=None):
        return self._act("cancel")

    @extend_schema(request=None, responses={200: s.TaskSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def retry(self, request, id=None):
        return self._act("retry")

    @extend_schema(request=None, responses={200: s.TaskSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def redrive(self, request, id=None):
        return self._act("redrive")

    @extend_schema(
        parameters=[OpenApiParameter("after", OpenApiTypes.INT)],
        responses={200: s.EventSerializer(many=True), **ERRORS},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def events(self, request, id=None):
        task = self.get_object()
        after = int_param(request, "after", 0)
        events = task.events.select_related("agent", "pool").filter(id__gt=after).order_by("id")[:500]
        return Response(s.EventSerializer(events, many=True).data)


def int_param(request, name: str, default: int, *, low: int = 0, high: int = 2**62) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HiveError(f"{name} must be an integer", code="invalid") from None
    if not low <= value <= high:
        raise HiveError(f"{name} must be between {low} and {high}", code="invalid")
    return value


@extend_schema_view(
    list=extend_schema(responses={200: s.AgentSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(responses={200: s.AgentSerializer, **ERRORS}),
)
class AgentViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = s.AgentSerializer
    queryset = Agent.objects.select_related("pool")
    pagination_class = None

    def get_permissions(self):
        if self.action == "drain":
            self.required_scope = ADMIN
        return super().get_permissions()

    @extend_schema(request=None, responses={200: s.AgentSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def drain(self, request, pk=None):
        return Response(s.AgentSerializer(agent_drain(agent=self.get_object())).data)


@extend_schema_view(
    list=extend_schema(responses={200: s.PoolSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(responses={200: s.PoolSerializer, **ERRORS}),
    partial_update=extend_schema(responses={200: s.PoolSerializer, **ERRORS}),
)
class PoolViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet):
    serializer_class = s.PoolSerializer
    lookup_field = "name"
    pagination_class = None
    http_method_names = ["get", "patch", "head", "options"]

    def get_permissions(self):
        if self.request.method == "PATCH":
            self.required_scope = ADMIN
        return super().get_permissions()

    def get_queryset(self):
        return pools_with_counts()

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        context["depths"] = pool_queue_depths()
        return context

    def perform_update(self, serializer) -> None:
        pool = serializer.save()
        publish("pool.resized", pool=pool, min_instances=pool.min_instances, max_instances=pool.max_instances,
                desired_instances=pool.desired_instances)  # fmt: skip


class EventsView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("after", OpenApiTypes.INT, description="only events with a larger id"),
            OpenApiParameter("limit", OpenApiTypes.INT),
            OpenApiParameter("type", OpenApiTypes.STR),
        ],
        responses={200: s.EventSerializer(many=True), **ERRORS},
    )
    def get(self, request):
        caller = caller_of(request)
        qs = events_visible_to(team_id=caller.team_id, staff=caller.staff).select_related("agent", "pool")
        qs = qs.order_by("id").filter(id__gt=int_param(request, "after", 0))
        if request.query_params.get("type"):
            qs = qs.filter(type=request.query_params["type"])
        limit = int_param(request, "limit", 100, low=1, high=1000)
        return Response(s.EventSerializer(qs[:limit], many=True).data)

    @extend_schema(request=s.EventCreateSerializer, responses={201: s.EventSerializer, **ERRORS})
    def post(self, request):
        data = s.EventCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        caller = caller_of(request)
        task = None
        if data.validated_data["task"]:
            visible = tasks_visible_to(team_id=caller.team_id, staff=caller.staff)
            task = get_object_or_404(visible, id=data.validated_data["task"])
        event = publish(
            data.validated_data["type"], task=task, team_id=caller.team_id, **data.validated_data["payload"]
        )
        return Response(s.EventSerializer(event).data, status=status.HTTP_201_CREATED)


class StatusView(APIView):
    """Public: whether the hive is up, without any task content."""

    public = True
    authentication_classes: list = []

    @extend_schema(responses={200: s.StatusSerializer, 503: s.StatusSerializer}, auth=[])
    def get(self, request):
        from hive_project import __version__

        checks = readiness()
        body = {
            "status": "ok" if checks.ok else "degraded",
            "version": __version__,
            **{name: "ok" if check.ok else "unreachable" for name, check in checks.items()},
            "pools": 0,
            "agents_online": 0,
            "tasks_queued": 0,
            "tasks_running": 0,
        }
        if checks["database"].ok:
            try:
                counts = task_counts_by_status(active_only=True)
                body.update(
                    pools=AgentPool.objects.filter(enabled=True).count(),
                    agents_online=Agent.objects.live().count(),
                    tasks_queued=counts[Task.Status.QUEUED],
                    tasks_running=counts[Task.Status.RUNNING],
                )
            except Exception:  # the database went away between the check and the counts
                body.update(status="degraded", database="unreachable")
        return Response(body, status=200 if body["status"] == "ok" else 503)
