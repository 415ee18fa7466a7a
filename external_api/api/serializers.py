"""Explicit fields; everything the server decides (status, attempts, agent, team, times) is read-only."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.models import Agent, AgentPool
from coordination.models import Event, Priority, Task, TaskAttempt
from coordination.services import contains_nul


class TaskCreateSerializer(serializers.Serializer):
    prompt = serializers.CharField(required=False, allow_blank=True, default="", max_length=100_000)
    command = serializers.ListField(child=serializers.CharField(max_length=10_000, allow_blank=True), required=False,
                                    allow_null=True, default=None, max_length=1000)  # fmt: skip
    capabilities = serializers.ListField(child=serializers.CharField(max_length=64), min_length=1, max_length=50)
    payload = serializers.DictField(required=False, default=dict)
    task_type = serializers.CharField(required=False, default="general", max_length=64)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False, default=Priority.NORMAL)
    complexity = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=10)
    timeout = serializers.FloatField(required=False, allow_null=True, default=None, min_value=0.001, max_value=86400)
    max_attempts = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=20)
    external_ref = serializers.CharField(required=False, default="", allow_blank=True, max_length=300)


class AttemptSerializer(serializers.ModelSerializer):
    agent = serializers.CharField(source="agent.name", default=None, allow_null=True, read_only=True)
    result = serializers.SerializerMethodField(help_text="the task's result, on the attempt that succeeded")

    class Meta:
        model = TaskAttempt
        fields = ["number", "outcome", "agent", "started_at", "finished_at", "exit_code", "is_error", "error",
                  "result", "session_id", "cost_usd", "num_turns", "output_tail"]  # fmt: skip
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


class TaskSerializer(serializers.ModelSerializer):
    pool = serializers.CharField(source="pool.name", default=None, allow_null=True, read_only=True)
    agent = serializers.CharField(source="agent.name", default=None, allow_null=True, read_only=True)
    team = serializers.CharField(source="team.name", default=None, allow_null=True, read_only=True)

    class Meta:
        model = Task
        fields = ["id", "status", "prompt", "command", "payload", "task_type", "capabilities", "priority",
                  "complexity", "timeout", "attempts", "max_attempts", "pool", "agent", "team", "source",
                  "external_ref", "created_at", "queued_at", "started_at", "finished_at", "result", "error"]  # fmt: skip
        read_only_fields = fields


class TaskDetailSerializer(TaskSerializer):
    attempts_detail = AttemptSerializer(source="attempt_set", many=True, read_only=True)
    recent_events = serializers.SerializerMethodField()

    class Meta(TaskSerializer.Meta):
        fields = [*TaskSerializer.Meta.fields, "attempts_detail", "recent_events"]
        read_only_fields = fields

    def get_recent_events(self, task: Task) -> list[dict]:
        events = task.events.select_related("agent", "pool").order_by("-id")[:50]
        return EventSerializer(reversed(list(events)), many=True).data


class AgentSerializer(serializers.ModelSerializer):
    pool = serializers.CharField(source="pool.name", read_only=True)

    class Meta:
        model = Agent
        fields = ["id", "name", "pool", "status", "host", "pid", "concurrency", "load", "resources",
                  "last_heartbeat", "started_at", "stopped_at"]  # fmt: skip
        read_only_fields = fields


class PoolSerializer(serializers.ModelSerializer):
    queued = serializers.IntegerField(read_only=True)
    running = serializers.IntegerField(read_only=True)
    agents_online = serializers.IntegerField(read_only=True)
    queue_depth = serializers.SerializerMethodField()
    program_missing = serializers.SerializerMethodField()

    class Meta:
        model = AgentPool
        fields = ["name", "capabilities", "concurrency", "min_instances", "max_instances", "desired_instances",
                  "allow_commands", "max_attempts", "enabled", "queued", "running", "agents_online", "queue_depth",
                  "program_missing"]  # fmt: skip
        read_only_fields = [f for f in fields if f not in ("min_instances", "max_instances", "desired_instances")]

    def get_queue_depth(self, pool: AgentPool) -> int | None:
        return (self.context.get("depths") or {}).get(pool.queue)

    def get_program_missing(self, pool: AgentPool) -> str | None:
        return pool.program_missing()

    def validate(self, attrs: dict) -> dict:
        low = attrs.get("min_instances", self.instance.min_instances if self.instance else 0)
        high = attrs.get("max_instances", self.instance.max_instances if self.instance else 1)
        if high < 1 or low > high:
            raise serializers.ValidationError(
                "min_instances must be at most max_instances, and max_instances at least 1"
            )
        desired = attrs.get("desired_instances", self.instance.desired_instances if self.instance else low)
        attrs["desired_instances"] = min(max(desired, low), high)
        return attrs


class EventCreateSerializer(serializers.Serializer):
    type = serializers.RegexField(r"^custom\.[a-z0-9_.-]{1,56}$", help_text="custom events are named custom.<name>")
    task = serializers.UUIDField(required=False, allow_null=True, default=None)
    payload = serializers.DictField(required=False, default=dict)

    def validate_payload(self, payload: dict) -> dict:
        if contains_nul(payload):
            raise serializers.ValidationError("must not contain NUL characters")
        return payload


class StatusSerializer(serializers.Serializer):
    status = serializers.CharField()
    version = serializers.CharField()
    pools = serializers.IntegerField()
    agents_online = serializers.IntegerField()
    tasks_queued = serializers.IntegerField()
    tasks_running = serializers.IntegerField()
    database = serializers.CharField()
    redis = serializers.CharField()


class PoolScaleSerializer(serializers.Serializer):
    """What KEDA's metrics-api scaler reads (`valueLocation: desired`): the pool's decided size."""

    pool = serializers.CharField(help_text="the pool's name")
    desired = serializers.IntegerField(help_text="instances the scaling policy wants (AgentPool.desired_instances)")
    instances = serializers.IntegerField(help_text="agents of the pool online or draining now")
    min = serializers.IntegerField(help_text="the pool's min_instances")
    max = serializers.IntegerField(help_text="the pool's max_instances")
