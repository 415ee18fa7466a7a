"""Human summaries of a configuration for `hive check-config`."""

from __future__ import annotations

from hive_project.config.effects import root_log_level
from hive_project.config.errors import _mask_url
from hive_project.config.schema import HiveConfig
from hive_project.config.types import _seconds


def describe(config: HiveConfig) -> str:
    """A short human summary for `hive check-config`; secrets are shown only as set or not set."""
    ma, scaling = config.multi_agent, config.scaling
    up, down = scaling.strategies.scale_up, scaling.strategies.scale_down
    source = str(config.source_path) if config.source_path else "built-in defaults"
    lines = [f"configuration: {source} (environment {config.environment})"]
    if config.env_overrides:
        lines.append(f"  overridden by environment: {', '.join(sorted(config.env_overrides))}")
    lines += [
        f"logging: {root_log_level(config)}, "
        f"{config.logging.format}, to {', '.join(config.logging.handlers)}; "
        f"debug {'on' if config.system.debug_mode and not config.production else 'off'}",
        f"agents: {ma.min_agents}..{ma.max_agents} in all, allocation {ma.load_balancing_strategy}",
        f"health: check every {_seconds(ma.health_check_interval)}, heartbeat every "
        f"{_seconds(ma.effective_heartbeat_interval)}, offline after {_seconds(ma.offline_after)}, "
        f"unclaimed tasks resent after {_seconds(ma.redispatch_after)}",
        "scaling: "
        + (
            f"{'auto' if scaling.auto_scale else 'manual'}; up above {up.threshold:.0%} (x{up.factor:g}, "
            f"at most {up.max_instances}), down below {down.threshold:.0%} (x{down.factor:g}, at least "
            f"{down.min_instances}), cooldown {scaling.cooldown_minutes:g} min, every "
            f"{_seconds(scaling.interval_seconds)}"
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
        sandbox = "no sandbox"
        if runner.sandbox == "bubblewrap":
            sandbox = f"in a bubblewrap sandbox (network {'on' if runner.sandbox_network else 'off'})"
        runs_as = runner.run_as or config.system.runner_user or "the worker's user"
        lines.append(f"    as: {runs_as}, {sandbox}")
        if pool.max_concurrent or pool.max_starts_per_minute:
            limits = [
                f"at most {pool.max_concurrent} at once" if pool.max_concurrent else "",
                f"{pool.max_starts_per_minute} starts a minute" if pool.max_starts_per_minute else "",
            ]
            lines.append(f"    flow: {', '.join(filter(None, limits))} across workers")
        if pool.budget_usd_per_day is not None:
            lines.append(f"    budget: ${pool.budget_usd_per_day:.2f} a day (UTC) for prompt tasks")
        if runner.cost_field or runner.cost_pattern:
            how_cost = f"field {runner.cost_field}" if runner.cost_field else f"pattern {runner.cost_pattern}"
            lines.append(f"    cost: read from the output's {how_cost}")
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
        "jwt signing key": config.security.effective_jwt_signing_key,  # the same property the settings use
        "github webhook secret": api.webhook_server.github.secret,
        "slack signing secret": api.webhook_server.slack.signing_secret,
    }
    lines.append("secrets: " + ", ".join(f"{k} {'set' if v else 'not set'}" for k, v in secrets.items()))
    missing = [k for k in ("secret_key", "jwt signing key") if not secrets[k]]
    if missing:
        lines.append(
            f"  production refuses to start without: {', '.join(missing)}"
            if config.production
            else f"  generated in var/ outside production: {', '.join(missing)}"
        )
    return "\n".join(lines)
