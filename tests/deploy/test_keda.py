"""KEDA objects of k8s/ validated offline against KEDA's CRD schemas, and wired to the hive.

The schemas: PyPI `cloudcoil-models-keda`, pydantic models generated from KEDA's CRDs. Pydantic
alone would coerce "8" to 8 and ignore unknown fields, which the API server (kubectl's strict field
validation) refuses, so `keda_problems` validates in strict mode, by the CRD's field names only,
and reports every field the schema does not know. Also checked: each pool worker Deployment has
one ScaledObject driven by the hive's /api/v1/pools/<pool>/scale, and drains before it stops.
"""

from __future__ import annotations

import copy
import types
import typing
from typing import Any
from urllib.parse import urlsplit

import pydantic
import pytest
import yaml

from tests.deploy.test_manifests import (
    EXAMPLE_SECRET_FILE,
    k8s_objects,
    objects_of,
    pod_spec,
    pools,
    worker_deployments,
)

keda = pytest.importorskip("cloudcoil.models.keda.v1alpha1", reason="cloudcoil-models-keda (requirements/dev.txt)")

KINDS: dict[str, type[pydantic.BaseModel]] = {
    "ScaledObject": keda.ScaledObject,
    "TriggerAuthentication": keda.TriggerAuthentication,
}
GATEWAY = ("agent-hive-gateway-service.agent-hive.svc.cluster.local", 8082)


# --------------------------------------------------------------------------- the validator


def unknown_fields(data: Any, annotation: Any, path: str) -> list[str]:
    """Paths of keys in `data` that the model behind `annotation` has no field for (by CRD name)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        models = [arg for arg in args if arg is not type(None)]
        return unknown_fields(data, models[0], path) if len(models) == 1 and data is not None else []
    if origin is list and isinstance(data, list):
        return [p for i, item in enumerate(data) for p in unknown_fields(item, args[0], f"{path}/{i}")]
    if origin is dict and isinstance(data, dict):
        return [p for key, item in data.items() for p in unknown_fields(item, args[1], f"{path}/{key}")]
    if not (isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)) or not isinstance(data, dict):
        return []
    if issubclass(annotation, pydantic.RootModel):
        return unknown_fields(data, annotation.model_fields["root"].annotation, path)
    fields = {(field.alias or name): field for name, field in annotation.model_fields.items()}
    problems = []
    for key, item in data.items():
        if key not in fields:
            problems.append(f"{path}/{key}: unknown field")
        else:
            problems.extend(unknown_fields(item, fields[key].annotation, f"{path}/{key}"))
    return problems


def keda_problems(doc: dict[str, Any]) -> list[str]:
    """What KEDA's CRD schema refuses in `doc`: unknown fields, wrong types, missing fields."""
    model = KINDS.get(doc.get("kind", ""))
    if model is None:
        return [f"kind {doc.get('kind')!r} is not a KEDA kind this test knows ({', '.join(KINDS)})"]
    problems = unknown_fields(doc, model, "")
    try:
        model.model_validate(doc, strict=True, by_alias=True, by_name=False)
    except pydantic.ValidationError as error:
        for item in error.errors():
            problems.append(f"/{'/'.join(str(part) for part in item['loc'])}: {item['msg']}")
    return problems


def keda_objects() -> list[dict[str, Any]]:
    return [doc for _, doc in k8s_objects() if doc["apiVersion"].startswith("keda.sh/")]


