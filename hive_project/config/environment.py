"""`LEANVIBE_*` variables: which key each names (canonical names and the guide's aliases), and their values."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from hive_project.config.errors import ConfigError, _dotted, _show
from hive_project.config.introspect import (
    _annotation_at,
    _dict_value_type,
    _is_model,
    _is_optional,
    _is_stringish,
    _raw_at,
    _unwrap,
)
from hive_project.config.schema import HiveConfig
from hive_project.config.sections import DEFAULT_POOLS

ENV_PREFIX = "LEANVIBE_"

# Variables that share the prefix but are read elsewhere, not config keys.
RESERVED_ENV_NAMES = frozenset(
    {
        "LEANVIBE_CONFIG",  # which file to load (here)
        "LEANVIBE_VAR_DIR",  # hive_project.paths
        "LEANVIBE_HOME",
        "LEANVIBE_ALLOWED_HOSTS",  # settings
        "LEANVIBE_SERVE_ROLE",  # which front door a web process serves (hive serve --role)
    }
)
RESERVED_ENV_PREFIXES = ("LEANVIBE_TEST_",)

# The guide's variable names whose key names differ from the schema's (see its "Environment
# Variables" block and its docker-compose / Kubernetes manifests).
ENV_ALIASES: Mapping[str, str] = {
    "LEANVIBE_ENV": "environment",
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
}

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
