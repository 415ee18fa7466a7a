"""No input gets a 500, and none is coerced: deep JSON, tampered cursors, wrong types, unknown
fields and query parameters, pool sizes beyond the configuration. Each is a 400 naming what is
wrong, and nothing is stored."""

from __future__ import annotations

import base64

import pytest
from rest_framework.test import APIClient

from agents.models import AgentPool
from coordination.json_limits import MAX_JSON_DEPTH
from coordination.models import Event, Task

pytestmark = pytest.mark.django_db

TASKS = "/api/v1/tasks/"
EVENTS = "/api/v1/events/"


def deep_body(prefix: bytes, depth: int) -> bytes:
    return prefix + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [400, 100_000])
@pytest.mark.parametrize(
    "url,prefix",
    [
        (TASKS, b'{"prompt": "x", "capabilities": ["python"], "payload": {"a": '),
        (EVENTS, b'{"type": "custom.deep", "payload": {"a": '),
    ],
)
def test_api_deeply_nested_json_is_400_json_too_deep_and_stores_nothing(personas, url, prefix, depth):
    before = Event.objects.count()

    response = personas["owner"].client.post(url, deep_body(prefix, depth), content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"code": "json_too_deep", "detail": f"JSON nested deeper than {MAX_JSON_DEPTH} levels"}
    assert Task.objects.count() == 0 and Event.objects.count() == before


def test_api_json_at_the_depth_limit_is_accepted(personas):
    payload: dict = {"leaf": 1}
    for _ in range(MAX_JSON_DEPTH - 3):  # the body and "payload" take two levels, the leaf dict one
        payload = {"k": payload}

    response = personas["owner"].client.post(
        TASKS, {"prompt": "x", "capabilities": ["python"], "payload": payload}, format="json"
    )

    assert response.status_code == 201, response.content


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_api_non_finite_numbers_are_400_parse_error(personas, constant):
    body = b'{"prompt": "x", "capabilities": ["python"], "payload": {"a": ' + constant + b"}}"

    response = personas["owner"].client.post(TASKS, body, content_type="application/json")

    assert response.status_code == 400 and response.json()["code"] == "parse_error"
    assert Task.objects.count() == 0


def cursor(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(cursor(b"p=not-a-date"), id="position-not-a-date"),
        pytest.param(cursor(b"p=99999-01-01"), id="position-year-99999"),
        pytest.param(cursor(b"p=0001-01-01 00:00:00%2B12:00"), id="position-underflows-in-utc"),
        pytest.param(cursor(b"p=2020-01-01 00:00:00"), id="position-without-offset"),
        pytest.param(cursor(b"p=%00"), id="position-nul"),
        pytest.param(cursor(b"o=99999999999999999999&p=2020-01-01 00:00:00%2B00:00"), id="offset-overflows"),
        pytest.param(cursor(b"o=-1"), id="offset-negative"),
        pytest.param(cursor(b"r=7"), id="reverse-not-a-flag"),
        pytest.param(cursor(b"x=1"), id="unknown-key"),
        pytest.param("%%%not-base64", id="not-base64"),
    ],
)
def test_task_list_tampered_cursor_is_400_invalid_cursor(personas, acme_task, value):
    response = personas["owner"].client.get(TASKS, {"cursor": value})

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_cursor"


