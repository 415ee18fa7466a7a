"""The configuration loader: the guide's files load, bad values are refused in one line naming the key.

Pure unit tests: no database, no Django. Every call passes `environ` explicitly so the variables of
the machine (or of the test plugin) never leak in.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hive_project.config import (
    ConfigError,
    HiveConfig,
    default_config_path,
    load_config,
    parse_size,
)
from hive_project.config import loader as config_loader
from hive_project.config.describe import describe

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GUIDE_CONFIGMAP = FIXTURES / "guide_configmap.yaml"
GUIDE_PRODUCTION = FIXTURES / "guide_config_production.yaml"
GUIDE_PREDICTIVE_LINE = 'load_balancing_strategy: "predictive"'
GUIDE_POOLS = {
    "backend": ["python", "api", "database", "microservices"],
    "frontend": ["javascript", "typescript", "react", "vue", "ui"],
    "ios": ["swift", "mobile", "ui", "app_store"],
    "infrastructure": ["docker", "kubernetes", "terraform", "monitoring"],
}
MB = 1024 * 1024


def write(tmp_path: Path, text: str, name: str = "hive.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def guide_environment() -> dict[str, str]:
    """The `export` lines of the guide's "Environment Variables" block, verbatim."""
    lines = (FIXTURES / "guide_environment.sh").read_text().splitlines()
    return dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export "))


def production_without_predictive(tmp_path: Path) -> Path:
    text = GUIDE_PRODUCTION.read_text()
    assert text.count(GUIDE_PREDICTIVE_LINE) == 1
    return write(tmp_path, text.replace(GUIDE_PREDICTIVE_LINE, 'load_balancing_strategy: "performance_weighted"'))


# --- the guide's files ---------------------------------------------------------------------------


def test_guide_configmap_loads_with_its_values_and_the_default_pools():
    config = load_config(GUIDE_CONFIGMAP, environ={})

    assert config.multi_agent.min_agents == 5
    assert config.multi_agent.max_agents == 20
    assert config.multi_agent.health_check_interval == 30
    assert config.resources.allocation.memory_limit_percent == 75
    assert config.scaling.strategies.scale_up.factor == 1.5
    assert config.scaling.strategies.scale_down.min_instances == 5
    assert {name: pool.capabilities for name, pool in config.agents.items()} == GUIDE_POOLS
    assert config.source_path == GUIDE_CONFIGMAP


def test_guide_production_template_loads_unchanged_with_predictive():
    config = load_config(GUIDE_PRODUCTION, environ={})

    assert config.multi_agent.load_balancing_strategy == "predictive"
    assert config.external_api.ml_enhancements.adaptive_learning.adaptation_threshold == 0.15


def test_unknown_strategy_is_refused_naming_the_key(tmp_path):
    path = write(tmp_path, "multi_agent:\n  load_balancing_strategy: clairvoyant\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert str(caught.value) == (
        "multi_agent.load_balancing_strategy = 'clairvoyant': expected one of least_loaded, round_robin, "
        f"performance_weighted, predictive (in {path})"
    )
    assert caught.value.key == "multi_agent.load_balancing_strategy"


def test_guide_production_template_loads_once_predictive_is_replaced(tmp_path):
    config = load_config(production_without_predictive(tmp_path), environ={})

    assert config.multi_agent.load_balancing_strategy == "performance_weighted"
    assert config.multi_agent.offline_after == 45  # 3 x 15s
    backend = config.agents["backend"]
    assert backend.max_instances == 20
    assert backend.capabilities == GUIDE_POOLS["backend"]
    assert backend.resource_requirements.memory_mb == 2048
    assert backend.runner.argv == ["claude", "-p", "{prompt}", "--output-format", "stream-json", "--verbose"]
    assert backend.runner.output_format == "claude-json"
    assert config.agents["ios"].resource_requirements.cpu_cores == 4
    api = config.external_api
    assert api.webhook_server.max_payload_bytes == 10 * MB
    assert api.api_gateway.max_request_bytes == 50 * MB
    assert api.api_gateway.cors_methods == ["GET", "POST", "PUT", "DELETE", "OPTIONS"]
    assert api.event_streaming.max_connections == 2000
    assert api.ml_enhancements.adaptive_learning.model_update_frequency == "hourly"
    assert api.performance_monitoring.alert_thresholds.task_queue_length == 100
    assert config.database.connection_pool_size == 20
    assert config.logging.handlers == ["console", "file", "syslog"]
    assert config.logging.file.max_bytes == 100 * MB
    assert config.logging.syslog.address == ("localhost", 514)
    assert config.monitoring.alerts.webhook_url.startswith("https://hooks.slack.com/")


