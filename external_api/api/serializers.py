"""Explicit fields; everything the server decides (status, attempts, agent, team, times) is read-only.

Request bodies are strict (external_api.api.strict): no coercion, no unknown fields. The bounds of
a task repeat coordination.submission's, which task_submit enforces for every caller; here they
name the field in a 400 and appear in the OpenAPI schema.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from agents.models import Agent, AgentPool
from coordination import submission as bounds
from coordination.models import Event, Priority, RoutingDecision, Task, TaskAttempt
from external_api.api.representation import FlatRepresentation
from external_api.api.strict import (
    JsonObjectField,
    StrictCharField,
    StrictChoiceField,
    StrictFloatField,
    StrictIntegerField,
    StrictModelSerializer,
    StrictRegexField,
    StrictSerializer,
    StrictUUIDField,
)
from ml.selectors import decision_dict, etas_unavailable, task_prediction

log = logging.getLogger(__name__)


class TaskCreateSerializer(StrictSerializer):
    """A task to run: a prompt for the pool's agent, or a command (an argv), and the capabilities
    the pool must offer. Fields not listed here are refused."""

    reuse_fields = True  # every POST /api/v1/tasks/ builds one

    prompt = StrictCharField(required=False, allow_blank=True, default="", max_length=bounds.MAX_PROMPT_CHARS)
    command = serializers.ListField(
        child=StrictCharField(max_length=bounds.MAX_COMMAND_ARG_CHARS, allow_blank=True, trim_whitespace=False),
        required=False,
        allow_null=True,
        default=None,
        min_length=1,
        max_length=bounds.MAX_COMMAND_ARGS,
    )
    capabilities = serializers.ListField(
        child=StrictCharField(max_length=bounds.MAX_CAPABILITY_CHARS),
        min_length=1,
        max_length=bounds.MAX_CAPABILITIES,
    )
    payload = JsonObjectField(required=False, default=dict)
    task_type = StrictCharField(required=False, default="general", max_length=bounds.MAX_TASK_TYPE_CHARS)
    priority = StrictChoiceField(choices=Priority.choices, required=False, default=Priority.NORMAL)
    complexity = StrictIntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=bounds.MAX_COMPLEXITY
    )
    timeout = StrictFloatField(
        required=False, allow_null=True, default=None, min_value=bounds.MIN_TIMEOUT, max_value=bounds.MAX_TIMEOUT
    )
    max_attempts = StrictIntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=bounds.MAX_ATTEMPTS
    )
    external_ref = StrictCharField(
        required=False, default="", allow_blank=True, max_length=bounds.MAX_EXTERNAL_REF_CHARS
    )


class AttemptSerializer(serializers.ModelSerializer):
    agent = serializers.CharField(source="agent.name", default=None, allow_null=True, read_only=True)
    result = serializers.SerializerMethodField(help_text="the task's result, on the attempt that succeeded")

    class Meta:
        model = TaskAttempt
        fields = [
            "number",
            "outcome",
            "agent",
            "started_at",
            "finished_at",
            "exit_code",
            "is_error",
            "error",
            "result",
            "session_id",
            "cost_usd",
            "num_turns",
            "output_tail",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.ANY)
    def get_result(self, attempt: TaskAttempt) -> Any:
        # Only the last attempt can succeed, and its result is the task's: Claude's answer, a value, an output.
        return attempt.task.result if attempt.outcome == TaskAttempt.Outcome.SUCCEEDED else None


class EventSerializer(serializers.ModelSerializer):
    task = serializers.UUIDField(source="task_id", read_only=True, allow_null=True)
    agent = serializers.CharField(source="agent.name", default=None, allow_null=True, read_only=True)
    pool = serializers.CharField(source="pool.name", default=None, allow_null=True, read_only=True)

    class Meta:
        model = Event
        fields = ["id", "type", "task", "agent", "pool", "payload", "created_at"]
        read_only_fields = fields


class EtaSerializer(serializers.Serializer):
    """When a queued or running task is expected to finish (ml.predict.task_etas), or why that is not known."""

    seconds = serializers.FloatField(allow_null=True, help_text="p50 seconds from now until it finishes")
    p90_seconds = serializers.FloatField(allow_null=True)
    at = serializers.DateTimeField(allow_null=True, help_text="now + seconds")
    model_version = serializers.CharField(help_text="the duration model that predicted it; empty without one")
    reason = serializers.CharField(help_text="why there is no ETA (no model yet); empty when there is one")


NOT_ROUTED = "not routed to a pool yet"
_AT = serializers.DateTimeField()  # EtaSerializer's `at`, formatted the same way


def etas_of(tasks: list[Task]) -> dict[str, Any]:
    """ETAs of the queued and running tasks among `tasks`, computed together (one model call, one
    read of each pool's queue); a task with none says why. Finished tasks are left out."""
    from ml.selectors import task_etas_for

    live = [t for t in tasks if t.status in (Task.Status.QUEUED, Task.Status.RUNNING)]
    if not live:
        return {}
    try:
        found = task_etas_for(live)
        etas, reason = found.etas, found.reason
    except Exception as exc:  # a broken model must not break the task list
        log.exception("ETAs failed")
        etas, reason = {}, f"ETA failed ({type(exc).__name__})"
    # Plain dicts shaped as EtaSerializer (the schema) says: a serializer per task deep-copied its
    # fields for each row, a quarter of a 50-task list's time.
    missing = {"seconds": None, "p90_seconds": None, "at": None, "model_version": "", "reason": reason or NOT_ROUTED}
    out: dict[str, Any] = {}
    for task in live:
        eta = etas.get(str(task.id))
        out[str(task.id)] = (
            dict(missing)
            if eta is None
            else {
                "seconds": round(eta.seconds, 1),
                "p90_seconds": round(eta.p90_seconds, 1),
                "at": _AT.to_representation(eta.at),
                "model_version": eta.model_version,
                "reason": "",
            }
        )
    return out


class TaskListSerializer(serializers.ListSerializer):
    def to_representation(self, data: Any) -> list:
        tasks = list(data.all() if isinstance(data, models.manager.BaseManager) else data)
        self.child.etas = etas_of(tasks)  # type: ignore[union-attr]
        return super().to_representation(tasks)


class TaskSerializer(FlatRepresentation, serializers.ModelSerializer):
    pool = serializers.CharField(source="pool.name", default=None, allow_null=True, read_only=True)
    agent = serializers.CharField(source="agent.name", default=None, allow_null=True, read_only=True)
    team = serializers.CharField(source="team.name", default=None, allow_null=True, read_only=True)
    eta = serializers.SerializerMethodField(help_text="a queued or running task's ETA; null once it left both")
    etas: dict[str, dict[str, Any]] | None = None  # a list's ETAs, computed at once (TaskListSerializer)
    shared_plan = True  # plain fields and one method field: FlatRepresentation may build them once

    class Meta:
        model = Task
        fields = [
            "id",
            "status",
            "prompt",
            "command",
            "payload",
            "task_type",
            "capabilities",
            "priority",
            "complexity",
            "timeout",
            "attempts",
            "max_attempts",
            "pool",
            "agent",
            "team",
            "source",
            "external_ref",
            "created_at",
            "queued_at",
            "started_at",
            "finished_at",
            "result",
            "error",
            "hold_reason",
            "eta",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "hold_reason": {"help_text": "why the queued task waits (a spent daily budget); empty: it does not"}
        }
        list_serializer_class = TaskListSerializer

    @extend_schema_field(EtaSerializer(allow_null=True))
    def get_eta(self, task: Task) -> dict[str, Any] | None:
        etas = self.etas if self.etas is not None else etas_of([task])
        return etas.get(str(task.id))

    def to_representation(self, task: Task) -> dict:
        data = super().to_representation(task)
        if task.status != Task.Status.QUEUED:  # a hold is about waiting; a task that left the queue is not held
            data["hold_reason"] = ""
        return data


# --- the task list from `.values()` rows ------------------------------------------------------------
# A 50-task page built as models cost ~150 model instances (task, pool, agent, team) and a fresh
# set of serializer fields per request: half of the list's CPU. The list reads the columns
# TaskSerializer outputs as plain rows and applies TaskSerializer's own fields to them, built once
# per process (they hold no request state), so the output is the same, key for key.
_row_plan: list[tuple[str, str, Any]] | None = None
ISO_DATETIME = "iso-datetime"  # in a plan: DRF's ISO 8601 DateTimeField output, done per page (_iso_in)


def _task_row_plan() -> list[tuple[str, str, Any]]:
    """(output name, `.values()` lookup, the field's to_representation, ISO_DATETIME, or None for a
    value output as read: AS_READ); the lookup is "" for eta."""
    global _row_plan
    if _row_plan is None:
        _row_plan = [
            (str(f.field_name), "" if f.field_name == "eta" else "__".join(f.source_attrs), _representer(f))
            for f in TaskSerializer().fields.values()
            if not f.write_only
        ]
    return _row_plan


# Fields whose to_representation gives back what the database gave (a str, an int, a JSON value
# or its text): the list copies those values as they are.
AS_READ = (serializers.CharField, serializers.ChoiceField, serializers.IntegerField, serializers.JSONField)


def _representer(field: serializers.Field) -> Any:
    iso = getattr(field, "format", api_settings.DATETIME_FORMAT)
    if isinstance(field, serializers.DateTimeField) and not hasattr(field, "timezone") and iso == ISO_8601:
        return ISO_DATETIME
    if type(field) in AS_READ and not getattr(field, "binary", False):
        return None
    return field.to_representation


def _iso_in(tz: Any) -> Any:
    """DateTimeField.to_representation (ISO 8601, no field timezone) with the current time zone
    looked up once per page instead of once per value (an asgiref Local read each time)."""

    def represent(value: datetime) -> str:
        if timezone.is_naive(value):
            return _AT.to_representation(value)  # DRF's own rules for a naive value
        text = value.astimezone(tz).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return represent


def task_row_columns() -> list[str]:
    """What a task list selects with `.values()`: every column TaskSerializer outputs."""
    return [lookup for _, lookup, _ in _task_row_plan() if lookup]


def task_rows_data(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TaskSerializer(many=True).data for `.values(*task_row_columns())` rows."""
    tz = _AT.default_timezone()  # None without USE_TZ: DRF's own rules then
    iso = _iso_in(tz) if tz is not None else _AT.to_representation
    plan = [(name, lookup, iso if r is ISO_DATETIME else r) for name, lookup, r in _task_row_plan()]
    etas = _etas_of_rows(rows)
    out = []
    for row in rows:
        data: dict[str, Any] = {}
        for name, lookup, represent in plan:
            if not lookup:
                data[name] = etas.get(str(row["id"]))
                continue
            value = row[lookup]  # None through a missing relation (a LEFT JOIN), as FlatRepresentation
            data[name] = value if represent is None or value is None else represent(value)
        if row["status"] != Task.Status.QUEUED:  # as TaskSerializer.to_representation
            data["hold_reason"] = ""
        out.append(data)
    return out


def _etas_of_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """etas_of for rows: without a usable duration model every live task gets the reason (no
    task is loaded); with one, the live tasks are loaded as models (one query) for the model."""
    live = [row["id"] for row in rows if row["status"] in (Task.Status.QUEUED, Task.Status.RUNNING)]
    if not live:
        return {}
    try:
        reason = etas_unavailable()
    except Exception as exc:  # a broken registry must not break the task list (as etas_of)
        log.exception("ETAs failed")
        reason = f"ETA failed ({type(exc).__name__})"
    if reason is None:
        return etas_of(list(Task.objects.select_related("pool", "agent").filter(id__in=live)))
    missing = {"seconds": None, "p90_seconds": None, "at": None, "model_version": "", "reason": reason}
    return {str(task_id): dict(missing) for task_id in live}


class OutcomeSerializer(serializers.Serializer):
    duration = serializers.FloatField(allow_null=True, help_text="seconds of the last attempt")
    success = serializers.BooleanField(allow_null=True)
    attempts = serializers.IntegerField(allow_null=True)
    closed_at = serializers.DateTimeField()


class DecisionSerializer(serializers.Serializer):
    """A routing decision (ml.selectors.decision_dict): the candidates with their scores (lower is
    better), the chosen pool, the confidence, the model version, the fallback and, once the task
    ended, how it turned out (`outcome`, null before)."""

    task = serializers.UUIDField()
    strategy = serializers.CharField()
    pool = serializers.CharField(allow_null=True)
    candidates = serializers.JSONField()
    confidence = serializers.FloatField(allow_null=True, help_text="probability that the chosen pool is the best")
    model_version = serializers.CharField()
    fallback = serializers.CharField(help_text="why the strategy did not decide itself; empty when it did")
    reason = serializers.CharField()
    predicted_seconds = serializers.FloatField(allow_null=True)
    predicted_p90 = serializers.FloatField(allow_null=True)
    predicted_success = serializers.FloatField(allow_null=True)
    decided_at = serializers.DateTimeField()
    decision_ms = serializers.FloatField()
    outcome = OutcomeSerializer(allow_null=True)

    def to_representation(self, instance: Any) -> dict:
        return super().to_representation(decision_dict(instance) if isinstance(instance, RoutingDecision) else instance)


class PredictionSerializer(serializers.Serializer):
    """A queued or running task's ETA (ml.selectors.task_prediction); the numbers are null, and
    `reason` says why, when no model predicts."""

    eta_seconds = serializers.FloatField(allow_null=True, help_text="seconds from now until done, at p50")
    eta_p90_seconds = serializers.FloatField(allow_null=True)
    eta = serializers.DateTimeField(allow_null=True, help_text="when it is expected done (p50)")
    wait_seconds = serializers.FloatField(allow_null=True, help_text="a queued task's wait for the work ahead")
    model_version = serializers.CharField(allow_null=True)
    reason = serializers.CharField(allow_null=True)


class TaskDetailSerializer(TaskSerializer):
    shared_plan = False  # a nested serializer (the request's context) among its fields
    attempts_detail = AttemptSerializer(source="attempt_set", many=True, read_only=True)
    recent_events = serializers.SerializerMethodField()
    prediction = serializers.SerializerMethodField(help_text="queued or running tasks only; null otherwise")
    decision = serializers.SerializerMethodField(help_text="why the task went to its pool; null if not routed")

    class Meta(TaskSerializer.Meta):
        fields = [*TaskSerializer.Meta.fields, "attempts_detail", "recent_events", "prediction", "decision"]
        read_only_fields = fields

    def get_recent_events(self, task: Task) -> list[dict]:
        events = task.events.select_related("agent", "pool").order_by("-id")[:50]
        return EventSerializer(reversed(list(events)), many=True).data  # type: ignore[return-value]  # a ReturnList; the stubs say ReturnDict

    @extend_schema_field(PredictionSerializer(allow_null=True))
    def get_prediction(self, task: Task) -> dict | None:
        block = task_prediction(task)
        return None if block is None else PredictionSerializer(block).data

    @extend_schema_field(DecisionSerializer(allow_null=True))
    def get_decision(self, task: Task) -> dict | None:
        decision = RoutingDecision.objects.filter(task_id=task.id).select_related("chosen_pool").first()
        return None if decision is None else DecisionSerializer(decision).data


class AgentSerializer(serializers.ModelSerializer):
    pool = serializers.CharField(source="pool.name", read_only=True)

    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "pool",
            "status",
            "host",
            "pid",
            "concurrency",
            "load",
            "resources",
            "last_heartbeat",
            "started_at",
            "stopped_at",
        ]
        read_only_fields = fields


# The schema's maximum; validate() applies the pool's own configured maximum, which may be lower.
# (32767: the column is a small integer.)
_INSTANCES_BOUND: dict[str, Any] = {
    "max_value": min(settings.HIVE_CONFIG.multi_agent.max_agents, 32767),
    "error_messages": {"max_value": "must be at most {max_value} (multi_agent.max_agents)"},
}


class PoolSerializer(StrictModelSerializer):
    """A pool as the API shows it. PATCH may change its instance bounds only, within the
    configuration: `max_instances` up to the pool's configured maximum and multi_agent.max_agents."""

    min_instances = StrictIntegerField(required=False, min_value=0, **_INSTANCES_BOUND)
    max_instances = StrictIntegerField(required=False, min_value=1, **_INSTANCES_BOUND)
    desired_instances = StrictIntegerField(required=False, min_value=0, **_INSTANCES_BOUND)
    queued = serializers.IntegerField(read_only=True)
    running = serializers.IntegerField(read_only=True)
    agents_online = serializers.IntegerField(read_only=True)
    queue_depth = serializers.SerializerMethodField()
    program_missing = serializers.SerializerMethodField()

    class Meta:
        model = AgentPool
        fields = [
            "name",
            "capabilities",
            "concurrency",
            "min_instances",
            "max_instances",
            "desired_instances",
            "allow_commands",
            "max_attempts",
            "enabled",
            "queued",
            "running",
            "agents_online",
            "queue_depth",
            "program_missing",
        ]
        read_only_fields = [f for f in fields if f not in ("min_instances", "max_instances", "desired_instances")]

    def get_queue_depth(self, pool: AgentPool) -> int | None:
        return (self.context.get("depths") or {}).get(pool.queue)

    def get_program_missing(self, pool: AgentPool) -> str | None:
        return pool.program_missing()

    def validate(self, attrs: dict) -> dict:
        low = attrs.get("min_instances", self.instance.min_instances if self.instance else 0)
        high = attrs.get("max_instances", self.instance.max_instances if self.instance else 1)
        ceiling, source = instance_ceiling(self.instance.name if self.instance else "")
        if "max_instances" in attrs and high > ceiling:
            raise serializers.ValidationError({"max_instances": [f"must be at most {ceiling} ({source})"]})
        if high < 1 or low > high:
            raise serializers.ValidationError(
                "min_instances must be at most max_instances, and max_instances at least 1"
            )
        desired = attrs.get("desired_instances", self.instance.desired_instances if self.instance else low)
        attrs["desired_instances"] = min(max(desired, low), high)
        return attrs


def instance_ceiling(pool_name: str) -> tuple[int, str]:
    """The most instances a pool may be given at run time, and the configuration key(s) that say so."""
    config = settings.HIVE_CONFIG
    ceiling, source = config.multi_agent.max_agents, "multi_agent.max_agents"
    pool = config.agents.get(pool_name)
    if pool is not None and pool.max_instances < ceiling:
        ceiling, source = pool.max_instances, f"agents.{pool_name}.max_instances in the configuration"
    return ceiling, source


class EventCreateSerializer(StrictSerializer):
    """A custom event for the stream, optionally about one of the caller's tasks."""

    type = StrictRegexField(
        r"^custom\.[a-z0-9_.-]{1,56}$", max_length=63, help_text="custom events are named custom.<name>"
    )
    task = StrictUUIDField(required=False, allow_null=True, default=None)
    payload = JsonObjectField(required=False, default=dict)


class StatusSerializer(serializers.Serializer):
    status = serializers.CharField()
    version = serializers.CharField()
    pools = serializers.IntegerField()
    agents_online = serializers.IntegerField()
    tasks_queued = serializers.IntegerField()
    tasks_running = serializers.IntegerField()
    database = serializers.CharField()
    redis = serializers.CharField()


class PoolScaleSetSerializer(StrictSerializer):
    """POST /api/v1/pools/<name>/scale: an operator's target (coordination.scaling.services.scaling_set)."""

    desired = StrictIntegerField(min_value=0, max_value=32767, help_text="instances, within the pool's min..max")
    reason = StrictCharField(required=False, allow_blank=True, default="", max_length=500)


class PoolScaleSerializer(serializers.Serializer):
    """What KEDA's metrics-api scaler reads (`valueLocation: desired`): the pool's decided size."""

    pool = serializers.CharField(help_text="the pool's name")
    desired = serializers.IntegerField(help_text="instances the scaling policy wants (AgentPool.desired_instances)")
    instances = serializers.IntegerField(help_text="agents of the pool online or draining now")
    min = serializers.IntegerField(help_text="the pool's min_instances")
    max = serializers.IntegerField(help_text="the pool's max_instances")
