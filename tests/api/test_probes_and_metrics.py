"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

import pytest
from django.test import Client

from coordination.services import task_submit

pytestmark = pytest.mark.django_db


def test_health_and_ready_are_public_and_check_the_database_and_redis(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_probes_answer_whatever_the_host_header(settings):
    settings.ALLOWED_HOSTS = ["hive.example.com"]
    client = Client(HTTP_HOST="10.1.2.3:8000")
    assert client.get("/health").status_code == 200
    assert client.get("/api/v1/status/").status_code == 400  # other paths keep the host check


def test_ready_is_503_when_redis_is_unreachable(client, monkeypatch):
    from hive_project import health

    class Down:
        def ping(self):
            raise ConnectionError("refused")

    monkeypatch.setattr(health, "redis_client", lambda: Down())
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "error: ConnectionError"


def test_metrics_expose_counters_and_the_hives_state(client, pools):
    task_submit(capabilities=["python"], command=["true"])
    body = client.get("/metrics").content.decode()
    assert 'hive_tasks{pool="backend",status="queued"} 1.0' in body
    assert 'hive_queue_depth{pool="backend"}' in body
    assert 'hive_tasks_total{pool="backend",status="queued"}' in body


def test_metrics_need_the_scrape_token_when_one_is_set(client, settings, monkeypatch):
    monkeypatch.setattr(settings.HIVE_CONFIG.security, "api_key", "scrape-me")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200
    assert client.get("/metrics", HTTP_X_API_KEY="wrong").status_code == 401


def test_metrics_are_refused_in_production_without_a_token(client, settings):
    settings.PRODUCTION = True
    response = client.get("/metrics")
    assert response.status_code == 403 and response.json()["code"] == "not_configured"


@pytest.mark.parametrize(
    ("role", "served", "absent"),
    [
        ("gateway", ["/api/v1/status/"], ["/webhooks/github/"]),
        ("webhooks", ["/webhooks/github/"], ["/api/v1/status/", "/admin/login/"]),
        ("streaming", [], ["/api/v1/status/", "/webhooks/github/"]),
    ],
)
def test_each_role_serves_only_its_front_door(role, served, absent, tmp_path):
    """`hive serve --role R` sets LEANVIBE_SERVE_ROLE; the URL conf of a fresh process follows it."""
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT, child_env

    probe = (
        "import django, json; django.setup(); from django.test import Client; c = Client();"
        f"print(json.dumps({{p: c.get(p).status_code for p in {served + absent + ['/health']!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(LEANVIBE_SERVE_ROLE=role, DJANGO_SETTINGS_MODULE="hive_project.settings"),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    codes = json.loads(out.stdout.strip().splitlines()[-1])
    assert codes["/health"] == 200
    for path in absent:
        assert codes[path] == 404, (path, codes)
    for path in served:
        assert codes[path] != 404, (path, codes)


def test_api_requests_are_counted_by_route_and_status(client, personas):
    assert personas["owner"].client.get("/api/v1/tasks/").status_code == 200
    assert client.get("/api/v1/tasks/").status_code == 401
    body = client.get("/metrics").content.decode()
    assert 'hive_api_requests_total{method="GET",route="api/v1/tasks/",status="200"}' in body
    assert 'hive_api_requests_total{method="GET",route="api/v1/tasks/",status="401"}' in body
    personas["owner"].client.get("/api/v1/tasks/00000000-0000-0000-0000-000000000000/events/")
    body = client.get("/metrics").content.decode()
    assert 'route="api/v1/tasks/{id}/events/",status="404"' in body


def test_cors_follows_the_gateway_configuration(client, settings):
    settings.CORS_ALLOW_ALL_ORIGINS = False
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    allowed = client.options(
        "/api/v1/tasks/", HTTP_ORIGIN="https://app.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "x-api-key" in allowed["Access-Control-Allow-Headers"].lower()
    other = client.options(
        "/api/v1/tasks/", HTTP_ORIGIN="https://evil.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert "Access-Control-Allow-Origin" not in other