def test_guide_external_api_config_loads():
    config = load_config(FIXTURES / "guide_external_api_config.yaml", environ={})

    endpoints = config.external_api.webhook_server.endpoints
    assert [e.path for e in endpoints] == ["/github/webhook", "/slack/webhook", "/custom/webhook"]
    assert endpoints[2].auth_required is False and endpoints[2].methods == ["POST", "PUT"]
    assert config.external_api.api_gateway.routes[1].rate_limit == 200
    assert config.external_api.event_streaming.filters[1].values == ["high", "critical"]


def test_guide_security_file_takes_its_secrets_from_the_environment():
    path = FIXTURES / "guide_external_api_security.yaml"
    env = {"JWT_SECRET_KEY": "jwt-from-env", "OAUTH2_CLIENT_ID": "client", "OAUTH2_CLIENT_SECRET": "oauth-secret"}

    config = load_config(path, environ=env)

    assert config.security.api_gateway.authentication.jwt.secret_key == "jwt-from-env"
    assert config.security.effective_jwt_signing_key == "jwt-from-env"
    assert config.security.api_gateway.authentication.oauth2.client_secret == "oauth-secret"
    assert config.security.webhook_server.request_validation.max_payload_bytes == 5 * MB
    assert config.security.event_streaming.encryption.algorithm == "AES-256-GCM"


def test_guide_security_file_without_its_variable_is_refused_without_showing_the_value():
    path = FIXTURES / "guide_external_api_security.yaml"

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"OAUTH2_CLIENT_ID": "c", "OAUTH2_CLIENT_SECRET": "s"})

    assert str(caught.value) == (
        "security.api_gateway.authentication.jwt.secret_key = '***': "
        f"expected environment variable JWT_SECRET_KEY to be set (in {path})"
    )


def test_every_guide_environment_variable_maps_to_a_key(tmp_path):
    env = guide_environment()
    assert env["LEANVIBE_MULTI_AGENT_LOAD_BALANCING_STRATEGY"] == "predictive"
    env["LEANVIBE_MULTI_AGENT_LOAD_BALANCING_STRATEGY"] = "round_robin"

    config = load_config(production_without_predictive(tmp_path), environ=env)

    leanvibe = {name for name in env if name.startswith("LEANVIBE_")}
    assert set(config.env_overrides.values()) == leanvibe
    assert config.resources.allocation.cpu_limit_percent == 85
    assert config.database.url == "postgresql://user:pass@db:5432/agent_hive"
    assert config.database.connection_pool_size == 20
    assert config.security.secret_key == "your-secret-key-here"
    assert config.external_api.intelligent_task_allocation.allocation_timeout == 60
    assert config.external_api.webhook_server.rate_limit_per_minute == 200
    assert config.external_api.api_gateway.rate_limit_per_minute == 500
    assert config.external_api.ml_enhancements.pattern_optimizer.pattern_detection_sensitivity == 0.8
    assert config.external_api.ml_enhancements.predictive_analytics.prediction_accuracy_threshold == 0.9


def test_guide_environment_with_predictive_loads():
    config = load_config(GUIDE_CONFIGMAP, environ=guide_environment())

    assert config.multi_agent.load_balancing_strategy == "predictive"
    assert config.env_overrides["multi_agent.load_balancing_strategy"] == "LEANVIBE_MULTI_AGENT_LOAD_BALANCING_STRATEGY"


