"""The admin console's model registry: every trained version with its held-out metric beside the
baseline's and why it was or was not activated (read only), and one action, to activate a version
by hand (a rollback), refused when its artifact no longer matches its checksum."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from coordination.models import Task
from ml.models import ModelVersion
from ml.registry import ArtifactRefused, activate_version, load_artifact


def primary_metric(kind: str) -> str:
    from ml.training import PRIMARY  # the training module is imported where it is used, not at start-up

    return PRIMARY[kind]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("kind", "version", "trained_at", "samples", "active", "metric_vs_baseline", "promotion")
    list_filter = ("kind", "active")
    ordering = ("kind", "-version")
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    actions = ["activate"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions are made by training (hive ml train, beat), with their metrics

    def has_change_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        return False  # a version is a record of a training; the one thing to do with it is the action

    def has_delete_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        return False

    def has_activate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("ml.change_modelversion")

    @admin.display(description="held-out error vs baseline")
    def metric_vs_baseline(self, row: ModelVersion) -> str:
        metric = primary_metric(row.kind)
        new, base = row.metrics.get(metric), row.baseline_metrics.get(metric)
        if new is None or base is None:
            return "-"
        return f"{metric} {new:.4g} vs {base:.4g}"

    @admin.action(description="Activate this version", permissions=["activate"])
    def activate(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        rows = list(queryset.order_by("kind", "version"))
        kinds = [row.kind for row in rows]
        if len(set(kinds)) != len(kinds):
            self.message_user(request, "select one version per kind to activate", messages.ERROR)
            return
        for row in rows:
            if row.active:
                self.message_user(request, f"{row.label} is already active", messages.INFO)
                continue
            try:
                load_artifact(row)
            except ArtifactRefused as exc:
                self.message_user(request, f"not activated: {exc}", messages.ERROR)
                continue
            activate_version(row)
            note = f"activated in the admin by {request.user} at {timezone.now():%Y-%m-%d %H:%M:%S} UTC"
            ModelVersion.objects.filter(id=row.id).update(
                promotion=f"{row.promotion}; {note}" if row.promotion else note
            )
            self.message_user(request, f"{row.label} is now the active {row.kind} model", messages.SUCCESS)


# The task's page with its ETA: coordination's admin cannot import ml (the layers), so ml, which
# loads after it, registers the task admin again with the ETA field added.
def eta_text(task: Task) -> str:
    """'in 1m20s (p90 2m05s, duration v3)' for a queued or running task; why there is none otherwise."""
    from ml.selectors import task_prediction

    if task.status not in (Task.Status.QUEUED, Task.Status.RUNNING):
        return "-"
    prediction = task_prediction(task)
    if prediction is None:
        return "not routed to a pool yet"
    if prediction["eta_seconds"] is None:
        return f"none: {prediction['reason']}"
    return (
        f"in {prediction['eta_seconds']:.0f}s (p90 {prediction['eta_p90_seconds']:.0f}s, "
        f"{prediction['model_version']}), at {prediction['eta']:%Y-%m-%d %H:%M:%S} UTC"
    )


# the class coordination registered (imported by name, it would pull Celery into ml through its actions)
_TaskAdmin = type(admin.site.get_model_admin(Task))


class TaskWithEtaAdmin(_TaskAdmin):  # type: ignore[misc,valid-type]  # a base known only at start-up
    @admin.display(description="ETA")
    def eta(self, task: Task) -> str:
        return eta_text(task)

    def get_readonly_fields(self, request: HttpRequest, obj: Task | None = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "eta"]


admin.site.unregister(Task)
admin.site.register(Task, TaskWithEtaAdmin)
