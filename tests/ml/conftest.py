"""Fixtures for the learning tests: a two-pool world with a hidden truth table, a clean registry."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.ml.synthetic import Cause, World, make_pools


@pytest.fixture(autouse=True)
def clean_registry():
    """Each test starts with no loaded models, no published routing weights and no training lock."""
    from ml import patterns, registry, services

    def reset() -> None:
        registry.forget()
        patterns._weights_read = -float("inf")
        skipped = [services.SKIPPED_KEY.format(kind=kind) for kind in services.KINDS]
        cache.delete_many([services.LOCK_KEY, *skipped])
        patterns.redis_client().delete(patterns.WEIGHTS_KEY)

    reset()
    yield
    reset()


@pytest.fixture
def world() -> World:
    """`fast` runs everything in half the nominal time; `slow` takes 1.5x and fails builds 70% of the
    time; complex tasks fail more often everywhere."""
    return World(
        speed={"fast": 0.5, "slow": 1.5},
        types={"build": 20.0, "test": 5.0, "migrate": 60.0},
        causes=[Cause(pool="slow", task_type="build", rate=0.7, error="xcodebuild: not found")],
        complexity_risk=0.4,
    )


@pytest.fixture
def ml_pools(db):
    return make_pools(["fast", "slow"])


def with_config(settings, **sections) -> None:
    """Replace keys of HIVE_CONFIG for one test: with_config(settings, multi_agent={...}, ml={...})."""
    config = settings.HIVE_CONFIG
    api = config.external_api
    updates = {}
    if "multi_agent" in sections:
        updates["multi_agent"] = config.multi_agent.model_copy(update=sections["multi_agent"])
    api_updates = {}
    for name in ("intelligence_framework", "intelligent_task_allocation"):
        if name in sections:
            api_updates[name] = getattr(api, name).model_copy(update=sections[name])
    ml = api.ml_enhancements
    ml_updates = {}
    for name in ("pattern_optimizer", "predictive_analytics", "adaptive_learning"):
        if name in sections:
            ml_updates[name] = getattr(ml, name).model_copy(update=sections[name])
    if ml_updates:
        api_updates["ml_enhancements"] = ml.model_copy(update=ml_updates)
    if api_updates:
        updates["external_api"] = api.model_copy(update=api_updates)
    settings.HIVE_CONFIG = config.model_copy(update=updates)
