"""Configuration keys act in a real process: each test starts Python with `LEANVIBE_*` variables,
lets the settings load as they do in production, and looks at what a user would see (a token's
lifetime, CORS headers, log lines and files, a syslog datagram, a pooled connection, an exit code).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from hive_project.launch import free_port, wait_until
from tests.conftest import ROOT, child_env

POSTGRES = os.environ.get("LEANVIBE_DATABASE_URL", "").startswith("postgres")

PRELUDE = """
import json, os, sys
if os.environ.get("HIVE_TEST_WEB_PROCESS"):
    from hive_project.launch import mark_web_process
    mark_web_process()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")
import django
django.setup()
from django.conf import settings
"""


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Python with the hive's settings loaded from these variables; `code` prints what it found."""
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + code],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def hive_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hive_project.cli", *args],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def printed(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- LEANVIBE_ENV and the JWT signing key ---------------------------------------------------------


@pytest.mark.parametrize("command", [("check-config",), ("status",)])
def test_leanvibe_env_typo_stops_any_command_with_one_line_and_exit_2(command):
    done = hive_cli(*command, LEANVIBE_ENV="prod")

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "hive: configuration error: LEANVIBE_ENV = 'prod': expected one of development, production, test"
    ]


def test_production_without_jwt_key_check_config_and_start_up_agree_it_is_missing():
    env = {"LEANVIBE_ENV": "production", "LEANVIBE_SECURITY_SECRET_KEY": "s" * 40}

    summary = hive_cli("check-config", **env)
    start = run_python("print('started')", **env)

    assert "jwt signing key not set" in summary.stdout
    assert "production refuses to start without: jwt signing key" in summary.stdout
    assert start.returncode == 2
    assert start.stderr.strip().startswith("hive: configuration error: security.jwt_signing_key is empty")


def test_production_with_the_guides_jwt_secret_key_check_config_and_start_up_agree_it_is_set():
    env = {
        "LEANVIBE_ENV": "production",
        "LEANVIBE_SECURITY_SECRET_KEY": "s" * 40,
        "LEANVIBE_SECURITY_API_GATEWAY_AUTHENTICATION_JWT_SECRET_KEY": "j" * 40,
    }

    summary = hive_cli("check-config", **env)
    found = printed(
        run_python(
            "print(json.dumps([settings.SIMPLE_JWT['SIGNING_KEY'], settings.PRODUCTION, settings.ALLOWED_HOSTS]))",
            **env,
        )
    )

    assert "jwt signing key set" in summary.stdout
    assert found == ["j" * 40, True, ["localhost", "127.0.0.1"]]


# --- security.api_gateway.authentication.jwt and cors -----------------------------------------------

TOKEN = """
from rest_framework_simplejwt.tokens import AccessToken
import jwt
token = AccessToken()
claims = jwt.decode(str(token), options={"verify_signature": False})
header = jwt.get_unverified_header(str(token))
print(json.dumps({"lifetime": claims["exp"] - claims["iat"], "iss": claims.get("iss"), "alg": header["alg"]}))
"""


def test_jwt_keys_set_the_access_tokens_lifetime_issuer_and_algorithm():
    prefix = "LEANVIBE_SECURITY_API_GATEWAY_AUTHENTICATION_JWT_"
    found = printed(
        run_python(
            TOKEN, **{f"{prefix}EXPIRATION": "120", f"{prefix}ISSUER": "hive-test", f"{prefix}ALGORITHM": "HS512"}
        )
    )
    default = printed(run_python(TOKEN))

    assert found == {"lifetime": 120, "iss": "hive-test", "alg": "HS512"}
    assert default == {"lifetime": 3600, "iss": "agent-hive", "alg": "HS256"}


PREFLIGHT = """
from django.test import Client
response = Client().options("/api/v1/tasks/", HTTP_ORIGIN="https://app.example.com",
                            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
simple = Client().get("/api/v1/tasks/", HTTP_ORIGIN="https://app.example.com")  # a 401 in JSON
print(json.dumps({"preflight": {k: v for k, v in response.headers.items() if k.startswith("access-control")},
                  "get": {k: v for k, v in simple.headers.items() if k.startswith("access-control")}}))
"""


