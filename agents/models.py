"""Agent pools (one agent type: capabilities, runner, workspace, size) and agents (one worker)."""

from __future__ import annotations

import shutil
import uuid
from datetime import timedelta

from django.db import models
from django.utils import timezone


class AgentPool(models.Model):
    """An agent type. Its definition comes from the configuration; `pool_sync` keeps rows in step."""

    name = models.SlugField(max_length=40, unique=True)
    capabilities = models.JSONField(default=list)
    runner = models.JSONField(default=dict, help_text="runner configuration: kind, argv, env, timeout")
    workspace = models.JSONField(default=dict)
    concurrency = models.PositiveSmallIntegerField(default=2)
    min_instances = models.PositiveSmallIntegerField(default=0)
    max_instances = models.PositiveSmallIntegerField(default=1)
    desired_instances = models.PositiveSmallIntegerField(default=1)
    allow_commands = models.BooleanField(default=True)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    max_concurrent = models.PositiveIntegerField(
        null=True, blank=True, help_text="tasks running at once across all the pool's workers (empty: no limit)"
    )
    max_starts_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="task starts per minute across all the pool's workers (empty: no limit)"
    )
    budget_usd_per_day = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="USD the pool's prompt tasks may spend in a UTC day; then new ones wait (empty: no limit)",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        return f"hive.{self.name}"

    @property
    def timeout(self) -> float:
        return float(self.runner.get("timeout", 1800))

    def covers(self, capabilities: list[str]) -> bool:
        return set(capabilities) <= set(self.capabilities)

    def program(self) -> str | None:
        """The agent program this pool starts for prompt tasks (argv[0]), if it is a command runner."""
        if self.runner.get("kind", "command") != "command":
            return None
        argv = self.runner.get("argv") or []
        return argv[0] if argv else None

    def program_missing(self) -> str | None:
        """Why prompt tasks cannot run here, or None when the program is installed."""
        program = self.program()
        if program and shutil.which(program) is None:
            return f"agent program {program!r} is not installed on this machine"
        return None


class AgentQuerySet(models.QuerySet):
    def live(self) -> AgentQuerySet:
        return self.exclude(status=Agent.Status.OFFLINE)

    def stale(self, *, older_than: timedelta) -> AgentQuerySet:
        return self.live().filter(last_heartbeat__lt=timezone.now() - older_than)


class Agent(models.Model):
    """One Celery worker consuming a pool's queue. Its name is the Celery node name."""

    class Status(models.TextChoices):
        ONLINE = "online"
        DRAINING = "draining"
        OFFLINE = "offline"

    name = models.CharField(max_length=200, unique=True)
    pool = models.ForeignKey(AgentPool, on_delete=models.PROTECT, related_name="agents")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ONLINE)
    host = models.CharField(max_length=200, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    incarnation = models.UUIDField(default=uuid.uuid4, help_text="changes every time the worker starts")
    concurrency = models.PositiveSmallIntegerField(default=1)
    load = models.PositiveSmallIntegerField(default=0, help_text="tasks running at the last heartbeat")
    resources = models.JSONField(default=dict, blank=True)
    last_heartbeat = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["pool__name", "name"]
        indexes = [models.Index(fields=["status", "last_heartbeat"])]

    def __str__(self) -> str:
        return self.name


class PerformanceProfile(models.Model):
    """How one agent of a pool does on one task type, updated as each of its attempts finishes.

    `success_rate`, `mean_seconds` and `cost_usd` are moving averages: a plain average over the
    first 1/learning_rate attempts, then an exponential one with the configured learning rate, so
    a change in behaviour shows without the history being forgotten. `p50_seconds`/`p95_seconds`
    come from the last RECENT_WINDOW durations, kept in `recent`.
    """

    RECENT_WINDOW = 50

    pool = models.ForeignKey(AgentPool, on_delete=models.CASCADE, related_name="profiles")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="profiles")
    task_type = models.CharField(max_length=64)
    count = models.PositiveIntegerField(default=0, help_text="finished attempts counted")
    successes = models.PositiveIntegerField(default=0)
    success_rate = models.FloatField(default=0.0, help_text="moving average of success (0..1)")
    mean_seconds = models.FloatField(null=True, blank=True, help_text="moving average of attempt duration")
    p50_seconds = models.FloatField(null=True, blank=True)
    p95_seconds = models.FloatField(null=True, blank=True)
    cost_usd = models.FloatField(null=True, blank=True, help_text="moving average of an attempt's cost")
    recent = models.JSONField(default=list, blank=True, help_text="the last durations, newest last")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pool__name", "task_type", "agent__name"]
        constraints = [
            models.UniqueConstraint(fields=["pool", "agent", "task_type"], name="profile_pool_agent_type_unique")
        ]
        indexes = [models.Index(fields=["pool", "task_type"])]

    def __str__(self) -> str:
        return f"{self.agent_id}@{self.pool_id} {self.task_type}: {self.success_rate:.2f} of {self.count}"
