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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Names load on first use (PEP 562): a worker process imports `errors` and `snapshot` without
# pydantic (hive_project/config/snapshot.py), which the package's models would pull in.
_MODULE_OF = {
    "AdaptiveLearningConfig": "hive_project.config.external",
    "AgentCoordinationConfig": "hive_project.config.external",
    "AlertThresholdsConfig": "hive_project.config.external",
    "AlertsConfig": "hive_project.config.schema",
    "ApiGatewayConfig": "hive_project.config.external",
    "Capabilities": "hive_project.config.types",
    "ConfigError": "hive_project.config.errors",
    "DEFAULT_ARGV": "hive_project.config.sections",
    "DEFAULT_POOLS": "hive_project.config.sections",
    "DatabaseConfig": "hive_project.config.schema",
    "DevelopmentConfig": "hive_project.config.schema",
    "ENV_ALIASES": "hive_project.config.environment",
    "ENV_PREFIX": "hive_project.config.environment",
    "ENV_PREFIX_ALIASES": "hive_project.config.environment",
    "EndpointConfig": "hive_project.config.external",
    "EventStreamingConfig": "hive_project.config.external",
    "ExternalApiConfig": "hive_project.config.external",
    "GatewayAuthenticationConfig": "hive_project.config.external",
    "GatewayCorsConfig": "hive_project.config.external",
    "GatewayRequestValidationConfig": "hive_project.config.external",
    "GatewaySecurityConfig": "hive_project.config.external",
    "GithubWebhookConfig": "hive_project.config.external",
    "HiveConfig": "hive_project.config.schema",
    "IntelligenceFrameworkConfig": "hive_project.config.external",
    "IntelligentTaskAllocationConfig": "hive_project.config.external",
    "JwtConfig": "hive_project.config.external",
    "LogFileConfig": "hive_project.config.schema",
    "LoggingConfig": "hive_project.config.schema",
    "MlEnhancementsConfig": "hive_project.config.external",
    "MonitoringConfig": "hive_project.config.schema",
    "MultiAgentConfig": "hive_project.config.sections",
    "NonEmpty": "hive_project.config.types",
    "OAuth2Config": "hive_project.config.external",
    "PatternOptimizerConfig": "hive_project.config.external",
    "PerformanceMonitoringConfig": "hive_project.config.external",
    "PoolConfig": "hive_project.config.sections",
    "PredictiveAnalyticsConfig": "hive_project.config.external",
    "PrometheusConfig": "hive_project.config.schema",
    "RESERVED_ENV_NAMES": "hive_project.config.environment",
    "RESERVED_ENV_PREFIXES": "hive_project.config.environment",
    "RateLimitConfig": "hive_project.config.sections",
    "RateLimitingConfig": "hive_project.config.external",
    "RedisConfig": "hive_project.config.schema",
    "RequestLoggingConfig": "hive_project.config.external",
    "ResourceAllocationConfig": "hive_project.config.sections",
    "ResourceMonitoringConfig": "hive_project.config.sections",
    "ResourceRequirementsConfig": "hive_project.config.sections",
    "ResourceThresholdsConfig": "hive_project.config.sections",
    "ResourcesConfig": "hive_project.config.sections",
    "RunnerConfig": "hive_project.config.sections",
    "STRATEGIES": "hive_project.config.types",
    "ScaleDownConfig": "hive_project.config.sections",
    "ScaleUpConfig": "hive_project.config.sections",
    "ScalingConfig": "hive_project.config.sections",
    "ScalingStrategiesConfig": "hive_project.config.sections",
    "SecurityConfig": "hive_project.config.external",
    "SlackWebhookConfig": "hive_project.config.external",
    "StreamFilterConfig": "hive_project.config.external",
    "StreamingAccessControlConfig": "hive_project.config.external",
    "StreamingAuthenticationConfig": "hive_project.config.external",
    "StreamingEncryptionConfig": "hive_project.config.external",
    "StreamingSecurityConfig": "hive_project.config.external",
    "SyslogConfig": "hive_project.config.schema",
    "SystemConfig": "hive_project.config.sections",
    "WebhookAuthenticationConfig": "hive_project.config.external",
    "WebhookRequestValidationConfig": "hive_project.config.external",
    "WebhookSecurityConfig": "hive_project.config.external",
    "WebhookServerConfig": "hive_project.config.external",
    "WorkspaceConfig": "hive_project.config.sections",
    "default_config_path": "hive_project.config.loader",
    "environment_variable_names": "hive_project.config.environment",
    "load_config": "hive_project.config.loader",
    "parse_size": "hive_project.config.types",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
    "environment_variable_names",
    "load_config",
    "parse_size",
]