def test_cors_keys_set_the_preflight_and_response_headers():
    found = printed(
        run_python(
            PREFLIGHT,
            LEANVIBE_API_GATEWAY_CORS_ORIGINS="[https://app.example.com]",
            LEANVIBE_SECURITY_API_GATEWAY_CORS_CREDENTIALS="true",
            LEANVIBE_SECURITY_API_GATEWAY_CORS_MAX_AGE="600",
            LEANVIBE_SECURITY_API_GATEWAY_CORS_EXPOSED_HEADERS="[X-Request-ID, X-Total]",
        )
    )

    preflight, get = found["preflight"], found["get"]
    assert preflight["access-control-allow-origin"] == "https://app.example.com"
    assert preflight["access-control-allow-credentials"] == "true"
    assert preflight["access-control-max-age"] == "600"
    assert get["access-control-expose-headers"] == "X-Request-ID, X-Total"


def test_cors_credentials_with_any_origin_are_not_sent_and_check_config_says_why():
    env = {"LEANVIBE_SECURITY_API_GATEWAY_CORS_CREDENTIALS": "true"}  # cors_origins stays ['*']

    found = printed(run_python(PREFLIGHT, **env))
    summary = hive_cli("check-config", **env)

    assert found["preflight"]["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in found["preflight"]
    assert "has no effect here: security.api_gateway.cors.credentials (never with cors_origins '*'" in summary.stdout


# --- logging ------------------------------------------------------------------------------------------

LOG = """
import logging
log = logging.getLogger("hive.test")
for i in range(40):
    log.info("line %d %s", i, "x" * 40)
try:
    1 / 0
except ZeroDivisionError:
    log.exception("it broke")
log.debug("not shown at INFO")
print(json.dumps({"ok": True}))
"""


def test_logging_json_to_a_rotating_file_writes_one_object_per_line_and_rotates_by_size(tmp_path):
    path = tmp_path / "logs" / "hive.log"
    done = run_python(
        LOG,
        LEANVIBE_LOGGING_FORMAT="json",
        LEANVIBE_LOGGING_HANDLERS="[console, file]",
        LEANVIBE_LOGGING_FILE_PATH=str(path),
        LEANVIBE_LOGGING_FILE_MAX_SIZE="1KB",
        LEANVIBE_LOGGING_FILE_BACKUP_COUNT="2",
        LEANVIBE_LOGGING_LEVEL="INFO",
    )
    printed(done)

    assert sorted(p.name for p in path.parent.iterdir()) == ["hive.log", "hive.log.1", "hive.log.2"]
    for file in path.parent.iterdir():
        assert file.stat().st_size <= 1024
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert {"time", "level", "logger", "message"} <= set(entries[-1])
    failure = next(e for e in entries if e["message"] == "it broke")
    assert failure["level"] == "ERROR" and failure["logger"] == "hive.test"
    assert "ZeroDivisionError" in failure["exc_info"]
    console = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(e["message"].startswith("line 39") for e in console)
    assert not any("not shown" in e["message"] for e in console)


def test_logging_text_format_and_system_log_level_apply_when_logging_level_is_not_set(tmp_path):
    config = tmp_path / "hive.yaml"
    config.write_text("system:\n  log_level: WARNING\n")
    done = run_python(LOG, LEANVIBE_CONFIG=str(config))

    printed(done)
    lines = done.stderr.splitlines()
    assert not any("line 1 " in line for line in lines)  # INFO is below system.log_level
    assert any(" ERROR hive.test it broke" in line for line in lines)


def test_logging_to_syslog_sends_datagrams_with_the_configured_facility():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(10)
        port = server.getsockname()[1]
        done = run_python(
            "import logging; logging.getLogger('hive.test').warning('to syslog'); print('{}')",
            LEANVIBE_LOGGING_HANDLERS="[syslog]",
            LEANVIBE_LOGGING_FORMAT="json",
            LEANVIBE_LOGGING_SYSLOG_FACILITY="local3",
            LEANVIBE_LOGGING_SYSLOG_ADDRESS=f"[127.0.0.1, {port}]",
        )
        printed(done)
        datagram = server.recv(65536).decode()

    assert datagram.startswith("<156>")  # local3 (19) x 8 + warning (4)
    assert json.loads(datagram[5:].rstrip("\x00"))["message"] == "to syslog"


def test_log_file_in_a_directory_that_cannot_be_made_stops_start_up_with_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = run_python(
        "print('started')", LEANVIBE_LOGGING_HANDLERS="[file]", LEANVIBE_LOGGING_FILE_PATH=str(blocker / "hive.log")
    )

    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"hive: configuration error: logging.file.path = '{blocker / 'hive.log'}': expected")


