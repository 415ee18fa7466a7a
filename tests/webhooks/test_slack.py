"""Slack slash commands and Events API requests, signed with the v0 scheme."""

from __future__ import annotations

import json
import time

import pytest

from coordination.models import Task
from external_api.models import WebhookDelivery, WebhookSource
from tests.webhooks.conftest import post_slack, slack_headers, slash_command

pytestmark = pytest.mark.django_db


def nothing_stored() -> bool:
    return WebhookDelivery.objects.count() == 0 and Task.objects.count() == 0


def test_a_slash_command_becomes_a_task_and_an_ephemeral_answer(client, slack):
    response = post_slack(client, slash_command("fix the flaky login test"))
    assert response.status_code == 200, response.content
    task = Task.objects.get()
    assert response.json() == {"response_type": "ephemeral", "text": f"task {task.id} queued on pool backend"}
    assert task.prompt == "fix the flaky login test" and task.source == "slack" and task.team == slack.team
    assert task.capabilities == ["python"]
    assert task.payload["slack"]["user_name"] == "roadrunner"
    delivery = WebhookDelivery.objects.get()
    assert (delivery.event, delivery.outcome, delivery.delivery_id) == (
        "slash_command",
        "accepted",
        "slash:398738663015.47445629121.803a0bc8",
    )


@pytest.mark.parametrize(
    "timestamp",
    [-400, +400, "now", "1e9", ""],
    ids=["stale", "future", "words", "exponent", "empty"],
)
def test_a_stale_or_malformed_timestamp_is_401_never_500(client, slack, timestamp):
    # offsets are turned into timestamps when the test runs: at collection time, minutes before
    # in a long suite, "400 s ahead" would already be within the window
    if isinstance(timestamp, int):
        timestamp = str(int(time.time()) + timestamp)
    response = post_slack(client, slash_command("deploy"), timestamp=timestamp)
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "invalid_signature" and "X-Slack-Request-Timestamp" in response.json()["detail"]
    assert nothing_stored()


def test_a_wrong_secret_or_no_signature_is_401(client, slack):
    assert post_slack(client, slash_command("deploy"), secret="not the secret").status_code == 401
    assert post_slack(client, slash_command("deploy"), headers={}).status_code == 401
    assert nothing_stored()


def test_url_verification_is_answered_only_when_signed(client, slack):
    body = json.dumps(
        {"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}
    ).encode()
    unsigned = post_slack(client, body, content_type="application/json", headers={})
    assert unsigned.status_code == 401 and "challenge" not in unsigned.json()
    assert nothing_stored()
    signed = post_slack(client, body, content_type="application/json")
    assert signed.status_code == 200
    assert signed.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    assert WebhookDelivery.objects.get().outcome == "ping"


def test_a_retry_with_x_slack_retry_num_creates_no_second_task(client, slack):
    first = post_slack(client, slash_command("fix the build"))
    retry = post_slack(
        client,
        slash_command("fix the build"),
        timestamp=str(int(time.time()) + 2),
        extra={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    assert first.status_code == retry.status_code == 200
    task = Task.objects.get()
    assert str(task.id) in retry.json()["text"]
    assert WebhookDelivery.objects.count() == 1


def test_events_api_callbacks_are_recorded_once_by_event_id_and_ignored(client, slack):
    body = json.dumps(
        {
            "type": "event_callback",
            "event_id": "Ev0PV52K25",
            "event": {"type": "app_mention", "text": "<@U0LAN0Z89> hi"},
        }
    ).encode()
    first = post_slack(client, body, content_type="application/json")
    retry = post_slack(client, body, content_type="application/json", extra={"X-Slack-Retry-Num": "1"})
    assert first.status_code == 204 and retry.status_code == 200 and retry.json()["code"] == "duplicate"
    delivery = WebhookDelivery.objects.get()
    assert (delivery.delivery_id, delivery.event, delivery.outcome) == (
        "event:Ev0PV52K25",
        "event_callback.app_mention",
        "ignored",
    )
    assert Task.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (slash_command("deploy", command="/deploy"), "this hive answers /hive, not /deploy"),
        (slash_command("   "), "say what to do"),
    ],
    ids=["other-command", "no-text"],
)
def test_a_command_that_asks_for_nothing_is_answered_and_ignored(client, slack, body, says):
    response = post_slack(client, body)
    assert response.status_code == 200 and says in response.json()["text"]
    assert WebhookDelivery.objects.get().outcome == "ignored" and Task.objects.count() == 0


def test_a_command_no_pool_can_run_is_told_to_the_user_and_rejected(client, slack):
    WebhookSource.objects.filter(id=slack.id).update(rules={"capabilities": ["cobol"]})
    response = post_slack(client, slash_command("port it"))
    assert response.status_code == 200  # Slack shows any other status as a bare failure
    assert response.json()["text"].startswith("could not queue the task: no pool offers cobol")
    delivery = WebhookDelivery.objects.get()
    assert delivery.outcome == "rejected" and "no_eligible_pool" in delivery.detail
    assert Task.objects.count() == 0


def test_rules_choose_the_command(client, slack):
    WebhookSource.objects.filter(id=slack.id).update(rules={"command": "/agent", "capabilities": ["react"]})
    response = post_slack(client, slash_command("restyle the header", command="/agent"))
    assert "queued on pool frontend" in response.json()["text"]


def test_the_configured_signing_secret_and_a_previous_one_are_accepted(client, pools, settings, monkeypatch):
    slack_config = settings.HIVE_CONFIG.external_api.webhook_server.slack
    monkeypatch.setattr(slack_config, "signing_secret", "configured")
    monkeypatch.setattr(slack_config, "signing_secrets_previous", ["before"])
    assert post_slack(client, slash_command("one", trigger_id="t1"), secret="configured").status_code == 200
    assert post_slack(client, slash_command("two", trigger_id="t2"), secret="before").status_code == 200
    assert post_slack(client, slash_command("three", trigger_id="t3"), secret="other").status_code == 401
    assert Task.objects.count() == 2


def test_the_slack_rate_limit_is_429_with_retry_after(client, slack):
    WebhookSource.objects.filter(id=slack.id).update(rules={"rate_limit_per_minute": 1})
    assert post_slack(client, slash_command("one", trigger_id="t1")).status_code == 200
    response = post_slack(client, slash_command("two", trigger_id="t2"))
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert Task.objects.count() == 1


def test_a_signed_body_that_is_neither_form_nor_json_is_rejected(client, slack):
    body = b"\xff\xfe not json"
    response = client.post("/webhooks/slack/", data=body, content_type="application/json", headers=slack_headers(body))
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert WebhookDelivery.objects.get().outcome == "rejected"
