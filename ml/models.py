"""The model registry: one row per trained model, with its metrics beside the baseline's."""

from __future__ import annotations

from django.db import models


class ModelVersion(models.Model):
    """A trained model (duration, success or forecast) and how it measured on held-out data.

    The artifact is a joblib file under the hive's var directory whose sha256 is stored here: a
    file that no longer matches is refused. At most one version per kind is active; a version
    becomes active only when it beat the baseline and the active version (see ml.registry).
    """

    class Kind(models.TextChoices):
        DURATION = "duration"
        SUCCESS = "success"
        FORECAST = "forecast"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    version = models.PositiveIntegerField()
    trained_at = models.DateTimeField()
    trained_until = models.DateTimeField(null=True, blank=True, help_text="newest history the model saw")
    samples = models.PositiveIntegerField(help_text="rows trained on (older part and held-out part)")
    algorithm = models.CharField(max_length=60, blank=True)
    features = models.JSONField(default=list, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="on the held-out (newest) part")
    baseline_metrics = models.JSONField(default=dict, blank=True, help_text="the baseline on the same rows")
    artifact = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    active = models.BooleanField(default=False)
    activated_at = models.DateTimeField(null=True, blank=True)
    promotion = models.TextField(blank=True, help_text="why it was or was not activated")
    drift = models.JSONField(default=dict, blank=True, help_text="error on history newer than the model")
    training_seconds = models.FloatField(default=0.0)

    class Meta:
        ordering = ["kind", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "version"], name="model_kind_version_unique"),
            models.UniqueConstraint(fields=["kind"], condition=models.Q(active=True), name="model_one_active_per_kind"),
        ]
        indexes = [models.Index(fields=["kind", "active"])]

    def __str__(self) -> str:
        return f"{self.kind} v{self.version}{' (active)' if self.active else ''}"

    @property
    def label(self) -> str:
        return f"{self.kind} v{self.version}"
