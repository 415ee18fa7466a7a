"""The REST gateway: thin adapters that call coordination and agents services."""

from __future__ import annotations

from base64 import b64decode
from datetime import UTC, datetime
from urllib.parse import parse_qs

from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from agents.models import Agent, AgentPool
from coordination import services
from coordination.errors import HiveError
from coordination.events import publish
from coordination.fleet import agent_drain
from coordination.models import Task, Team
from coordination.scaling.services import scaling_set
from coordination.selectors import (
    events_visible_to,
    pool_queue_depths,
    pools_with_counts,
    task_counts_by_status,
    tasks_visible_to,
)
from external_api.access import ADMIN, COMMANDS, COMMANDS_REQUIRED, ScopeRequired, caller_of
from external_api.api import queries, strict
from external_api.api import serializers as s
from external_api.api.task_list import TASK_FILTERS, RowsJSONRenderer, TaskRows
from external_api.errors import ERROR_SCHEMA, BadRequest
from external_api.models import ApiKey
from hive_project.health import readiness

ERROR = ERROR_SCHEMA
ERRORS = {code: OpenApiResponse(ERROR) for code in (400, 401, 403, 404, 409, 413, 422, 429)}
UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


class TaskCursor(CursorPagination):
    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = queries.TASK_PAGE_MAX
    invalid_cursor_message = "the cursor is not one this API gave out; start again without it"

    def decode_cursor(self, request: Request) -> Cursor | None:
        """The cursor of a `next`/`previous` link, or 400 `invalid_cursor` for anything else: not
        base64 of `o`/`r`/`p`, an offset beyond the cutoff (DRF would clamp it), a position that is
        not a date-time the database can compare (DRF would pass it to the query: a 500)."""
        encoded = request.query_params.get(self.cursor_query_param)
        if not encoded:  # absent, or empty: the first page (as for every other parameter)
            return None
        try:
            tokens = parse_qs(b64decode(encoded.encode("ascii"), validate=True).decode("ascii"), strict_parsing=True)
        except ValueError:  # binascii.Error and UnicodeError are ValueErrors
            tokens = {"": []}
        offset, reverse, position = tokens.pop("o", ["0"]), tokens.pop("r", ["0"]), tokens.pop("p", [None])
        valid = (
            not tokens
            and len(offset) == len(reverse) == len(position) == 1
            and offset[0].isdigit()
            and len(offset[0]) <= 6
            and int(offset[0]) <= self.offset_cutoff
            and reverse[0] in ("0", "1")
            and (position[0] is None or cursor_position(position[0]) is not None)
        )
        if not valid:
            raise BadRequest(self.invalid_cursor_message, code="invalid_cursor")
        # DRF keeps the position as the text of the ordering field; the stubs say int
        return Cursor(offset=int(offset[0]), reverse=reverse[0] == "1", position=position[0])  # type: ignore[arg-type]


def team_of(request: Request, team_id: int | None) -> Team | None:
    """The caller's team: an API key's as read with the key (external_api.keycache: at most
    RECHECK_SECONDS old, as the key itself), else read now."""
    if not team_id:
        return None
    key = request.auth
    if isinstance(key, ApiKey) and key.team_id == team_id and ApiKey.team.is_cached(key):
        return key.team
    return Team.objects.get(id=team_id)


def cursor_position(text: str) -> datetime | None:
    """The position a cursor holds (a task's created_at), if it is one the database can compare."""
    if "\x00" in text or len(text) > 64:
        return None
    try:
        parsed = parse_datetime(text)
        return parsed.astimezone(UTC) if parsed is not None and not timezone.is_naive(parsed) else None
    except (ValueError, OverflowError):
        return None


