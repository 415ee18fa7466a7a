"""Tasks, their attempts, the ordered event log, and coordination sessions (several tasks, one goal)."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from agents.models import Agent, AgentPool


class Team(models.Model):
    """Who owns tasks, API keys and webhook sources. Users and keys see their own team's tasks."""

    name = models.CharField(max_length=100, unique=True)
    budget_usd_per_day = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="USD the team's prompt tasks may spend in a UTC day; then new ones wait (empty: no limit)",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.OneToOneField("auth.User", on_delete=models.CASCADE, related_name="membership")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")

    def __str__(self) -> str:
        return f"{self.user} in {self.team}"


DEFAULT_TEAM = "default"


class RoutingToken(models.Model):
    """A random number that database triggers replace whenever a pool or team row changes.

    Triggers (migration 0007), not signals, so that every writer counts: the admin, the API, the
    CLI, `QuerySet.update`, raw SQL and other processes. On PostgreSQL the trigger runs at commit
    (a deferred constraint trigger), so the row lock it takes is the last one a transaction asks
    for and cannot join a deadlock. A process caches the enabled pools and the default team with
    the token it read first, and reads them again only when the token differs
    (coordination.snapshot). Random, not a counter: a rolled-back change must not let a later
    change come back to a value some process has already cached.
    """

    name = models.CharField(max_length=40, primary_key=True)
    token = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.name}: {self.token}"


class Priority(models.TextChoices):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


# Redis serves broker priority 0 first (settings.BROKER_PRIORITY_STEPS).
BROKER_PRIORITY = {Priority.CRITICAL: 0, Priority.HIGH: 3, Priority.NORMAL: 6, Priority.LOW: 9}


class Source(models.TextChoices):
    API = "api"
    CLI = "cli"
    PYTHON = "python"
    WEBHOOK = "webhook"
    GITHUB = "github"
    SLACK = "slack"
    DEMO = "demo"
    SESSION = "session"  # a step of a coordination session (the session keeps where it came from)


class TaskQuerySet(models.QuerySet):
    def active(self) -> TaskQuerySet:
        return self.filter(status__in=Task.ACTIVE_STATUSES)

    def visible_to(self, *, team_id: int | None, staff: bool) -> TaskQuerySet:
        """Staff see every task; everyone else only their own team's."""
        if staff:
            return self
        return self.filter(team_id=team_id) if team_id else self.none()


class Task(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        DEAD = "dead"

    ACTIVE_STATUSES = (Status.PENDING, Status.QUEUED, Status.RUNNING)
    TERMINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.DEAD)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    prompt = models.TextField(blank=True)
    command = models.JSONField(null=True, blank=True, help_text="argv run instead of the pool's agent")
    payload = models.JSONField(default=dict, blank=True)
    task_type = models.CharField(max_length=64, default="general")
    capabilities = models.JSONField(default=list)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    complexity = models.PositiveSmallIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    pool = models.ForeignKey(AgentPool, null=True, blank=True, on_delete=models.PROTECT, related_name="tasks")
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks")
    attempts = models.PositiveIntegerField(default=0, help_text="attempts started, ever")
    attempt_budget = models.PositiveSmallIntegerField(default=3, help_text="attempts allowed per run")
    max_attempts = models.PositiveIntegerField(default=3, help_text="attempt number at which the task is dead")
    timeout = models.FloatField(help_text="seconds one attempt may run")
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001  (unique per team only when given)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.PYTHON)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="tasks")
    external_ref = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    available_at = models.DateTimeField(null=True, blank=True, help_text="not to run before (backoff)")
    dispatched_at = models.DateTimeField(null=True, blank=True, help_text="last message sent to the broker")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    hold_reason = models.TextField(
        blank=True, help_text="why the queued task waits (a spent budget); empty: it does not"
    )

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "-created_at"]),
            models.Index(fields=["pool", "status"]),
            models.Index(fields=["agent", "status"]),
            models.Index(fields=["priority", "status"]),
            models.Index(fields=["task_type", "status"]),
            models.Index(fields=["-created_at"]),
            models.Index(fields=["status", "dispatched_at"]),
            models.Index(fields=["team", "-created_at"]),
            models.Index(fields=["team", "status", "-created_at"]),
            # Beat's reads of the work in hand (coordination.scaling.services.pool_states, every
            # scaling and monitoring round): the few active rows only, never the finished history,
            # and every column they read, so PostgreSQL answers from the index alone.
            models.Index(
                fields=["pool", "status", "available_at"],
                condition=models.Q(status__in=["pending", "queued", "running"]),
                name="task_active_pool",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="task_idempotency_key_per_team",
            )
        ]

    def __str__(self) -> str:
        return f"{self.short_id} {self.status}"

    @property
    def short_id(self) -> str:
        return str(self.id)[:8]

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL_STATUSES

    @property
    def broker_priority(self) -> int:
        return BROKER_PRIORITY[Priority(self.priority)]

    @property
    def routed_pool(self) -> AgentPool:
        """The pool the task runs on. `task_submit` routes before it stores and the pool is
        protected from deletion, so every stored task has one; the column is nullable only
        because it always was."""
        pool = self.pool
        if pool is None:
            raise LookupError(f"task {self.id} has no pool")
        return pool

    def title(self) -> str:
        if self.command:
            return " ".join(self.command)[:120]
        return self.prompt[:120]


