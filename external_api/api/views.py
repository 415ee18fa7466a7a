"""The REST gateway: thin adapters that call coordination and agents services."""

from __future__ import annotations

from datetime import UTC

from django.db import connection
from django.db.models import Count, Q
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
from coordination.dispatch import queue_depths, redis_client
from coordination.errors import HiveError
from coordination.events import publish
from coordination.fleet import agent_drain
from coordination.models import Event, Task, Team
from external_api.access import ADMIN, caller_of
from external_api.api import serializers as s

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
        qs = Task.objects.visible_to(team_id=caller.team_id, staff=caller.staff).select_related("pool", "agent", "team")
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
        return AgentPool.objects.filter(enabled=True).annotate(
            queued=Count("tasks", filter=Q(tasks__status=Task.Status.QUEUED), distinct=True),
            running=Count("tasks", filter=Q(tasks__status=Task.Status.RUNNING), distinct=True),
            agents_online=Count("agents", filter=~Q(agents__status=Agent.Status.OFFLINE), distinct=True),
        )

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        try:
            context["depths"] = queue_depths([p.queue for p in AgentPool.objects.filter(enabled=True)])
        except Exception:
            context["depths"] = {}
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
        qs = Event.objects.select_related("agent", "pool").order_by("id")
        if not caller.staff:
            qs = (
                qs.filter(Q(team_id=caller.team_id) | Q(team__isnull=True))
                if caller.team_id
                else qs.filter(team__isnull=True)
            )
        qs = qs.filter(id__gt=int_param(request, "after", 0))
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
            visible = Task.objects.visible_to(team_id=caller.team_id, staff=caller.staff)
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

        body = {"status": "ok", "version": __version__, "database": "ok", "redis": "ok", "pools": 0,
                "agents_online": 0, "tasks_queued": 0, "tasks_running": 0}  # fmt: skip
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            counts = dict(Task.objects.active().values_list("status").annotate(n=Count("id")))
            body.update(pools=AgentPool.objects.filter(enabled=True).count(),
                        agents_online=Agent.objects.live().count(),
                        tasks_queued=counts.get(Task.Status.QUEUED, 0), tasks_running=counts.get(Task.Status.RUNNING, 0))  # fmt: skip
        except Exception:
            body.update(status="degraded", database="unreachable")
        try:
            redis_client().ping()
        except Exception:
            body.update(status="degraded", redis="unreachable")
        return Response(body, status=200 if body["status"] == "ok" else 503)


class PoolScaleView(APIView):
    """GET /api/v1/pools/<name>/scale: the pool's desired size for an external actuator (KEDA).

    Read scope. KEDA's metrics-api trigger reads `desired` with targetValue 1 and metricType
    AverageValue, so the Deployment's replica count equals the hive's decision.
    """

    @extend_schema(responses={200: s.PoolScaleSerializer, **ERRORS})
    def get(self, request, name: str):
        pool = get_object_or_404(AgentPool, name=name, enabled=True)
        body = {"pool": pool.name, "desired": pool.desired_instances, "instances": pool.agents.live().count(),
                "min": pool.min_instances, "max": pool.max_instances}  # fmt: skip
        return Response(s.PoolScaleSerializer(body).data)