@extend_schema_view(
    list=extend_schema(parameters=[queries.TaskQuery], responses={200: s.TaskSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(responses={200: s.TaskDetailSerializer, **ERRORS}),
)
class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.TaskSerializer
    pagination_class = TaskCursor
    renderer_classes = [  # DRF's JSONRenderer, and the others configured
        RowsJSONRenderer if r is JSONRenderer else r  # type: ignore[misc]  # classes, though the stubs say str
        for r in api_settings.DEFAULT_RENDERER_CLASSES
    ]
    lookup_field = "id"
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        caller = caller_of(self.request)
        qs = tasks_visible_to(team_id=caller.team_id, staff=caller.staff).select_related("pool", "agent", "team")
        if self.action != "list":
            return qs
        p = strict.query(self.request, queries.TaskQuery)
        return qs.filter(**{lookup: p[name] for name, lookup in TASK_FILTERS.items() if name in p})

    def get_serializer_class(self):
        return s.TaskDetailSerializer if self.action == "retrieve" else s.TaskSerializer

    def list(self, request, *args, **kwargs):
        """TaskSerializer's output for a page read as plain rows (s.task_rows_data): no model
        instances, no per-request serializer fields, the query compiled once per shape and the JSON
        columns passed through as the database's text (task_list.TaskRows), rendered by orjson
        (task_list.RowsJSONRenderer); the same body as ListModelMixin.list."""
        caller = caller_of(request)
        given = strict.query(request, queries.TaskQuery)
        rows = TaskRows(team_id=caller.team_id, staff=caller.staff, given=given, columns=s.task_row_columns())
        # TaskCursor always pages (never None)
        page: list = self.paginate_queryset(rows) or []  # type: ignore[arg-type]  # a QuerySet stand-in
        return self.get_paginated_response(s.task_rows_data(page))

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
        team = team_of(request, caller.team_id)
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

    @extend_schema(parameters=[queries.TaskEventsQuery], responses={200: s.EventSerializer(many=True), **ERRORS})
    @action(detail=True, methods=["get"], pagination_class=None)
    def events(self, request, id=None):
        after = strict.query(request, queries.TaskEventsQuery).get("after", 0)
        task = self.get_object()
        events = task.events.select_related("agent", "pool").filter(id__gt=after).order_by("id")[:500]
        return Response(s.EventSerializer(events, many=True).data)


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

    def list(self, request, *args, **kwargs):
        strict.query(request, queries.NoQuery)
        return super().list(request, *args, **kwargs)

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

    def list(self, request, *args, **kwargs):
        strict.query(request, queries.NoQuery)
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        return pools_with_counts()

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "depths": pool_queue_depths()}

    def perform_update(self, serializer) -> None:
        pool = serializer.save()
        publish(
            "pool.resized",
            pool=pool,
            min_instances=pool.min_instances,
            max_instances=pool.max_instances,
            desired_instances=pool.desired_instances,
        )


class EventsView(APIView):
    @extend_schema(parameters=[queries.EventQuery], responses={200: s.EventSerializer(many=True), **ERRORS})
    def get(self, request):
        p = strict.query(request, queries.EventQuery)
        caller = caller_of(request)
        qs = events_visible_to(team_id=caller.team_id, staff=caller.staff).select_related("agent", "pool")
        qs = qs.order_by("id").filter(id__gt=p.get("after", 0))
        if "type" in p:
            qs = qs.filter(type=p["type"])
        return Response(s.EventSerializer(qs[: p.get("limit", 100)], many=True).data)

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


class PoolScaleView(APIView):
    """GET /api/v1/pools/<name>/scale: the pool's desired size for an external actuator (KEDA).
    POST {"desired": N}: an operator's target (admin scope), as `hive scale POOL N`.

    Read scope. KEDA's metrics-api trigger reads `desired` with targetValue 1 and metricType
    AverageValue, so the Deployment's replica count equals the hive's decision.
    """

    def get_permissions(self):
        if self.request.method == "POST":
            self.required_scope = ADMIN
        return super().get_permissions()

    @extend_schema(responses={200: s.PoolScaleSerializer, **ERRORS})
    def get(self, request, name: str):
        pool = get_object_or_404(AgentPool, name=name, enabled=True)
        return Response(s.PoolScaleSerializer(_scale_body(pool)).data)

    @extend_schema(request=s.PoolScaleSetSerializer, responses={200: s.PoolScaleSerializer, **ERRORS})
    def post(self, request, name: str):
        data = s.PoolScaleSetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        decision = scaling_set(pool=name, desired=data.validated_data["desired"], reason=data.validated_data["reason"])
        decision.pool.refresh_from_db()  # the row as scaling_set read it, before its update
        return Response(s.PoolScaleSerializer(_scale_body(decision.pool)).data)


def _scale_body(pool: AgentPool) -> dict:
    return {
        "pool": pool.name,
        "desired": pool.desired_instances,
        "instances": pool.agents.live().count(),
        "min": pool.min_instances,
        "max": pool.max_instances,
    }