ECHO = """
import logging
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
logging.getLogger("django.db.backends").addHandler(Keep())
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT 42")
print(json.dumps([r for r in records if "SELECT 42" in r]))
"""


def test_database_echo_logs_every_statement_even_with_debug_off(tmp_path):
    database = {} if POSTGRES else {"LEANVIBE_DATABASE_URL": f"sqlite:///{tmp_path / 'echo.sqlite3'}"}
    on = printed(run_python(ECHO, LEANVIBE_DATABASE_ECHO="true", LEANVIBE_SYSTEM_DEBUG_MODE="false", **database))
    off = printed(run_python(ECHO, **database))

    assert len(on) == 1 and "SELECT 42" in on[0]
    assert off == []


# --- the web process: ports, pool ----------------------------------------------------------------

ROLES = {
    "gateway": "LEANVIBE_API_GATEWAY_PORT",
    "webhooks": "LEANVIBE_WEBHOOK_SERVER_PORT",
    "streaming": "LEANVIBE_EVENT_STREAMING_PORT",
}


@pytest.mark.parametrize("role", sorted(ROLES))
def test_serve_role_without_port_listens_on_the_configured_port(role, tmp_path):
    port = free_port()
    env = child_env(**{ROLES[role]: str(port), "LEANVIBE_WEBHOOK_SERVER_HOST": "127.0.0.1"})
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "hive_project.cli", "serve", "--role", role],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                return response.status == 200
        except OSError:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            return False

    try:
        assert wait_until(healthy, timeout=30, interval=0.2, what=f"hive serve --role {role} on {port}")
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()


POOL = """
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT 1")
    answer = cursor.fetchone()[0]
pool = connection.pool
stats = pool.get_stats() if pool else None
connection.close()  # back to the pool
after = pool.get_stats() if pool else None
print(json.dumps({"options": settings.DATABASES["default"]["OPTIONS"].get("pool"),
                  "conn_max_age": settings.DATABASES["default"]["CONN_MAX_AGE"], "answer": answer,
                  "min": pool.min_size if pool else None, "max": pool.max_size if pool else None,
                  "timeout": pool.timeout if pool else None, "max_lifetime": pool.max_lifetime if pool else None,
                  "available_after_close": after.get("pool_available") if after else None}))
"""


@pytest.mark.postgresql  # Django's connection pool is PostgreSQL's: CI's PostgreSQL run has it
def test_database_pool_keys_size_the_web_process_pool_and_a_pooled_query_runs():
    env = {
        "LEANVIBE_DATABASE_POOL_SIZE": "2",
        "LEANVIBE_DATABASE_MAX_OVERFLOW": "3",
        "LEANVIBE_DATABASE_POOL_TIMEOUT": "7",
        "LEANVIBE_DATABASE_POOL_RECYCLE": "900",
    }

    web = printed(run_python(POOL, HIVE_TEST_WEB_PROCESS="1", **env))
    worker = printed(run_python(POOL, LEANVIBE_DATABASE_CONN_MAX_AGE="45", **env))

    assert web["options"] == {"min_size": 2, "max_size": 5, "timeout": 7.0, "max_lifetime": 900.0}
    assert (web["min"], web["max"], web["timeout"], web["max_lifetime"]) == (2, 5, 7.0, 900.0)
    assert web["answer"] == 1 and web["conn_max_age"] == 0
    assert web["available_after_close"] >= 1  # the connection went back to the pool
    assert worker["options"] is None and worker["conn_max_age"] == 45 and worker["answer"] == 1


def test_database_pool_keys_on_sqlite_check_config_says_they_have_no_effect(tmp_path):
    config = tmp_path / "hive.yaml"
    config.write_text("database:\n  connection_pool_size: 20\n  max_overflow: 30\n")

    summary = hive_cli("check-config", str(config), LEANVIBE_DATABASE_URL="")

    assert "has no effect here: database.connection_pool_size (no effect on SQLite)" in summary.stdout
    assert "has no effect here: database.max_overflow (no effect on SQLite)" in summary.stdout
    assert summary.returncode == 0


# --- check-config --explain ---------------------------------------------------------------------------