class TaskAttempt(models.Model):
    class Outcome(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        TIMEOUT = "timeout"
        CANCELLED = "cancelled"
        LOST = "lost"
        ERROR = "error"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="attempt_set")
    number = models.PositiveIntegerField()
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="attempts")
    host = models.CharField(max_length=200, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True, help_text="worker process running the attempt")
    pgid = models.PositiveIntegerField(null=True, blank=True, help_text="process group of the agent program")
    workspace = models.CharField(max_length=500, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING)
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    is_error = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    session_id = models.CharField(max_length=200, blank=True)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    num_turns = models.PositiveIntegerField(null=True, blank=True)
    log_path = models.CharField(max_length=500, blank=True)
    output_tail = models.TextField(blank=True)

    class Meta:
        ordering = ["task", "number"]
        constraints = [models.UniqueConstraint(fields=["task", "number"], name="attempt_number_unique")]
        # started_at: today's spend, which budgets read before every start (coordination.budgets)
        indexes = [
            models.Index(fields=["outcome", "heartbeat_at"]),
            models.Index(fields=["started_at"]),
            # An agent's running attempts (recovery when it goes offline or restarts, drain): not
            # the thousands it has finished.
            models.Index(fields=["agent"], condition=models.Q(outcome="running"), name="attempt_running_agent"),
        ]

    def __str__(self) -> str:
        return f"{self.task.short_id}#{self.number} {self.outcome}"

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class Event(models.Model):
    """One state change. The id orders the log, for replay after a reconnect and for retention."""

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=64)
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    pool = models.ForeignKey(AgentPool, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="events",
        help_text="the task's team; empty for events about shared agents and pools",
    )
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["task", "id"]),
            models.Index(fields=["type", "id"]),
            models.Index(fields=["team", "id"]),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.type}"

    def as_message(self) -> dict:
        return {
            "id": self.id,
            "type": self.type,
            "task": str(self.task_id) if self.task_id else None,
            "agent": self.agent.name if self.agent_id and self.agent else None,
            "pool": self.pool.name if self.pool_id and self.pool else None,
            "team": self.team_id,
            "payload": self.payload,
            "at": self.created_at.isoformat(),
        }


class ScalingDecision(models.Model):
    """One change of a pool's desired instance count: the inputs, the verdict and who acts on it.

    `applied` is False for a recommendation (scaling.auto_scale off): recorded, not followed.
    """

    class Actuator(models.TextChoices):
        LOCAL = "local"  # `hive up` starts and stops worker processes
        KEDA = "keda"  # Kubernetes: KEDA reads the desired count
        MANUAL = "manual"  # an operator's target (`hive scale`, the API)

    pool = models.ForeignKey(AgentPool, on_delete=models.CASCADE, related_name="scaling_decisions")
    inputs = models.JSONField(default=dict, blank=True, help_text="the pool's state the policy read")
    previous = models.PositiveIntegerField()
    desired = models.PositiveIntegerField()
    reason = models.TextField()
    actuator = models.CharField(max_length=10, choices=Actuator.choices)
    applied = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["pool", "-created_at"]), models.Index(fields=["-created_at"])]

    def __str__(self) -> str:
        return f"{self.pool_id}: {self.previous} -> {self.desired} ({self.actuator})"


