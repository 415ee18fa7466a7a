"""Metrics about the models, read from the registry when Prometheus scrapes (every process agrees)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily

from ml.models import ModelVersion


def model_metrics() -> Iterator[GaugeMetricFamily]:
    """`hive_model_error_seconds{kind}`: the active duration model's error in seconds (MAE of its
    p50), measured on attempts newer than the model when drift has been checked, else on its
    held-out data."""
    gauge = GaugeMetricFamily(
        "hive_model_error_seconds", "Mean absolute error of the active model's p50 duration", labels=["kind"]
    )
    for kind, metrics, drift in ModelVersion.objects.filter(active=True, kind=ModelVersion.Kind.DURATION).values_list(
        "kind", "metrics", "drift"
    ):
        if drift and drift.get("metric") == "mae_p50":
            gauge.add_metric([kind], float(drift["error"]))
        elif "mae_p50" in (metrics or {}):
            gauge.add_metric([kind], float(metrics["mae_p50"]))
    yield gauge
