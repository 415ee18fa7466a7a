"""Demand forecast: seasonality learned from arrivals, measured on held-out hours, stored as a model."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from ml.forecast import forecast_arrivals, slot, train_forecast
from ml.models import ModelVersion
from ml.services import ml_train
from tests.ml.conftest import with_config
from tests.ml.synthetic import World, build_history

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 16, 0, 0, tzinfo=UTC)  # a Monday, midnight


def office_hours() -> World:
    """Tasks arrive nine to five (UTC) and hardly at night."""
    weights = {h: (1.0 if 9 <= h < 17 else 0.05) for h in range(24)}
    return World(speed={"fast": 1.0, "slow": 1.0}, types={"build": 10.0}, hourly=weights)


def test_slot_is_the_hour_of_the_week():
    assert slot(NOW) == 0
    assert slot(NOW + timedelta(days=2, hours=13)) == 2 * 24 + 13


def test_forecast_with_little_history_gives_no_model(ml_pools):
    build_history(
        World(speed={"fast": 1.0}, types={"build": 10.0}), n=40, pools={"fast": ml_pools["fast"]}, end=NOW, spacing=1800
    )

    reason = train_forecast(now=NOW)

    assert re.fullmatch(r"\d+ tasks over (1\d|2\d) hours, fewer than 50 tasks or 48 hours: no forecast yet", reason)


def test_forecast_learns_office_hours_and_beats_a_flat_rate(ml_pools):
    build_history(office_hours(), n=3000, pools=ml_pools, end=NOW, spacing=240, seed=2)

    trained = train_forecast(now=NOW, days=60)

    assert trained.algorithm in ("seasonal/hour_of_day", "seasonal/hour_of_week")
    assert trained.metrics["mae"] < 0.8 * trained.baseline_metrics["mae"]
    assert set(trained.metrics["candidates"]) == {"flat", "hour_of_day", "hour_of_week"}
    profile = trained.artifact["profiles"]["fast"]
    day, night = profile[slot(NOW + timedelta(hours=12))], profile[slot(NOW + timedelta(hours=3))]
    assert day > 5 * night


def test_forecast_is_registered_and_read_back_for_the_horizon(ml_pools, settings):
    build_history(office_hours(), n=3000, pools=ml_pools, end=NOW, spacing=240, seed=2)

    report = ml_train(now=NOW, kinds=["forecast"])

    row = ModelVersion.objects.get(kind="forecast")
    assert report.of("forecast").status == "activated" and row.active
    hours = forecast_arrivals(pool="fast", start=NOW + timedelta(hours=9))
    horizon = settings.HIVE_CONFIG.external_api.ml_enhancements.predictive_analytics.forecast_horizon_days
    assert len(hours) == horizon * 24
    assert hours[3] > 5 * hours[20]  # noon against 5 in the morning
    assert forecast_arrivals(pool="never-seen") is None
    with_config(settings, predictive_analytics={"forecast_horizon_days": 3})
    assert len(forecast_arrivals(pool="fast", start=NOW)) == 3 * 24
