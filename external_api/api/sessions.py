"""`/api/v1/sessions/`: create, list, show (steps, the DAG, the decision) and cancel coordination
sessions. Thin adapters over coordination.sessions; visibility is the caller's team, as for tasks."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from coordination.errors import HiveError
from coordination.models import CoordinationSession, Priority, SessionStep, Team
from coordination.sessions import session_cancel, session_create
from external_api.access import caller_of
from external_api.api.views import ERRORS, UUID_PATTERN

# --- the plan (documents the request; coordination.plans checks it and names what is wrong) ---------


class StepPlanSerializer(serializers.Serializer):
    name = serializers.RegexField(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
    prompt = serializers.CharField(required=False, help_text="may use {steps.<dependency>.result} and .output")
    command = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="argv; may use {steps.<dependency>.result} and .output"
    )
    capabilities = serializers.ListField(child=serializers.CharField(), min_length=1)
    payload = serializers.DictField(required=False)
    task_type = serializers.CharField(required=False)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    complexity = serializers.IntegerField(required=False, min_value=1, max_value=10)
    timeout = serializers.FloatField(required=False, help_text="seconds one attempt may run")
    max_attempts = serializers.IntegerField(required=False, min_value=1, max_value=20)
    depends_on = serializers.ListField(child=serializers.CharField(), required=False, help_text="dag only")
    targets = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="fan_out / consensus: one copy per pool"
    )
    count = serializers.IntegerField(required=False, min_value=1, help_text="fan_out / consensus: N copies")


class SessionPlanSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, help_text="the session's goal")
    mode = serializers.ChoiceField(choices=CoordinationSession.Mode.choices, required=False, default="dag")
    steps = StepPlanSerializer(many=True)
    timeout = serializers.FloatField(required=False, help_text="seconds; at most agent_coordination.session_timeout")
    continue_on_failure = serializers.BooleanField(required=False)
    consensus_threshold = serializers.FloatField(required=False, help_text="consensus only; in (0, 1]")


# --- what the API shows ---------------------------------------------------------------------------------


class SessionStepSerializer(serializers.ModelSerializer):
    task = serializers.UUIDField(source="task_id", read_only=True, allow_null=True)
    task_status = serializers.CharField(source="task.status", default=None, allow_null=True, read_only=True)
    pool = serializers.CharField(source="task.pool.name", default=None, allow_null=True, read_only=True)
    depends_on = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = SessionStep
        fields = [
            "name",
            "status",
            "depends_on",
            "task",
            "task_status",
            "pool",
            "spec",
            "result",
            "output_tail",
            "reason",
            "queued_at",
            "finished_at",
            "latency",
        ]
        read_only_fields = fields


class GraphNodeSerializer(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.ChoiceField(choices=SessionStep.Status.choices)
    task = serializers.UUIDField(allow_null=True)


class GraphEdgeSerializer(serializers.Serializer):
    source = serializers.CharField(help_text="the dependency")  # type: ignore[assignment]  # a field, not Field.source
    target = serializers.CharField(help_text="the step that waits for it")


class GraphSerializer(serializers.Serializer):
    nodes = GraphNodeSerializer(many=True)
    edges = GraphEdgeSerializer(many=True)


class SessionSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.name", default=None, allow_null=True, read_only=True)
    steps_total = serializers.IntegerField(read_only=True)
    steps_done = serializers.IntegerField(read_only=True)

    class Meta:
        model = CoordinationSession
        fields = [
            "id",
            "name",
            "mode",
            "status",
            "team",
            "source",
            "continue_on_failure",
            "consensus_threshold",
            "timeout",
            "created_at",
            "started_at",
            "finished_at",
            "deadline",
            "decision",
            "reason",
            "steps_total",
            "steps_done",
        ]
        read_only_fields = fields


class SessionDetailSerializer(SessionSerializer):
    steps = SessionStepSerializer(many=True, read_only=True)
    graph = serializers.SerializerMethodField()

    class Meta(SessionSerializer.Meta):
        fields = [*SessionSerializer.Meta.fields, "plan", "steps", "graph"]
        read_only_fields = fields

    @extend_schema_field(GraphSerializer)
    def get_graph(self, session: CoordinationSession) -> dict:
        """The DAG as nodes (steps, in plan order) and edges (dependency -> dependent)."""
        steps = list(session.steps.all())
        return {
            "nodes": [{"id": s.name, "status": s.status, "task": str(s.task_id) if s.task_id else None} for s in steps],
            "edges": [{"source": dep, "target": s.name} for s in steps for dep in s.depends_on],
        }


# --- the views ------------------------------------------------------------------------------------------------


class SessionCursor(CursorPagination):
    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


SESSION_FILTERS = [
    OpenApiParameter("status", OpenApiTypes.STR, enum=CoordinationSession.Status.values),
    OpenApiParameter("mode", OpenApiTypes.STR, enum=CoordinationSession.Mode.values),
]


@extend_schema_view(
    list=extend_schema(parameters=SESSION_FILTERS, responses={200: SessionSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(responses={200: SessionDetailSerializer, **ERRORS}),
)
class SessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = SessionSerializer
    pagination_class = SessionCursor
    lookup_field = "id"
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        caller = caller_of(self.request)
        qs = (
            CoordinationSession.objects.visible_to(team_id=caller.team_id, staff=caller.staff)
            .select_related("team")
            .annotate(
                steps_total=Count("steps"),
                steps_done=Count("steps", filter=Q(steps__status__in=SessionStep.TERMINAL_STATUSES)),
            )
        )
        if self.action == "list":
            params = self.request.query_params
            if params.get("status"):
                qs = qs.filter(status=params["status"])
            if params.get("mode"):
                qs = qs.filter(mode=params["mode"])
            return qs
        steps = SessionStep.objects.select_related("task__pool").order_by("position")
        return qs.prefetch_related(Prefetch("steps", queryset=steps))

    def get_serializer_class(self):
        return SessionDetailSerializer if self.action != "list" else SessionSerializer

    def get_object(self) -> CoordinationSession:
        return get_object_or_404(self.get_queryset(), id=self.kwargs["id"])

    @extend_schema(request=SessionPlanSerializer, responses={201: SessionDetailSerializer, **ERRORS})
    def create(self, request):
        """Start a session from a plan. A plan that cannot run is refused (400, code invalid_session)
        with the reason, and nothing is stored."""
        caller = caller_of(request)
        team = Team.objects.get(id=caller.team_id) if caller.team_id else None
        if team is None and not caller.staff:
            raise HiveError("this account belongs to no team, so it cannot start sessions", code="no_team")
        session = session_create(plan=request.data, team=team, source="api")
        self.kwargs["id"] = session.id
        return Response(SessionDetailSerializer(self.get_object()).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: SessionDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def cancel(self, request, id=None):
        """Cancel the session: its running tasks are cancelled, its waiting steps never run."""
        session_cancel(session=self.get_object(), reason=f"cancelled by {caller_of(request).ident}")
        return Response(SessionDetailSerializer(self.get_object()).data)
