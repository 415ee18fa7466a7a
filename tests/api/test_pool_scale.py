"""GET /api/v1/pools/<name>/scale: the desired size KEDA's metrics-api scaler reads, for every persona."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from agents.models import Agent, AgentPool
from coordination.models import ScalingDecision
from tests.api.conftest import api_key, key_client

pytestmark = pytest.mark.django_db

SCALE = "/api/v1/pools/backend/scale"


@pytest.fixture
def backend(pools) -> AgentPool:
    pool = pools["backend"]
    pool.min_instances, pool.max_instances, pool.desired_instances = 1, 6, 4
    pool.save()
    for name, status in (("a", "online"), ("b", "draining"), ("c", "offline")):
        Agent.objects.create(name=f"backend@{name}", pool=pool, status=status)
    return pool


@pytest.mark.parametrize("persona", ["reader", "writer", "admin_key", "staff", "owner", "outsider"])
def test_pool_scale_with_read_access_returns_desired_actual_and_bounds(personas, backend, persona):
    response = personas[persona].client.get(SCALE)
    assert response.status_code == 200, response.content
    assert response.json() == {"pool": "backend", "desired": 4, "instances": 2, "min": 1, "max": 6}


def test_pool_scale_without_credentials_is_401_json(personas, backend):
    response = personas["anonymous"].client.get(SCALE)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_pool_scale_with_a_key_lacking_the_read_scope_is_403(teams, backend):
    acme, _ = teams
    response = key_client(api_key(acme, ["write"])).get(SCALE)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_pool_scale_with_a_wrong_key_is_401_and_names_no_pool(backend):
    response = key_client("hive_nosuchkey_secret").get(SCALE)
    assert response.status_code == 401
    assert "backend" not in response.content.decode()


@pytest.mark.parametrize("path", ["/api/v1/pools/nosuch/scale", "/api/v1/pools/nosuch/scale/"])
def test_pool_scale_of_an_unknown_pool_is_404(personas, backend, path):
    response = personas["reader"].client.get(path)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_pool_scale_of_a_disabled_pool_is_404(personas, backend):
    AgentPool.objects.filter(id=backend.id).update(enabled=False)
    assert personas["reader"].client.get(SCALE).status_code == 404


def test_pool_scale_answers_with_and_without_the_trailing_slash_without_redirect(personas, backend):
    for path in (SCALE, SCALE + "/"):
        response = personas["reader"].client.get(path)
        assert response.status_code == 200, path
        assert response.json()["desired"] == 4


def test_pool_scale_follows_the_policys_decision_and_the_agents(personas, backend):
    reader = personas["reader"].client
    AgentPool.objects.filter(id=backend.id).update(desired_instances=0)
    Agent.objects.filter(name="backend@a").update(status="offline")
    assert reader.get(SCALE).json() == {"pool": "backend", "desired": 0, "instances": 1, "min": 1, "max": 6}
    AgentPool.objects.filter(id=backend.id).update(desired_instances=6)
    assert reader.get(SCALE).json()["desired"] == 6


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_pool_scale_takes_no_other_change_and_changes_nothing(personas, backend, method):
    response = getattr(personas["admin_key"].client, method)(SCALE, {"desired": 1}, format="json")
    assert response.status_code == 405
    assert AgentPool.objects.get(id=backend.id).desired_instances == 4


@pytest.mark.parametrize("persona", ["admin_key", "staff"])
def test_pool_scale_post_by_an_admin_sets_the_target_as_a_manual_decision(personas, backend, persona):
    response = personas[persona].client.post(SCALE, {"desired": 2, "reason": "quiet night"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"pool": "backend", "desired": 2, "instances": 2, "min": 1, "max": 6}
    decision = ScalingDecision.objects.get(pool=backend)
    assert (decision.previous, decision.desired, decision.actuator, decision.applied) == (4, 2, "manual", True)
    assert decision.reason == "manual target 2: quiet night"


@pytest.mark.parametrize(
    ("persona", "status"), [("reader", 403), ("writer", 403), ("owner", 403), ("outsider", 403), ("anonymous", 401)]
)
def test_pool_scale_post_without_the_admin_scope_is_refused_and_changes_nothing(personas, backend, persona, status):
    response = personas[persona].client.post(SCALE, {"desired": 2}, format="json")
    assert response.status_code == status
    assert AgentPool.objects.get(id=backend.id).desired_instances == 4
    assert not ScalingDecision.objects.exists()


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"desired": 7}, 400, "desired = 7: expected 1..6 for pool backend"),
        ({"desired": 0}, 400, "desired = 0: expected 1..6 for pool backend"),
        ({"desired": "2"}, 400, "desired"),
        ({"desired": True}, 400, "desired"),
        ({"desired": -1}, 400, "desired"),
        ({}, 400, "desired"),
        ({"desired": 2, "colour": "red"}, 400, "colour"),
    ],
)
def test_pool_scale_post_with_bad_input_names_the_field_and_changes_nothing(personas, backend, body, status, needle):
    response = personas["admin_key"].client.post(SCALE, body, format="json")
    assert response.status_code == status, response.content
    assert needle in response.content.decode()
    assert AgentPool.objects.get(id=backend.id).desired_instances == 4
    assert not ScalingDecision.objects.exists()


def test_pool_scale_post_to_an_unknown_pool_is_404(personas, backend):
    response = personas["admin_key"].client.post("/api/v1/pools/nosuch/scale", {"desired": 1}, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "pool_not_found"


def test_each_scaled_object_of_k8s_reads_the_pools_desired_count_as_keda_would(teams, pools):
    """KEDA's request, taken from k8s/keda.yaml: the URL's path, the key in the configured header."""
    from urllib.parse import urlsplit

    import yaml

    from tests.conftest import ROOT

    acme, _ = teams
    raw = api_key(acme, ["read"])
    docs = [d for d in yaml.safe_load_all((ROOT / "k8s" / "keda.yaml").read_text()) if d["kind"] == "ScaledObject"]
    assert len(docs) == 4
    for number, doc in enumerate(docs, start=1):
        pool = doc["metadata"]["labels"]["pool"]
        AgentPool.objects.filter(name=pool).update(desired_instances=number)
        meta = doc["spec"]["triggers"][0]["metadata"]
        header = "HTTP_" + meta["keyParamName"].upper().replace("-", "_")
        response = APIClient().get(urlsplit(meta["url"]).path, **{header: raw})
        assert response.status_code == 200, (pool, response.content)
        assert response.json()[meta["valueLocation"]] == number
