"""The learning surfaces of the API with models trained on a seeded synthetic history: models,
training (admin), insights, routing decisions (team visibility), predictions, and the `prediction`
and `decision` blocks of a task's detail."""

from __future__ import annotations

import pytest
from django.utils import timezone

from coordination.models import RoutingDecision, Task
from coordination.services import task_submit
from ml.services import ml_train
from tests.ml.conftest import clean_registry, with_config  # noqa: F401  (clean_registry: autouse fixture)
from tests.ml.synthetic import CAPABILITY, Cause, World, build_history, build_profiles, make_pools

pytestmark = pytest.mark.django_db

WORLD = World(
    speed={"fast": 0.5, "slow": 1.5},
    types={"build": 20.0, "test": 5.0, "migrate": 60.0},
    causes=[Cause(pool="slow", task_type="build", rate=0.7, error="xcodebuild: not found")],
    complexity_risk=0.4,
)


@pytest.fixture
def ml_pools(personas):
    return make_pools(["fast", "slow"])


@pytest.fixture
def trained(ml_pools, settings):
    """Duration and success models (v1, active) from 800 seeded attempts; routing is predictive."""
    build_history(WORLD, n=800, pools=ml_pools, seed=1)
    build_profiles(ml_pools)
    report = ml_train(kinds=["duration", "success"], seed=0)
    assert [k.status for k in report.kinds] == ["activated", "activated"], report.kinds
    with_config(settings, multi_agent={"load_balancing_strategy": "predictive"})
    return ml_pools


def submit(persona, **fields) -> Task:
    return task_submit(
        capabilities=[CAPABILITY],
        prompt="p" * 100,
        task_type="build",
        complexity=5,
        team=persona.team,
        source="api",
        **fields,
    )


# --- models ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["reader", "outsider", "staff"])
def test_ml_models_lists_every_version_with_metrics_baseline_and_drift(personas, trained, who):
    build_history(WORLD, n=40, pools=trained, seed=2)  # newer than the models: drift can be measured

    response = personas[who].client.get("/api/v1/ml/models/")

    assert response.status_code == 200, response.content
    rows = {(m["kind"], m["version"]): m for m in response.json()}
    assert set(rows) == {("duration", 1), ("success", 1)}
    duration = rows[("duration", 1)]
    assert duration["active"] is True and duration["samples"] == 800
    assert "pool" in duration["features"] and "complexity" in duration["features"]
    assert duration["metrics"]["mae_p50"] < duration["baseline_metrics"]["mae_p50"]
    assert duration["drift"]["metric"] == "mae_p50" and duration["drift"]["rows"] == 40
    assert rows[("success", 1)]["metrics"]["brier"] < rows[("success", 1)]["baseline_metrics"]["brier"]


def test_ml_models_filter_by_kind_and_refuse_an_unknown_one(personas, trained):
    client = personas["reader"].client

    assert [m["kind"] for m in client.get("/api/v1/ml/models/?kind=success").json()] == ["success"]
    bad = client.get("/api/v1/ml/models/?kind=weather")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid" and "kind" in bad.json()["fields"]


def test_ml_models_without_credentials_is_401(personas):
    response = personas["anonymous"].client.get("/api/v1/ml/models/")

    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


# --- training --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["owner", "reader", "writer"])
def test_ml_train_without_the_admin_scope_is_403_and_trains_nothing(personas, ml_pools, who):
    build_history(WORLD, n=200, pools=ml_pools, seed=1)

    response = personas[who].client.post("/api/v1/ml/train/", {}, format="json")

    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert personas["staff"].client.get("/api/v1/ml/models/").json() == []


