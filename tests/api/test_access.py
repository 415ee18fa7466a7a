"""Every gateway endpoint with every persona: 401 without credentials, 403 for a key without the
scope, 404 for another team's objects, and the action done for those allowed."""

from __future__ import annotations

import pytest

from coordination.models import Event, Task

pytestmark = pytest.mark.django_db

TASK_ACTIONS = [
    ("get", "/api/v1/tasks/{id}/"),
    ("post", "/api/v1/tasks/{id}/cancel/"),
    ("post", "/api/v1/tasks/{id}/retry/"),
    ("post", "/api/v1/tasks/{id}/redrive/"),
    ("get", "/api/v1/tasks/{id}/events/"),
]
ALL_ENDPOINTS = [
    ("get", "/api/v1/tasks/", None),
    ("post", "/api/v1/tasks/", {"command": ["true"], "capabilities": ["python"]}),
    *[(m, p, None) for m, p in TASK_ACTIONS],
    ("get", "/api/v1/agents/", None),
    ("get", "/api/v1/pools/", None),
    ("get", "/api/v1/pools/backend/", None),
    ("patch", "/api/v1/pools/backend/", {"max_instances": 3}),
    ("get", "/api/v1/events/", None),
    ("post", "/api/v1/events/", {"type": "custom.deploy", "payload": {"v": 1}}),
    ("get", "/api/v1/ml/models/", None),
    ("post", "/api/v1/ml/train/", {}),
    ("get", "/api/v1/insights/", None),
    ("get", "/api/v1/decisions/", None),
    ("get", "/api/v1/predict/?capabilities=python", None),
    ("get", "/api/schema/", None),
    ("get", "/api/docs/", None),
]
WRITES = [(m, p, b) for m, p, b in ALL_ENDPOINTS if m != "get"]


def call(persona, method: str, path: str, body=None):
    return (
        getattr(persona.client, method)(path, body, format="json")
        if body is not None
        else getattr(persona.client, method)(path)
    )


@pytest.mark.parametrize(("method", "path", "body"), ALL_ENDPOINTS)
def test_endpoint_without_credentials_is_401_json(personas, acme_task, method, path, body):
    response = call(personas["anonymous"], method, path.format(id=acme_task["id"]), body)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_status_is_public_and_shows_no_task_content(personas, acme_task):
    response = personas["anonymous"].client.get("/api/v1/status/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["tasks_queued"] == 1
    assert "acme work" not in response.content.decode()


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_read_only_key_is_403_on_every_write_and_nothing_changes(personas, acme_task, method, path, body):
    before = (Task.objects.count(), Event.objects.count(), Task.objects.get().status)
    response = call(personas["reader"], method, path.format(id=acme_task["id"]), body)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert (Task.objects.count(), Event.objects.count(), Task.objects.get().status) == before


@pytest.mark.parametrize(("method", "path"), TASK_ACTIONS)
def test_outsider_gets_404_for_another_teams_task_and_nothing_changes(personas, acme_task, method, path):
    before = Task.objects.values("status", "attempts", "max_attempts").get()
    response = call(personas["outsider"], method, path.format(id=acme_task["id"]))
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}
    assert Task.objects.values("status", "attempts", "max_attempts").get() == before


def test_outsider_lists_see_nothing_of_another_team(personas, acme_task):
    outsider = personas["outsider"].client
    assert outsider.get("/api/v1/tasks/").json()["results"] == []
    assert outsider.get("/api/v1/decisions/").json()["results"] == []
    assert [d["task"] for d in personas["owner"].client.get("/api/v1/decisions/").json()["results"]] == [
        acme_task["id"]
    ]
    events = outsider.get("/api/v1/events/").json()
    assert all(e["task"] is None for e in events)
    assert outsider.get("/api/v1/tasks/?search=acme").json()["results"] == []