def scaled_objects() -> dict[str, dict[str, Any]]:
    """ScaledObjects by the Deployment they scale."""
    found = {}
    for doc in objects_of("ScaledObject"):
        target = doc["spec"]["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment"
        assert target["name"] not in found, f"two ScaledObjects scale {target['name']}"
        found[target["name"]] = doc
    return found


@pytest.mark.parametrize("doc", keda_objects(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_keda_object_matches_kedas_crd_schema(doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == "keda.sh/v1alpha1"
    assert keda_problems(doc) == []


def example_scaled_object() -> dict[str, Any]:
    (doc,) = [d for d in objects_of("ScaledObject") if d["metadata"]["name"] == "agent-hive-worker-backend"]
    return copy.deepcopy(doc)


def test_the_validator_accepts_a_minimal_scaled_object_of_kedas_documentation() -> None:
    minimal = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "http-scaledobject"},
        "spec": {
            "maxReplicaCount": 12,
            "scaleTargetRef": {"name": "dummy"},
            "triggers": [
                {
                    "type": "metrics-api",
                    "metadata": {
                        "targetValue": "7",
                        "url": "http://api:3232/stats",
                        "valueLocation": "components.worker.tasks",
                    },
                }
            ],
        },
    }
    assert keda_problems(minimal) == []


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split("/")
    node = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[last] = value
    return doc


def _rename(doc: dict[str, Any], path: str, new_key: str) -> dict[str, Any]:
    *parents, last = path.split("/")
    node = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[new_key] = node.pop(last)
    return doc


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: _rename(d, "spec/minReplicaCount", "minReplicaCont"), "/spec/minReplicaCont: unknown field"),
        (
            lambda d: _rename(d, "spec/advanced/horizontalPodAutoscalerConfig", "horizontalPodAutoScalerConfig"),
            "/spec/advanced/horizontalPodAutoScalerConfig: unknown field",
        ),
        (
            lambda d: _rename(d, "spec/triggers/0/authenticationRef", "authRef"),
            "/spec/triggers/0/authRef: unknown field",
        ),
        (lambda d: _rename(d, "spec/maxReplicaCount", "max_replica_count"), "/spec/max_replica_count: unknown field"),
        (lambda d: _set(d, "spec/maxReplicaCount", "20"), "/spec/maxReplicaCount: Input should be a valid integer"),
        (
            lambda d: _set(d, "spec/triggers/0/metadata/targetValue", 1),
            "/spec/triggers/0/metadata/targetValue: Input should be a valid string",
        ),
        (lambda d: _set(d, "spec/triggers", {"type": "metrics-api"}), "/spec/triggers: Input should be a valid list"),
        (lambda d: _set(d, "spec/scaleTargetRef", {"kind": "Deployment"}), "/spec/scaleTargetRef/name: Field required"),
        (lambda d: _set(d, "apiVersion", "keda.sh/v1"), "/apiVersion: Input should be 'keda.sh/v1alpha1'"),
    ],
    ids=[
        "misspelled",
        "misspelled-nested",
        "misspelled-in-trigger",
        "snake-case",
        "string-for-int",
        "int-for-string",
        "object-for-list",
        "missing-required",
        "wrong-api-version",
    ],
)
def test_the_validator_refuses_a_misspelled_field_or_a_wrong_type(mutate, expected: str) -> None:
    broken = mutate(example_scaled_object())
    problems = keda_problems(broken)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_the_validator_refuses_an_unknown_field_in_a_trigger_authentication() -> None:
    (auth,) = [copy.deepcopy(d) for d in objects_of("TriggerAuthentication")]
    auth["spec"]["secretTargetRef"][0]["secret"] = auth["spec"]["secretTargetRef"][0].pop("name")
    problems = keda_problems(auth)
    assert "/spec/secretTargetRef/0/secret: unknown field" in problems
    assert any(p.startswith("/spec/secretTargetRef/0/name: Field required") for p in problems)


# --------------------------------------------------------------------------- wired to the hive


def test_every_pool_worker_has_exactly_one_scaled_object_and_the_control_worker_none() -> None:
    workers = worker_deployments()
    expected = {workers[f"hive.{pool}"]["metadata"]["name"] for pool in pools()}
    assert set(scaled_objects()) == expected
    assert workers["hive.control"]["metadata"]["name"] not in scaled_objects()