def test_check_config_explain_lists_every_key_with_value_source_and_reader(tmp_path):
    config = tmp_path / "hive.yaml"
    config.write_text("logging:\n  format: json\n")
    done = hive_cli(
        "check-config",
        "--explain",
        str(config),
        LEANVIBE_SECURITY_SECRET_KEY="hunter2-secret",
        LEANVIBE_DATABASE_URL="",
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "logging.format = 'json' [file] -> read by hive_project.logs: json (one object per line) or text" in lines
    assert (
        "security.secret_key = *** [LEANVIBE_SECURITY_SECRET_KEY] -> read by hive_project.settings: "
        "SECRET_KEY (required in production)" in lines
    )
    assert "hunter2" not in done.stdout
    assert any(line.startswith("monitoring.metrics_port = 8081 [default] -> no effect: ") for line in lines)
    assert (
        "scaling.enabled = True [default] -> read by coordination.scaling.policy (beat's hive.scale): "
        "off decides nothing, and every pool runs at max(1, min_instances)" in lines
    )
    assert (
        "external_api.intelligence_framework.enabled = True [default] -> read by ml.strategy (the predictive "
        "strategy): off, predictive falls back (disabled) and says so" in lines
    )
    assert not any("not read yet" in line for line in lines)
    assert (
        "monitoring.alerts.webhook_url = not set [default] -> no effect: monitoring.alerts.enabled is false: "
        "nothing is posted" in lines
    )
    assert sum(1 for line in lines if line.startswith("agents.backend.")) == 30
    assert lines[-1] == "configuration ok"


def test_check_config_summary_names_only_the_no_effect_keys_the_user_set(tmp_path):
    config = tmp_path / "hive.yaml"
    config.write_text("monitoring:\n  metrics_port: 9100\n")

    lines = hive_cli("check-config", str(config), LEANVIBE_DATABASE_URL="").stdout.splitlines()

    assert (
        "accepted for compatibility with the guide, has no effect: monitoring.metrics_port (every web process "
        "serves /metrics on its own port (hive serve --port))"
    ) in lines
    assert not any("health_check_port" in line for line in lines)  # left at its default: not mentioned


def test_debug_mode_follows_system_debug_mode_outside_production():
    code = "print(json.dumps(settings.DEBUG))"
    production = {
        "LEANVIBE_ENV": "production",
        "LEANVIBE_SECURITY_SECRET_KEY": "s" * 40,
        "LEANVIBE_SECURITY_JWT_SIGNING_KEY": "j" * 40,
    }

    assert printed(run_python(code, LEANVIBE_SYSTEM_DEBUG_MODE="true")) is True
    assert printed(run_python(code, LEANVIBE_SYSTEM_DEBUG_MODE="false")) is False
    assert printed(run_python(code, LEANVIBE_SYSTEM_DEBUG_MODE="true", **production)) is False


def test_gateway_body_cap_is_the_smaller_of_the_two_configured_sizes():
    code = "print(json.dumps(settings.DATA_UPLOAD_MAX_MEMORY_SIZE))"

    assert printed(run_python(code, LEANVIBE_SECURITY_API_GATEWAY_REQUEST_VALIDATION_MAX_PAYLOAD_SIZE="1KB")) == 1024
    assert printed(run_python(code, LEANVIBE_API_GATEWAY_MAX_REQUEST_SIZE="2KB")) == 2048


# --- a worker reads its configuration in a child process (hive_project/config/snapshot.py) ---------


def worker_start(**env: str) -> subprocess.CompletedProcess:
    from hive_project.launch import worker_argv

    argv = worker_argv(queue="hive.nobody", node="config@test", concurrency=1)
    return subprocess.run(argv, cwd=ROOT, env=child_env(**env), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"LEANVIBE_MULTI_AGENT_MAX_AGENTS": "many"},
            "multi_agent.max_agents = 'many': expected an integer > 0 (from LEANVIBE_MULTI_AGENT_MAX_AGENTS)",
        ),
        ({"LEANVIBE_CONFIG": "/nonexistent/hive.yaml"}, "config file = '/nonexistent/hive.yaml': expected an existing"),
    ],
)
def test_a_worker_with_a_bad_configuration_stops_with_one_line_and_exit_2(env, line):
    done = worker_start(**env)

    assert done.returncode == 2, done.stderr[-2000:]
    (printed_line,) = done.stderr.strip().splitlines()
    assert printed_line.startswith(f"hive: configuration error: {line}")