@pytest.mark.parametrize("who", ["owner", "teammate", "writer", "staff"])
def test_team_members_and_staff_see_and_cancel_the_teams_task(personas, acme_task, who):
    client = personas[who].client
    assert client.get(f"/api/v1/tasks/{acme_task['id']}/").json()["prompt"] == "acme work"
    assert [t["id"] for t in client.get("/api/v1/tasks/").json()["results"]] == [acme_task["id"]]
    events = client.get(f"/api/v1/tasks/{acme_task['id']}/events/").json()
    assert [e["type"] for e in events] == ["task.queued"]
    response = client.post(f"/api/v1/tasks/{acme_task['id']}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert Task.objects.get().status == Task.Status.CANCELLED


def test_reader_key_can_read(personas, acme_task):
    reader = personas["reader"].client
    assert reader.get(f"/api/v1/tasks/{acme_task['id']}/").status_code == 200
    assert reader.get("/api/v1/pools/").status_code == 200


@pytest.mark.parametrize("who", ["owner", "writer"])
def test_admin_actions_need_the_admin_scope(personas, who):
    response = personas[who].client.patch("/api/v1/pools/backend/", {"max_instances": 3}, format="json")
    assert response.status_code == 403


@pytest.mark.parametrize("who", ["admin_key", "staff"])
def test_admin_scope_changes_pool_size(personas, who):
    # within the configured bounds (backend: max_instances 2); tests/api/test_input_limits.py covers beyond
    response = personas[who].client.patch(
        "/api/v1/pools/backend/", {"min_instances": 1, "max_instances": 2}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["min_instances"], response.json()["max_instances"]) == (1, 2)
    assert Event.objects.filter(type="pool.resized").count() == 1


def test_pool_size_must_be_consistent(personas):
    response = personas["staff"].client.patch(
        "/api/v1/pools/backend/", {"min_instances": 5, "max_instances": 2}, format="json"
    )
    assert response.status_code == 400
    assert "min_instances must be at most max_instances" in response.json()["detail"]


def test_state_errors_are_409_with_the_status_named(personas, acme_task):
    owner = personas["owner"].client
    response = owner.post(f"/api/v1/tasks/{acme_task['id']}/redrive/")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_state"
    assert "is queued: only dead tasks can be run again" in response.json()["detail"]


def test_revoked_key_is_refused(personas, teams, monkeypatch):
    import time

    from django.utils import timezone

    from external_api import keycache
    from external_api.models import ApiKey
    from tests.api.conftest import api_key, key_client

    client = key_client(api_key(teams[0], ["read"]))
    assert client.get("/api/v1/tasks/").status_code == 200
    ApiKey.objects.filter(name="read key").update(revoked_at=timezone.now())
    later = time.monotonic() + keycache.RECHECK_SECONDS + 0.5  # a revocation from elsewhere acts within the bound
    monkeypatch.setattr(keycache, "clock", lambda: later)
    response = client.get("/api/v1/tasks/")
    assert response.status_code == 401
    assert response.json() == {"code": "authentication_failed", "detail": "API key revoked or expired"}


def test_wrong_key_is_refused(personas):
    from tests.api.conftest import key_client

    response = key_client("hive_000000000000_not-the-secret").get("/api/v1/tasks/")
    assert response.status_code == 401 and response.json()["detail"] == "invalid API key"


def test_custom_event_is_published_to_the_callers_team(personas, teams):
    response = personas["writer"].client.post(
        "/api/v1/events/", {"type": "custom.deploy", "payload": {"v": 2}}, format="json"
    )
    assert response.status_code == 201
    event = Event.objects.get(type="custom.deploy")
    assert event.team == teams[0] and event.payload == {"v": 2}
    assert personas["outsider"].client.get("/api/v1/events/?type=custom.deploy").json() == []
    assert len(personas["teammate"].client.get("/api/v1/events/?type=custom.deploy").json()) == 1


def test_system_event_types_cannot_be_forged(personas):
    response = personas["writer"].client.post("/api/v1/events/", {"type": "task.succeeded"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert not Event.objects.filter(type="task.succeeded").exists()
