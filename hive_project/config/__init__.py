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

Every key acts, or `hive check-config` says it has no effect: `effects` holds one entry per leaf
key (what reads it, or why it has no effect), and a test fails
when a key has none. `LEANVIBE_ENV` is the key `environment` (development, production, test).

Modules: `types` (value types), `sections`, `external` and `schema` (the models), `environment`
(variables), `loader`, `errors`, `introspect` (walking the schema), `describe` (summaries),
`effects` (what each key does), `explain` (`check-config --explain` and its "no effect" lines).
"""

from __future__ import annotations

from hive_project.config.describe import describe
from hive_project.config.environment import (
    ENV_ALIASES,
    ENV_PREFIX,
    ENV_PREFIX_ALIASES,
    RESERVED_ENV_NAMES,
    RESERVED_ENV_PREFIXES,
    environment_variable_names,
)
from hive_project.config.errors import ConfigError
from hive_project.config.external import (
    AdaptiveLearningConfig,
    AgentCoordinationConfig,
    AlertThresholdsConfig,
    ApiGatewayConfig,
    EndpointConfig,
    EventStreamingConfig,
    ExternalApiConfig,
    GatewayAuthenticationConfig,
    GatewayCorsConfig,
    GatewayRequestValidationConfig,
    GatewaySecurityConfig,
    GithubWebhookConfig,
    IntelligenceFrameworkConfig,
    IntelligentTaskAllocationConfig,
    JwtConfig,
    MlEnhancementsConfig,
    OAuth2Config,
    PatternOptimizerConfig,
    PerformanceMonitoringConfig,
    PredictiveAnalyticsConfig,
    RateLimitingConfig,
    RequestLoggingConfig,
    SecurityConfig,
    SlackWebhookConfig,
    StreamFilterConfig,
    StreamingAccessControlConfig,
    StreamingAuthenticationConfig,
    StreamingEncryptionConfig,
    StreamingSecurityConfig,
    WebhookAuthenticationConfig,
    WebhookRequestValidationConfig,
    WebhookSecurityConfig,
    WebhookServerConfig,
)
from hive_project.config.loader import default_config_path, load_config
from hive_project.config.schema import (
    AlertsConfig,
    DatabaseConfig,
    DevelopmentConfig,
    HiveConfig,
    LogFileConfig,
    LoggingConfig,
    MonitoringConfig,
    PrometheusConfig,
    RedisConfig,
    SyslogConfig,
)
from hive_project.config.sections import (
    DEFAULT_ARGV,
    DEFAULT_POOLS,
    MultiAgentConfig,
    PoolConfig,
    RateLimitConfig,
    ResourceAllocationConfig,
    ResourceMonitoringConfig,
    ResourceRequirementsConfig,
    ResourcesConfig,
    ResourceThresholdsConfig,
    RunnerConfig,
    ScaleDownConfig,
    ScaleUpConfig,
    ScalingConfig,
    ScalingStrategiesConfig,
    SystemConfig,
    WorkspaceConfig,
)
from hive_project.config.types import STRATEGIES, Capabilities, NonEmpty, parse_size

__all__ = [
    "AdaptiveLearningConfig",
    "AgentCoordinationConfig",
    "AlertThresholdsConfig",
    "AlertsConfig",
    "ApiGatewayConfig",
    "Capabilities",
    "ConfigError",
    "DEFAULT_ARGV",
    "DEFAULT_POOLS",
    "DatabaseConfig",
    "DevelopmentConfig",
    "ENV_ALIASES",
    "ENV_PREFIX",
    "ENV_PREFIX_ALIASES",
    "EndpointConfig",
    "EventStreamingConfig",
    "ExternalApiConfig",
    "GatewayAuthenticationConfig",
    "GatewayCorsConfig",
    "GatewayRequestValidationConfig",
    "GatewaySecurityConfig",
    "GithubWebhookConfig",
    "HiveConfig",
    "IntelligenceFrameworkConfig",
    "IntelligentTaskAllocationConfig",
    "JwtConfig",
    "LogFileConfig",
    "LoggingConfig",
    "MlEnhancementsConfig",
    "MonitoringConfig",
    "MultiAgentConfig",
    "NonEmpty",
    "OAuth2Config",
    "PatternOptimizerConfig",
    "PerformanceMonitoringConfig",
    "PoolConfig",
    "PredictiveAnalyticsConfig",
    "PrometheusConfig",
    "RESERVED_ENV_NAMES",
    "RESERVED_ENV_PREFIXES",
    "RateLimitConfig",
    "RateLimitingConfig",
    "RedisConfig",
    "RequestLoggingConfig",
    "ResourceAllocationConfig",
    "ResourceMonitoringConfig",
    "ResourceRequirementsConfig",
    "ResourceThresholdsConfig",
    "ResourcesConfig",
    "RunnerConfig",
    "STRATEGIES",
    "ScaleDownConfig",
    "ScaleUpConfig",
    "ScalingConfig",
    "ScalingStrategiesConfig",
    "SecurityConfig",
    "SlackWebhookConfig",
    "StreamFilterConfig",
    "StreamingAccessControlConfig",
    "StreamingAuthenticationConfig",
    "StreamingEncryptionConfig",
    "StreamingSecurityConfig",
    "SyslogConfig",
    "SystemConfig",
    "WebhookAuthenticationConfig",
    "WebhookRequestValidationConfig",
    "WebhookSecurityConfig",
    "WebhookServerConfig",
    "WorkspaceConfig",
    "default_config_path",
    "describe",
    "environment_variable_names",
    "load_config",
    "parse_size",
]
