"""The hive's configuration: `config/hive.yaml` plus `LEANVIBE_*` variables, typed and validated.

The schema is the deployment guide's (`system`, `multi_agent`, `resources`, `scaling`, `agents`,
`external_api`, `database`, `logging`, `monitoring`, and the `security` file of the external API
guide), extended where the hive needs more: a pool's runner and workspace, heartbeats and
redispatch, Redis. Every model refuses unknown keys, so a typo stops start-up instead of being
ignored.

Precedence: defaults < the YAML file < `LEANVIBE_*` variables. A variable names a key by its
dotted path, upper-cased, dots turned into `_` (`LEANVIBE_MULTI_AGENT_MAX_AGENTS`); the guide's own
names work through `ENV_ALIASES` and `ENV_PREFIX_ALIASES`. `LEANVIBE_<NAME>_FILE` reads the value
from a file (Docker and Kubernetes secrets). A `LEANVIBE_*` variable that names no key is an error.
String values in the file may say `${NAME}` to take an environment variable (as the guide's
security file does); `$${` is a literal `${`.

Every failure is a `ConfigError` whose text is one line: `<key> = <value>: expected <what>`, and
where the value came from.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

__all__ = [
    "ENV_ALIASES",
    "ENV_PREFIX_ALIASES",
    "RESERVED_ENV_NAMES",
    "STRATEGIES",
    "ConfigError",
    "HiveConfig",
    "PoolConfig",
    "RunnerConfig",
    "WorkspaceConfig",
    "default_config_path",
    "describe",
    "environment_variable_names",
    "load_config",
    "parse_size",
]

BASE_DIR = Path(__file__).resolve().parent.parent
ENV_PREFIX = "LEANVIBE_"

# Variables that share the prefix but are read elsewhere, not config keys.
RESERVED_ENV_NAMES = frozenset(
    {
        "LEANVIBE_CONFIG",  # which file to load (here)
        "LEANVIBE_VAR_DIR",  # hive_project.paths
        "LEANVIBE_HOME",
        "LEANVIBE_ENV",  # development / production (settings)
        "LEANVIBE_ALLOWED_HOSTS",  # settings
        "LEANVIBE_SERVE_ROLE",  # which front door a web process serves (hive serve --role)
    }
)
RESERVED_ENV_PREFIXES = ("LEANVIBE_TEST_",)

# The guide's variable names whose key names differ from the schema's (see its "Environment
# Variables" block and its docker-compose / Kubernetes manifests).
ENV_ALIASES: Mapping[str, str] = {
    "LEANVIBE_RESOURCES_CPU_LIMIT_PERCENT": "resources.allocation.cpu_limit_percent",
    "LEANVIBE_RESOURCES_MEMORY_LIMIT_PERCENT": "resources.allocation.memory_limit_percent",
    "LEANVIBE_RESOURCES_DISK_LIMIT_PERCENT": "resources.allocation.disk_limit_percent",
    "LEANVIBE_DATABASE_POOL_SIZE": "database.connection_pool_size",
    "LEANVIBE_INTELLIGENT_TASK_ALLOCATION_STRATEGY": "external_api.intelligent_task_allocation.load_balancing_strategy",
    "LEANVIBE_INTELLIGENT_TASK_ALLOCATION_TIMEOUT": "external_api.intelligent_task_allocation.allocation_timeout",
    "LEANVIBE_PERFORMANCE_MONITORING_INTERVAL": "external_api.performance_monitoring.monitoring_interval",
    "LEANVIBE_WEBHOOK_SERVER_RATE_LIMIT": "external_api.webhook_server.rate_limit_per_minute",
    "LEANVIBE_WEBHOOK_SERVER_AUTH_REQUIRED": "external_api.webhook_server.authentication_required",
    "LEANVIBE_WEBHOOK_RATE_LIMIT": "external_api.webhook_server.rate_limit_per_minute",
    "LEANVIBE_WEBHOOK_AUTH_REQUIRED": "external_api.webhook_server.authentication_required",
    "LEANVIBE_API_GATEWAY_AUTH_PROVIDER": "external_api.api_gateway.authentication_provider",
    "LEANVIBE_API_GATEWAY_RATE_LIMIT": "external_api.api_gateway.rate_limit_per_minute",
    "LEANVIBE_GATEWAY_AUTH_PROVIDER": "external_api.api_gateway.authentication_provider",
    "LEANVIBE_GATEWAY_RATE_LIMIT": "external_api.api_gateway.rate_limit_per_minute",
    "LEANVIBE_STREAMING_COMPRESSION": "external_api.event_streaming.compression_enabled",
    "LEANVIBE_EXTERNAL_API_WEBHOOK_ENABLED": "external_api.webhook_server.enabled",
    "LEANVIBE_EXTERNAL_API_GATEWAY_ENABLED": "external_api.api_gateway.enabled",
    "LEANVIBE_EXTERNAL_API_STREAMING_ENABLED": "external_api.event_streaming.enabled",
    "LEANVIBE_ML_PATTERN_OPTIMIZER_SENSITIVITY": "external_api.ml_enhancements.pattern_optimizer.pattern_detection_sensitivity",
    "LEANVIBE_ML_PREDICTIVE_ANALYTICS_THRESHOLD": "external_api.ml_enhancements.predictive_analytics.prediction_accuracy_threshold",
    "LEANVIBE_ML_ADAPTIVE_LEARNING_RATE": "external_api.ml_enhancements.adaptive_learning.learning_rate",
}  # fmt: skip

# The guide drops the `external_api.` (and `ml_enhancements.`) part of many names: what follows
# such a prefix is resolved like a canonical name below that node (LEANVIBE_WEBHOOK_SERVER_PORT).
ENV_PREFIX_ALIASES: Mapping[str, str] = {
    "LEANVIBE_INTELLIGENCE_FRAMEWORK": "external_api.intelligence_framework",
    "LEANVIBE_INTELLIGENT_TASK_ALLOCATION": "external_api.intelligent_task_allocation",
    "LEANVIBE_AGENT_COORDINATION": "external_api.agent_coordination",
    "LEANVIBE_PERFORMANCE_MONITORING": "external_api.performance_monitoring",
    "LEANVIBE_WEBHOOK_SERVER": "external_api.webhook_server",
    "LEANVIBE_WEBHOOK": "external_api.webhook_server",
    "LEANVIBE_API_GATEWAY": "external_api.api_gateway",
    "LEANVIBE_GATEWAY": "external_api.api_gateway",
    "LEANVIBE_EVENT_STREAMING": "external_api.event_streaming",
    "LEANVIBE_STREAMING": "external_api.event_streaming",
    "LEANVIBE_ML_PATTERN_OPTIMIZER": "external_api.ml_enhancements.pattern_optimizer",
    "LEANVIBE_ML_PREDICTIVE_ANALYTICS": "external_api.ml_enhancements.predictive_analytics",
    "LEANVIBE_ML_ADAPTIVE_LEARNING": "external_api.ml_enhancements.adaptive_learning",
    "LEANVIBE_ML": "external_api.ml_enhancements",
}


class ConfigError(Exception):
    """A bad configuration. `str(err)` is one line: `<key> = <value>: expected <what> (<source>)`."""

    def __init__(
        self, message: str, *, key: str | None = None, expected: str | None = None, source: str | None = None
    ) -> None:
        message = " ".join(str(message).split())
        super().__init__(message)
        self.key = key
        self.expected = expected
        self.source = source  # "LEANVIBE_X", a file path, or None

    @classmethod
    def at(cls, key: str, shown: str, expected: str, *, var: str | None = None, file: str | None = None) -> ConfigError:
        where = f" (from {var})" if var else f" (in {file})" if file else ""
        return cls(f"{key} = {shown}: expected {expected}{where}", key=key, expected=expected, source=var or file)


# --- value types --------------------------------------------------------------------------------

STRATEGIES = ("least_loaded", "round_robin", "performance_weighted", "predictive")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")
POOL_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
_CAPABILITY = re.compile(r"^[a-z0-9][a-z0-9_.+#-]*$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")  # what looks like one; JSON braces do not
_ALLOWED_PLACEHOLDER = re.compile(r"^(prompt|task_id|workspace|attempt|payload\.[A-Za-z0-9_]+)$")
_CALLABLE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*|\.[A-Za-z_]\w*)$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")
SYSLOG_FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip


def parse_size(value: str | int) -> int:
    """Bytes in a size such as `10MB`, `512KB`, `1.5GiB` or a plain integer; units are binary (1KB = 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value > 0:
            return value
    elif isinstance(value, str) and (match := _SIZE.match(value.strip())):
        number = float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
        if number >= 1:
            return int(number)
    raise ValueError("a size such as 512KB, 10MB or 1GB")


def _size(value: Any) -> str:
    parse_size(value)
    return f"{value}B" if isinstance(value, int) else value.strip()


def _not_bool(value: Any) -> Any:
    # YAML turns yes/no/on/off into booleans, which pydantic would quietly accept as 1 and 0.
    if isinstance(value, bool):
        raise PydanticCustomError("hive_not_bool", "a number, not true/false")
    return value


def _choice(*choices: str) -> BeforeValidator:
    """Case-insensitive choice, stored upper-case; the error shows the value as written."""

    def check(value: Any) -> Any:
        if isinstance(value, str) and value.strip().upper() in choices:
            return value.strip().upper()
        raise ValueError(f"one of {', '.join(choices)}")

    return BeforeValidator(check)


def _strategy(value: Any) -> Any:
    choices = f"one of {', '.join(STRATEGIES)}"
    if isinstance(value, str):
        value = value.strip().lower()
        if value in STRATEGIES:
            return value
    raise ValueError(choices)


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _capabilities(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        capability = value.strip().lower()
        if not _CAPABILITY.match(capability):
            raise ValueError(f"capabilities of lowercase letters, digits, '_', '.', '+', '#' or '-' (not {value!r})")
        seen[capability] = None
    if not seen:
        raise ValueError("a non-empty list of capabilities such as [python, api]")
    return list(seen)


def _origin(value: str) -> str:
    if value != "*" and not _ORIGIN.match(value):
        raise ValueError("an origin such as https://example.com (scheme and host, no path) or '*'")
    return value


def _http_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("a path starting with '/'")
    return value


def _http_url(value: str | None) -> str | None:
    if value is not None and urlsplit(value).scheme not in {"http", "https"}:
        raise ValueError("an http:// or https:// URL")
    return value


def _database_url(value: str | None) -> str | None:
    if value is not None and urlsplit(value).scheme not in {"sqlite", "postgres", "postgresql", "postgresql+psycopg"}:
        raise ValueError("a URL such as postgresql://user:password@host:5432/name or sqlite:///path/hive.sqlite3")
    return value


def _redis_url(value: str | None) -> str | None:
    if value is not None and (urlsplit(value).scheme not in {"redis", "rediss", "unix"} or "://" not in value):
        raise ValueError("a URL such as redis://host:6379/0, rediss://… or unix:///path/redis.sock")
    return value


def _syslog_address(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], str):
        port = value[1]
        if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
            return (value[0], port)
    raise ValueError("a socket path such as /dev/log, or [host, port]")


Int = Annotated[int, BeforeValidator(_not_bool)]
Float = Annotated[float, BeforeValidator(_not_bool)]
Port = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=65535)]
Fraction = Annotated[float, BeforeValidator(_not_bool), Field(ge=0, le=1)]
Size = Annotated[str, BeforeValidator(_size)]
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], _choice(*LOG_LEVELS)]
Strategy = Annotated[
    Literal["least_loaded", "round_robin", "performance_weighted", "predictive"], BeforeValidator(_strategy)
]
HttpMethod = Annotated[Literal["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"], _choice(*HTTP_METHODS)]
Secret = Annotated[str | None, BeforeValidator(_blank_to_none)]
NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Capabilities = Annotated[list[str], AfterValidator(_capabilities)]
Origins = list[Annotated[str, AfterValidator(_origin)]]
HttpPath = Annotated[str, AfterValidator(_http_path)]
PoolName = Annotated[str, StringConstraints(pattern=POOL_NAME_PATTERN)]
UpdateFrequency = Literal["hourly", "daily", "weekly"]


