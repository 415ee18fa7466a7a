"""Human summaries of a configuration for `hive check-config`."""

from __future__ import annotations

from hive_project.config.errors import _mask_url
from hive_project.config.schema import HiveConfig
from hive_project.config.types import _seconds


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
    coord = api.agent_coordination
    lines.append(
        "coordination sessions: "
        + (
            f"on; at most {coord.max_participants} steps, timeout {_seconds(coord.session_timeout)}, "
            f"consensus at {coord.consensus_threshold:g}"
            if coord.enabled
            else "off (new sessions are refused)"
        )
    )
    secrets = {
        "secret_key": config.security.secret_key,
        "api_key": config.security.api_key,
        "jwt signing key": config.security.effective_jwt_signing_key,
        "github webhook secret": api.webhook_server.github.secret,
        "slack signing secret": api.webhook_server.slack.signing_secret,
    }
    lines.append("secrets: " + ", ".join(f"{k} {'set' if v else 'not set'}" for k, v in secrets.items()))
    return "\n".join(lines)
