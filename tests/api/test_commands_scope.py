"""A task that carries its own command runs a program on a worker: from outside it needs an API key
with the `commands` scope (or staff), on the REST API and the custom webhook alike. Without it:
403 naming the scope, and nothing stored."""

from __future__ import annotations

import json

import pytest

from coordination.models import Event, Task
from external_api.models import WebhookDelivery
from tests.api.conftest import api_key, key_client

pytestmark = pytest.mark.django_db

URL = "/api/v1/tasks/"
COMMAND_TASK = {"command": ["pytest", "-q"], "capabilities": ["python"]}
DETAIL = (
    "a task with its own command needs an API key with the 'commands' scope (or a staff account); "
    "ask an operator for one (hive apikey create --scopes write,commands), or submit a prompt"
)


def nothing_stored() -> bool:
    return Task.objects.count() == 0 and Event.objects.count() == 0 and WebhookDelivery.objects.count() == 0


@pytest.mark.parametrize("who", ["writer", "owner", "teammate"])
def test_command_task_without_the_commands_scope_is_403_naming_it_and_stores_nothing(personas, who):
    response = personas[who].client.post(URL, COMMAND_TASK, format="json", HTTP_IDEMPOTENCY_KEY="run-1")

    assert response.status_code == 403
    assert response.json() == {"code": "scope_required", "detail": DETAIL}
    assert nothing_stored()


def test_prompt_task_needs_no_commands_scope(personas):
    response = personas["writer"].client.post(URL, {"prompt": "fix it", "capabilities": ["python"]}, format="json")
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("scopes", [["write", "commands"], ["admin"]])
def test_command_task_with_the_commands_scope_is_201(teams, scopes):
    client = key_client(api_key(teams[0], scopes))

    response = client.post(URL, COMMAND_TASK, format="json")

    assert response.status_code == 201, response.content
    task = Task.objects.get()
    assert task.command == ["pytest", "-q"] and task.team == teams[0]


def test_commands_scope_alone_does_not_allow_writes(teams):
    client = key_client(api_key(teams[0], ["commands"]))
    assert client.post(URL, COMMAND_TASK, format="json").status_code == 403
    assert nothing_stored()


def test_staff_may_submit_a_command_task(personas):
    response = personas["staff"].client.post(URL, COMMAND_TASK, format="json")
    assert response.status_code == 201, response.content


def webhook(client, key: str, body: dict):
    return client.post(
        "/webhooks/custom/",
        data=json.dumps(body).encode(),
        content_type="application/json",
        HTTP_X_API_KEY=key,
        HTTP_X_DELIVERY_ID="delivery-1",
    )


def test_custom_webhook_command_task_without_the_commands_scope_is_403_and_records_nothing(client, teams):
    response = webhook(client, api_key(teams[0], ["read", "write"]), COMMAND_TASK)

    assert response.status_code == 403
    assert response.json() == {"code": "scope_required", "detail": DETAIL}
    assert nothing_stored()


def test_custom_webhook_command_task_with_the_commands_scope_is_accepted(client, teams):
    response = webhook(client, api_key(teams[0], ["write", "commands"]), COMMAND_TASK)

    assert response.status_code == 201, response.content
    assert Task.objects.get().command == ["pytest", "-q"]


def test_apikey_create_accepts_the_commands_scope(db):
    from external_api.services import apikey_create

    key, raw = apikey_create(name="ci", scopes=["write", "commands"])
    assert key.scopes == ["commands", "write"] and key.allows("commands") and raw.startswith("hive_")
