"""The admin console: pools and agents (with drain), tasks with their attempts and events (with cancel, retry,
redrive) and the routing decision that placed them, coordination sessions with their steps (with cancel),
teams with their daily budgets, scaling decisions, routing decisions and alerts (read only)."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from agents.models import Agent, AgentPool
from coordination.budgets import spent_today, team_budget_set
from coordination.errors import HiveError
from coordination.fleet import agent_drain
from coordination.models import (
    Alert,
    CoordinationSession,
    Event,
    RoutingDecision,
    ScalingDecision,
    SessionStep,
    Task,
    TaskAttempt,
    Team,
)
from coordination.services import task_cancel, task_redrive, task_retry
from coordination.sessions import session_cancel


class TaskAttemptInline(admin.TabularInline):
    model = TaskAttempt
    extra = 0
    can_delete = False
    fields = (
        "number",
        "outcome",
        "agent",
        "started_at",
        "finished_at",
        "exit_code",
        "is_error",
        "error",
        "cost_usd",
        "num_turns",
        "log_path",
    )
    readonly_fields = fields
    show_change_link = True


class EventInline(admin.TabularInline):
    model = Event
    extra = 0
    can_delete = False
    fields = ("id", "type", "agent", "created_at", "payload")
    readonly_fields = fields
    ordering = ("-id",)
    max_num = 0


def decision_outcome(decision: RoutingDecision) -> str:
    """How the routed task turned out: open while it runs, then succeeded or failed, with its time."""
    if decision.closed_at is None:
        return "open"
    if decision.success is None:
        return "closed without a verdict (cancelled)"
    tries = f"{decision.attempts} attempt(s)" if decision.attempts else "no attempt"
    took = f" in {decision.duration:.1f}s" if decision.duration is not None else ""
    return f"{'succeeded' if decision.success else 'failed'}{took}, {tries}"


class RoutingDecisionInline(admin.StackedInline):
    model = RoutingDecision
    verbose_name = verbose_name_plural = "routing decision"
    extra = 0
    can_delete = False
    max_num = 0
    fields = (
        "strategy",
        "chosen_pool",
        "confidence",
        "fallback",
        "model_version",
        "reason",
        "candidates",
        "predicted_seconds",
        "predicted_p90",
        "predicted_success",
        "decided_at",
        "decision_ms",
        "outcome",
    )
    readonly_fields = fields

    @admin.display(description="outcome")
    def outcome(self, decision: RoutingDecision) -> str:
        return decision_outcome(decision)


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = (
        "short_id",
        "status",
        "pool",
        "agent",
        "priority",
        "task_type",
        "attempts",
        "source",
        "created_at",
        "title",
        "hold_reason",
    )
    list_filter = ("status", "priority", "pool", "source", "task_type")
    search_fields = ("id", "prompt", "external_ref", "idempotency_key")
    date_hierarchy = "created_at"
    list_select_related = ("pool", "agent")
    readonly_fields = [f.name for f in Task._meta.fields]
    inlines = [RoutingDecisionInline, TaskAttemptInline, EventInline]
    actions = ["cancel", "retry", "redrive"]

    def has_add_permission(self, request) -> bool:
        return False  # tasks enter through task_submit (API, CLI, webhooks), never a bare row

    def _apply(self, request, queryset, service, verb: str) -> None:
        done, refused = 0, []
        for task in queryset:
            try:
                service(task=task)
                done += 1
            except HiveError as exc:
                refused.append(exc.detail)
        if done:
            self.message_user(request, f"{verb} {done} task(s)", messages.SUCCESS)
        for detail in refused[:10]:
            self.message_user(request, detail, messages.WARNING)

    @admin.action(description="Cancel selected tasks")
    def cancel(self, request, queryset) -> None:
        self._apply(request, queryset, task_cancel, "cancelled")

    @admin.action(description="Retry selected tasks (failed, cancelled or dead)")
    def retry(self, request, queryset) -> None:
        self._apply(request, queryset, task_retry, "queued again")

    @admin.action(description="Redrive selected dead tasks")
    def redrive(self, request, queryset) -> None:
        self._apply(request, queryset, task_redrive, "redrove")


@admin.register(TaskAttempt)
class TaskAttemptAdmin(admin.ModelAdmin):
    list_display = ("__str__", "outcome", "agent", "started_at", "finished_at", "exit_code")
    list_filter = ("outcome",)
    search_fields = ("task__id", "session_id")
    readonly_fields = [f.name for f in TaskAttempt._meta.fields]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "task", "agent", "pool", "created_at")
    list_filter = ("type",)
    search_fields = ("task__id", "type")
    readonly_fields = ("id", "type", "task", "agent", "pool", "payload", "created_at")


class SessionStepInline(admin.TabularInline):
    model = SessionStep
    extra = 0
    can_delete = False
    fields = ("name", "status", "depends_on", "task", "queued_at", "finished_at", "latency", "reason")
    readonly_fields = fields
    ordering = ("position",)
    max_num = 0


@admin.register(CoordinationSession)
class CoordinationSessionAdmin(admin.ModelAdmin):
    list_display = ("short_id", "name", "mode", "status", "team", "source", "created_at", "finished_at")
    list_filter = ("status", "mode", "team", "source")
    search_fields = ("id", "name")
    date_hierarchy = "created_at"
    list_select_related = ("team",)
    readonly_fields = [f.name for f in CoordinationSession._meta.fields]
    inlines = [SessionStepInline]
    actions = ["cancel"]

    def has_add_permission(self, request) -> bool:
        return False  # sessions start from a checked plan (API, CLI, Python), never a bare row

    @admin.action(description="Cancel selected sessions")
    def cancel(self, request, queryset) -> None:
        done, refused = 0, []
        for session in queryset:
            try:
                session_cancel(session=session, reason=f"cancelled in the admin by {request.user}")
                done += 1
            except HiveError as exc:
                refused.append(exc.detail)
        if done:
            self.message_user(request, f"cancelled {done} session(s)", messages.SUCCESS)
        for detail in refused[:10]:
            self.message_user(request, detail, messages.WARNING)


@admin.register(AgentPool)
class AgentPoolAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "capability_list",
        "concurrency",
        "min_instances",
        "max_instances",
        "allow_commands",
        "enabled",
        "program_status",
        "budget_usd_per_day",
    )
    list_filter = ("enabled", "allow_commands")
    search_fields = ("name",)
    # budget_usd_per_day: agents.<pool>.budget_usd_per_day in the configuration (pool_sync would undo an edit)
    readonly_fields = ("name", "capabilities", "runner", "workspace", "budget_usd_per_day", "created_at", "updated_at")

    @admin.display(description="capabilities")
    def capability_list(self, pool: AgentPool) -> str:
        return ", ".join(pool.capabilities)

    @admin.display(description="agent program")
    def program_status(self, pool: AgentPool) -> str:
        return pool.program_missing() or f"{pool.program() or 'python'}: installed"


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "pool", "status", "load", "concurrency", "last_heartbeat", "host", "pid")
    list_filter = ("status", "pool")
    search_fields = ("name", "host")
    readonly_fields = (
        "name",
        "pool",
        "host",
        "pid",
        "incarnation",
        "concurrency",
        "load",
        "resources",
        "last_heartbeat",
        "started_at",
        "stopped_at",
    )
    actions = ["drain"]

    @admin.action(description="Drain: stop taking new tasks")
    def drain(self, request, queryset) -> None:
        for agent in queryset.select_related("pool"):
            agent_drain(agent=agent)
        self.message_user(request, f"draining {queryset.count()} agent(s)", messages.SUCCESS)


@admin.register(ScalingDecision)
class ScalingDecisionAdmin(admin.ModelAdmin):
    list_display = ("created_at", "pool", "previous", "desired", "actuator", "applied", "reason")
    list_filter = ("pool", "actuator", "applied")
    date_hierarchy = "created_at"
    list_select_related = ("pool",)
    readonly_fields = [f.name for f in ScalingDecision._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # decisions come from beat or scaling_set, with the pool's state they read


@admin.register(RoutingDecision)
class RoutingDecisionAdmin(admin.ModelAdmin):
    list_display = (
        "decided_at",
        "task_link",
        "strategy",
        "chosen_pool",
        "confidence",
        "fallback",
        "model_version",
        "outcome",
    )
    list_filter = ("strategy", "fallback", "chosen_pool")
    search_fields = ("task__id", "model_version", "reason")
    date_hierarchy = "decided_at"
    list_select_related = ("task", "chosen_pool")
    readonly_fields = [f.name for f in RoutingDecision._meta.fields] + ["outcome"]

    def has_add_permission(self, request) -> bool:
        return False  # decisions are written by routing at submit and closed when the task ends

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="task", ordering="task__created_at")
    def task_link(self, decision: RoutingDecision) -> str:
        url = reverse("admin:coordination_task_change", args=[decision.task_id])
        return format_html('<a href="{}">{}</a>', url, str(decision.task_id)[:8])

    @admin.display(description="outcome")
    def outcome(self, decision: RoutingDecision) -> str:
        return decision_outcome(decision)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    """A team's daily budget is set here or by `hive team budget`; either way its held tasks ask again."""

    list_display = ("name", "budget_usd_per_day", "spent_today", "created_at")
    search_fields = ("name",)
    fields = ("name", "budget_usd_per_day", "spent_today", "created_at")
    readonly_fields = ("spent_today", "created_at")

    @admin.display(description="spent today (UTC)")
    def spent_today(self, team: Team) -> str:
        return f"${spent_today(scope='team', ident=team.id):.4f}" if team.pk else "-"

    def save_model(self, request, obj: Team, form, change: bool) -> None:
        budget = obj.budget_usd_per_day
        if change and "budget_usd_per_day" in form.changed_data:
            obj.budget_usd_per_day = Team.objects.get(pk=obj.pk).budget_usd_per_day
            super().save_model(request, obj, form, change)  # the name, if it changed too
            team_budget_set(team=obj, budget=budget)  # publishes team.budget and releases held tasks
            return
        super().save_model(request, obj, form, change)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("raised_at", "level", "subject", "value", "threshold", "source", "resolved_at", "message")
    list_filter = ("level", "resource", ("resolved_at", admin.EmptyFieldListFilter), "pool")
    search_fields = ("subject", "host", "message")
    date_hierarchy = "raised_at"
    list_select_related = ("pool",)
    readonly_fields = [f.name for f in Alert._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # alerts are raised and resolved by the monitoring beat
