"""What the hive learned, through the API: models, training, insights, routing decisions, predictions.

Thin adapters over ml.selectors and ml.services. Models, insights and predictions are about the
shared fleet (every caller with the read scope sees them); a decision belongs to its task, so a
non-staff caller lists their own team's only. Training is an operator action (admin scope).
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from coordination import submission as bounds
from coordination.errors import Conflict
from coordination.models import Priority
from external_api.access import ADMIN, caller_of
from external_api.api import strict
from external_api.api.queries import NoQuery
from external_api.api.serializers import DecisionSerializer
from external_api.api.strict import StrictChoiceField, StrictSerializer
from external_api.api.views import ERRORS, TaskCursor
from ml.predict import NoModel
from ml.selectors import (
    RECOMMENDATION_KINDS,
    decisions_visible_to,
    insights_current,
    insights_dict,
    model_version_dict,
    model_versions,
    predictions_for,
)
from ml.services import KINDS, ml_train


class NoModelYet(Conflict):
    """Predictions asked for before a usable duration model exists (409: try again after training)."""

    code = "no_model"


# --- models and training --------------------------------------------------------------------------------
class ModelVersionSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=KINDS)
    version = serializers.IntegerField()
    metric = serializers.CharField(help_text="the held-out error that decides promotion (lower is better)")
    trained_at = serializers.DateTimeField()
    trained_until = serializers.DateTimeField(allow_null=True, help_text="newest history the model saw")
    samples = serializers.IntegerField(help_text="rows trained on (older part and held-out part)")
    algorithm = serializers.CharField()
    features = serializers.ListField(child=serializers.CharField())
    metrics = serializers.JSONField(help_text="on the held-out (newest) part")
    baseline_metrics = serializers.JSONField(help_text="the baseline's, on the same rows")
    active = serializers.BooleanField()
    activated_at = serializers.DateTimeField(allow_null=True)
    promotion = serializers.CharField(help_text="why it was or was not activated")
    drift = serializers.JSONField(allow_null=True, help_text="error on history newer than the model (active ones)")
    training_seconds = serializers.FloatField()


class ModelQuery(StrictSerializer):
    kind = serializers.ChoiceField(choices=KINDS, required=False)


class ModelsView(APIView):
    """Read scope: models are the fleet's, every caller sees them. The active duration and success
    versions' drift is measured on the way."""

    @extend_schema(parameters=[ModelQuery], responses={200: ModelVersionSerializer(many=True), **ERRORS})
    def get(self, request):
        p = strict.query(request, ModelQuery)
        rows = [model_version_dict(row) for row in model_versions(kind=p.get("kind"))]
        return Response(ModelVersionSerializer(rows, many=True).data)


class TrainSerializer(StrictSerializer):
    kinds = serializers.ListField(
        child=StrictChoiceField(choices=KINDS), required=False, min_length=1, help_text="default: every kind"
    )


class TrainReportSerializer(serializers.Serializer):
    started_at = serializers.DateTimeField()
    kinds = serializers.JSONField(
        help_text="per kind: status (activated, kept, skipped, locked), reason, version, metrics and the baseline's"
    )
    patterns = serializers.IntegerField(help_text="failure patterns found")
    weights = serializers.JSONField(help_text='routing weights the patterns imply ("pool|type": multiplier)')
    due = serializers.JSONField()


class TrainView(APIView):
    """POST /api/v1/ml/train/: train now (admin scope) and answer the report; 409 while another
    training holds the lock."""

    required_scope = ADMIN

    @extend_schema(request=TrainSerializer, responses={200: TrainReportSerializer, **ERRORS})
    def post(self, request):
        data = TrainSerializer(data=request.data if request.data else {})
        data.is_valid(raise_exception=True)
        kinds = data.validated_data.get("kinds") or list(KINDS)
        report = ml_train(kinds=list(dict.fromkeys(kinds)))
        if report.kinds and all(k.status == "locked" for k in report.kinds):
            raise Conflict("another training is running; try again when it has finished", code="training_locked")
        body = {**report.as_dict(), "started_at": report.started_at}
        return Response(TrainReportSerializer(body).data)


# --- insights -------------------------------------------------------------------------------------------
class PatternSerializer(serializers.Serializer):
    signature = serializers.CharField(help_text="the normalised error (ids, paths and numbers masked)")
    pool = serializers.CharField()
    task_type = serializers.CharField()
    failures = serializers.IntegerField()
    attempts = serializers.IntegerField()
    rate = serializers.FloatField(help_text="failures / attempts of the (pool, type)")
    support = serializers.FloatField(help_text="failures / all attempts read")
    lift = serializers.FloatField()
    p_value = serializers.FloatField()
    everywhere = serializers.BooleanField(help_text="the type fails this way on every pool that ran it")
    example = serializers.CharField()


class RecommendationSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=RECOMMENDATION_KINDS)
    task_type = serializers.CharField()
    pool = serializers.CharField(allow_null=True)
    text = serializers.CharField()
    weight = serializers.FloatField(allow_null=True, help_text="the routing weight applied; null: report only")


class InsightsSerializer(serializers.Serializer):
    attempts = serializers.IntegerField(help_text="finished attempts read")
    patterns = PatternSerializer(many=True)
    recommendations = RecommendationSerializer(many=True)


class InsightsView(APIView):
    """Read scope: failure patterns over the recent history, and what they recommend."""

    @extend_schema(responses={200: InsightsSerializer, **ERRORS})
    def get(self, request):
        strict.query(request, NoQuery)
        return Response(InsightsSerializer(insights_dict(insights_current())).data)


# --- decisions -----------------------------------------------------------------------------------------
class DecisionQuery(StrictSerializer):
    task = strict.StrictUUIDField(required=False, help_text="one task's decision (full id)")
    pool = serializers.CharField(required=False, max_length=40, help_text="decisions that chose this pool")
    strategy = serializers.CharField(required=False, max_length=40)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, help_text="page size")
    cursor = serializers.CharField(required=False, max_length=2000, help_text="the `next` or `previous` link's cursor")


class DecisionCursor(TaskCursor):
    ordering = "-decided_at"


@extend_schema(parameters=[DecisionQuery], responses={200: DecisionSerializer(many=True), **ERRORS})
class DecisionViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Read scope; a non-staff caller sees the decisions of their team's tasks only."""

    serializer_class = DecisionSerializer
    pagination_class = DecisionCursor

    def get_queryset(self):
        p = strict.query(self.request, DecisionQuery)
        caller = caller_of(self.request)
        return decisions_visible_to(
            team_id=caller.team_id,
            staff=caller.staff,
            task=p.get("task"),
            pool=p.get("pool"),
            strategy=p.get("strategy"),
        )


# --- predictions ---------------------------------------------------------------------------------------
@extend_schema_field(OpenApiTypes.STR)
class CapabilitiesField(serializers.CharField):
    """Capabilities separated by commas: `python` or `python,database`."""

    def to_internal_value(self, data: str) -> list[str]:  # type: ignore[override]  # text in, a list out
        text = super().to_internal_value(data)
        caps = [c.strip() for c in text.split(",")]
        if not all(caps):
            raise serializers.ValidationError("must be capability names separated by commas")
        if len(caps) > bounds.MAX_CAPABILITIES:
            raise serializers.ValidationError(f"must be at most {bounds.MAX_CAPABILITIES} capabilities")
        if any(len(c) > bounds.MAX_CAPABILITY_CHARS for c in caps):
            raise serializers.ValidationError(f"a capability is at most {bounds.MAX_CAPABILITY_CHARS} characters")
        return caps


class PredictQuery(StrictSerializer):
    capabilities = CapabilitiesField(help_text="required capabilities, separated by commas")
    task_type = serializers.CharField(required=False, default="general", max_length=bounds.MAX_TASK_TYPE_CHARS)
    complexity = serializers.IntegerField(required=False, min_value=1, max_value=bounds.MAX_COMPLEXITY)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False, default=Priority.NORMAL)


class PoolPredictionSerializer(serializers.Serializer):
    pool = serializers.CharField()
    p50_seconds = serializers.FloatField(help_text="median duration of one attempt")
    p90_seconds = serializers.FloatField()
    success_probability = serializers.FloatField(help_text="of one attempt")
    expected_attempts = serializers.FloatField()
    expected_wait_seconds = serializers.FloatField(help_text="before it would start (work ahead / capacity)")
    eta_seconds = serializers.FloatField(help_text="wait + p50 × expected attempts")
    eta = serializers.DateTimeField(help_text="now + eta_seconds")
    history = serializers.IntegerField(help_text="attempts of this type the pool has finished")
    success_source = serializers.ChoiceField(choices=["model", "profile"])
    model_version = serializers.CharField()


class PredictView(APIView):
    """GET /api/v1/predict/?capabilities=python&task_type=bugfix&complexity=5: per eligible pool,
    what a task of this kind would meet now. 422 when no pool covers the capabilities, 409
    `no_model` before a duration model is trained."""

    @extend_schema(parameters=[PredictQuery], responses={200: PoolPredictionSerializer(many=True), **ERRORS})
    def get(self, request):
        p = strict.query(request, PredictQuery)
        try:
            found = predictions_for(
                capabilities=p["capabilities"],
                task_type=p["task_type"],
                complexity=p.get("complexity"),
                priority=p["priority"],
            )
        except NoModel as exc:
            raise NoModelYet(str(exc)) from None
        return Response(PoolPredictionSerializer([f.as_dict() for f in found], many=True).data)
