"""Webhook metrics (names as docker/agent_hive_rules.yml and the Grafana dashboard use them)."""

from __future__ import annotations

from prometheus_client import Counter

# outcome: a WebhookDelivery outcome, or invalid_signature / throttled for refused requests
DELIVERIES = Counter("hive_webhook_deliveries_total", "Webhook deliveries by source and outcome", ["source", "outcome"])