def _field_error(field: str, value: Any, expected: str, *related: str) -> PydanticCustomError:
    """An error about one field found by a check that spans several; `field` is relative to the model."""
    return PydanticCustomError(
        "hive_field", "{field}: {expected}", {"field": field, "expected": expected, "value": value, "related": related}
    )


def _seconds(value: float) -> str:
    return f"{round(value, 2):g}s"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- system, multi_agent, resources, scaling ------------------------------------------------------


class SystemConfig(_Section):
    log_level: LogLevel = "INFO"
    debug_mode: bool = False
    max_concurrent_tasks: Int = Field(50, gt=0)


class MultiAgentConfig(_Section):
    enabled: bool = True
    max_agents: Int = Field(20, gt=0)
    min_agents: Int = Field(1, ge=0)
    load_balancing_strategy: Strategy = "least_loaded"
    health_check_interval: Float = Field(30.0, gt=0)  # seconds
    failure_threshold: Int = Field(3, ge=1)
    coordination_timeout: Float = Field(30.0, gt=0)
    # Hive extensions.
    heartbeat_interval: Annotated[float, BeforeValidator(_not_bool), Field(gt=0)] | None = None
    redispatch_after: Float = Field(30.0, gt=0)  # seconds a queued task may go unclaimed before it is sent again

    @property
    def effective_heartbeat_interval(self) -> float:
        return self.heartbeat_interval or min(5.0, self.health_check_interval / 3)

    @property
    def offline_after(self) -> float:
        """Seconds without a heartbeat after which an agent is offline."""
        return self.failure_threshold * self.health_check_interval

    @model_validator(mode="after")
    def _consistent(self) -> MultiAgentConfig:
        if self.min_agents > self.max_agents:
            raise _field_error("min_agents", self.min_agents, f"at most max_agents ({self.max_agents})", "max_agents")
        if self.effective_heartbeat_interval >= self.offline_after:
            raise _field_error(
                "heartbeat_interval",
                self.heartbeat_interval,
                f"less than failure_threshold x health_check_interval ({_seconds(self.offline_after)})",
                "failure_threshold",
                "health_check_interval",
            )
        return self


