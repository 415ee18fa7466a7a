"""`/api/v1/sessions/` with every persona (401 / 403 / 404 proven per endpoint), refused plans
(400 with code and detail, nothing stored), the detail's steps and DAG, list filters and pages."""

from __future__ import annotations

import uuid

import pytest

from coordination.models import CoordinationSession, Event, SessionStep, Task

pytestmark = pytest.mark.django_db

URL = "/api/v1/sessions/"
PLAN = {
    "name": "build and test",
    "mode": "dag",
    "steps": [
        {"name": "build", "command": ["true"], "capabilities": ["python"]},
        {"name": "lint", "command": ["true"], "capabilities": ["python"]},
        {
            "name": "test",
            "command": ["echo", "{steps.build.result}"],
            "capabilities": ["python"],
            "depends_on": ["build", "lint"],
        },
    ],
}
SESSION_ACTIONS = [("get", URL + "{id}/"), ("post", URL + "{id}/cancel/")]
ALL_ENDPOINTS = [("get", URL, None), ("post", URL, PLAN), *[(m, p, None) for m, p in SESSION_ACTIONS]]


def call(persona, method: str, path: str, body=None):
    if body is not None:
        return getattr(persona.client, method)(path, body, format="json")
    return getattr(persona.client, method)(path)


def stored() -> tuple[int, ...]:
    return (
        CoordinationSession.objects.count(),
        SessionStep.objects.count(),
        Task.objects.count(),
        Event.objects.count(),
    )


@pytest.fixture
def acme_session(personas) -> dict:
    response = personas["owner"].client.post(URL, PLAN, format="json")
    assert response.status_code == 201, response.content
    return response.json()


# --- personas -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ALL_ENDPOINTS)
def test_session_endpoint_without_credentials_is_401_and_nothing_changes(personas, acme_session, method, path, body):
    before = stored()

    response = call(personas["anonymous"], method, path.format(id=acme_session["id"]), body)

    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
    assert stored() == before


@pytest.mark.parametrize(("method", "path", "body"), [e for e in ALL_ENDPOINTS if e[0] == "post"])
def test_session_write_with_a_read_only_key_is_403_and_nothing_changes(personas, acme_session, method, path, body):
    before = (stored(), CoordinationSession.objects.get().status)

    response = call(personas["reader"], method, path.format(id=acme_session["id"]), body)

    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert (stored(), CoordinationSession.objects.get().status) == before


@pytest.mark.parametrize(("method", "path"), SESSION_ACTIONS)
def test_session_of_another_team_is_404_for_an_outsider_and_nothing_changes(personas, acme_session, method, path):
    before = (stored(), CoordinationSession.objects.get().status)

    response = call(personas["outsider"], method, path.format(id=acme_session["id"]))

    assert response.status_code == 404 and response.json() == {"code": "not_found", "detail": "Not found."}
    assert (stored(), CoordinationSession.objects.get().status) == before


def test_session_list_of_an_outsider_shows_nothing_of_another_team(personas, acme_session):
    assert personas["outsider"].client.get(URL).json()["results"] == []
    events = personas["outsider"].client.get("/api/v1/events/?type=session.created").json()
    assert events == []


