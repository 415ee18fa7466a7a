"""What every configuration key does: which code reads it, or why it has no effect.

Every leaf key of the schema has exactly one entry (a test walks the models and compares), so a
new key without an entry fails the suite. An entry is one of:

- `acts(key, reader)`: the key has an effect; `reader` names the code that reads it. `unless`
  gives the reason it has none in a given configuration (pool settings on SQLite, the file
  handler's keys when `file` is not among `logging.handlers`, ...).
- `inert(key, why)`: accepted for compatibility with the deployment guide, has no effect here.

Keys name pools as `<pool>` and items of a list of mappings as `[]`
(`external_api.api_gateway.routes[].rate_limit`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a worker reads root_log_level without loading pydantic
    from hive_project.config.schema import HiveConfig

Reason = Callable[["HiveConfig"], str | None]


@dataclass(frozen=True)
class Effect:
    key: str
    reader: str | None = None  # what reads the key (acts)
    inert: str | None = None  # why the key has no effect (always)
    unless: Reason | None = None  # why the key has no effect in this configuration, if so

    def no_effect(self, config: HiveConfig) -> str | None:
        """Why this key has no effect in `config`, or None when it acts."""
        if self.inert:
            return self.inert
        return self.unless(config) if self.unless else None


def acts(key: str, reader: str, unless: Reason | None = None) -> Effect:
    return Effect(key, reader=reader, unless=unless)


def inert(key: str, why: str) -> Effect:
    return Effect(key, inert=why)


def was_set(config: HiveConfig, key: str) -> bool:
    """The file or a LEANVIBE_* variable gave `key` (or a section holding it) a value."""
    parts = key.split(".")
    prefixes = {".".join(parts[:n]) for n in range(1, len(parts) + 1)}
    return key in config.file_keys or any(path in prefixes for path in config.env_overrides)


def root_log_level(config: HiveConfig) -> str:
    """The guide has both `system.log_level` and `logging.level`: the logging section is the more
    specific, so `logging.level` wins when the file or a variable sets it."""
    return config.logging.level if was_set(config, "logging.level") else config.system.log_level


def _sqlite(config: HiveConfig) -> str | None:
    url = config.database.url or ""
    return None if url.startswith(("postgres", "postgresql")) else "no effect on SQLite"


def _without_handler(name: str) -> Reason:
    return lambda c: None if name in c.logging.handlers else f"'{name}' is not in logging.handlers"


def _cors_off(config: HiveConfig) -> str | None:
    return None if config.external_api.api_gateway.cors_enabled else "external_api.api_gateway.cors_enabled is false"


def _credentials(config: HiveConfig) -> str | None:
    if "*" in config.external_api.api_gateway.cors_origins and config.security.api_gateway.cors.credentials:
        return "never with cors_origins '*': any site could act with a user's cookies; list the origins"
    return _cors_off(config)


def _metrics_off(config: HiveConfig) -> str | None:
    on = config.monitoring.enabled and config.monitoring.prometheus.enabled
    return None if on else "metrics are off (monitoring.enabled or monitoring.prometheus.enabled is false)"


SETTINGS = "hive_project.settings"
WEBHOOKS = "external_api.webhooks"
STREAM = "external_api.streaming"
POOLS = "coordination.fleet.pool_sync -> AgentPool"
ATTEMPT = "workers.attempt"
SERVE = "hive serve --role"
NO_TIMEOUT = "gunicorn and uvicorn have no per-request timeout; set one at the proxy (nginx proxy_read_timeout)"

_POLICY = "coordination.scaling.policy (beat's hive.scale)"
_GATE = "workers.agent heartbeat: the worker stops claiming above it"
SCALING: tuple[Effect, ...] = (
    acts("scaling.enabled", f"{_POLICY}: off decides nothing, and every pool runs at max(1, min_instances)"),
    acts("scaling.auto_scale", f"{_POLICY}: off records decisions as recommendations only"),
    acts("scaling.strategies.scale_up.threshold", f"{_POLICY}: utilisation above which a pool grows"),
    acts("scaling.strategies.scale_up.factor", f"{_POLICY}: how much it grows"),
    acts("scaling.strategies.scale_up.max_instances", f"{_POLICY}: fleet-wide instance cap (with max_agents)"),
    acts("scaling.strategies.scale_down.threshold", f"{_POLICY}: utilisation below which a pool shrinks"),
    acts("scaling.strategies.scale_down.factor", f"{_POLICY}: how much it shrinks"),
    acts("scaling.strategies.scale_down.min_instances", f"{_POLICY}: fleet-wide floor (with min_agents)"),
    acts("scaling.cooldown_minutes", f"{_POLICY}: wait after a change before shrinking"),
    acts("scaling.interval_seconds", f"{SETTINGS}: CELERY_BEAT_SCHEDULE['scale'] interval"),
    acts("system.max_concurrent_tasks", f"{_POLICY}: fleet-wide cap on task slots"),
    acts("multi_agent.max_agents", f"{_POLICY}: fleet-wide instance cap"),
    acts("multi_agent.min_agents", f"{_POLICY}: fleet-wide floor"),
    acts("resources.monitoring.cpu", f"{_GATE}; sampled into the agent's resources"),
    acts("resources.monitoring.memory", f"{_GATE}; sampled into the agent's resources"),
    acts("resources.monitoring.disk", f"{_GATE}; sampled into the agent's resources"),
    acts("resources.monitoring.network", "workers.agent heartbeat: bytes/s sampled into the agent's resources"),
    acts("resources.monitoring.interval_seconds", "workers.agent heartbeat: seconds between samples"),
    acts("resources.allocation.cpu_limit_percent", _GATE),
    acts("resources.allocation.memory_limit_percent", _GATE),
    acts("resources.allocation.disk_limit_percent", _GATE),
)

_MONITOR = "coordination.monitoring (beat's hive.monitor)"
_LEVEL = "workers.agent heartbeat: the level it reports with each sample; beat's hive.monitor raises it"
_NOTIFY = "coordination.notify (the control worker's hive.alert_notify)"


def _monitoring_off(config: HiveConfig) -> str | None:
    on = config.external_api.performance_monitoring.enabled
    return None if on else "external_api.performance_monitoring.enabled is false: no alert is raised"


def _no_url(config: HiveConfig) -> str | None:
    return (
        None if config.monitoring.alerts.webhook_url else "monitoring.alerts.webhook_url is not set: nothing is posted"
    )


def _alerts_off(config: HiveConfig) -> str | None:
    return None if config.monitoring.alerts.enabled else "monitoring.alerts.enabled is false: nothing is posted"


_PM = "external_api.performance_monitoring"
ALERTS: tuple[Effect, ...] = (
    acts(f"{_PM}.enabled", f"{_MONITOR}: off records no pool samples, raises no alert, resolves active ones"),
    acts(f"{_PM}.monitoring_interval", f"{SETTINGS}: CELERY_BEAT_SCHEDULE['monitor'] interval (samples, alerts)"),
    acts(
        f"{_PM}.optimization_enabled",
        "coordination.alerts.recommend: each alert carries what to change (instances, concurrency, scaling, host)",
        _monitoring_off,
    ),
    acts(f"{_PM}.alert_thresholds.cpu_usage", f"{_LEVEL} (a warning at this fraction)", _monitoring_off),
    acts(f"{_PM}.alert_thresholds.memory_usage", f"{_LEVEL} (a warning at this fraction)", _monitoring_off),
    acts(
        f"{_PM}.alert_thresholds.task_queue_length",
        f"{_MONITOR}: a pool with this many tasks queued raises a warning",
        _monitoring_off,
    ),
    acts("resources.thresholds.warning", _LEVEL, _monitoring_off),
    acts("resources.thresholds.critical", _LEVEL, _monitoring_off),
    acts("monitoring.alerts.enabled", f"{_NOTIFY}: every raise and resolve POSTed to webhook_url", _no_url),
    acts("monitoring.alerts.webhook_url", f"{_NOTIFY}: Slack-compatible JSON, retried with backoff", _alerts_off),
)

CORE: tuple[Effect, ...] = (
    acts("environment", f"{SETTINGS}: PRODUCTION (LEANVIBE_ENV): secrets required, DEBUG off, ALLOWED_HOSTS"),
    acts(
        "system.log_level",
        f"{SETTINGS}: LOGGING root level when logging.level is not set",
        lambda c: "logging.level is set and wins" if was_set(c, "logging.level") else None,
    ),
    acts(
        "system.debug_mode",
        f"{SETTINGS}: DEBUG",
        lambda c: "production never runs with DEBUG" if c.production else None,
    ),
    acts("multi_agent.load_balancing_strategy", "coordination.routing: which eligible pool a task goes to"),
    acts(
        "multi_agent.health_check_interval",
        "coordination.recovery: offline after failure_threshold x this; "
        "beat's reconcile interval; the default heartbeat",
    ),
    acts("multi_agent.failure_threshold", "coordination.recovery: offline after this x health_check_interval"),
    acts("multi_agent.heartbeat_interval", "workers.agent: seconds between a worker's heartbeats"),
    acts("multi_agent.redispatch_after", "coordination.recovery: unclaimed queued tasks are sent again"),
    inert("multi_agent.enabled", "the hive always runs its pools' agents; remove a pool from agents to stop it"),
    acts("agents.<pool>.capabilities", f"{POOLS}: coordination.routing matches tasks to pools"),
    acts("agents.<pool>.min_instances", f"{POOLS}: lower bound of the pool's desired instances (hive up runs them)"),
    acts("agents.<pool>.max_instances", f"{POOLS}: upper bound of the pool's desired instances"),
    acts("agents.<pool>.concurrency", "hive up and workers: tasks one worker of the pool runs at once"),
    acts("agents.<pool>.allow_commands", f"{POOLS}: may a task carry its own argv"),
    acts("agents.<pool>.max_attempts", f"{POOLS}: coordination.services: attempts before a task is dead"),
    acts("agents.<pool>.runner.kind", f"{ATTEMPT}: command or python runner"),
    acts("agents.<pool>.runner.argv", f"{ATTEMPT}: the program a prompt task starts"),
    acts("agents.<pool>.runner.env", f"{ATTEMPT}: variables added to the program's environment"),
    acts("agents.<pool>.runner.timeout", f"{ATTEMPT}: seconds before the process group is killed"),
    acts("agents.<pool>.runner.output_format", f"{ATTEMPT}: text or Claude Code's JSON result"),
    acts("agents.<pool>.runner.callable", f"{ATTEMPT}: the function a python runner calls"),
    acts("agents.<pool>.runner.run_as", "agents.runners.containment.plan: the user the program runs as"),
    acts("agents.<pool>.runner.sandbox", "agents.runners.containment.plan: none or a bubblewrap sandbox"),
    acts("agents.<pool>.runner.sandbox_network", "agents.runners.containment.sandbox_argv: --unshare-net when false"),
    acts("system.runner_user", "agents.runners.containment.plan: the user when a pool names no run_as; hive up"),
    acts("agents.<pool>.max_concurrent", f"{POOLS}: coordination.flow.admit: starts across all the pool's workers"),
    acts("agents.<pool>.max_starts_per_minute", f"{POOLS}: coordination.flow.admit: a sliding minute of starts"),
    acts("agents.<pool>.runner.cost_field", f"{ATTEMPT}.with_cost: the JSON field holding what the program spent"),
    acts("agents.<pool>.runner.cost_pattern", f"{ATTEMPT}.with_cost: the output whose one group is what it spent"),
    acts(
        "agents.<pool>.budget_usd_per_day",
        f"{POOLS}: coordination.budgets: prompt tasks wait once today's spend reaches it",
    ),
    acts(
        "multi_agent.budget_recheck_interval", "coordination.budgets.task_hold: seconds a held task waits to ask again"
    ),
    acts("agents.<pool>.runner.rate_limit.exit_codes", f"{ATTEMPT}.with_rate_limit: exit codes that mean a rate limit"),
    acts("agents.<pool>.runner.rate_limit.output_pattern", f"{ATTEMPT}.with_rate_limit: output that means one"),
    acts("agents.<pool>.runner.rate_limit.backoff_initial", "coordination.flow.pool_pause: the first pause"),
    acts("agents.<pool>.runner.rate_limit.backoff_max", "coordination.flow.pool_pause: the longest pause"),
    acts("agents.<pool>.workspace.repository", "agents.runners.workspace: git worktree per attempt"),
    acts("agents.<pool>.workspace.root", "agents.runners.workspace: where workspaces are made"),
    acts("agents.<pool>.workspace.keep", "agents.runners.workspace: keep workspaces after the attempt"),
    # --- external API ---
    acts("external_api.enabled", "external_api: webhooks, the /api/ gateway and the stream answer only when true"),
    acts("external_api.webhook_server.enabled", f"{WEBHOOKS}.intake: 404 when false"),
    acts("external_api.webhook_server.port", f"{SERVE} webhooks: default --port"),
    acts("external_api.webhook_server.host", f"{SERVE} webhooks: default --host"),
    acts("external_api.webhook_server.rate_limit_per_minute", f"{WEBHOOKS}.rules: deliveries per minute per source"),
    inert(
        "external_api.webhook_server.authentication_required",
        "every webhook is authenticated by its signature or a team's API key (a delivery must name its team)",
    ),
    inert(
        "external_api.webhook_server.cors_origins",
        "webhooks are called by servers, not browsers; CORS applies to /api/ (api_gateway.cors_origins)",
    ),
    acts("external_api.webhook_server.max_payload_size", f"{SETTINGS}: WEBHOOK_MAX_BYTES, a 413 above it"),
    inert("external_api.webhook_server.request_timeout", NO_TIMEOUT),
    acts("external_api.webhook_server.endpoints[].path", f"{WEBHOOKS}.rules: which endpoint a delivery's limit is"),
    inert(
        "external_api.webhook_server.endpoints[].methods",
        "each webhook answers fixed methods (GitHub and Slack POST, custom POST and PUT)",
    ),
    inert(
        "external_api.webhook_server.endpoints[].auth_required",
        "every webhook is authenticated by its signature or a team's API key",
    ),
    acts("external_api.webhook_server.endpoints[].rate_limit", f"{WEBHOOKS}.rules: deliveries per minute"),
    acts("external_api.webhook_server.github.secret", "external_api.services.webhook_sources_sync: source 'github'"),
    acts("external_api.webhook_server.github.secrets_previous", "external_api.services: accepted during rotation"),
    acts("external_api.webhook_server.github.task_labels", f"{WEBHOOKS}.github: labels that make an issue a task"),
    acts("external_api.webhook_server.github.command_prefix", f"{WEBHOOKS}.github: comments that make a task"),
    acts("external_api.webhook_server.github.capabilities", f"{WEBHOOKS}.github: the task's capabilities"),
    acts("external_api.webhook_server.slack.signing_secret", "external_api.services.webhook_sources_sync: 'slack'"),
    acts("external_api.webhook_server.slack.signing_secrets_previous", "external_api.services: accepted in rotation"),
    acts("external_api.webhook_server.slack.command", f"{WEBHOOKS}.slack: the slash command"),
    acts("external_api.webhook_server.slack.capabilities", f"{WEBHOOKS}.slack: the task's capabilities"),
    acts("external_api.api_gateway.enabled", "external_api.middleware: /api/ answers 404 when false"),
    acts("external_api.api_gateway.port", f"{SERVE} gateway: default --port"),
    acts("external_api.api_gateway.cors_enabled", f"{SETTINGS}: CORS_* (django-cors-headers); stream origins"),
    acts("external_api.api_gateway.cors_origins", f"{SETTINGS}: CORS_ALLOWED_ORIGINS; {STREAM}.origins", _cors_off),
    acts("external_api.api_gateway.cors_methods", f"{SETTINGS}: CORS_ALLOW_METHODS", _cors_off),
    acts("external_api.api_gateway.cors_headers", f"{SETTINGS}: CORS_ALLOW_HEADERS", _cors_off),
    inert(
        "external_api.api_gateway.authentication_provider",
        "the gateway accepts API keys, JWT access tokens and sessions whatever this says (oauth2 is refused)",
    ),
    inert("external_api.api_gateway.request_timeout", NO_TIMEOUT),
    acts("external_api.api_gateway.max_request_size", f"{SETTINGS}: DATA_UPLOAD_MAX_MEMORY_SIZE, a 413 above it"),
    acts("external_api.api_gateway.rate_limit_per_minute", "external_api.throttling: routes without a limit"),
    acts("external_api.api_gateway.routes[].path", "external_api.throttling: the longest matching route prefix"),
    inert("external_api.api_gateway.routes[].methods", "each API view answers its own methods"),
    inert(
        "external_api.api_gateway.routes[].auth_required",
        "access is decided by each view (/api/v1/status/ is public, the rest need a key, token or login)",
    ),
    acts("external_api.api_gateway.routes[].rate_limit", "external_api.throttling: requests per minute"),
    acts("external_api.event_streaming.enabled", f"{STREAM}.consumers: connections refused when false"),
    acts("external_api.event_streaming.port", f"{SERVE} streaming: default --port"),
    acts("external_api.event_streaming.compression_enabled", f"{STREAM}.consumers: ?compress= honoured"),
    acts("external_api.event_streaming.compression_algorithm", f"{STREAM}.consumers: ?compress=1"),
    acts("external_api.event_streaming.batch_size", f"{STREAM}.consumers: events per batch (default and cap)"),
    acts("external_api.event_streaming.flush_interval", f"{STREAM}.consumers: seconds a batch waits"),
    acts("external_api.event_streaming.max_connections", f"{STREAM}.consumers: connections past it refused"),
    acts("external_api.event_streaming.heartbeat_interval", f"{STREAM}.consumers: seconds between heartbeats"),
    acts("external_api.event_streaming.event_retention_hours", "workers.tasks.event_retention: rows kept"),
    acts("external_api.event_streaming.event_types", f"{STREAM}.filters: default event types"),
    acts("external_api.event_streaming.filters[].type", f"{STREAM}.filters: default filters"),
    acts("external_api.event_streaming.filters[].values", f"{STREAM}.filters: default filters"),
    # --- database, redis, logging, monitoring, development ---
    acts("database.url", f"{SETTINGS}: DATABASES (SQLite in var/ when empty)"),
    acts("database.connection_pool_size", f"{SETTINGS}: DATABASES OPTIONS pool min_size (the web process)", _sqlite),
    acts(
        "database.max_overflow", f"{SETTINGS}: pool max_size = connection_pool_size + this (the web process)", _sqlite
    ),
    acts(
        "database.pool_timeout",
        f"{SETTINGS}: seconds to wait for a pooled connection (PostgreSQL) or the write lock (SQLite busy timeout)",
    ),
    acts("database.pool_recycle", f"{SETTINGS}: pool max_lifetime, seconds before a connection is replaced", _sqlite),
    acts("database.echo", "hive_project.apps: every SQL statement to the django.db.backends logger at DEBUG"),
    acts(
        "database.conn_max_age",
        f"{SETTINGS}: CONN_MAX_AGE of the gateway and webhook servers (gunicorn threads, SQLite too), "
        "and on PostgreSQL of workers, beat and the CLI (the ASGI web process pools)",
    ),
    acts("redis.url", f"{SETTINGS}: Celery broker, event stream (pub/sub), cache, rate limits (embedded when empty)"),
    acts("logging.level", f"{SETTINGS}: LOGGING root level"),
    acts("logging.format", "hive_project.logs: json (one object per line) or text"),
    acts("logging.handlers", "hive_project.logs: console (stderr), file (rotating), syslog"),
    acts(
        "logging.file.path",
        "hive_project.logs: RotatingFileHandler file (var/logs/hive.log when empty)",
        _without_handler("file"),
    ),
    acts("logging.file.max_size", "hive_project.logs: RotatingFileHandler maxBytes", _without_handler("file")),
    acts("logging.file.backup_count", "hive_project.logs: RotatingFileHandler backupCount", _without_handler("file")),
    acts("logging.syslog.facility", "hive_project.logs: SysLogHandler facility", _without_handler("syslog")),
    acts("logging.syslog.address", "hive_project.logs: SysLogHandler address", _without_handler("syslog")),
    acts("monitoring.enabled", "hive_project.metrics: /metrics answers 404 when false"),
    inert("monitoring.metrics_port", "every web process serves /metrics on its own port (hive serve --port)"),
    inert("monitoring.health_check_port", "every web process serves /health and /ready on its own port"),
    acts("monitoring.prometheus.enabled", "hive_project.metrics: /metrics answers 404 when false"),
    acts("monitoring.prometheus.path", "hive_project.probes: where the metrics are served", _metrics_off),
    inert(
        "development.use_mock_cli",
        "there is no mock mode: point a pool's runner.argv at any program (the suite uses tests/fake_claude.py)",
    ),
)

_JWT = "security.api_gateway.authentication.jwt"
_WEBHOOK_AUTH = "custom webhooks take a team's API key in X-API-Key; GitHub and Slack are verified by their signatures"
_RATE = "webhook deliveries are counted in the hive's Redis (redis.url), per source"
_NOT_LOGGED = "webhook deliveries are recorded as rows (hive webhook deliveries); no request or header is logged"
_OAUTH = "OAuth2 sign-in is not implemented; the gateway takes API keys and JWTs"
_ENCRYPTION = "events are not encrypted by the hive; serve the stream over TLS (wss://) at the proxy"

_SESSIONS_READ = "coordination.sessions"
SESSIONS: tuple[Effect, ...] = (
    inert(
        "multi_agent.coordination_timeout",
        "sessions are driven from the database: a step is queued as its dependencies end (or by beat's "
        "reconciler seconds later), so nothing waits on a coordination round; "
        "external_api.agent_coordination.session_timeout bounds a whole session",
    ),
    acts("external_api.agent_coordination.enabled", f"{_SESSIONS_READ}: off refuses new sessions (sessions_disabled)"),
    acts(
        "external_api.agent_coordination.session_timeout", f"{_SESSIONS_READ}: default and ceiling of a plan's timeout"
    ),
    acts("external_api.agent_coordination.max_participants", f"{_SESSIONS_READ}.plans: most steps or participants"),
    acts("external_api.agent_coordination.consensus_threshold", f"{_SESSIONS_READ}: share a consensus answer needs"),
)

_THROTTLE = "external_api.auth_throttle"
SECURITY: tuple[Effect, ...] = (
    acts("security.event_streaming.allowed_origins", f"{STREAM}.origins: browser origins besides the server's own"),
    acts("security.authentication_throttling.enabled", f"{_THROTTLE}: count failed sign-ins and bad keys"),
    acts("security.authentication_throttling.max_login_attempts", f"{_THROTTLE}: failures before an account locks"),
    acts(
        "security.authentication_throttling.max_failures_per_address", f"{_THROTTLE}: failures before an address locks"
    ),
    acts("security.authentication_throttling.failure_window", f"{_THROTTLE}: seconds failures are counted over"),
    acts("security.authentication_throttling.lockout_duration", f"{_THROTTLE}: seconds a lockout lasts"),
    acts("monitoring.flower.username", "hive flower: basic auth user"),
    acts("monitoring.flower.password", "hive flower: basic auth password (generated in development)"),
    acts("security.secret_key", f"{SETTINGS}: SECRET_KEY (required in production)"),
    acts("security.api_key", "hive_project.metrics: the token a Prometheus scraper sends"),
    acts("security.jwt_signing_key", f"{SETTINGS}: SIMPLE_JWT SIGNING_KEY (required in production)"),
    inert("security.webhook_server.authentication.type", _WEBHOOK_AUTH),
    inert("security.webhook_server.authentication.header_name", _WEBHOOK_AUTH),
    inert("security.webhook_server.authentication.validation_endpoint", _WEBHOOK_AUTH),
    inert("security.webhook_server.rate_limiting.storage", _RATE),
    inert("security.webhook_server.rate_limiting.redis_url", _RATE),
    inert(
        "security.webhook_server.rate_limiting.global_limit",
        "limits are per source and endpoint (external_api.webhook_server.rate_limit_per_minute, endpoints)",
    ),
    inert(
        "security.webhook_server.rate_limiting.per_endpoint_limit",
        "an endpoint's limit is external_api.webhook_server.endpoints[].rate_limit",
    ),
    acts("security.webhook_server.request_validation.max_payload_size", f"{WEBHOOKS}.intake: a 413 above it"),
    acts("security.webhook_server.request_validation.required_headers", f"{WEBHOOKS}.intake: a 400 without one"),
    acts("security.webhook_server.request_validation.allowed_content_types", f"{WEBHOOKS}.intake: a 415 otherwise"),
    inert("security.webhook_server.logging.log_requests", _NOT_LOGGED),
    inert("security.webhook_server.logging.log_responses", _NOT_LOGGED),
    inert("security.webhook_server.logging.log_errors", _NOT_LOGGED),
    inert("security.webhook_server.logging.sensitive_headers", _NOT_LOGGED),
    acts(
        f"{_JWT}.secret_key",
        f"{SETTINGS}: SIMPLE_JWT SIGNING_KEY when security.jwt_signing_key is empty",
        lambda c: "security.jwt_signing_key is set and wins" if c.security.jwt_signing_key else None,
    ),
    acts(f"{_JWT}.algorithm", f"{SETTINGS}: SIMPLE_JWT ALGORITHM"),
    acts(f"{_JWT}.expiration", f"{SETTINGS}: SIMPLE_JWT ACCESS_TOKEN_LIFETIME (seconds)"),
    acts(f"{_JWT}.issuer", f"{SETTINGS}: SIMPLE_JWT ISSUER (the iss claim, checked)"),
    inert("security.api_gateway.authentication.oauth2.provider", _OAUTH),
    inert("security.api_gateway.authentication.oauth2.authorization_url", _OAUTH),
    inert("security.api_gateway.authentication.oauth2.token_url", _OAUTH),
    inert("security.api_gateway.authentication.oauth2.client_id", _OAUTH),
    inert("security.api_gateway.authentication.oauth2.client_secret", _OAUTH),
    acts("security.api_gateway.cors.credentials", f"{SETTINGS}: CORS_ALLOW_CREDENTIALS", _credentials),
    acts("security.api_gateway.cors.max_age", f"{SETTINGS}: CORS_PREFLIGHT_MAX_AGE", _cors_off),
    acts("security.api_gateway.cors.exposed_headers", f"{SETTINGS}: CORS_EXPOSE_HEADERS", _cors_off),
    acts(
        "security.api_gateway.request_validation.max_payload_size",
        f"{SETTINGS}: DATA_UPLOAD_MAX_MEMORY_SIZE is the smaller of this and api_gateway.max_request_size",
    ),
    inert(
        "security.api_gateway.request_validation.validate_json",
        "the API parses every body as JSON and answers malformed JSON with a 400, always",
    ),
    inert(
        "security.api_gateway.request_validation.sanitize_input",
        "input is validated by serializers and stored as given; output is escaped, never rewritten",
    ),
    acts("security.event_streaming.authentication.type", f"{STREAM}.auth: 'none' lets anonymous viewers in"),
    acts("security.event_streaming.authentication.token_header", f"{STREAM}.auth: the header with the token"),
    acts("security.event_streaming.authentication.token_prefix", f"{STREAM}.auth: the token's prefix"),
    inert("security.event_streaming.encryption.enabled", _ENCRYPTION),
    inert("security.event_streaming.encryption.algorithm", _ENCRYPTION),
    inert("security.event_streaming.encryption.key_rotation_interval", _ENCRYPTION),
    acts(
        "security.event_streaming.access_control.subscription_auth_required",
        f"{STREAM}.auth: false lets anonymous viewers in",
    ),
    inert(
        "security.event_streaming.access_control.publish_auth_required",
        "publishing (POST /api/v1/events/) always needs a write-scoped key or a login",
    ),
    inert(
        "security.event_streaming.access_control.admin_endpoints_auth_required",
        "admin endpoints always need staff or an admin-scoped key",
    ),
)

_ML = "external_api.ml_enhancements"
_ITA = "external_api.intelligent_task_allocation"
_IF = "external_api.intelligence_framework"
_PREDICTIVE = "ml.strategy (the predictive strategy)"
_PROFILE = "coordination.services._profile: performance profiles as attempts finish"
_TRAIN = "ml.services (beat's hive.ml_retrain)"
_PATTERNS = "ml.patterns.insights (hive insights; refreshed with every training)"
_RESOURCES = (
    "a task is not placed by what it needs: each worker runs its pool's concurrency and stops claiming above "
    "resources.allocation.*_limit_percent"
)
LEARNING: tuple[Effect, ...] = (
    inert("agents.<pool>.resource_requirements.cpu_cores", _RESOURCES),
    inert("agents.<pool>.resource_requirements.memory_mb", _RESOURCES),
    inert("agents.<pool>.resource_requirements.disk_mb", _RESOURCES),
    acts(f"{_IF}.enabled", f"{_PREDICTIVE}: off, predictive falls back (disabled) and says so"),
    acts(f"{_IF}.confidence_threshold", f"{_PREDICTIVE}: below it the decision falls back to performance_weighted"),
    acts(f"{_IF}.learning_rate", f"{_PROFILE}: the weight of each new attempt once a profile has 1/rate of them"),
    acts(
        f"{_IF}.pattern_recognition_enabled",
        f"{_TRAIN}: off, training publishes no failure pattern and routing weights shift nothing",
    ),
    acts(f"{_IF}.adaptive_learning_enabled", f"{_TRAIN}: off, beat retrains no duration or success model"),
    acts(f"{_IF}.performance_tracking_enabled", f"{_PROFILE}: off, finished attempts update no profile"),
    acts(f"{_ITA}.enabled", f"{_PREDICTIVE}: off, predictive falls back (disabled) and says so"),
    inert(
        f"{_ITA}.load_balancing_strategy",
        "multi_agent.load_balancing_strategy chooses the strategy; predictive falls back to performance_weighted "
        "(least_loaded without history) by itself",
    ),
    acts(f"{_ITA}.allocation_timeout", f"{_PREDICTIVE}: a slower prediction falls back (timeout)"),
    acts(f"{_ITA}.performance_tracking_enabled", f"{_PROFILE}: off, finished attempts update no profile"),
    acts(
        f"{_ML}.pattern_optimizer.enabled",
        f"{_TRAIN}: off, training publishes no failure pattern and routing weights shift nothing",
    ),
    acts(
        f"{_ML}.pattern_optimizer.pattern_detection_sensitivity",
        f"{_PATTERNS}: patterns and timeout risks need a share above 1 - this",
    ),
    acts(
        f"{_ML}.pattern_optimizer.optimization_aggressiveness",
        f"{_PATTERNS}: how much a pattern shifts routing weights (0: report only)",
    ),
    acts(f"{_ML}.pattern_optimizer.learning_window_size", f"{_TRAIN} and {_PATTERNS}: the newest attempts read"),
    acts(f"{_ML}.predictive_analytics.enabled", f"{_TRAIN}: off, beat trains no demand forecast"),
    inert(
        f"{_ML}.predictive_analytics.prediction_accuracy_threshold",
        "a model is activated when it beats the baseline and the active version by "
        "adaptive_learning.adaptation_threshold, not by an absolute accuracy",
    ),
    acts(f"{_ML}.predictive_analytics.forecast_horizon_days", "ml.forecast: the hours the demand forecast covers"),
    acts(f"{_ML}.predictive_analytics.model_update_frequency", f"{_TRAIN}: how often the forecast is retrained"),
    acts(f"{_ML}.adaptive_learning.enabled", f"{_TRAIN}: off, beat retrains no duration or success model"),
    inert(
        f"{_ML}.adaptive_learning.learning_rate",
        "models are retrained from history, not updated online; profiles learn at intelligence_framework.learning_rate",
    ),
    acts(
        f"{_ML}.adaptive_learning.adaptation_threshold",
        "ml.registry: a new version must beat the active one by this; drift above it retrains early",
    ),
    acts(f"{_ML}.adaptive_learning.model_update_frequency", f"{_TRAIN}: how often duration and success retrain"),
)

REGISTRY: tuple[Effect, ...] = (*CORE, *SCALING, *ALERTS, *SESSIONS, *SECURITY, *LEARNING)
BY_KEY: dict[str, Effect] = {effect.key: effect for effect in REGISTRY}