def test_guide_compose_and_manifest_variable_names_work():
    env = {
        "LEANVIBE_WEBHOOK_PORT": "9081",
        "LEANVIBE_WEBHOOK_RATE_LIMIT": "42",
        "LEANVIBE_GATEWAY_AUTH_PROVIDER": "api_key",
        "LEANVIBE_GATEWAY_REQUEST_TIMEOUT": "45",
        "LEANVIBE_STREAMING_COMPRESSION": "false",
        "LEANVIBE_STREAMING_FLUSH_INTERVAL": "2.5",
        "LEANVIBE_EXTERNAL_API_STREAMING_ENABLED": "false",
        "LEANVIBE_DEVELOPMENT_USE_MOCK_CLI": "true",
    }

    config = load_config(GUIDE_CONFIGMAP, environ=env)

    api = config.external_api
    assert (api.webhook_server.port, api.webhook_server.rate_limit_per_minute) == (9081, 42)
    assert (api.api_gateway.authentication_provider, api.api_gateway.request_timeout) == ("api_key", 45)
    assert (api.event_streaming.compression_enabled, api.event_streaming.flush_interval) == (False, 2.5)
    assert api.event_streaming.enabled is False
    assert config.development.use_mock_cli is True


# --- the repository's file and the defaults ------------------------------------------------------


def test_repository_config_file_loads_with_the_developer_machine_pools():
    config = load_config(environ={})

    assert config.source_path == default_config_path()
    assert {name: pool.capabilities for name, pool in config.agents.items()} == GUIDE_POOLS
    assert {name: pool.concurrency for name, pool in config.agents.items()} == {
        "backend": 2,
        "frontend": 1,
        "ios": 1,
        "infrastructure": 1,
    }
    assert {name: pool.max_instances for name, pool in config.agents.items()} == {
        "backend": 20,
        "frontend": 15,
        "ios": 10,
        "infrastructure": 8,
    }
    for pool in config.agents.values():
        assert (pool.min_instances, pool.max_attempts, pool.allow_commands) == (1, 3, True)
        assert pool.runner.argv[:3] == ["claude", "-p", "{prompt}"]
        assert (pool.runner.output_format, pool.runner.timeout) == ("claude-json", 1800)
    ma = config.multi_agent
    assert (ma.health_check_interval, ma.failure_threshold, ma.redispatch_after) == (10, 3, 30)
    assert ma.offline_after == 30
    assert ma.effective_heartbeat_interval == pytest.approx(10 / 3)
    assert config.scaling.strategies.scale_down.min_instances == 5


def test_repository_pools_are_the_built_in_default_pools():
    assert load_config(default_config_path(), environ={}).agents == HiveConfig().agents


def test_defaults_load_when_there_is_no_file(monkeypatch, tmp_path):
    monkeypatch.setattr(config_loader, "default_config_path", lambda: tmp_path / "absent.yaml")

    config = load_config(environ={})

    assert config.source_path is None
    assert list(config.agents) == list(GUIDE_POOLS)
    assert config.multi_agent.load_balancing_strategy == "least_loaded"
    assert config.multi_agent.effective_heartbeat_interval == 5.0
    assert config.multi_agent.offline_after == 90
    assert config.database.url is None and config.redis.url is None
    assert config.security.secret_key is None


def test_leanvibe_config_names_the_file_and_an_empty_file_means_defaults(tmp_path):
    path = write(tmp_path, "# nothing here\n")

    config = load_config(environ={"LEANVIBE_CONFIG": str(path)})

    assert config.source_path == path
    assert config.system.max_concurrent_tasks == 50