@pytest.mark.parametrize("who", ["owner", "teammate", "writer", "staff"])
def test_session_team_members_and_staff_see_and_cancel_the_teams_session(personas, acme_session, who):
    client = personas[who].client
    assert [s["id"] for s in client.get(URL).json()["results"]] == [acme_session["id"]]
    assert client.get(f"{URL}{acme_session['id']}/").json()["name"] == "build and test"

    response = client.post(f"{URL}{acme_session['id']}/cancel/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "cancelled"
    assert {s["name"]: s["status"] for s in body["steps"]} == {
        "build": "cancelled",
        "lint": "cancelled",
        "test": "cancelled",
    }
    assert set(Task.objects.values_list("status", flat=True)) == {"cancelled"}


def test_session_reader_key_can_read(personas, acme_session):
    reader = personas["reader"].client
    assert reader.get(f"{URL}{acme_session['id']}/").status_code == 200
    assert len(reader.get(URL).json()["results"]) == 1


# --- create and show ------------------------------------------------------------------------------------


def test_session_create_returns_the_steps_the_dag_and_the_team(personas, acme_session, teams):
    body = acme_session
    assert (body["status"], body["mode"], body["team"], body["source"]) == ("running", "dag", "acme", "api")
    assert (body["steps_total"], body["steps_done"], body["decision"]) == (3, 0, None)
    steps = {s["name"]: s for s in body["steps"]}
    assert {n: s["status"] for n, s in steps.items()} == {"build": "queued", "lint": "queued", "test": "waiting"}
    assert steps["build"]["pool"] == "backend" and steps["build"]["task"] is not None
    assert steps["test"]["task"] is None and steps["test"]["depends_on"] == ["build", "lint"]
    assert body["graph"]["nodes"] == [
        {"id": "build", "status": "queued", "task": steps["build"]["task"]},
        {"id": "lint", "status": "queued", "task": steps["lint"]["task"]},
        {"id": "test", "status": "waiting", "task": None},
    ]
    assert body["graph"]["edges"] == [{"source": "build", "target": "test"}, {"source": "lint", "target": "test"}]
    assert Task.objects.get(id=steps["build"]["task"]).team == teams[0]


def with_steps(*steps: dict, **extra) -> dict:
    return {"name": "refused", "mode": "dag", "steps": list(steps), **extra}


def step(name: str, *deps: str, caps: tuple[str, ...] = ("python",)) -> dict:
    return {"name": name, "command": ["true"], "capabilities": list(caps), "depends_on": list(deps)}


@pytest.mark.parametrize(
    ("plan", "detail"),
    [
        pytest.param(
            with_steps(step("a", "c"), step("b", "a"), step("c", "b")),
            "the steps form a cycle: a -> c -> b -> a",
            id="cycle",
        ),
        pytest.param(
            with_steps(step("a"), step("b", "ghost")),
            "step b depends on ghost, which is not a step of this plan",
            id="unknown-dependency",
        ),
        pytest.param(
            with_steps(*[step(f"s{i}") for i in range(11)]),
            "the plan has 11 steps (participants); at most 10 are allowed "
            "(external_api.agent_coordination.max_participants)",
            id="too-many-steps",
        ),
        pytest.param(
            with_steps(step("a"), step("b", "a", caps=("cobol",))),
            "step b: no pool offers cobol: backend offers api, database, microservices, python",
            id="unroutable",
        ),
        pytest.param({"name": "x", "steps": "a,b"}, "steps must be a non-empty list of steps", id="steps-not-a-list"),
        pytest.param(["not", "a", "plan"], "a session plan must be an object", id="not-an-object"),
    ],
)
def test_session_create_refused_plan_is_400_with_code_and_detail_and_stores_nothing(personas, plan, detail):
    before = stored()

    response = personas["owner"].client.post(URL, plan, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_session"
    assert detail in response.json()["detail"]
    assert stored() == before


def test_session_cancel_of_an_ended_session_is_409(personas, acme_session):
    owner = personas["owner"].client
    assert owner.post(f"{URL}{acme_session['id']}/cancel/").status_code == 200

    response = owner.post(f"{URL}{acme_session['id']}/cancel/")

    assert response.status_code == 409 and response.json()["code"] == "invalid_state"
    assert "is cancelled: only pending or running sessions can be cancelled" in response.json()["detail"]


def test_session_unknown_id_is_404(personas):
    assert personas["owner"].client.get(f"{URL}{uuid.uuid4()}/").status_code == 404


# --- list ------------------------------------------------------------------------------------------------


def test_session_list_filters_by_status_and_mode_and_pages_with_a_cursor(personas, acme_session):
    owner = personas["owner"].client
    fan = {
        "name": "fan",
        "mode": "fan_out",
        "steps": [{"name": "f", "command": ["true"], "capabilities": ["ui"], "targets": ["frontend", "ios"]}],
    }
    fan_id = owner.post(URL, fan, format="json").json()["id"]
    owner.post(f"{URL}{acme_session['id']}/cancel/")

    assert [s["id"] for s in owner.get(URL + "?mode=fan_out").json()["results"]] == [fan_id]
    assert [s["id"] for s in owner.get(URL + "?status=cancelled").json()["results"]] == [acme_session["id"]]
    assert owner.get(URL + "?status=succeeded").json()["results"] == []
    first = owner.get(URL + "?limit=1").json()
    assert [s["id"] for s in first["results"]] == [fan_id] and first["next"]
    second = owner.get(first["next"]).json()
    assert [s["id"] for s in second["results"]] == [acme_session["id"]] and second["next"] is None


# --- the admin -------------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, pools):
    from django.contrib.auth.models import User

    User.objects.create_superuser("root", password="admin password 1")
    client.login(username="root", password="admin password 1")
    return client


def test_session_admin_lists_filters_shows_steps_and_cancels(admin_client, acme_session):
    from coordination.sessions import session_create

    other = session_create(
        plan={
            "name": "vote on it",
            "mode": "consensus",
            "steps": [{"name": "v", "command": ["true"], "capabilities": ["python"], "count": 2}],
        }
    )

    page = admin_client.get("/admin/coordination/coordinationsession/?mode__exact=consensus").content.decode()
    assert "vote on it" in page and "build and test" not in page
    detail = admin_client.get(f"/admin/coordination/coordinationsession/{acme_session['id']}/change/").content.decode()
    assert "Session steps" in detail and "build" in detail and "waiting" in detail
    response = admin_client.post(
        "/admin/coordination/coordinationsession/",
        {"action": "cancel", "_selected_action": [acme_session["id"], str(other.id)]},
        follow=True,
    )
    assert "Cancelled 2 session(s)" in response.content.decode()
    assert set(CoordinationSession.objects.values_list("status", flat=True)) == {"cancelled"}
    response = admin_client.post(
        "/admin/coordination/coordinationsession/",
        {"action": "cancel", "_selected_action": [str(other.id)]},
        follow=True,
    )
    assert "only pending or running sessions can be cancelled" in response.content.decode()
