"""Creating and listing tasks through the gateway: validation, idempotency, filters, limits."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from coordination.models import Event, Task, TaskAttempt

pytestmark = pytest.mark.django_db

URL = "/api/v1/tasks/"


def test_create_sets_server_fields(personas, teams):
    body = {"prompt": "add tests", "capabilities": ["python"], "priority": "high"}
    response = personas["owner"].client.post(URL, body, format="json")
    assert response.status_code == 201
    data = response.json()
    assert (data["status"], data["attempts"], data["team"], data["agent"]) == ("queued", 0, "acme", None)
    assert data["pool"] == "backend" and data["priority"] == "high" and data["source"] == "api"
    assert Task.objects.get().team == teams[0]


def test_create_with_server_or_unknown_fields_is_400_naming_each_and_stores_nothing(personas):
    body = {
        "prompt": "add tests",
        "capabilities": ["python"],
        "status": "succeeded",
        "attempts": 7,
        "team": "globex",
        "agent": "x",
    }
    response = personas["owner"].client.post(URL, body, format="json")
    assert response.status_code == 400
    assert sorted(response.json()["fields"]) == ["agent", "attempts", "status", "team"]
    assert "status: unknown field; the fields are capabilities, command" in response.json()["detail"]
    assert Task.objects.count() == 0 and Event.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "x"}, "capabilities"),
        ({"prompt": "x", "capabilities": []}, "capabilities"),
        ({"prompt": "x", "capabilities": "python"}, "capabilities"),
        ({"prompt": "x", "capabilities": ["python"], "priority": "urgent"}, "priority"),
        ({"prompt": "x", "capabilities": ["python"], "timeout": -1}, "timeout"),
        ({"prompt": "x", "capabilities": ["python"], "max_attempts": 0}, "max_attempts"),
        ({"prompt": "x", "capabilities": ["python"], "complexity": 11}, "complexity"),
        ({"prompt": "x", "capabilities": ["python"], "payload": [1]}, "payload"),
        ({"command": "pytest -q", "capabilities": ["python"]}, "command"),
    ],
)
def test_invalid_body_is_400_naming_the_field_and_stores_nothing(personas, body, field):
    response = personas["owner"].client.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["fields"]
    assert Task.objects.count() == 0 and Event.objects.count() == 0


def test_task_without_prompt_or_command_is_400(personas):
    response = personas["owner"].client.post(URL, {"capabilities": ["python"]}, format="json")
    assert response.status_code == 400
    assert response.json() == {"code": "invalid_task", "detail": "a task needs a prompt or a command"}
    assert Task.objects.count() == 0


def test_no_pool_for_the_capabilities_is_422_naming_the_pools(personas):
    response = personas["owner"].client.post(URL, {"prompt": "x", "capabilities": ["cobol"]}, format="json")
    assert response.status_code == 422
    assert response.json()["code"] == "no_eligible_pool"
    assert "no pool offers cobol: backend offers api, database, microservices, python" in response.json()["detail"]
    assert Task.objects.count() == 0 and Event.objects.count() == 0


def test_malformed_json_is_400_json(personas):
    response = personas["owner"].client.post(URL, b"{nope", content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"


def test_idempotency_key_returns_the_first_task_and_conflicts_on_other_content(personas):
    owner = personas["owner"].client
    body = {"prompt": "once", "capabilities": ["python"]}
    first = owner.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="deploy-42")
    again = owner.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="deploy-42")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    other = owner.post(
        URL, {"prompt": "twice", "capabilities": ["python"]}, format="json", HTTP_IDEMPOTENCY_KEY="deploy-42"
    )
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    assert Task.objects.count() == 1
    # the same key in another team is another task
    outsider = personas["outsider"].client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="deploy-42")
    assert outsider.status_code == 201 and Task.objects.count() == 2


def test_list_filters_and_cursor_pagination(personas):
    owner = personas["owner"].client
    for i in range(5):
        owner.post(
            URL,
            {
                "prompt": f"job {i}",
                "capabilities": ["python"],
                "task_type": "lint" if i % 2 else "test",
                "priority": "critical" if i == 4 else "normal",
            },
            format="json",
        )
    owner.post(URL, {"prompt": "page", "capabilities": ["react"]}, format="json")
    assert len(owner.get(URL + "?pool=frontend").json()["results"]) == 1
    assert len(owner.get(URL + "?type=lint").json()["results"]) == 2
    assert [t["prompt"] for t in owner.get(URL + "?priority=critical").json()["results"]] == ["job 4"]
    assert [t["prompt"] for t in owner.get(URL + "?search=job 3").json()["results"]] == ["job 3"]
    assert len(owner.get(URL + "?status=queued").json()["results"]) == 6
    assert owner.get(URL + "?status=running").json()["results"] == []
    assert owner.get(URL + "?created_after=2999-01-01T00:00:00Z").json()["results"] == []
    bad = owner.get(URL + "?created_after=yesterday")
    assert bad.status_code == 400 and "created_after" in bad.json()["detail"]
    page = owner.get(URL + "?limit=4").json()
    assert len(page["results"]) == 4 and page["next"]
    rest = owner.get(page["next"]).json()
    assert len(rest["results"]) == 2
    seen = {t["id"] for t in page["results"]} | {t["id"] for t in rest["results"]}
    assert len(seen) == 6


def test_retrieve_includes_attempts_and_recent_events(personas, acme_task):
    data = personas["owner"].client.get(f"{URL}{acme_task['id']}/").json()
    assert data["attempts_detail"] == []
    assert [e["type"] for e in data["recent_events"]] == ["task.queued"]


def test_retrieve_shows_each_attempts_session_cost_turns_and_result_or_error(personas, acme_task):
    task = Task.objects.get(id=acme_task["id"])
    now = timezone.now()
    overloaded = "claude API error 529 (API overloaded)"
    TaskAttempt.objects.create(
        task=task,
        number=1,
        outcome="failed",
        started_at=now,
        heartbeat_at=now,
        finished_at=now,
        exit_code=1,
        is_error=True,
        error=overloaded,
        session_id="sess-a",
        cost_usd=Decimal("0"),
        num_turns=1,
    )
    TaskAttempt.objects.create(
        task=task,
        number=2,
        outcome="succeeded",
        started_at=now,
        heartbeat_at=now,
        finished_at=now,
        exit_code=0,
        session_id="sess-b",
        cost_usd=Decimal("0.4128"),
        num_turns=7,
    )
    answer = {"exit_code": 0, "result": "Fixed the login page", "subtype": "success"}
    Task.objects.filter(id=task.id).update(status="succeeded", attempts=2, result=answer)

    data = personas["owner"].client.get(f"{URL}{task.id}/").json()

    fields = ("number", "outcome", "session_id", "cost_usd", "num_turns", "error", "result")
    assert [tuple(a[f] for f in fields) for a in data["attempts_detail"]] == [
        (1, "failed", "sess-a", "0.000000", 1, overloaded, None),
        (2, "succeeded", "sess-b", "0.412800", 7, "", answer),
    ]


def test_unknown_task_id_is_404_json(personas):
    client = personas["owner"].client
    assert client.get(URL + "00000000-0000-0000-0000-000000000000/").status_code == 404
    response = client.get(URL + "not-a-uuid/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_body_over_the_cap_is_413_json_and_stores_nothing(personas, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = personas["owner"].client.post(URL, {"prompt": "x" * 5000, "capabilities": ["python"]}, format="json")
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert Task.objects.count() == 0


def test_rate_limit_is_shared_in_redis_and_answers_429_with_retry_after(personas, monkeypatch):
    from external_api import throttling

    route = f"test-route-{uuid.uuid4()}"  # counters live in Redis across runs: start a fresh one
    monkeypatch.setattr(throttling, "route_limit", lambda path: (route, 3))
    owner = personas["owner"].client
    codes = [owner.get(URL).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    response = owner.get(URL)
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60
    # another caller has its own budget
    assert personas["teammate"].client.get(URL).status_code == 200


def test_configured_route_limits_follow_the_guide():
    from external_api.throttling import route_limit

    assert route_limit("/api/v1/tasks/") == ("/api/v1/tasks", 200)
    assert route_limit("/api/v1/agents/3/") == ("/api/v1/agents", 100)
    assert route_limit("/api/v1/status/") == ("/api/v1/status", 50)


def test_refresh_tokens_rotate_and_the_old_one_is_blacklisted(personas):
    from rest_framework.test import APIClient

    client = APIClient()
    tokens = client.post(
        "/api/v1/auth/token/", {"username": "olivia", "password": "correct horse battery"}, format="json"
    ).json()
    rotated = client.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert rotated.status_code == 200 and rotated.json()["refresh"] != tokens["refresh"]
    replay = client.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert replay.status_code == 401
    assert replay.json()["code"] in ("token_not_valid", "authentication_failed")


def test_wrong_password_is_401_json():
    from rest_framework.test import APIClient

    response = APIClient().post("/api/v1/auth/token/", {"username": "nobody", "password": "x"}, format="json")
    assert response.status_code == 401 and response.json()["code"] in ("no_active_account", "authentication_failed")


def test_jwt_is_signed_with_a_key_other_than_secret_key(settings):
    assert settings.SIMPLE_JWT["SIGNING_KEY"] and settings.SIMPLE_JWT["SIGNING_KEY"] != settings.SECRET_KEY


def test_nul_characters_are_refused_with_400_not_stored(personas):
    owner = personas["owner"].client
    response = owner.post(URL, {"prompt": "ok", "capabilities": ["python"], "payload": {"k": "a\x00b"}}, format="json")
    assert response.status_code == 400 and "NUL" in response.json()["detail"]
    response = owner.post("/api/v1/events/", {"type": "custom.x", "payload": {"k\x00": 1}}, format="json")
    assert response.status_code == 400
    assert Task.objects.count() == 0 and not Event.objects.filter(type="custom.x").exists()


def test_time_filters_accept_any_offset_and_refuse_nonsense(personas):
    owner = personas["owner"].client
    assert owner.get(URL + "?created_after=0989-05-28T08:34:09.494-17:30").status_code == 200
    assert owner.get(URL + "?created_before=2020-01-01T00:00:00").status_code == 200
    assert owner.get(URL + "?created_before=0001-01-01T00:00:00%2B12:00").status_code == 400