@pytest.mark.parametrize("pool", ["backend", "frontend", "ios", "infrastructure"])
def test_scaled_object_follows_the_hives_desired_count_within_the_pools_bounds(pool: str) -> None:
    from tests.deploy.test_manifests import hive_config

    deployment = worker_deployments()[f"hive.{pool}"]
    scaled = scaled_objects()[deployment["metadata"]["name"]]
    spec = scaled["spec"]
    config = hive_config()["agents"][pool]
    assert spec["minReplicaCount"] == config.get("min_instances", 0)
    assert spec["maxReplicaCount"] == config["max_instances"]
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count; an apply must not reset it"
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "metrics-api"
    assert trigger["metricType"] == "AverageValue"
    meta = trigger["metadata"]
    # desired / 1 per replica: KEDA's HPA sets replicas = ceil(desired / 1) = desired
    assert (meta["valueLocation"], meta["targetValue"], meta.get("format", "json")) == ("desired", "1", "json")
    url = urlsplit(meta["url"])
    assert (url.scheme, url.hostname, url.port) == ("http", *GATEWAY)
    assert url.path == f"/api/v1/pools/{pool}/scale"
    assert (meta["authMode"], meta["method"], meta["keyParamName"]) == ("apiKey", "header", "X-API-Key")
    assert trigger["authenticationRef"]["name"] in {d["metadata"]["name"] for d in objects_of("TriggerAuthentication")}
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] > 0
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0, "a backlog must not wait to grow the pool"


def test_scaled_object_url_is_the_hives_scale_endpoint_and_the_field_is_what_it_returns() -> None:
    from django.urls import resolve

    from external_api.api.serializers import PoolScaleSerializer
    from external_api.api.views import PoolScaleView

    for scaled in objects_of("ScaledObject"):
        meta = scaled["spec"]["triggers"][0]["metadata"]
        match = resolve(urlsplit(meta["url"]).path)
        assert match.func.view_class is PoolScaleView
        assert match.kwargs == {"name": scaled["metadata"]["labels"]["pool"]}
        assert meta["valueLocation"] in PoolScaleSerializer().fields


def test_the_gateway_answers_kedas_host_name_and_admits_kedas_namespace() -> None:
    (env,) = [c for c in objects_of("ConfigMap") if c["metadata"]["name"] == "agent-hive-env"]
    assert GATEWAY[0] in env["data"]["LEANVIBE_ALLOWED_HOSTS"].split(",")
    (service,) = [s for s in objects_of("Service") if s["metadata"]["name"] == GATEWAY[0].split(".")[0]]
    assert GATEWAY[1] in {port["port"] for port in service["spec"]["ports"]}
    admitted = [
        policy["spec"]
        for policy in objects_of("NetworkPolicy")
        for rule in policy["spec"].get("ingress", [])
        for peer in rule["from"]
        if peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "keda"
    ]
    assert admitted and all(spec["podSelector"]["matchLabels"]["component"] == "api-gateway" for spec in admitted)


def test_trigger_authentication_reads_the_api_key_from_the_hives_secret() -> None:
    (auth,) = objects_of("TriggerAuthentication")
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "apiKey"  # the metrics-api scaler's parameter for authMode apiKey
    (example,) = [doc for name, doc in k8s_objects() if name == EXAMPLE_SECRET_FILE]
    assert ref["name"] == example["metadata"]["name"]
    assert ref["key"] in example["stringData"]


# --------------------------------------------------------------------------- scale-in drains


@pytest.mark.parametrize("pool", ["backend", "frontend", "ios", "infrastructure"])
def test_pool_worker_drains_in_prestop_within_a_grace_period_above_the_pools_timeout(pool: str, tmp_path) -> None:
    from coordination.dispatch import HARD_LIMIT_MARGIN
    from hive_project.cli.drain import drain
    from hive_project.config import load_config
    from tests.deploy.test_manifests import argv, hive_config

    deployment = worker_deployments()[f"hive.{pool}"]
    (container,) = pod_spec(deployment)["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command == ["hive", "drain", "--self", "--pool", pool, "--wait"]
    context = drain.make_context("drain", command[2:])  # the real CLI accepts exactly these options
    assert context.params["this_host"] and context.params["wait"] and context.params["pool"] == pool
    assert f"{pool}@%h" in argv(container), "--self finds the agent by <pool>@<host name>"

    config_file = tmp_path / "hive.yaml"
    config_file.write_text(yaml.safe_dump(hive_config()))
    timeout = load_config(environ={"LEANVIBE_CONFIG": str(config_file)}).agents[pool].runner.timeout
    drain_limit = context.params["timeout"] or timeout  # --wait waits at most the pool's timeout
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert grace > timeout + HARD_LIMIT_MARGIN
    assert grace > drain_limit, "the hook must end before the kubelet kills the pod"
