"""Alerts through real processes: a worker whose memory threshold is low reports it with its heartbeat,
the control worker's monitoring round (beat, every performance_monitoring.monitoring_interval) raises
one alert, a local HTTP server receives it as Slack-compatible JSON after a refused first delivery,
`hive alerts --json` lists it, and it is resolved, and posted again, when the worker stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from coordination.models import Alert, Event
from coordination.processes import HOSTNAME
from tests.conftest import ROOT, child_env, wait_for
from tests.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The worker samples memory only, every 0.2 s; any machine is over a 0.1% warning (and under 100%).
LOW_MEMORY_THRESHOLD = {
    "LEANVIBE_RESOURCES_THRESHOLDS_WARNING": "0.1",
    "LEANVIBE_RESOURCES_THRESHOLDS_CRITICAL": "100",
    "LEANVIBE_RESOURCES_MONITORING_CPU": "false",
    "LEANVIBE_RESOURCES_MONITORING_DISK": "false",
    "LEANVIBE_RESOURCES_MONITORING_NETWORK": "false",
    "LEANVIBE_RESOURCES_MONITORING_INTERVAL_SECONDS": "0.2",
}


def hive_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hive_project.cli", *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_worker_over_its_memory_threshold_raises_an_alert_posted_to_the_webhook_and_resolved_when_it_stops(hive):
    subject = f"memory@{HOSTNAME}"
    with WebhookReceiver(fail_first=1) as receiver:
        worker = hive.worker("ios", **LOW_MEMORY_THRESHOLD)
        hive.control(
            LEANVIBE_PERFORMANCE_MONITORING_INTERVAL="0.5",
            LEANVIBE_MONITORING_ALERTS_ENABLED="true",
            LEANVIBE_MONITORING_ALERTS_WEBHOOK_URL=receiver.url,
        )

        alert = wait_for(
            lambda: Alert.objects.active().filter(subject=subject).first(),
            timeout=60,
            what="the memory alert to be raised",
        )
        assert (alert.level, alert.resource, alert.host, alert.threshold) == ("warning", "memory", HOSTNAME, 0.1)
        assert alert.source == "resources.thresholds.warning" and alert.agents == ["ios@test"]
        assert "ios" in alert.recommendation  # optimization_enabled (the default): what to change

        # The first delivery is refused (503); the retry, after a backoff, arrives.
        [raised] = wait_for(lambda: receiver.events("alert.raised"), timeout=30, what="the raise to be posted")
        assert receiver.refused == 1
        assert raised["text"].startswith(":warning: [warning] memory at ") and f"on {HOSTNAME}" in raised["text"]
        assert raised["alert"]["subject"] == subject and raised["alert"]["threshold"] == 0.1
        assert raised["alert"]["source"] == "resources.thresholds.warning" and raised["alert"]["alert"] == alert.id

        listed = hive_cli("alerts", "--json")
        assert listed.returncode == 0, listed.stderr
        [shown] = json.loads(listed.stdout)
        assert (shown["id"], shown["status"], shown["subject"], shown["level"]) == (
            alert.id,
            "active",
            subject,
            "warning",
        )

        os.killpg(worker.pid, signal.SIGTERM)  # a warm shutdown marks the agent offline
        worker.wait(timeout=30)
        [resolved] = wait_for(lambda: receiver.events("alert.resolved"), timeout=30, what="the resolve to be posted")
        assert resolved["text"] == f":white_check_mark: resolved: {subject}: no live agent on {HOSTNAME} reports memory"

        # Many rounds ran meanwhile: one raise and one resolve for the episode, posted once each.
        assert len(receiver.events("alert.raised")) == 1
    alert.refresh_from_db()
    assert alert.status == "resolved"
    assert Event.objects.filter(type="alert.raised").count() == 1
    assert Event.objects.filter(type="alert.resolved").count() == 1