def test_ml_train_by_staff_trains_now_and_returns_the_report(personas, ml_pools):
    build_history(WORLD, n=800, pools=ml_pools, seed=1)

    response = personas["staff"].client.post("/api/v1/ml/train/", {"kinds": ["duration"]}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    (kind,) = body["kinds"]
    assert (kind["kind"], kind["status"], kind["version"]) == ("duration", "activated", 1)
    assert "beats the baseline" in kind["reason"]
    assert body["patterns"] >= 1  # slow fails builds with xcodebuild
    models = personas["reader"].client.get("/api/v1/ml/models/").json()
    assert [(m["kind"], m["version"], m["active"]) for m in models] == [("duration", 1, True)]


def test_ml_train_without_enough_history_reports_skipped(personas, ml_pools):
    response = personas["admin_key"].client.post("/api/v1/ml/train/", {"kinds": ["duration"]}, format="json")

    assert response.status_code == 200
    (kind,) = response.json()["kinds"]
    assert kind["status"] == "skipped" and kind["version"] is None and kind["reason"]


def test_ml_train_while_another_training_runs_is_409(personas, ml_pools):
    from django.core.cache import cache

    from ml.services import LOCK_KEY

    build_history(WORLD, n=200, pools=ml_pools, seed=1)
    assert cache.add(LOCK_KEY, "another trainer", timeout=60)

    response = personas["staff"].client.post("/api/v1/ml/train/", {}, format="json")

    assert response.status_code == 409 and response.json()["code"] == "training_locked"
    assert personas["staff"].client.get("/api/v1/ml/models/").json() == []


def test_ml_train_refuses_an_unknown_kind_or_field(personas):
    client = personas["staff"].client

    bad = client.post("/api/v1/ml/train/", {"kinds": ["weather"]}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid" and "kinds" in bad.json()["fields"]
    bad = client.post("/api/v1/ml/train/", {"kind": "duration"}, format="json")
    assert bad.status_code == 400 and "kind" in bad.json()["fields"]


# --- insights --------------------------------------------------------------------------------------------
def test_insights_report_the_injected_failure_with_a_recommendation(personas, ml_pools):
    build_history(WORLD, n=800, pools=ml_pools, seed=1)

    response = personas["outsider"].client.get("/api/v1/insights/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["attempts"] == 800
    found = [(p["pool"], p["task_type"], p["signature"]) for p in body["patterns"]]
    assert ("slow", "build", "exit 127: xcodebuild: not found") in found
    reroute = [r for r in body["recommendations"] if r["kind"] == "reroute"]
    assert reroute and reroute[0]["pool"] == "slow" and "route elsewhere" in reroute[0]["text"]
    assert personas["reader"].client.get("/api/v1/insights/?window=5").status_code == 400


# --- decisions -------------------------------------------------------------------------------------------
def test_decisions_list_the_callers_team_only_and_staff_every_team(personas, trained):
    mine = submit(personas["owner"])
    theirs = submit(personas["outsider"])

    def listed(who: str, query: str = "") -> list[str]:
        response = personas[who].client.get(f"/api/v1/decisions/{query}")
        assert response.status_code == 200, response.content
        return [d["task"] for d in response.json()["results"]]

    assert listed("owner") == [str(mine.id)]
    assert listed("teammate") == [str(mine.id)]
    assert listed("outsider") == [str(theirs.id)]
    assert listed("staff") == [str(theirs.id), str(mine.id)]  # newest first
    assert listed("owner", f"?task={theirs.id}") == []  # another team's decision is not shown
    assert listed("staff", f"?task={mine.id}") == [str(mine.id)]


def test_decision_shows_candidates_scores_confidence_model_and_then_the_outcome(personas, trained):
    task = submit(personas["owner"])
    client = personas["owner"].client

    (decision,) = client.get("/api/v1/decisions/?strategy=predictive").json()["results"]

    assert decision["strategy"] == "predictive" and decision["pool"] == task.pool.name
    assert {c["pool"] for c in decision["candidates"]} == {"fast", "slow"}
    assert all(c["score"] > 0 and 0 <= c["win_share"] <= 1 for c in decision["candidates"])
    assert decision["model_version"] == "duration v1, success v1"
    assert decision["fallback"] in ("", "low_confidence") and 0 < decision["confidence"] <= 1
    assert decision["outcome"] is None
    RoutingDecision.objects.filter(task=task).update(duration=12.5, success=True, attempts=1, closed_at=timezone.now())

    (decision,) = client.get(f"/api/v1/decisions/?pool={task.pool.name}").json()["results"]
    assert decision["outcome"]["duration"] == 12.5 and decision["outcome"]["success"] is True
    assert client.get("/api/v1/decisions/?strategy=round_robin").json()["results"] == []


def test_decisions_refuse_bad_filters(personas):
    client = personas["owner"].client

    for query in ("?task=abc", "?colour=red", "?limit=0"):
        response = client.get(f"/api/v1/decisions/{query}")
        assert response.status_code == 400 and response.json()["code"] == "invalid", query


def test_decisions_are_paginated_with_a_cursor(personas, trained):
    for _ in range(3):
        submit(personas["owner"])
    client = personas["owner"].client

    first = client.get("/api/v1/decisions/?limit=2").json()
    second = client.get(first["next"]).json()

    assert len(first["results"]) == 2 and len(second["results"]) == 1 and second["next"] is None


# --- predictions -----------------------------------------------------------------------------------------
def test_predict_gives_every_eligible_pool_its_duration_success_wait_and_eta(personas, trained):
    response = personas["reader"].client.get(f"/api/v1/predict/?capabilities={CAPABILITY}&task_type=build&complexity=5")

    assert response.status_code == 200, response.content
    fast, slow = response.json()
    assert (fast["pool"], slow["pool"]) == ("fast", "slow")
    assert fast["p50_seconds"] < fast["p90_seconds"] and fast["p50_seconds"] < slow["p50_seconds"]
    assert slow["success_probability"] < fast["success_probability"]  # slow fails most builds
    assert fast["expected_wait_seconds"] == 0.0  # nothing queued
    assert fast["eta_seconds"] == pytest.approx(fast["p50_seconds"] * fast["expected_attempts"], rel=1e-3)
    assert fast["model_version"] == "duration v1, success v1" and fast["success_source"] == "model"
    assert fast["eta"] > timezone.now().isoformat()[:19]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (f"capabilities={CAPABILITY}&complexity=0", "complexity"),
        (f"capabilities={CAPABILITY}&complexity=11", "complexity"),
        (f"capabilities={CAPABILITY}&complexity=five", "complexity"),
        ("task_type=build", "capabilities"),
        ("capabilities=,", "capabilities"),
        (f"capabilities={CAPABILITY}&priority=urgent", "priority"),
        (f"capabilities={CAPABILITY}&colour=red", "colour"),
    ],
)
def test_predict_bad_input_is_400_naming_the_parameter(personas, trained, query, field):
    response = personas["reader"].client.get(f"/api/v1/predict/?{query}")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and field in response.json()["fields"]


def test_predict_without_a_pool_for_the_capability_is_422(personas, trained):
    response = personas["reader"].client.get("/api/v1/predict/?capabilities=cobol")

    assert response.status_code == 422 and response.json()["code"] == "no_eligible_pool"


def test_predict_before_any_model_is_409_no_model(personas, ml_pools):
    response = personas["reader"].client.get(f"/api/v1/predict/?capabilities={CAPABILITY}")

    assert response.status_code == 409
    assert response.json() == {
        "code": "no_model",
        "detail": "no active duration model yet (train one with enough history)",
    }


# --- task detail ------------------------------------------------------------------------------------------
def test_task_detail_of_a_queued_task_has_its_eta_and_its_decision(personas, trained):
    task = submit(personas["owner"])

    response = personas["teammate"].client.get(f"/api/v1/tasks/{task.id}/")

    assert response.status_code == 200, response.content
    body = response.json()
    prediction = body["prediction"]
    assert prediction["model_version"] == "duration v1" and prediction["reason"] is None
    assert 0 < prediction["eta_seconds"] <= prediction["eta_p90_seconds"]
    assert prediction["wait_seconds"] == 0.0
    assert body["decision"]["strategy"] == "predictive" and body["decision"]["pool"] == task.pool.name
    assert body["decision"]["task"] == str(task.id)


def test_task_detail_of_another_teams_task_is_404(personas, trained):
    task = submit(personas["owner"])

    response = personas["outsider"].client.get(f"/api/v1/tasks/{task.id}/")

    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_task_detail_without_a_model_says_why_and_a_finished_task_has_no_prediction(personas, ml_pools, settings):
    with_config(settings, multi_agent={"load_balancing_strategy": "predictive"})
    task = submit(personas["owner"])
    client = personas["owner"].client

    prediction = client.get(f"/api/v1/tasks/{task.id}/").json()["prediction"]
    assert prediction["eta_seconds"] is None and prediction["model_version"] is None
    assert prediction["reason"] == "no active duration model yet (train one with enough history)"

    Task.objects.filter(id=task.id).update(status=Task.Status.SUCCEEDED, finished_at=timezone.now())
    body = client.get(f"/api/v1/tasks/{task.id}/").json()
    assert body["prediction"] is None and body["decision"]["fallback"] == "no_model"