class PoolSample(models.Model):
    """A pool's size and work at one moment, written by the monitoring beat every
    `performance_monitoring.monitoring_interval` and kept a day: the dashboard's charts."""

    pool = models.ForeignKey(AgentPool, on_delete=models.CASCADE, related_name="samples")
    at = models.DateTimeField(default=timezone.now)
    desired = models.PositiveIntegerField(help_text="instances the scaler wants")
    online = models.PositiveIntegerField(help_text="instances online and consuming")
    queued = models.PositiveIntegerField(help_text="tasks queued in the database (ready and delayed)")
    running = models.PositiveIntegerField()

    class Meta:
        ordering = ["pool_id", "at"]
        indexes = [models.Index(fields=["pool", "at"]), models.Index(fields=["at"])]

    def __str__(self) -> str:
        return f"{self.pool_id} at {self.at.isoformat()}: {self.online}/{self.desired}, {self.queued} queued"


class AlertQuerySet(models.QuerySet):
    def active(self) -> AlertQuerySet:
        return self.filter(resolved_at__isnull=True)


class Alert(models.Model):
    """A threshold crossed: one row per episode, from its raise until it clears (`resolved_at`).

    At most one row per subject is active, which a partial unique constraint enforces: however
    many processes evaluate, an episode is raised once. Alerts are about the shared fleet (hosts
    and pools), so every caller who may read sees them all.
    """

    class Level(models.TextChoices):
        WARNING = "warning"
        CRITICAL = "critical"

    subject = models.CharField(max_length=250, help_text="what crossed: memory@<host>, cpu@<host>, queue:<pool>")
    resource = models.CharField(max_length=10, help_text="cpu, memory, disk or queue")
    host = models.CharField(max_length=200, blank=True, help_text="the machine or container measured")
    pool = models.ForeignKey(AgentPool, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    agents = models.JSONField(default=list, blank=True, help_text="the agents that reported it")
    level = models.CharField(max_length=10, choices=Level.choices)
    value = models.FloatField(help_text="the last value seen (percent, or tasks queued)")
    peak = models.FloatField(help_text="the highest value seen in this episode")
    threshold = models.FloatField(help_text="the threshold of the current level")
    source = models.CharField(max_length=120, help_text="the configuration key of that threshold")
    message = models.TextField()
    recommendation = models.TextField(blank=True, help_text="what to do (performance_monitoring.optimization_enabled)")
    raised_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, help_text="last evaluated")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True, help_text="why it cleared")

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subject"], condition=models.Q(resolved_at__isnull=True), name="alert_one_active_per_subject"
            )
        ]
        indexes = [models.Index(fields=["-raised_at"]), models.Index(fields=["resolved_at"])]

    def __str__(self) -> str:
        return f"{self.level} {self.subject} ({'active' if self.is_active else 'resolved'})"

    @property
    def is_active(self) -> bool:
        return self.resolved_at is None

    @property
    def status(self) -> str:
        return "active" if self.is_active else "resolved"


class Lease(models.Model):
    """A named lease held by one process until it expires: one beat at a time acts on the pools.

    Taken by one conditional UPDATE (free or expired -> mine), so it works the same on SQLite and
    PostgreSQL and needs nothing but the database.
    """

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or 'nobody'} until {self.expires_at.isoformat()}"


class SessionQuerySet(models.QuerySet):
    def active(self) -> SessionQuerySet:
        return self.filter(status__in=CoordinationSession.ACTIVE_STATUSES)

    def visible_to(self, *, team_id: int | None, staff: bool) -> SessionQuerySet:
        """As for tasks: staff see every session; everyone else only their own team's."""
        if staff:
            return self
        return self.filter(team_id=team_id) if team_id else self.none()


