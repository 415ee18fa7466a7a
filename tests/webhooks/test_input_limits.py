"""Webhooks never answer a 500 for what a sender posts: deep JSON, NaN/Infinity, wrong types,
bounds and the pool's payload fields are refused with a 4xx JSON error, and no task is stored."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from agents.models import AgentPool
from coordination.json_limits import MAX_JSON_DEPTH
from coordination.models import Task
from external_api.models import WebhookDelivery
from external_api.services import apikey_create
from tests.webhooks.conftest import issue_event, post_github, post_slack, slack_headers

pytestmark = pytest.mark.django_db

CUSTOM = "/webhooks/custom/"
TASK = {"prompt": "summarise yesterday's alerts", "capabilities": ["python"]}
TOO_DEEP = {"code": "json_too_deep", "detail": f"JSON nested deeper than {MAX_JSON_DEPTH} levels"}


@pytest.fixture
def writer(acme) -> str:
    return apikey_create(name="writer", scopes=["read", "write", "commands"], team=acme)[1]


def post_custom(client, body: bytes | dict, key: str, **headers: str):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(CUSTOM, data=data, content_type="application/json", headers={"X-API-Key": key, **headers})


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [400, 100_000])
def test_custom_webhook_deep_json_is_400_json_too_deep_and_records_nothing(client, writer, depth):
    body = b'{"prompt": "x", "capabilities": ["python"], "payload": {"a": ' + nested(depth) + b"}}"

    response = post_custom(client, body, writer)

    assert response.status_code == 400 and response.json() == TOO_DEEP
    assert Task.objects.count() == 0 and WebhookDelivery.objects.count() == 0


@pytest.mark.parametrize("depth", [400, 100_000])
def test_github_webhook_deep_json_is_400_json_too_deep_and_records_nothing(client, github, depth):
    body = b'{"action": "opened", "issue": ' + nested(depth) + b"}"

    response = post_github(client, body)

    assert response.status_code == 400 and response.json() == TOO_DEEP
    assert Task.objects.count() == 0 and WebhookDelivery.objects.count() == 0


def test_github_webhook_form_encoded_deep_payload_is_400_and_makes_no_task(client, github):
    body = urlencode({"payload": b'{"action": "opened", "issue": ' + nested(5000) + b"}"}).encode()

    response = post_github(client, body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in response.json()["detail"]
    assert Task.objects.count() == 0


def test_slack_events_api_deep_json_is_400_json_too_deep(client, slack):
    body = b'{"type": "event_callback", "event": ' + nested(5000) + b"}"

    response = post_slack(client, body, content_type="application/json", headers=slack_headers(body))

    assert response.status_code == 400 and response.json() == TOO_DEEP
    assert WebhookDelivery.objects.count() == 0


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_custom_webhook_non_finite_number_is_400_naming_it_and_makes_no_task(client, writer, constant):
    body = b'{"prompt": "x", "capabilities": ["python"], "payload": {"ratio": ' + constant + b"}}"

    response = post_custom(client, body, writer)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert f"{constant.decode()} is not a JSON number" in response.json()["detail"]
    assert Task.objects.count() == 0


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"prompt": 123}, "prompt must be a string"),
        ({"timeout": True}, "timeout must be a number of seconds"),
        ({"command": [1, 2]}, "command must be a non-empty list of strings"),
        ({"prompt": "x" * 100_001}, "prompt must be at most 100000 characters"),
        ({"capabilities": ["python"] + [f"c{i}" for i in range(50)]}, "capabilities must be at most 50"),
        ({"external_ref": "r" * 301}, "external_ref must be at most 300 characters"),
        ({"external_ref": 7}, "external_ref must be a string"),
    ],
)
def test_custom_webhook_wrong_type_or_bound_is_400_invalid_task_naming_the_field(client, writer, changes, says):
    response = post_custom(client, {**TASK, **changes}, writer)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_task" and says in response.json()["detail"]
    assert Task.objects.count() == 0


def test_custom_webhook_task_without_the_payload_fields_the_pools_argv_names_is_400(client, writer):
    AgentPool.objects.filter(name="backend").update(
        runner={"kind": "command", "argv": ["agent", "--repo={payload.repo}", "{prompt}"]}
    )

    response = post_custom(client, TASK, writer)

    assert response.status_code == 400 and response.json()["code"] == "invalid_task"
    assert "payload field(s) repo" in response.json()["detail"]
    assert Task.objects.count() == 0


def test_github_webhook_issue_for_a_pool_needing_payload_fields_is_400_at_submit(client, github):
    AgentPool.objects.filter(name="backend").update(
        runner={"kind": "command", "argv": ["agent", "{payload.branch}", "{prompt}"]}
    )

    response = post_github(client, issue_event())

    assert response.status_code == 400 and "payload field(s) branch" in response.json()["detail"]
    assert Task.objects.count() == 0


def test_custom_webhook_ordinary_nested_payload_is_accepted(client, writer):
    payload: dict = {"leaf": 1.5}
    for _ in range(10):
        payload = {"k": payload}

    response = post_custom(client, {**TASK, "payload": payload}, writer)

    assert response.status_code == 201, response.content
    assert Task.objects.get().payload == payload


def test_unknown_default_source_is_named_in_words_not_by_an_enum_repr(client, pools):
    response = post_github(client, issue_event())

    detail = response.json()["detail"]
    assert response.status_code == 404
    assert detail.startswith("no github webhook source with the slug github (set external_api.webhook_server.")
    assert "Kind" not in detail and "'" not in detail


def test_untrusted_author_is_recorded_with_the_trusted_associations_in_words(client, github):
    response = post_github(client, issue_event(association="NONE"))

    assert response.status_code == 204
    assert WebhookDelivery.objects.get().detail == "issue opened by NONE, not one of OWNER, MEMBER, COLLABORATOR"