def test_task_list_cursor_it_gave_out_still_pages(personas):
    owner = personas["owner"].client
    for i in range(3):
        owner.post(TASKS, {"prompt": f"job {i}", "capabilities": ["python"]}, format="json")

    first = owner.get(TASKS, {"limit": 2}).json()
    rest = owner.get(first["next"]).json()
    back = owner.get(rest["previous"]).json()

    assert len(first["results"]) == 2 and len(rest["results"]) == 1
    assert [t["id"] for t in back["results"]] == [t["id"] for t in first["results"]]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt", 123),
        ("prompt", True),
        ("timeout", True),
        ("timeout", "30"),
        ("max_attempts", 2.0),
        ("max_attempts", "2"),
        ("complexity", False),
        ("command", [1, 2]),
        ("command", "pytest -q"),
        ("capabilities", [7]),
        ("priority", 1),
        ("task_type", 5),
        ("external_ref", 9),
        ("payload", [1]),
    ],
)
def test_task_create_wrong_type_is_400_naming_the_field_not_coerced(personas, field, value):
    body = {"prompt": "x", "capabilities": ["python"], field: value}

    response = personas["owner"].client.post(TASKS, body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid" and field in response.json()["fields"]
    assert Task.objects.count() == 0


@pytest.mark.parametrize(
    ("url", "body", "unknown"),
    [
        (TASKS, {"prompt": "x", "capabilities": ["python"], "colour": "red"}, "colour"),
        (TASKS, {"prompt": "x", "capabilities": ["python"], "status": "succeeded"}, "status"),
        (EVENTS, {"type": "custom.x", "extra": 1}, "extra"),
    ],
)
def test_unknown_fields_are_400_naming_them_on_every_route(personas, url, body, unknown):
    events_before = Event.objects.count()

    response = personas["owner"].client.post(url, body, format="json")

    assert response.status_code == 400
    assert list(response.json()["fields"]) == [unknown]
    assert response.json()["detail"].startswith(f"{unknown}: unknown field; the fields are ")
    assert Task.objects.count() == 0 and Event.objects.count() == events_before


def test_event_create_task_given_as_an_integer_is_400_not_a_uuid(personas):
    response = personas["owner"].client.post(EVENTS, {"type": "custom.x", "task": 12345}, format="json")

    assert response.status_code == 400 and "task" in response.json()["fields"]


def test_pool_patch_read_only_or_unknown_field_is_400_naming_it_and_changes_nothing(personas):
    admin = personas["admin_key"].client

    for body, field in (({"concurrency": 64}, "concurrency"), ({"size": 3}, "size")):
        response = admin.patch("/api/v1/pools/backend/", body, format="json")
        assert response.status_code == 400 and list(response.json()["fields"]) == [field]
    assert AgentPool.objects.get(name="backend").concurrency == 1
    assert not Event.objects.filter(type="pool.resized").exists()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=bogus", "status"),
        ("priority=urgent", "priority"),
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("created_after=yesterday", "created_after"),
        ("pool=%00", "pool"),
        ("stauts=queued", "stauts"),
        ("status=queued&status=running", "status"),
    ],
)
def test_task_list_bad_query_parameter_is_400_naming_it(personas, query, field):
    response = personas["owner"].client.get(f"{TASKS}?{query}")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid" and list(response.json()["fields"]) == [field]


@pytest.mark.parametrize(
    ("url", "query", "field"),
    [
        (EVENTS, "limit=-1", "limit"),
        (EVENTS, "limit=1001", "limit"),
        (EVENTS, "after=-5", "after"),
        (EVENTS, "after=99999999999999999999999", "after"),
        (EVENTS, "since=3", "since"),
        ("/api/v1/agents/", "pool=backend", "pool"),
        ("/api/v1/pools/", "enabled=false", "enabled"),
    ],
)
def test_every_list_endpoint_bad_query_parameter_is_400_naming_it(personas, url, query, field):
    response = personas["staff"].client.get(f"{url}?{query}")

    assert response.status_code == 400, response.content
    assert list(response.json()["fields"]) == [field]


def test_task_events_bad_after_is_400_naming_it(personas, acme_task):
    response = personas["owner"].client.get(f"{TASKS}{acme_task['id']}/events/?after=minus")

    assert response.status_code == 400 and list(response.json()["fields"]) == ["after"]


