"""Configuration keys the web process reads on every request: turned off front doors, the metrics
path, webhook request validation, the pools' bounds, event retention. Each test overrides
`settings.HIVE_CONFIG` as a reloaded configuration would and looks at the answer a client gets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from coordination.fleet import pool_sync
from coordination.models import Event
from workers.tasks import event_retention

pytestmark = pytest.mark.django_db


def configure(settings, section: str, where: str, /, **values) -> None:
    """Replace `<section>.<path>` fields of settings.HIVE_CONFIG with `values` (copies, never mutation)."""
    config = settings.HIVE_CONFIG
    parts = [section, *where.split(".")] if where else [section]
    nodes = [config]
    for part in parts:
        nodes.append(getattr(nodes[-1], part))
    updated = nodes[-1].model_copy(update=values)
    for node, part in zip(reversed(nodes[:-1]), reversed(parts), strict=True):
        updated = node.model_copy(update={part: updated})
    settings.HIVE_CONFIG = updated


def test_external_api_off_turns_the_gateway_and_webhooks_off(settings):
    client = Client()
    assert client.get("/api/v1/status/").status_code == 200

    configure(settings, "external_api", "api_gateway", enabled=False)
    refused = client.get("/api/v1/status/")
    assert refused.status_code == 404
    assert refused.json() == {
        "code": "not_found",
        "detail": "the API gateway is turned off (external_api.api_gateway.enabled)",
    }
    assert client.post("/webhooks/custom/", b"{}", content_type="application/json").status_code == 401  # still on

    configure(settings, "external_api", "api_gateway", enabled=True)
    configure(settings, "external_api", "", enabled=False)
    assert client.get("/api/v1/status/").status_code == 404
    webhook = client.post("/webhooks/custom/", b"{}", content_type="application/json")
    assert webhook.status_code == 404 and "turned off" in webhook.json()["detail"]


def test_metrics_answer_at_the_configured_path_and_not_when_turned_off(settings):
    client = Client()
    assert client.get("/metrics").status_code == 200

    configure(settings, "monitoring", "prometheus", path="/internal/prometheus")
    moved = client.get("/internal/prometheus")
    assert moved.status_code == 200 and b"hive_tasks" in moved.content

    configure(settings, "monitoring", "prometheus", path="/metrics", enabled=False)
    assert client.get("/metrics").status_code == 404
    configure(settings, "monitoring", "prometheus", enabled=True)
    configure(settings, "monitoring", "", enabled=False)
    off = client.get("/metrics")
    assert off.status_code == 404 and "monitoring.enabled" in off.json()["detail"]


def test_webhook_request_validation_refuses_missing_headers_and_content_types(settings):
    client = Client()
    configure(
        settings,
        "security",
        "webhook_server.request_validation",
        required_headers=["Content-Type", "X-Sender"],
        allowed_content_types=["application/json"],
    )

    missing = client.post("/webhooks/custom/", b"{}", content_type="application/json")
    form = client.post(
        "/webhooks/custom/", b"a=1", content_type="application/x-www-form-urlencoded", HTTP_X_SENDER="ci"
    )

    assert missing.status_code == 400 and missing.json()["detail"] == "the X-Sender header is required"
    assert form.status_code == 415 and form.json()["code"] == "unsupported_media_type"


def test_pool_bounds_follow_the_pools_min_and_max_instances(settings):
    pools = dict(settings.HIVE_CONFIG.agents)
    pools["backend"] = pools["backend"].model_copy(update={"min_instances": 2, "max_instances": 3})
    settings.HIVE_CONFIG = settings.HIVE_CONFIG.model_copy(update={"agents": pools})

    backend = next(pool for pool in pool_sync(config=settings.HIVE_CONFIG) if pool.name == "backend")

    assert (backend.min_instances, backend.max_instances, backend.desired_instances) == (2, 3, 2)


def test_event_retention_deletes_events_older_than_the_configured_hours(settings):
    configure(settings, "external_api", "event_streaming", event_retention_hours=2)
    old = Event.objects.create(type="custom.old", payload={})
    recent = Event.objects.create(type="custom.recent", payload={})
    Event.objects.filter(id=old.id).update(created_at=timezone.now() - timedelta(hours=3))
    Event.objects.filter(id=recent.id).update(created_at=timezone.now() - timedelta(hours=1))

    assert event_retention() == 1
    assert list(Event.objects.values_list("type", flat=True)) == ["custom.recent"]