def test_pool_in_the_guides_form_gets_the_default_runner_and_workspace(tmp_path):
    path = write(tmp_path, "agents:\n  docs:\n    max_instances: 3\n    capabilities: [' Markdown', markdown, Docs]\n")

    pool = load_config(path, environ={}).agents["docs"]

    assert pool.capabilities == ["markdown", "docs"]
    assert (pool.min_instances, pool.concurrency, pool.max_attempts) == (0, 2, 3)
    assert pool.runner.kind == "command" and pool.runner.argv[0] == "claude"
    assert (pool.workspace.repository, pool.workspace.root, pool.workspace.keep) == (None, None, False)


def test_python_runner_with_dotted_callable_and_payload_placeholders_load(tmp_path):
    path = write(
        tmp_path,
        "agents:\n"
        "  py: {capabilities: [python], runner: {kind: python, callable: 'pkg.mod:func'}}\n"
        "  cmd: {capabilities: [sh], runner: {argv: [tool, '--branch={payload.branch}', '{\"json\": 1}']}}\n",
    )

    agents = load_config(path, environ={}).agents

    assert agents["py"].runner.callable == "pkg.mod:func"
    assert agents["cmd"].runner.argv[1] == "--branch={payload.branch}"


# --- refusals ------------------------------------------------------------------------------------