class ResourceMonitoringConfig(_Section):
    cpu: bool = True
    memory: bool = True
    disk: bool = True
    network: bool = True
    interval_seconds: Float = Field(5.0, gt=0)


class ResourceAllocationConfig(_Section):
    cpu_limit_percent: Float = Field(80.0, gt=0, le=100)
    memory_limit_percent: Float = Field(75.0, gt=0, le=100)
    disk_limit_percent: Float = Field(90.0, gt=0, le=100)


class ResourceThresholdsConfig(_Section):
    warning: Float = Field(75.0, ge=0, le=100)
    critical: Float = Field(90.0, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> ResourceThresholdsConfig:
        if self.warning > self.critical:
            raise _field_error("warning", self.warning, f"at most critical ({self.critical:g})", "critical")
        return self


class ResourcesConfig(_Section):
    monitoring: ResourceMonitoringConfig = ResourceMonitoringConfig()
    allocation: ResourceAllocationConfig = ResourceAllocationConfig()
    thresholds: ResourceThresholdsConfig = ResourceThresholdsConfig()


class ScaleUpConfig(_Section):
    threshold: Fraction = 0.8
    factor: Float = Field(1.5, gt=1)
    max_instances: Int = Field(20, gt=0)


class ScaleDownConfig(_Section):
    threshold: Fraction = 0.3
    factor: Float = Field(0.7, gt=0, lt=1)
    min_instances: Int = Field(5, ge=0)


class ScalingStrategiesConfig(_Section):
    scale_up: ScaleUpConfig = ScaleUpConfig()
    scale_down: ScaleDownConfig = ScaleDownConfig()

    @model_validator(mode="after")
    def _ordered(self) -> ScalingStrategiesConfig:
        up, down = self.scale_up, self.scale_down
        if down.threshold >= up.threshold:  # otherwise one load level asks for both, and the pools flap
            raise _field_error(
                "scale_down.threshold", down.threshold, f"below scale_up.threshold ({up.threshold:g})", "scale_up"
            )
        if down.min_instances > up.max_instances:
            raise _field_error(
                "scale_down.min_instances",
                down.min_instances,
                f"at most scale_up.max_instances ({up.max_instances})",
                "scale_up",
            )
        return self


class ScalingConfig(_Section):
    enabled: bool = True
    auto_scale: bool = True
    strategies: ScalingStrategiesConfig = ScalingStrategiesConfig()
    cooldown_minutes: Float = Field(3.0, ge=0)

    @property
    def cooldown_seconds(self) -> float:
        return self.cooldown_minutes * 60


# --- agents ---------------------------------------------------------------------------------------

DEFAULT_ARGV = ("claude", "-p", "{prompt}", "--output-format", "stream-json", "--verbose")


class ResourceRequirementsConfig(_Section):
    cpu_cores: Float = Field(1.0, gt=0)
    memory_mb: Int = Field(1024, gt=0)
    disk_mb: Int = Field(512, gt=0)


class RunnerConfig(_Section):
    """How a pool runs a task: a program from an argv template, or a Python callable.

    argv placeholders: {prompt}, {task_id}, {workspace}, {attempt}, {payload.<field>}.
    """

    kind: Literal["command", "python"] = "command"
    argv: list[str] = Field(default_factory=lambda: list(DEFAULT_ARGV))
    env: dict[str, str] = Field(default_factory=dict)
    timeout: Float = Field(1800.0, gt=0)  # seconds
    output_format: Literal["text", "claude-json"] = "claude-json"
    callable: str | None = None  # "package.module.function" or "package.module:function"

    @field_validator("argv")
    @classmethod
    def _known_placeholders(cls, argv: list[str]) -> list[str]:
        for arg in argv:
            for name in _PLACEHOLDER.findall(arg):
                if not _ALLOWED_PLACEHOLDER.match(name):
                    raise ValueError(
                        f"placeholders among {{prompt}}, {{task_id}}, {{workspace}}, {{attempt}}, "
                        f"{{payload.<field>}} (not {{{name}}})"
                    )
        return argv

    @model_validator(mode="after")
    def _complete(self) -> RunnerConfig:
        if self.kind == "python":
            if not self.callable:
                raise _field_error("callable", self.callable, "a dotted path such as pkg.mod.func when kind is python")
            if not _CALLABLE.match(self.callable):
                raise _field_error("callable", self.callable, "a dotted path such as pkg.mod.func or pkg.mod:func")
        else:
            if not self.argv:
                raise _field_error("argv", self.argv, "a non-empty argv list when kind is command", "kind")
            if self.callable is not None:
                raise _field_error("callable", self.callable, "no callable when kind is command", "kind")
        return self


class WorkspaceConfig(_Section):
    repository: NonEmpty | None = None  # a git repository to take a worktree from; None: a fresh directory
    root: NonEmpty | None = None  # where workspaces are made; None: var/workspaces
    keep: bool = False


class PoolConfig(_Section):
    capabilities: Capabilities
    min_instances: Int = Field(0, ge=0)
    max_instances: Int = Field(1, ge=1)
    concurrency: Int = Field(2, ge=1, le=64)
    allow_commands: bool = True  # may a task carry its own argv command
    max_attempts: Int = Field(3, ge=1, le=20)
    resource_requirements: ResourceRequirementsConfig = ResourceRequirementsConfig()
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    workspace: WorkspaceConfig = WorkspaceConfig()

    @model_validator(mode="after")
    def _bounds(self) -> PoolConfig:
        if self.min_instances > self.max_instances:
            raise _field_error(
                "min_instances", self.min_instances, f"at most max_instances ({self.max_instances})", "max_instances"
            )
        return self


def _pool(capabilities: list[str], max_instances: int, concurrency: int, cpu: float, memory: int, disk: int) -> dict:
    return {
        "capabilities": capabilities,
        "min_instances": 1,
        "max_instances": max_instances,
        "concurrency": concurrency,
        "resource_requirements": {"cpu_cores": cpu, "memory_mb": memory, "disk_mb": disk},
    }


# The guide's four agent types, as config/hive.yaml has them; used when a file has no `agents`.
DEFAULT_POOLS: Mapping[str, Mapping[str, Any]] = {
    "backend": _pool(["python", "api", "database", "microservices"], 20, 2, 2, 2048, 1024),
    "frontend": _pool(["javascript", "typescript", "react", "vue", "ui"], 15, 1, 1, 1024, 512),
    "ios": _pool(["swift", "mobile", "ui", "app_store"], 10, 1, 4, 4096, 2048),
    "infrastructure": _pool(["docker", "kubernetes", "terraform", "monitoring"], 8, 1, 2, 2048, 1024),
}


def _default_pools() -> dict[str, PoolConfig]:
    return {name: PoolConfig.model_validate(spec) for name, spec in DEFAULT_POOLS.items()}


# --- external_api ---------------------------------------------------------------------------------


class IntelligenceFrameworkConfig(_Section):
    enabled: bool = True
    confidence_threshold: Fraction = 0.85
    learning_rate: Float = Field(0.005, gt=0, le=1)
    pattern_recognition_enabled: bool = True
    adaptive_learning_enabled: bool = True
    performance_tracking_enabled: bool = True


class IntelligentTaskAllocationConfig(_Section):
    enabled: bool = True
    load_balancing_strategy: Strategy = "performance_weighted"
    allocation_timeout: Float = Field(60.0, gt=0)
    performance_tracking_enabled: bool = True


class AgentCoordinationConfig(_Section):
    enabled: bool = True
    session_timeout: Float = Field(600.0, gt=0)
    max_participants: Int = Field(10, ge=1)
    consensus_threshold: Float = Field(0.7, gt=0, le=1)


class AlertThresholdsConfig(_Section):
    cpu_usage: Fraction = 0.85
    memory_usage: Fraction = 0.90
    task_queue_length: Int = Field(100, ge=0)


class PerformanceMonitoringConfig(_Section):
    enabled: bool = True
    monitoring_interval: Float = Field(30.0, gt=0)
    optimization_enabled: bool = True
    alert_thresholds: AlertThresholdsConfig = AlertThresholdsConfig()


class EndpointConfig(_Section):
    path: HttpPath
    methods: list[HttpMethod] = Field(min_length=1)
    auth_required: bool = True
    rate_limit: Int | None = Field(None, gt=0)  # requests per minute


class GithubWebhookConfig(_Section):
    secret: Secret = None
    secrets_previous: list[str] = []  # still accepted while a rotation is under way
    task_labels: list[str] = ["hive"]  # an issue with one of these labels becomes a task
    command_prefix: NonEmpty = "/hive"  # a comment starting with it becomes a task
    capabilities: Capabilities = ["python"]


class SlackWebhookConfig(_Section):
    signing_secret: Secret = None
    signing_secrets_previous: list[str] = []
    command: NonEmpty = "/hive"
    capabilities: Capabilities = ["python"]


def _guide_endpoints() -> list[EndpointConfig]:
    return [
        EndpointConfig(path="/github/webhook", methods=["POST"], rate_limit=50),
        EndpointConfig(path="/slack/webhook", methods=["POST"], rate_limit=30),
        EndpointConfig(path="/custom/webhook", methods=["POST", "PUT"], auth_required=False, rate_limit=20),
    ]


def _guide_routes() -> list[EndpointConfig]:
    return [
        EndpointConfig(path="/api/v1/agents", methods=["GET", "POST"], rate_limit=100),
        EndpointConfig(path="/api/v1/tasks", methods=["GET", "POST", "PUT", "DELETE"], rate_limit=200),
        EndpointConfig(path="/api/v1/status", methods=["GET"], auth_required=False, rate_limit=50),
    ]


class WebhookServerConfig(_Section):
    enabled: bool = True
    port: Port = 8081
    host: NonEmpty = "0.0.0.0"
    rate_limit_per_minute: Int = Field(100, gt=0)
    authentication_required: bool = True
    cors_origins: Origins = []
    max_payload_size: Size = "10MB"
    request_timeout: Float = Field(30.0, gt=0)
    endpoints: list[EndpointConfig] = Field(default_factory=_guide_endpoints)
    github: GithubWebhookConfig = GithubWebhookConfig()
    slack: SlackWebhookConfig = SlackWebhookConfig()

    @property
    def max_payload_bytes(self) -> int:
        return parse_size(self.max_payload_size)


class ApiGatewayConfig(_Section):
    enabled: bool = True
    port: Port = 8082
    cors_enabled: bool = True
    cors_origins: Origins = ["*"]
    cors_methods: list[HttpMethod] = ["GET", "POST", "PUT", "DELETE"]
    cors_headers: list[NonEmpty] = ["Content-Type", "Authorization"]
    authentication_provider: Literal["jwt", "api_key", "oauth2"] = "jwt"
    request_timeout: Float = Field(30.0, gt=0)
    max_request_size: Size = "10MB"
    rate_limit_per_minute: Int = Field(500, gt=0)
    routes: list[EndpointConfig] = Field(default_factory=_guide_routes)

    @property
    def max_request_bytes(self) -> int:
        return parse_size(self.max_request_size)


class StreamFilterConfig(_Section):
    type: NonEmpty
    values: list[str]


class EventStreamingConfig(_Section):
    enabled: bool = True
    port: Port = 8083
    compression_enabled: bool = True
    compression_algorithm: Literal["gzip", "deflate", "zlib"] = "gzip"
    batch_size: Int = Field(10, ge=1, le=10000)
    flush_interval: Float = Field(5.0, gt=0)
    max_connections: Int = Field(1000, gt=0)
    heartbeat_interval: Float = Field(30.0, gt=0)
    event_retention_hours: Float = Field(24.0, gt=0)
    event_types: list[NonEmpty] = []  # empty: every type
    filters: list[StreamFilterConfig] = []


class PatternOptimizerConfig(_Section):
    enabled: bool = True
    pattern_detection_sensitivity: Fraction = 0.8
    optimization_aggressiveness: Fraction = 0.6
    learning_window_size: Int = Field(5000, gt=0)


class PredictiveAnalyticsConfig(_Section):
    enabled: bool = True
    prediction_accuracy_threshold: Fraction = 0.9
    forecast_horizon_days: Int = Field(60, gt=0)
    model_update_frequency: UpdateFrequency = "daily"


class AdaptiveLearningConfig(_Section):
    enabled: bool = True
    learning_rate: Float = Field(0.005, gt=0, le=1)
    adaptation_threshold: Fraction = 0.15
    model_update_frequency: UpdateFrequency = "hourly"


class MlEnhancementsConfig(_Section):
    pattern_optimizer: PatternOptimizerConfig = PatternOptimizerConfig()
    predictive_analytics: PredictiveAnalyticsConfig = PredictiveAnalyticsConfig()
    adaptive_learning: AdaptiveLearningConfig = AdaptiveLearningConfig()


class ExternalApiConfig(_Section):
    enabled: bool = True
    intelligence_framework: IntelligenceFrameworkConfig = IntelligenceFrameworkConfig()
    intelligent_task_allocation: IntelligentTaskAllocationConfig = IntelligentTaskAllocationConfig()
    agent_coordination: AgentCoordinationConfig = AgentCoordinationConfig()
    performance_monitoring: PerformanceMonitoringConfig = PerformanceMonitoringConfig()
    webhook_server: WebhookServerConfig = WebhookServerConfig()
    api_gateway: ApiGatewayConfig = ApiGatewayConfig()
    event_streaming: EventStreamingConfig = EventStreamingConfig()
    ml_enhancements: MlEnhancementsConfig = MlEnhancementsConfig()


# --- security (the guide's external-api-security.yaml, plus the hive's own secrets) ---------------


class WebhookAuthenticationConfig(_Section):
    type: Literal["api_key", "token", "none"] = "api_key"
    header_name: NonEmpty = "X-API-Key"
    validation_endpoint: HttpPath | None = "/auth/validate"


class RateLimitingConfig(_Section):
    storage: Literal["redis", "memory"] = "redis"
    redis_url: Annotated[str | None, AfterValidator(_redis_url)] = None  # None: redis.url
    global_limit: Int = Field(1000, gt=0)  # requests per minute
    per_endpoint_limit: Int = Field(100, gt=0)


class WebhookRequestValidationConfig(_Section):
    max_payload_size: Size = "5MB"
    # GitHub sends no X-API-Key and Slack posts forms, so the guide's lists would refuse both.
    required_headers: list[NonEmpty] = ["Content-Type"]
    allowed_content_types: list[NonEmpty] = ["application/json", "application/x-www-form-urlencoded"]

    @property
    def max_payload_bytes(self) -> int:
        return parse_size(self.max_payload_size)


class RequestLoggingConfig(_Section):
    log_requests: bool = True
    log_responses: bool = False
    log_errors: bool = True
    sensitive_headers: list[NonEmpty] = ["Authorization", "X-API-Key", "X-Hub-Signature-256", "X-Slack-Signature"]


class WebhookSecurityConfig(_Section):
    authentication: WebhookAuthenticationConfig = WebhookAuthenticationConfig()
    rate_limiting: RateLimitingConfig = RateLimitingConfig()
    request_validation: WebhookRequestValidationConfig = WebhookRequestValidationConfig()
    logging: RequestLoggingConfig = RequestLoggingConfig()


class JwtConfig(_Section):
    secret_key: Secret = None
    algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    expiration: Int = Field(3600, gt=0)  # seconds
    issuer: NonEmpty = "agent-hive"


class OAuth2Config(_Section):
    provider: NonEmpty = "custom"
    authorization_url: Annotated[str | None, AfterValidator(_http_url)] = None
    token_url: Annotated[str | None, AfterValidator(_http_url)] = None
    client_id: Secret = None
    client_secret: Secret = None


class GatewayAuthenticationConfig(_Section):
    jwt: JwtConfig = JwtConfig()
    oauth2: OAuth2Config = OAuth2Config()


class GatewayCorsConfig(_Section):
    credentials: bool = False  # the guide says true, which browsers refuse beside the default origin '*'
    max_age: Int = Field(86400, ge=0)
    exposed_headers: list[NonEmpty] = ["X-Request-ID", "X-Rate-Limit"]


class GatewayRequestValidationConfig(_Section):
    max_payload_size: Size = "10MB"
    validate_json: bool = True
    sanitize_input: bool = True

    @property
    def max_payload_bytes(self) -> int:
        return parse_size(self.max_payload_size)


class GatewaySecurityConfig(_Section):
    authentication: GatewayAuthenticationConfig = GatewayAuthenticationConfig()
    cors: GatewayCorsConfig = GatewayCorsConfig()
    request_validation: GatewayRequestValidationConfig = GatewayRequestValidationConfig()


class StreamingAuthenticationConfig(_Section):
    type: Literal["token", "none"] = "token"
    token_header: NonEmpty = "Authorization"
    token_prefix: NonEmpty = "Bearer"


class StreamingEncryptionConfig(_Section):
    enabled: bool = True
    algorithm: Literal["AES-256-GCM"] = "AES-256-GCM"
    key_rotation_interval: Int = Field(86400, gt=0)  # seconds


class StreamingAccessControlConfig(_Section):
    subscription_auth_required: bool = True
    publish_auth_required: bool = True
    admin_endpoints_auth_required: bool = True


class StreamingSecurityConfig(_Section):
    authentication: StreamingAuthenticationConfig = StreamingAuthenticationConfig()
    encryption: StreamingEncryptionConfig = StreamingEncryptionConfig()
    access_control: StreamingAccessControlConfig = StreamingAccessControlConfig()


class SecurityConfig(_Section):
    secret_key: Secret = None  # Django's SECRET_KEY; required in production
    api_key: Secret = None
    jwt_signing_key: Secret = None
    webhook_server: WebhookSecurityConfig = WebhookSecurityConfig()
    api_gateway: GatewaySecurityConfig = GatewaySecurityConfig()
    event_streaming: StreamingSecurityConfig = StreamingSecurityConfig()

    @property
    def effective_jwt_signing_key(self) -> str | None:
        return self.jwt_signing_key or self.api_gateway.authentication.jwt.secret_key or self.secret_key


# --- database, redis, logging, monitoring, development --------------------------------------------


class DatabaseConfig(_Section):
    url: Annotated[str | None, BeforeValidator(_blank_to_none), AfterValidator(_database_url)] = None  # None: SQLite
    connection_pool_size: Int = Field(20, gt=0)
    max_overflow: Int = Field(30, ge=0)
    pool_timeout: Float = Field(30.0, gt=0)
    pool_recycle: Int = Field(3600, ge=0)
    echo: bool = False
    conn_max_age: Int = Field(60, ge=0)  # seconds Django keeps a connection


class RedisConfig(_Section):
    url: Annotated[str | None, BeforeValidator(_blank_to_none), AfterValidator(_redis_url)] = None  # None: embedded


class LogFileConfig(_Section):
    path: NonEmpty | None = None  # None: var/logs/hive.log
    max_size: Size = "100MB"
    backup_count: Int = Field(10, ge=0)

    @property
    def max_bytes(self) -> int:
        return parse_size(self.max_size)


class SyslogConfig(_Section):
    facility: Literal[SYSLOG_FACILITIES] = "local0"  # type: ignore[valid-type]
    address: Annotated[str | tuple[str, int], BeforeValidator(_syslog_address)] = ("localhost", 514)


class LoggingConfig(_Section):
    level: LogLevel = "INFO"
    format: Literal["json", "text"] = "text"
    handlers: list[Literal["console", "file", "syslog"]] = Field(["console"], min_length=1)
    file: LogFileConfig = LogFileConfig()
    syslog: SyslogConfig = SyslogConfig()


class PrometheusConfig(_Section):
    enabled: bool = True
    path: HttpPath = "/metrics"


class AlertsConfig(_Section):
    enabled: bool = False
    webhook_url: Annotated[str | None, BeforeValidator(_blank_to_none), AfterValidator(_http_url)] = None


class MonitoringConfig(_Section):
    enabled: bool = True
    metrics_port: Port = 8081
    health_check_port: Port = 8080
    prometheus: PrometheusConfig = PrometheusConfig()
    alerts: AlertsConfig = AlertsConfig()


class DevelopmentConfig(_Section):
    use_mock_cli: bool = False  # the guide's LEANVIBE_DEVELOPMENT_USE_MOCK_CLI (docker-compose.dev.yml)


class HiveConfig(_Section):
    system: SystemConfig = SystemConfig()
    multi_agent: MultiAgentConfig = MultiAgentConfig()
    resources: ResourcesConfig = ResourcesConfig()
    scaling: ScalingConfig = ScalingConfig()
    agents: dict[PoolName, PoolConfig] = Field(default_factory=_default_pools)
    external_api: ExternalApiConfig = ExternalApiConfig()
    database: DatabaseConfig = DatabaseConfig()
    redis: RedisConfig = RedisConfig()
    logging: LoggingConfig = LoggingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    security: SecurityConfig = SecurityConfig()
    development: DevelopmentConfig = DevelopmentConfig()

    _source_path: Path | None = PrivateAttr(None)
    _env_overrides: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def source_path(self) -> Path | None:
        """The file this configuration was read from, if any."""
        return self._source_path

    @property
    def env_overrides(self) -> Mapping[str, str]:
        """Dotted key -> the LEANVIBE_* variable that set it."""
        return dict(self._env_overrides)

    @model_validator(mode="after")
    def _consistent(self) -> HiveConfig:
        if not self.agents:
            raise _field_error("agents", {}, "at least one pool")
        floor = sum(pool.min_instances for pool in self.agents.values())
        if floor > self.multi_agent.max_agents:
            raise _field_error(
                "multi_agent.max_agents",
                self.multi_agent.max_agents,
                f"at least the pools' min_instances added up ({floor})",
                "agents",
            )
        return self


# --- loading --------------------------------------------------------------------------------------


def default_config_path() -> Path:
    return BASE_DIR / "config" / "hive.yaml"


def load_config(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> HiveConfig:
    """Read, merge and validate. Raises ConfigError (one line) on the first problem found."""
    env = os.environ if environ is None else environ
    config_var = None
    if path is None and env.get("LEANVIBE_CONFIG"):
        path, config_var = env["LEANVIBE_CONFIG"], "LEANVIBE_CONFIG"
    elif path is None and default_config_path().is_file():
        path = default_config_path()
    file = Path(path) if path is not None else None

    raw: dict[str, Any] = {}
    if file is not None:
        raw = _read_yaml(file, config_var)
        raw = _interpolate(raw, env, (), str(file))
    if "agents" not in raw:
        raw["agents"] = {name: _copy(spec) for name, spec in DEFAULT_POOLS.items()}
    sources = _apply_environment(raw, env)

    try:
        config = HiveConfig.model_validate(raw)
    except ValidationError as exc:
        raise _from_pydantic(exc.errors()[0], sources, str(file) if file else None) from None
    config._source_path = file
    config._env_overrides = {".".join(p): var for p, var in sources.items()}
    return config


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; in a config file that is a mistake, so refuse it."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key = loader.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(file: Path, config_var: str | None) -> dict[str, Any]:
    def fail(expected: str) -> ConfigError:
        return ConfigError.at("config file", repr(str(file)), expected, var=config_var)

    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail("an existing file") from None
    except UnicodeDecodeError:
        raise fail("UTF-8 text") from None
    except OSError as exc:
        raise fail(f"a readable file ({exc.strerror or exc})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise fail(f"valid YAML ({where}{getattr(exc, 'problem', None) or exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise fail(f"a mapping of sections ({', '.join(HiveConfig.model_fields)}), not a {type(data).__name__}")
    return data


_INTERPOLATION = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _interpolate(node: Any, env: Mapping[str, str], loc: tuple, file: str) -> Any:
    if isinstance(node, dict):
        return {key: _interpolate(value, env, (*loc, key), file) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate(value, env, (*loc, i), file) for i, value in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def substitute(match: re.Match) -> str:
        if match.group(1):  # $${NAME} is a literal ${NAME}
            return match.group(0)[1:]
        name = match.group(2)
        if name not in env:
            key = _dotted(loc)
            raise ConfigError.at(key, _show(node, key), f"environment variable {name} to be set", file=file)
        return env[name]

    return _INTERPOLATION.sub(substitute, node)


def _copy(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {key: _copy(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_copy(value) for value in node]
    return node


# --- LEANVIBE_* variables -------------------------------------------------------------------------


def _apply_environment(raw: dict[str, Any], env: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Write every LEANVIBE_* variable into `raw`; return which variable set which path."""
    found: dict[tuple[str, ...], tuple[str, Any]] = {}
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in RESERVED_ENV_NAMES or var.startswith(RESERVED_ENV_PREFIXES):
            continue
        text = env[var]
        target = _resolve_variable(var, raw)
        from_file = False
        if target is None and var.endswith("_FILE"):
            target = _resolve_variable(var.removesuffix("_FILE"), raw)
            from_file = target is not None
        if target is None:
            raise _unknown_variable(var, text, raw)
        path, annotation = target
        key = _dotted(path)
        if from_file:
            text = _read_secret_file(key, text, var)
        if path in found:
            other = found[path][0]
            raise ConfigError.at(key, _show(text, key, var), f"one variable, not both {other} and {var}", var=var)
        found[path] = (var, _parse_env_value(key, text, annotation, var, masked=from_file))

    for path in sorted(found, key=len):  # a whole section first, then keys inside it
        _assign(raw, path, found[path][1])
    return {path: var for path, (var, _) in found.items()}


def _resolve_variable(var: str, raw: dict[str, Any]) -> tuple[tuple[str, ...], Any] | None:
    if var in ENV_ALIASES:
        path = tuple(ENV_ALIASES[var].split("."))
        return path, _annotation_at(path)
    hit = _walk(HiveConfig, var.removeprefix(ENV_PREFIX), raw)
    if hit is not None:
        return hit
    for prefix in sorted(ENV_PREFIX_ALIASES, key=len, reverse=True):
        if var.startswith(prefix + "_"):
            base = tuple(ENV_PREFIX_ALIASES[prefix].split("."))
            hit = _walk(_annotation_at(base), var.removeprefix(prefix + "_"), _raw_at(raw, base))
            if hit is not None:
                return (*base, *hit[0]), hit[1]
    return None


def _walk(annotation: Any, tokens: str, raw: Any) -> tuple[tuple[str, ...], Any] | None:
    """Match `tokens` (MULTI_AGENT_MAX_AGENTS) against the schema below `annotation`, longest names first."""
    node = _unwrap(annotation)
    if _is_model(node):
        for name in sorted(node.model_fields, key=len, reverse=True):
            field = node.model_fields[name]
            upper = name.upper()
            if tokens == upper:
                return (name,), field.annotation
            if tokens.startswith(upper + "_"):
                child = raw.get(name) if isinstance(raw, dict) else None
                hit = _walk(field.annotation, tokens.removeprefix(upper + "_"), child)
                if hit is not None:
                    return (name, *hit[0]), hit[1]
        return None
    value_type = _dict_value_type(node)
    if value_type is None:
        return None
    keys = [key for key in raw if isinstance(key, str)] if isinstance(raw, dict) else []
    if not _is_model(_unwrap(value_type)):  # a mapping of scalars (runner.env): the rest is the key
        return (next((k for k in keys if k.upper() == tokens.upper()), tokens),), value_type
    for key in sorted(keys, key=len, reverse=True):  # pools: only the ones that exist
        for upper in dict.fromkeys((key.upper(), key.upper().replace("-", "_"))):
            if tokens == upper:
                return (key,), value_type
            if tokens.startswith(upper + "_"):
                hit = _walk(value_type, tokens.removeprefix(upper + "_"), raw[key])
                if hit is not None:
                    return (key, *hit[0]), hit[1]
    return None


def _read_secret_file(key: str, path: str, var: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError.at(key, repr(path), f"a readable UTF-8 file ({reason})", var=var) from None


def _parse_env_value(key: str, text: str, annotation: Any, var: str, *, masked: bool) -> Any:
    """Strings stay as written (a secret of digits is still a string); anything else is a YAML value."""
    if _is_optional(annotation) and not text.strip():
        return None
    if _is_stringish(annotation):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        shown = "'***'" if masked else _show(text, key)
        raise ConfigError.at(key, shown, f"a YAML value ({getattr(exc, 'problem', None) or exc})", var=var) from None


def _assign(raw: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = raw
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value


def _unknown_variable(var: str, text: str, raw: dict[str, Any]) -> ConfigError:
    known = sorted({*_env_names(HiveConfig, ENV_PREFIX.rstrip("_"), raw), *ENV_ALIASES})
    close = difflib.get_close_matches(var, known, n=1, cutoff=0.75)
    hint = f" such as {close[0]}" if close else ""
    expected = f"a variable that names a config key{hint}"
    return ConfigError(f"{var} = {_show(text, var)}: expected {expected}", key=var, expected=expected, source=var)


def _env_names(annotation: Any, prefix: str, raw: Any) -> Iterator[str]:
    node = _unwrap(annotation)
    if _is_model(node):
        for name, field in node.model_fields.items():
            child = raw.get(name) if isinstance(raw, dict) else None
            yield f"{prefix}_{name.upper()}"
            yield from _env_names(field.annotation, f"{prefix}_{name.upper()}", child)
    elif (value_type := _dict_value_type(node)) is not None and _is_model(_unwrap(value_type)):
        for key, child in (raw or {}).items() if isinstance(raw, dict) else ():
            yield from _env_names(value_type, f"{prefix}_{str(key).upper()}", child)


def environment_variable_names(config: HiveConfig | None = None) -> list[str]:
    """Every canonical LEANVIBE_* name for the schema (pools from `config`, or the defaults)."""
    raw = {"agents": dict(config.agents if config else DEFAULT_POOLS)}
    return sorted(_env_names(HiveConfig, ENV_PREFIX.rstrip("_"), raw))


# --- schema helpers -------------------------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that matters."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _dict_value_type(annotation: Any) -> Any:
    return typing.get_args(annotation)[1] if typing.get_origin(annotation) is dict else None


def _is_optional(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Annotated:
        return _is_optional(typing.get_args(annotation)[0])
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in typing.get_args(
        annotation
    )


def _is_stringish(annotation: Any) -> bool:
    node = _unwrap(annotation)
    if node is str:
        return True
    return typing.get_origin(node) is Literal and all(isinstance(a, str) for a in typing.get_args(node))


def _annotation_at(path: tuple[str, ...]) -> Any:
    annotation: Any = HiveConfig
    for part in path:
        annotation = _unwrap(annotation).model_fields[part].annotation
    return annotation


def _raw_at(raw: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        raw = raw.get(part) if isinstance(raw, dict) else None
    return raw


def _field_at(loc: tuple) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model holding the last part of `loc`, and that part's field (None where not a model field)."""
    node: Any = HiveConfig
    parent: type[BaseModel] | None = None
    field: FieldInfo | None = None
    for part in loc:
        node = _unwrap(node)
        if _is_model(node):
            parent, field = node, node.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return parent, None
            node = field.annotation
        elif (value_type := _dict_value_type(node)) is not None:
            parent, field, node = None, None, value_type
        elif typing.get_origin(node) in (list, tuple) and isinstance(part, int):
            parent, node = None, typing.get_args(node)[0]
        else:
            return None, None
    return parent, field


# --- error messages -------------------------------------------------------------------------------

_SECRET_KEY_NAME = re.compile(r"(secret|password|token|api_key|signing_key|client_id)", re.IGNORECASE)
_NUMERIC_ERRORS = {
    "int_parsing", "int_type", "int_from_float", "float_parsing", "float_type", "finite_number",
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "hive_not_bool",
}  # fmt: skip
_PLAIN_EXPECTATIONS = {
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list such as [a, b]",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "missing": "a value (this key is required)",
    "string_too_short": "a non-empty string",
}


def _dotted(loc: tuple | list) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _show(value: Any, key: str, var: str | None = None) -> str:
    if _SECRET_KEY_NAME.search(key) or (var and _SECRET_KEY_NAME.search(var)):
        return "'***'" if value not in (None, "") else repr(value)
    if isinstance(value, str) and "://" in value:
        value = _mask_url(value)
    shown = repr(value)
    return shown if len(shown) <= 100 else shown[:97] + "..."


def _mask_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.password:
            return url.replace(f":{parts.password}@", ":***@", 1)
    except ValueError:
        pass
    return url


def _bounds(field: FieldInfo | None) -> str | None:
    if field is None:
        return None
    limits: dict[str, Any] = {}

    def visit(items: Any) -> None:
        for item in items:
            for name in ("gt", "ge", "lt", "le"):
                if getattr(item, name, None) is not None:
                    limits.setdefault(name, getattr(item, name))
            if isinstance(item, FieldInfo):
                visit(item.metadata)

    visit(field.metadata)
    for member in (field.annotation, *typing.get_args(field.annotation)):
        if typing.get_origin(member) is Annotated:
            visit(typing.get_args(member)[1:])
    kind = "an integer" if _unwrap(field.annotation) is int else "a number"
    fmt = "{:g}".format
    low = ("ge", limits["ge"]) if "ge" in limits else ("gt", limits["gt"]) if "gt" in limits else None
    high = ("le", limits["le"]) if "le" in limits else ("lt", limits["lt"]) if "lt" in limits else None
    if low and high and low[0] == "ge" and high[0] == "le":
        return f"{kind} from {fmt(low[1])} to {fmt(high[1])}"
    signs = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    parts = [f"{signs[bound[0]]} {fmt(bound[1])}" for bound in (low, high) if bound]
    return f"{kind} {' and '.join(parts)}" if parts else kind


def _from_pydantic(error: Mapping[str, Any], sources: Mapping[tuple[str, ...], str], file: str | None) -> ConfigError:
    loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    related: tuple[str, ...] = ()
    message = str(error.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")

    if kind == "hive_field":
        base = loc
        loc = (*loc, *ctx["field"].split("."))
        value, expected = ctx["value"], ctx["expected"]
        related = tuple(_dotted((*base, *name.split("."))) for name in ctx.get("related", ()))
    elif loc and loc[-1] == "[key]":  # a bad mapping key: a pool name
        loc, value = loc[:-2], loc[-2]
        expected = "pool names of lowercase letters, digits, '_' or '-', starting with a letter, at most 40 characters"
    elif kind == "extra_forbidden":
        parent, _ = _field_at(loc)
        names = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), names, n=1)
        word = "sections" if len(loc) == 1 else "keys"
        expected = f"one of the {word} {', '.join(names)}" + (f" (did you mean {close[0]}?)" if close else "")
    elif kind in _NUMERIC_ERRORS:
        expected = _bounds(_field_at(loc)[1]) or message
    elif kind == "literal_error":
        expected = "one of " + re.sub(r"'([^']*)'", r"\1", str(ctx.get("expected", ""))).replace(" or ", ", ")
    elif kind == "too_short":
        expected = f"at least {ctx.get('min_length')} item(s)"
    elif kind == "string_pattern_mismatch":
        expected = f"a string matching {ctx.get('pattern')}"
    else:
        expected = _PLAIN_EXPECTATIONS.get(kind) or message

    key = _dotted(loc)
    shown = "<missing>" if kind == "missing" else _show(value, key)
    var = _source_variable(loc, sources) or next(
        (var for r in related for path, var in sources.items() if path[: len(r.split("."))] == tuple(r.split("."))),
        None,
    )
    return ConfigError.at(key, shown, expected, var=var, file=None if var else file)


def _source_variable(loc: tuple, sources: Mapping[tuple[str, ...], str]) -> str | None:
    parts = tuple(str(p) for p in loc)
    for length in range(len(parts), 0, -1):
        if parts[:length] in sources:
            return sources[parts[:length]]
    return None


# --- summary --------------------------------------------------------------------------------------


def describe(config: HiveConfig) -> str:
    """A short human summary for `hive check-config`; secrets are shown only as set or not set."""
    ma, scaling = config.multi_agent, config.scaling
    up, down = scaling.strategies.scale_up, scaling.strategies.scale_down
    source = str(config.source_path) if config.source_path else "built-in defaults"
    lines = [f"configuration: {source}"]
    if config.env_overrides:
        lines.append(f"  overridden by environment: {', '.join(sorted(config.env_overrides))}")
    lines += [
        f"system: log level {config.system.log_level}, debug {'on' if config.system.debug_mode else 'off'}, "
        f"at most {config.system.max_concurrent_tasks} concurrent tasks",
        f"agents: {ma.min_agents}..{ma.max_agents} in all, allocation {ma.load_balancing_strategy}",
        f"health: check every {_seconds(ma.health_check_interval)}, heartbeat every "
        f"{_seconds(ma.effective_heartbeat_interval)}, offline after {_seconds(ma.offline_after)}, "
        f"unclaimed tasks resent after {_seconds(ma.redispatch_after)}",
        "scaling: "
        + (
            f"{'auto' if scaling.auto_scale else 'manual'}; up above {up.threshold:.0%} (x{up.factor:g}, "
            f"at most {up.max_instances}), down below {down.threshold:.0%} (x{down.factor:g}, at least "
            f"{down.min_instances}), cooldown {scaling.cooldown_minutes:g} min"
            if scaling.enabled
            else "off"
        ),
        f"pools ({len(config.agents)}):",
    ]
    for name, pool in config.agents.items():
        runner = pool.runner
        how = (
            f"python {runner.callable}"
            if runner.kind == "python"
            else f"{' '.join(runner.argv)} ({runner.output_format})"
        )
        lines.append(f"  {name}: {', '.join(pool.capabilities)}")
        lines.append(
            f"    {pool.min_instances}..{pool.max_instances} instances x {pool.concurrency}, "
            f"{pool.max_attempts} attempts, timeout {_seconds(runner.timeout)}, "
            f"commands {'allowed' if pool.allow_commands else 'refused'}"
        )
        lines.append(f"    runs: {how}")
        if pool.workspace.repository:
            lines.append(f"    worktrees of {pool.workspace.repository}")
    api = config.external_api
    db_url, redis_url = config.database.url, config.redis.url
    lines += [
        f"database: {_mask_url(db_url) if db_url else 'SQLite in var/'}",
        f"redis: {_mask_url(redis_url) if redis_url else 'embedded (socket in var/)'}",
        "external api: "
        + (
            f"webhooks {'on' if api.webhook_server.enabled else 'off'}, "
            f"gateway {'on' if api.api_gateway.enabled else 'off'} ({api.api_gateway.authentication_provider}), "
            f"streaming {'on' if api.event_streaming.enabled else 'off'}"
            if api.enabled
            else "off"
        ),
    ]
    secrets = {
        "secret_key": config.security.secret_key,
        "api_key": config.security.api_key,
        "jwt signing key": config.security.effective_jwt_signing_key,
        "github webhook secret": api.webhook_server.github.secret,
        "slack signing secret": api.webhook_server.slack.signing_secret,
    }
    lines.append("secrets: " + ", ".join(f"{k} {'set' if v else 'not set'}" for k, v in secrets.items()))
    return "\n".join(lines)