def test_list_filters_that_are_valid_still_filter(personas, acme_task):
    owner = personas["owner"].client

    assert len(owner.get(f"{TASKS}?status=queued&priority=normal&limit=1&format=json").json()["results"]) == 1
    assert owner.get(f"{TASKS}?status=running&pool=").json()["results"] == []
    assert owner.get(f"{EVENTS}?limit=1000&after=0&type=task.queued").status_code == 200


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"max_instances": 10**12}, "must be at most 20 (multi_agent.max_agents)"),
        ({"max_instances": 3}, "must be at most 2 (agents.backend.max_instances in the configuration)"),
        ({"max_instances": True}, "A valid integer is required."),
        ({"min_instances": 10**12}, "must be at most 20 (multi_agent.max_agents)"),
        ({"desired_instances": -1}, "Ensure this value is greater than or equal to 0."),
    ],
)
def test_pool_patch_beyond_the_configuration_is_400_naming_the_bound(personas, body, says):
    response = personas["admin_key"].client.patch("/api/v1/pools/backend/", body, format="json")

    assert response.status_code == 400
    (field,) = body
    assert response.json()["fields"] == {field: [says]}
    assert AgentPool.objects.get(name="backend").max_instances == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": 123, "password": "correct horse battery"}, "username"),
        ({"username": "olivia", "password": 5}, "password"),
        ({"username": "olivia", "password": "correct horse battery", "otp": "1"}, "otp"),
    ],
)
def test_token_obtain_wrong_type_or_unknown_field_is_400_naming_it(personas, body, field):
    response = APIClient().post("/api/v1/auth/token/", body, format="json")

    assert response.status_code == 400 and list(response.json()["fields"]) == [field]


def test_token_refresh_wrong_type_is_400_naming_it():
    response = APIClient().post("/api/v1/auth/token/refresh/", {"refresh": 42}, format="json")

    assert response.status_code == 400 and list(response.json()["fields"]) == ["refresh"]


def test_same_idempotency_key_with_another_timeout_or_budget_is_409(personas):
    owner = personas["owner"].client
    body = {"prompt": "once", "capabilities": ["python"]}
    first = owner.post(TASKS, body, format="json", HTTP_IDEMPOTENCY_KEY="deploy-43")
    assert first.status_code == 201

    for changed in ({"timeout": 5}, {"max_attempts": 1}):
        response = owner.post(TASKS, body | changed, format="json", HTTP_IDEMPOTENCY_KEY="deploy-43")
        assert response.status_code == 409 and response.json()["code"] == "idempotency_conflict"
        assert next(iter(changed)) in response.json()["detail"]
    assert Task.objects.count() == 1


def test_task_for_a_pool_whose_argv_needs_a_payload_field_is_400_at_submit(personas):
    AgentPool.objects.filter(name="backend").update(
        runner={"kind": "command", "argv": ["agent", "--ticket={payload.ticket}", "{prompt}"]}
    )

    response = personas["owner"].client.post(TASKS, {"prompt": "x", "capabilities": ["python"]}, format="json")

    assert response.status_code == 400 and response.json()["code"] == "invalid_task"
    assert "payload field(s) ticket" in response.json()["detail"]
    assert Task.objects.count() == 0


def test_schema_documents_auth_errors_and_the_bounds(personas):
    schema = personas["staff"].client.get("/api/schema/?format=json").json()

    for path in ("/api/v1/auth/token/", "/api/v1/auth/token/refresh/"):
        assert {"400", "401"} <= set(schema["paths"][path]["post"]["responses"])
    task = schema["components"]["schemas"]["TaskCreateRequest"]
    assert task["additionalProperties"] is False
    assert task["properties"]["prompt"]["maxLength"] == 100_000
    assert task["properties"]["capabilities"]["maxItems"] == 50
    assert (task["properties"]["max_attempts"]["minimum"], task["properties"]["max_attempts"]["maximum"]) == (1, 20)
    pool = schema["components"]["schemas"]["PatchedPoolRequest"]
    assert pool["properties"]["max_instances"]["maximum"] == 20
    limit = next(p for p in schema["paths"]["/api/v1/tasks/"]["get"]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 500)