BAD_FILES = [
    pytest.param(
        "multi_agent: {max_agents: lots}", "multi_agent.max_agents = 'lots': expected an integer > 0", id="wrong-type"
    ),
    pytest.param(
        "system: {max_concurrent_tasks: yes}",
        "system.max_concurrent_tasks = True: expected an integer > 0",
        id="bool-for-number",
    ),
    pytest.param(
        "agents: {backend: {capabilities: [python], concurrency: 65}}",
        "agents.backend.concurrency = 65: expected an integer from 1 to 64",
        id="out-of-range",
    ),
    pytest.param(
        "resources: {allocation: {cpu_limit_percent: 101}}",
        "resources.allocation.cpu_limit_percent = 101: expected a number > 0 and <= 100",
        id="percent-over-100",
    ),
    pytest.param(
        "multi_agent: {max_agent: 3}",
        "multi_agent.max_agent = 3: expected one of the keys enabled, max_agents,",
        id="unknown-key",
    ),
    pytest.param("systen: {}", "systen = {}: expected one of the sections system, multi_agent,", id="unknown-section"),
    pytest.param(
        "agents: {backend: {capabilities: [python], concurency: 2}}",
        "agents.backend.concurency = 2: expected one of the keys capabilities,",
        id="unknown-pool-field",
    ),
    pytest.param(
        "agents: {Backend: {capabilities: [python]}}",
        "agents = 'Backend': expected pool names of lowercase letters",
        id="bad-pool-name",
    ),
    pytest.param(
        "agents: {backend: {capabilities: []}}",
        "agents.backend.capabilities = []: expected a non-empty list of capabilities",
        id="empty-capabilities",
    ),
    pytest.param(
        "agents: {backend: {max_instances: 2}}",
        "agents.backend.capabilities = <missing>: expected a value",
        id="missing-capabilities",
    ),
    pytest.param(
        "agents: {backend: {capabilities: [python], runner: {argv: [tool, '{foo}']}}}",
        "agents.backend.runner.argv = ['tool', '{foo}']: expected placeholders among {prompt},",
        id="bad-placeholder",
    ),
    pytest.param(
        "agents: {backend: {capabilities: [python], runner: {kind: python}}}",
        "agents.backend.runner.callable = None: expected a dotted path such as pkg.mod.func",
        id="python-runner-without-callable",
    ),
    pytest.param(
        "agents: {backend: {capabilities: [python], runner: {kind: python, callable: nodots}}}",
        "agents.backend.runner.callable = 'nodots': expected a dotted path",
        id="callable-not-dotted",
    ),
    pytest.param(
        "agents: {backend: {capabilities: [python], min_instances: 3, max_instances: 2}}",
        "agents.backend.min_instances = 3: expected at most max_instances (2)",
        id="pool-min-over-max",
    ),
    pytest.param(
        "multi_agent: {min_agents: 30, max_agents: 20}",
        "multi_agent.min_agents = 30: expected at most max_agents (20)",
        id="agents-min-over-max",
    ),
    pytest.param(
        "external_api: {webhook_server: {max_payload_size: 10 megs}}",
        "external_api.webhook_server.max_payload_size = '10 megs': expected a size such as",
        id="bad-size",
    ),
    pytest.param(
        "system: {log_level: verbose}",
        "system.log_level = 'verbose': expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        id="bad-log-level",
    ),
    pytest.param(
        "scaling: {strategies: {scale_down: {factor: 1.2}}}",
        "scaling.strategies.scale_down.factor = 1.2: expected a number > 0 and < 1",
        id="scale-down-factor",
    ),
    pytest.param(
        "resources: {thresholds: {warning: 95, critical: 90}}",
        "resources.thresholds.warning = 95.0: expected at most critical (90)",
        id="warning-over-critical",
    ),
    pytest.param(
        "logging: {handlers: [console, filez]}",
        "logging.handlers[1] = 'filez': expected one of console, file, syslog",
        id="bad-list-item",
    ),
    pytest.param(
        "external_api: {api_gateway: {cors_origins: ['example.com/']}}",
        "external_api.api_gateway.cors_origins[0] = 'example.com/': expected an origin",
        id="bad-origin",
    ),
    pytest.param(
        "database: {url: 'mysql://u:pw1234@h/db'}",
        "database.url = 'mysql://u:***@h/db': expected a URL such as postgresql://",
        id="bad-database-url-masked",
    ),
    pytest.param(
        "multi_agent: {heartbeat_interval: 100}",
        "multi_agent.heartbeat_interval = 100.0: expected less than failure_threshold x health_check_interval (90s)",
        id="heartbeat-too-slow",
    ),
    pytest.param(
        "multi_agent: {max_agents: 2}",
        "multi_agent.max_agents = 2: expected at least the pools' min_instances added up (4)",
        id="pools-need-more-agents",
    ),
    pytest.param("agents: {}", "agents = {}: expected at least one pool", id="no-pools"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_value_in_file_is_refused_in_one_line_naming_the_key(tmp_path, text, message):
    path = write(tmp_path, text + "\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    error = str(caught.value)
    assert error.startswith(message)
    assert error.endswith(f"(in {path})")
    assert "\n" not in error
    assert caught.value.source == str(path)


BAD_VARIABLES = [
    pytest.param(
        {"LEANVIBE_MULTI_AGENT_MAX_AGENTS": "many"},
        "multi_agent.max_agents = 'many': expected an integer > 0",
        "LEANVIBE_MULTI_AGENT_MAX_AGENTS",
        id="wrong-type",
    ),
    pytest.param(
        {"LEANVIBE_WEBHOOK_SERVER_PORT": "70000"},
        "external_api.webhook_server.port = 70000: expected an integer from 1 to 65535",
        "LEANVIBE_WEBHOOK_SERVER_PORT",
        id="guide-alias-out-of-range",
    ),
    pytest.param(
        {"LEANVIBE_SYSTEM_DEBUG_MODE": "maybe"},
        "system.debug_mode = 'maybe': expected true or false",
        "LEANVIBE_SYSTEM_DEBUG_MODE",
        id="bad-bool",
    ),
    pytest.param(
        {"LEANVIBE_MULTI_AGENT_MIN_AGENTS": "50"},
        "multi_agent.min_agents = 50: expected at most max_agents (20)",
        "LEANVIBE_MULTI_AGENT_MIN_AGENTS",
        id="cross-field",
    ),
    pytest.param(
        {"LEANVIBE_MULTI_AGENT_MAX_AGENTS": "3"},
        "multi_agent.min_agents = 5: expected at most max_agents (3)",
        "LEANVIBE_MULTI_AGENT_MAX_AGENTS",
        id="cross-field-other-side",
    ),
    pytest.param(
        {"LEANVIBE_AGENTS_BACKEND_RUNNER_ARGV": "[tool, '{foo}']"},
        "agents.backend.runner.argv = ['tool', '{foo}']: expected placeholders",
        "LEANVIBE_AGENTS_BACKEND_RUNNER_ARGV",
        id="bad-placeholder",
    ),
    pytest.param(
        {"LEANVIBE_EXTERNAL_API_WEBHOOK_SERVER_CORS_ORIGINS": "[a"},
        "external_api.webhook_server.cors_origins = '[a': expected a YAML value",
        "LEANVIBE_EXTERNAL_API_WEBHOOK_SERVER_CORS_ORIGINS",
        id="bad-yaml",
    ),
    pytest.param(
        {"LEANVIBE_MULTI_AGENT_MAX_AGENT": "5"},
        "LEANVIBE_MULTI_AGENT_MAX_AGENT = '5': expected a variable that names a config key such as LEANVIBE_MULTI_AGENT_MAX_AGENTS",
        None,
        id="unknown-variable",
    ),
    pytest.param(
        {"LEANVIBE_AGENTS_BACKEN_CONCURRENCY": "4"},
        "LEANVIBE_AGENTS_BACKEN_CONCURRENCY = '4': expected a variable that names a config key such as LEANVIBE_AGENTS_BACKEND_CONCURRENCY",
        None,
        id="unknown-pool",
    ),
    pytest.param(
        {"LEANVIBE_SECURITY_SECRET_KY": "hunter2"},
        "LEANVIBE_SECURITY_SECRET_KY = '***': expected a variable",
        None,
        id="unknown-secret-masked",
    ),
    pytest.param(
        {"LEANVIBE_WEBHOOK_PORT": "1", "LEANVIBE_WEBHOOK_SERVER_PORT": "2"},
        "external_api.webhook_server.port = '2': expected one variable, not both LEANVIBE_WEBHOOK_PORT and LEANVIBE_WEBHOOK_SERVER_PORT",
        "LEANVIBE_WEBHOOK_SERVER_PORT",
        id="two-variables-one-key",
    ),
    pytest.param(
        {"LEANVIBE_SECURITY_SECRET_KEY_FILE": "/nonexistent/secret"},
        "security.secret_key = '/nonexistent/secret': expected a readable UTF-8 file",
        "LEANVIBE_SECURITY_SECRET_KEY_FILE",
        id="missing-secret-file",
    ),
    pytest.param(
        {"LEANVIBE_SYSTEM_LOG_LEVEL": "a\nb"},
        "system.log_level = 'a\\nb': expected one of DEBUG,",
        "LEANVIBE_SYSTEM_LOG_LEVEL",
        id="newline-in-value",
    ),
]


@pytest.mark.parametrize(("env", "message", "variable"), BAD_VARIABLES)
def test_bad_variable_is_refused_in_one_line_naming_the_variable(env, message, variable):
    with pytest.raises(ConfigError) as caught:
        load_config(GUIDE_CONFIGMAP, environ=env)

    error = str(caught.value)
    assert error.startswith(message)
    assert "\n" not in error
    if variable:
        assert error.endswith(f"(from {variable})")
    assert "hunter2" not in error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(None, "expected an existing file", id="missing"),
        pytest.param("a: [", "expected valid YAML (line 1, column 5:", id="unreadable-yaml"),
        pytest.param("- a\n- b\n", "expected a mapping of sections (system, multi_agent,", id="not-a-mapping"),
        pytest.param(
            "system: {}\nsystem: {}\n", "expected valid YAML (line 2, column 1: duplicate key 'system')", id="dup"
        ),
    ],
)
def test_unusable_file_is_refused_naming_the_file(tmp_path, text, expected):
    path = tmp_path / "hive.yaml"
    if text is not None:
        path.write_text(text)

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert str(caught.value).startswith(f"config file = '{path}': {expected}")
    assert "\n" not in str(caught.value)


def test_missing_file_named_by_leanvibe_config_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(environ={"LEANVIBE_CONFIG": str(tmp_path / "nope.yaml")})

    assert (
        str(caught.value)
        == f"config file = '{tmp_path / 'nope.yaml'}': expected an existing file (from LEANVIBE_CONFIG)"
    )


# --- environment overrides -----------------------------------------------------------------------


def test_canonical_variables_set_keys_and_win_over_the_file(tmp_path):
    path = write(tmp_path, "multi_agent: {max_agents: 10}\nagents: {backend: {capabilities: [python]}}\n")
    env = {
        "LEANVIBE_MULTI_AGENT_MAX_AGENTS": "50",
        "LEANVIBE_AGENTS_BACKEND_CONCURRENCY": "4",
        "LEANVIBE_AGENTS_BACKEND_CAPABILITIES": "[Python, go, python]",
        "LEANVIBE_AGENTS_BACKEND_RUNNER_ARGV": '["aider", "--message", "{prompt}"]',
        "LEANVIBE_AGENTS_BACKEND_RUNNER_ENV_ANTHROPIC_MODEL": "opus",
        "LEANVIBE_EXTERNAL_API_EVENT_STREAMING_BATCH_SIZE": "25",
        "LEANVIBE_EXTERNAL_API_WEBHOOK_SERVER_GITHUB_TASK_LABELS": "[hive, agent]",
    }

    config = load_config(path, environ=env)

    assert config.multi_agent.max_agents == 50
    backend = config.agents["backend"]
    assert backend.concurrency == 4
    assert backend.capabilities == ["python", "go"]
    assert backend.runner.argv == ["aider", "--message", "{prompt}"]
    assert backend.runner.env == {"ANTHROPIC_MODEL": "opus"}
    assert config.external_api.event_streaming.batch_size == 25
    assert config.external_api.webhook_server.github.task_labels == ["hive", "agent"]
    assert config.env_overrides["agents.backend.concurrency"] == "LEANVIBE_AGENTS_BACKEND_CONCURRENCY"


def test_guide_aliases_set_the_schema_keys():
    env = {
        "LEANVIBE_RESOURCES_CPU_LIMIT_PERCENT": "85",
        "LEANVIBE_DATABASE_POOL_SIZE": "7",
        "LEANVIBE_WEBHOOK_SERVER_PORT": "9000",
        "LEANVIBE_API_GATEWAY_AUTH_PROVIDER": "api_key",
        "LEANVIBE_EVENT_STREAMING_MAX_CONNECTIONS": "300",
        "LEANVIBE_INTELLIGENT_TASK_ALLOCATION_STRATEGY": "round_robin",
        "LEANVIBE_ML_PATTERN_OPTIMIZER_SENSITIVITY": "0.5",
    }

    config = load_config(GUIDE_CONFIGMAP, environ=env)

    assert config.resources.allocation.cpu_limit_percent == 85
    assert config.database.connection_pool_size == 7
    assert config.external_api.webhook_server.port == 9000
    assert config.external_api.api_gateway.authentication_provider == "api_key"
    assert config.external_api.event_streaming.max_connections == 300
    assert config.external_api.intelligent_task_allocation.load_balancing_strategy == "round_robin"
    assert config.external_api.ml_enhancements.pattern_optimizer.pattern_detection_sensitivity == 0.5


def test_file_variable_reads_a_secret_and_strings_stay_as_written(tmp_path):
    secret = tmp_path / "secret_key"
    secret.write_text("s3cr3t: with colon\n")
    env = {
        "LEANVIBE_SECURITY_SECRET_KEY_FILE": str(secret),
        "LEANVIBE_SECURITY_API_KEY": "0123",  # YAML would make it the number 83 or 123
        "LEANVIBE_DATABASE_URL": "postgresql://hive:pw@db:5432/hive",
        "LEANVIBE_REDIS_URL": "",  # empty: not set
    }

    config = load_config(GUIDE_CONFIGMAP, environ=env)

    assert config.security.secret_key == "s3cr3t: with colon"
    assert config.security.api_key == "0123"
    assert config.database.url == "postgresql://hive:pw@db:5432/hive"
    assert config.redis.url is None
    assert config.env_overrides["security.secret_key"] == "LEANVIBE_SECURITY_SECRET_KEY_FILE"


def test_reserved_and_foreign_variables_are_ignored():
    env = {
        "LEANVIBE_CONFIG": "/not/read/because/a/path/is/given.yaml",
        "LEANVIBE_VAR_DIR": "/tmp/var",
        "LEANVIBE_HOME": "/opt/hive",
        "LEANVIBE_TEST_REDIS_URL": "redis://x",
        "CLAUDE_API_URL": "https://api.anthropic.com",
    }

    config = load_config(GUIDE_CONFIGMAP, environ=env)

    assert config.env_overrides == {}


def test_variable_for_one_pool_does_not_leak_into_pools_sharing_a_yaml_anchor():
    config = load_config(default_config_path(), environ={"LEANVIBE_AGENTS_FRONTEND_RUNNER_TIMEOUT": "60"})

    assert config.agents["frontend"].runner.timeout == 60
    assert config.agents["backend"].runner.timeout == 1800


def test_variables_reach_the_default_pools_when_the_file_has_none():
    config = load_config(GUIDE_CONFIGMAP, environ={"LEANVIBE_AGENTS_IOS_MAX_ATTEMPTS": "5"})

    assert config.agents["ios"].max_attempts == 5


def test_interpolation_takes_variables_and_dollar_dollar_is_literal(tmp_path):
    path = write(tmp_path, "security:\n  api_key: 'k-${API_PART}'\n  secret_key: '$${NOT_A_VAR}'\n")

    config = load_config(path, environ={"API_PART": "42"})

    assert config.security.api_key == "k-42"
    assert config.security.secret_key == "${NOT_A_VAR}"


# --- helpers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"), [("10MB", 10 * MB), ("512KB", 512 * 1024), ("1.5GiB", 3 * 512 * MB), ("100", 100), (2048, 2048)]
)
def test_parse_size_reads_binary_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["10 megs", "", "0MB", "-1KB", True])
def test_parse_size_refuses_what_is_not_a_size(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_describe_lists_pools_strategy_and_intervals_but_no_secrets():
    env = {
        "LEANVIBE_SECURITY_SECRET_KEY": "very-secret-value",
        "LEANVIBE_DATABASE_URL": "postgresql://hive:db-password@db:5432/hive",
    }
    config = load_config(default_config_path(), environ=env)

    text = describe(config)

    assert "allocation least_loaded" in text
    assert "check every 10s" in text and "offline after 30s" in text and "resent after 30s" in text
    assert re.search(r"backend: python, api, database, microservices\n\s+1\.\.20 instances x 2", text)
    for name in GUIDE_POOLS:
        assert f"  {name}: " in text
    assert "claude -p {prompt} --output-format stream-json --verbose (claude-json)" in text
    assert "secret_key set" in text
    assert "very-secret-value" not in text and "db-password" not in text
    assert "postgresql://hive:***@db:5432/hive" in text


def test_config_error_built_by_other_code_is_still_one_line():
    assert str(ConfigError("agents.backend = 'x':\n  expected a pool")) == "agents.backend = 'x': expected a pool"


def test_cross_field_error_names_the_variable_that_set_the_other_field():
    with pytest.raises(ConfigError) as caught:
        load_config(GUIDE_CONFIGMAP, environ={"LEANVIBE_AGENTS_BACKEND_MIN_INSTANCES": "20"})

    assert str(caught.value) == (
        "multi_agent.max_agents = 20: expected at least the pools' min_instances added up (23) "
        "(from LEANVIBE_AGENTS_BACKEND_MIN_INSTANCES)"
    )