class CoordinationSession(models.Model):
    """One goal carried out by several tasks (its steps) across pools: a DAG, a fan-out or a consensus.

    The database drives it: `coordination.sessions.session_advance` moves it on when a step's task
    ends and from beat, with conditional UPDATEs, so a lost message or a restart changes nothing.
    """

    class Mode(models.TextChoices):
        DAG = "dag"
        FAN_OUT = "fan_out"
        CONSENSUS = "consensus"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        TIMED_OUT = "timed_out"
        NO_CONSENSUS = "no_consensus"

    ACTIVE_STATUSES = (Status.PENDING, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, help_text="the session's goal")
    mode = models.CharField(max_length=10, choices=Mode.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="sessions")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.PYTHON)
    plan = models.JSONField(help_text="the plan as validated")
    decision = models.JSONField(null=True, blank=True, help_text="consensus: answer, share, tally; fan-out: results")
    reason = models.TextField(blank=True, help_text="why the session ended as it did")
    continue_on_failure = models.BooleanField(default=False)
    consensus_threshold = models.FloatField(null=True, blank=True)
    timeout = models.FloatField(help_text="seconds the session may run")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    objects = SessionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "deadline"]),
            models.Index(fields=["team", "-created_at"]),
            models.Index(fields=["-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.short_id} {self.mode} {self.status}"

    @property
    def short_id(self) -> str:
        return str(self.id)[:8]

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class SessionStep(models.Model):
    """One named step of a session: a task spec, the steps it waits for, and the task once queued."""

    class Status(models.TextChoices):
        WAITING = "waiting"
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
    TERMINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    session = models.ForeignKey(CoordinationSession, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=64)
    position = models.PositiveSmallIntegerField(help_text="order in the plan")
    spec = models.JSONField(help_text="the task to submit: prompt or command, capabilities, priority, timeout, pool")
    depends_on = models.JSONField(default=list, blank=True)
    task = models.OneToOneField(Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="session_step")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    result = models.JSONField(null=True, blank=True)
    output_tail = models.TextField(blank=True)
    reason = models.TextField(blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    latency = models.FloatField(
        null=True, blank=True, help_text="coordination latency: seconds from its last dependency's end to its queueing"
    )

    class Meta:
        ordering = ["session_id", "position"]  # the id, not the session's own ordering (no join)
        constraints = [models.UniqueConstraint(fields=["session", "name"], name="session_step_name_unique")]
        indexes = [models.Index(fields=["session", "status"])]

    def __str__(self) -> str:
        return f"{self.session.short_id}/{self.name} {self.status}"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL_STATUSES


class RoutingDecision(models.Model):
    """Why a task went where it went, and, once it finished, how that turned out.

    Written with the task at submit; closed when the task reaches a terminal status. `predicted_*`
    describe one attempt on the chosen pool as the strategy saw it (empty when it predicted
    nothing); `duration` is the last attempt's actual duration, to compare with them.
    """

    task = models.OneToOneField(Task, on_delete=models.CASCADE, related_name="decision")
    strategy = models.CharField(max_length=40)
    chosen_pool = models.ForeignKey(AgentPool, null=True, on_delete=models.SET_NULL, related_name="decisions")
    candidates = models.JSONField(default=list, blank=True)
    confidence = models.FloatField(null=True, blank=True, help_text="probability that the chosen pool is the best")
    model_version = models.CharField(max_length=100, blank=True)
    fallback = models.CharField(max_length=40, blank=True, help_text="why the strategy did not decide itself")
    reason = models.TextField(blank=True)
    predicted_seconds = models.FloatField(null=True, blank=True, help_text="p50 duration of one attempt")
    predicted_p90 = models.FloatField(null=True, blank=True)
    predicted_success = models.FloatField(null=True, blank=True)
    decided_at = models.DateTimeField()
    decision_ms = models.FloatField(default=0.0)
    duration = models.FloatField(null=True, blank=True, help_text="seconds of the last attempt")
    success = models.BooleanField(null=True, blank=True)
    attempts = models.PositiveIntegerField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-decided_at"]
        indexes = [
            models.Index(fields=["-decided_at"]),
            models.Index(fields=["strategy", "-decided_at"]),
            models.Index(fields=["chosen_pool", "closed_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.task_id} -> {self.chosen_pool_id} by {self.strategy}"
