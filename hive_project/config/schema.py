"""The whole schema: the guide's sections put together as `HiveConfig`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    StringConstraints,
    field_validator,
    model_validator,
)

from hive_project.config.external import ExternalApiConfig, SecurityConfig
from hive_project.config.sections import (
    MultiAgentConfig,
    PoolConfig,
    ResourcesConfig,
    ScalingConfig,
    SystemConfig,
    _default_pools,
)
from hive_project.config.types import (
    SYSLOG_FACILITIES,
    Float,
    HttpPath,
    Int,
    LogLevel,
    NonEmpty,
    PoolName,
    Port,
    Secret,
    Size,
    _blank_to_none,
    _database_url,
    _field_error,
    _http_url,
    _redis_url,
    _Section,
    _syslog_address,
    parse_size,
)


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


class DatabaseConfig(_Section):
    url: Annotated[str | None, BeforeValidator(_blank_to_none), AfterValidator(_database_url)] = None  # None: SQLite
    # The web process's psycopg pool on PostgreSQL: connections kept open, extra ones under load,
    # seconds to wait for one, seconds before one is replaced. Django's pool and CONN_MAX_AGE are
    # exclusive, so conn_max_age is what the other processes (workers, beat, the CLI) use.
    connection_pool_size: Int = Field(4, gt=0)
    max_overflow: Int = Field(30, ge=0)
    pool_timeout: Float = Field(30.0, gt=0)
    pool_recycle: Int = Field(3600, gt=0)
    echo: bool = False  # every SQL statement to the django.db.backends logger at DEBUG
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


class FlowerConfig(_Section):
    """Basic auth of Flower's UI; production refuses to start Flower without a password."""

    username: Annotated[str, StringConstraints(pattern=r"^[^:,\s]+$")] = "operator"
    password: Secret = None  # None: generated into var/flower-password in development

    @field_validator("password")
    @classmethod
    def _no_comma(cls, value: str | None) -> str | None:
        if value is not None and "," in value:
            raise ValueError("a password without ',' (Flower reads user:password pairs separated by commas)")
        return value


class MonitoringConfig(_Section):
    enabled: bool = True
    metrics_port: Port = 8081
    health_check_port: Port = 8080
    prometheus: PrometheusConfig = PrometheusConfig()
    alerts: AlertsConfig = AlertsConfig()
    flower: FlowerConfig = FlowerConfig()


class DevelopmentConfig(_Section):
    use_mock_cli: bool = False  # the guide's LEANVIBE_DEVELOPMENT_USE_MOCK_CLI (docker-compose.dev.yml)


ENVIRONMENTS = ("development", "production", "test")


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
    # LEANVIBE_ENV: production refuses generated secrets, keeps DEBUG off and limits ALLOWED_HOSTS.
    environment: Annotated[Literal["development", "production", "test"], BeforeValidator(_lower)] = "development"

    _source_path: Path | None = PrivateAttr(None)
    _env_overrides: dict[str, str] = PrivateAttr(default_factory=dict)
    _file_keys: frozenset[str] = PrivateAttr(frozenset())

    @property
    def source_path(self) -> Path | None:
        """The file this configuration was read from, if any."""
        return self._source_path

    @property
    def env_overrides(self) -> Mapping[str, str]:
        """Dotted key -> the LEANVIBE_* variable that set it."""
        return dict(self._env_overrides)

    @property
    def file_keys(self) -> frozenset[str]:
        """Dotted keys the configuration file wrote (list items as `key[0].field`)."""
        return self._file_keys

    @property
    def production(self) -> bool:
        return self.environment == "production"

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
