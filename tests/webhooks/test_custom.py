"""Custom senders with a team's API key: who may post, what the task is, and replays."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from coordination.models import Task, Team
from external_api.models import ApiKey, WebhookDelivery, WebhookSource
from external_api.services import apikey_create, webhook_source_create
from external_api.webhooks.signatures import github_signature

pytestmark = pytest.mark.django_db

URL = "/webhooks/custom/"
TASK = {
    "prompt": "summarise yesterday's alerts",
    "capabilities": ["python"],
    "priority": "high",
    "payload": {"alerts": 3},
    "task_type": "report",
}


@pytest.fixture
def keys(acme):
    return {
        "reader": apikey_create(name="reader", scopes=["read"], team=acme)[1],
        "writer": apikey_create(name="writer", scopes=["read", "write"], team=acme)[1],
        "admin": apikey_create(name="admin", scopes=["admin"], team=acme)[1],
        "commands": apikey_create(name="commands", scopes=["write", "commands"], team=acme)[1],
    }


def post(client, body, key: str | None = None, **headers: str):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    if key:
        headers["X-API-Key"] = key
    return client.post(URL, data=data, content_type="application/json", headers=headers)


def test_without_a_key_it_is_401(client, keys):
    response = post(client, TASK)
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
    assert Task.objects.count() == 0


@pytest.mark.parametrize("key", ["hive_nothing_here", "not-a-hive-key"])
def test_an_unknown_key_is_401(client, keys, key):
    response = post(client, TASK, key)
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"


def test_a_revoked_or_expired_key_is_401(client, keys):
    ApiKey.objects.filter(name="writer").update(revoked_at=timezone.now())
    assert post(client, TASK, keys["writer"]).status_code == 401
    ApiKey.objects.filter(name="admin").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert post(client, TASK, keys["admin"]).status_code == 401
    assert Task.objects.count() == 0


def test_a_read_only_key_is_403(client, keys):
    response = post(client, TASK, keys["reader"])
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert Task.objects.count() == 0 and WebhookDelivery.objects.count() == 0


@pytest.mark.parametrize("who", ["writer", "admin"])
def test_a_write_key_creates_the_task_in_its_team(client, keys, acme, who):
    response = post(client, TASK, keys[who])
    assert response.status_code == 201, response.content
    task = Task.objects.get()
    assert response.json()["task"] == str(task.id) and response.json()["pool"] == "backend"
    assert (task.team, task.source, task.prompt, task.priority, task.task_type, task.payload) == (
        acme,
        "webhook",
        TASK["prompt"],
        "high",
        "report",
        {"alerts": 3},
    )
    delivery = WebhookDelivery.objects.get()
    assert delivery.source.kind == "custom" and delivery.source.team == acme and delivery.outcome == "accepted"


def test_the_authorization_header_works_too(client, keys):
    response = client.post(
        URL,
        data=json.dumps(TASK),
        content_type="application/json",
        headers={"Authorization": f"Api-Key {keys['writer']}"},
    )
    assert response.status_code == 201


@pytest.mark.parametrize("where", ["header", "body"])
def test_a_delivery_id_makes_a_replay_return_the_first_task(client, keys, where):
    body, headers = dict(TASK), {}
    if where == "header":
        headers["X-Delivery-Id"] = "run-42"
    else:
        body["delivery_id"] = "run-42"
    first = post(client, body, keys["writer"], **headers)
    replay = post(client, body, keys["writer"], **headers)
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json()["code"] == "duplicate" and replay.json()["task"] == first.json()["task"]
    assert Task.objects.count() == 1 and Task.objects.get().idempotency_key == "run-42"


def test_without_a_delivery_id_each_post_is_a_new_task(client, keys):
    assert post(client, TASK, keys["writer"]).status_code == 201
    assert post(client, TASK, keys["writer"]).status_code == 201
    assert Task.objects.count() == 2 and WebhookDelivery.objects.count() == 2


def test_a_command_task_and_the_sources_default_capabilities(client, keys, acme):
    source = WebhookSource.objects.create(kind="custom", slug="ci", team=acme, rules={"capabilities": ["react"]})
    response = post(client, {"command": ["npm", "test"]}, keys["commands"])
    assert response.status_code == 201, response.content
    task = Task.objects.get()
    assert task.command == ["npm", "test"] and task.capabilities == ["react"] and task.pool.name == "frontend"
    assert WebhookDelivery.objects.get().source == source


@pytest.mark.parametrize(
    ("body", "status", "code", "says"),
    [
        (b"{not json", 400, "invalid", "JSON object"),
        ([1, 2], 400, "invalid", "JSON object"),
        ({**TASK, "prio": "high"}, 400, "invalid", "unknown field(s): prio"),
        ({"prompt": "x"}, 400, "invalid_task", "capabilities"),
        ({"prompt": "x", "capabilities": ["cobol"]}, 422, "no_eligible_pool", "cobol"),
        ({**TASK, "priority": "urgent"}, 400, "invalid_task", "priority"),
    ],
    ids=["not-json", "not-object", "unknown-field", "no-capabilities", "no-pool", "bad-priority"],
)
def test_an_unusable_task_is_refused_with_the_reason_and_recorded_as_rejected(client, keys, body, status, code, says):
    response = post(client, body, keys["writer"])
    assert response.status_code == status, response.content
    assert response.json()["code"] == code and says in response.json()["detail"]
    assert Task.objects.count() == 0
    assert WebhookDelivery.objects.get().outcome == "rejected"


def test_a_delivery_id_reused_for_other_work_is_409(client, keys):
    assert post(client, TASK, keys["writer"], **{"X-Delivery-Id": "k"}).status_code == 201
    response = post(client, {**TASK, "prompt": "something else"}, keys["writer"], **{"X-Delivery-Id": "k2"})
    assert response.status_code == 201
    clash = post(client, {**TASK, "prompt": "other"}, keys["writer"], **{"Idempotency-Key": "k"})
    assert clash.status_code == 409 and clash.json()["code"] == "idempotency_conflict"
    assert Task.objects.count() == 2


def test_a_named_custom_source_of_another_team_is_404(client, keys):
    globex = Team.objects.create(name="globex")
    webhook_source_create(kind="custom", slug="globex-ci", team=globex)
    response = client.post(
        "/webhooks/custom/globex-ci/",
        data=json.dumps(TASK),
        content_type="application/json",
        headers={"X-API-Key": keys["writer"]},
    )
    assert response.status_code == 404 and Task.objects.count() == 0


def test_a_custom_source_with_a_secret_also_needs_the_signature(client, keys, acme):
    webhook_source_create(kind="custom", slug="signed", team=acme, secret="shh")
    data = json.dumps(TASK).encode()
    unsigned = client.post(
        "/webhooks/custom/signed/", data=data, content_type="application/json", headers={"X-API-Key": keys["writer"]}
    )
    assert unsigned.status_code == 401 and Task.objects.count() == 0
    signed = client.post(
        "/webhooks/custom/signed/",
        data=data,
        content_type="application/json",
        headers={"X-API-Key": keys["writer"], "X-Hub-Signature-256": github_signature("shh", data)},
    )
    assert signed.status_code == 201


def test_put_is_allowed_and_get_is_405(client, keys):
    response = client.put(
        URL, data=json.dumps(TASK), content_type="application/json", headers={"X-API-Key": keys["writer"]}
    )
    assert response.status_code == 201
    refused = client.get(URL, headers={"X-API-Key": keys["writer"]})
    assert refused.status_code == 405 and refused["Allow"] == "POST, PUT"


def test_an_oversized_body_is_413_json_before_the_key_is_checked(client, settings):
    settings.WEBHOOK_MAX_BYTES = 32
    response = post(client, {**TASK, "prompt": "x" * 100})
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


def test_the_custom_rate_limit_is_429(client, keys, acme):
    WebhookSource.objects.create(kind="custom", slug="ci", team=acme, rules={"rate_limit_per_minute": 1})
    assert post(client, TASK, keys["writer"]).status_code == 201
    response = post(client, TASK, keys["writer"])
    assert response.status_code == 429 and response.json()["code"] == "throttled" and response["Retry-After"]


def test_a_replay_with_invalid_content_is_400_not_500(client, keys):
    assert post(client, TASK, keys["writer"], **{"X-Delivery-Id": "k"}).status_code == 201
    response = post(client, {**TASK, "priority": "urgent"}, keys["writer"], **{"X-Delivery-Id": "k"})
    assert response.status_code == 400 and response.json()["code"] == "invalid_task"
    assert WebhookDelivery.objects.get().outcome == "accepted" and Task.objects.count() == 1
