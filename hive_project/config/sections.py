"""The guide's core sections: system, multi_agent, resources, scaling, and the agent pools."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from hive_project.config.types import (
    _ALLOWED_PLACEHOLDER,
    _CALLABLE,
    _PLACEHOLDER,
    Capabilities,
    Float,
    Fraction,
    Int,
    LogLevel,
    NonEmpty,
    Strategy,
    UserName,
    _field_error,
    _not_bool,
    _seconds,
    _Section,
)


class SystemConfig(_Section):
    log_level: LogLevel = "INFO"
    debug_mode: bool = False
    max_concurrent_tasks: Int = Field(50, gt=0)
    # Hive extension: who runs agent programs when a pool names no runner.run_as (`hive up` as root
    # sets it to a dedicated user it creates); see agents/runners/containment.py.
    runner_user: UserName = None


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
    budget_recheck_interval: Float = Field(60.0, gt=0)  # seconds a task held by a budget waits before it asks again

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
    interval_seconds: Float = Field(5.0, gt=0)  # hive: seconds between beat's scaling evaluations

    @property
    def cooldown_seconds(self) -> float:
        return self.cooldown_minutes * 60


# --- agents ---------------------------------------------------------------------------------------

_COST_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")
DEFAULT_ARGV = ("claude", "-p", "{prompt}", "--output-format", "stream-json", "--verbose")


Budget = Annotated[Decimal, BeforeValidator(_not_bool), Field(ge=0, max_digits=12, decimal_places=6)] | None


class ResourceRequirementsConfig(_Section):
    cpu_cores: Float = Field(1.0, gt=0)
    memory_mb: Int = Field(1024, gt=0)
    disk_mb: Int = Field(512, gt=0)


class RateLimitConfig(_Section):
    """How a program says its provider refused it for rate (Claude Code's JSON result is always read).

    `output_pattern` is a regular expression searched in each output line; a named group `reset`
    (epoch seconds) or `retry_after` (seconds) gives the time the provider allows requests again.
    """

    exit_codes: list[Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=255)]] = []
    output_pattern: NonEmpty | None = None
    backoff_initial: Float = Field(30.0, gt=0)  # seconds of the first pause; doubled per report in a row
    backoff_max: Float = Field(900.0, gt=0)

    @field_validator("output_pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"a regular expression ({exc})") from None
        return pattern

    @model_validator(mode="after")
    def _ordered(self) -> RateLimitConfig:
        if self.backoff_initial > self.backoff_max:
            raise _field_error(
                "backoff_initial", self.backoff_initial, f"at most backoff_max ({self.backoff_max:g})", "backoff_max"
            )
        return self


class RunnerConfig(_Section):
    """How a pool runs a task: a program from an argv template, or a Python callable.

    argv placeholders: {prompt}, {task_id}, {workspace}, {attempt}, {payload.<field>}, and for the steps
    of a coordination session {steps.<name>.result} and {steps.<name>.output} (a dependency's answer).
    """

    kind: Literal["command", "python"] = "command"
    argv: list[str] = Field(default_factory=lambda: list(DEFAULT_ARGV))
    env: dict[str, str] = Field(default_factory=dict)
    timeout: Float = Field(1800.0, gt=0)  # seconds
    output_format: Literal["text", "claude-json"] = "claude-json"
    callable: str | None = None  # "package.module.function" or "package.module:function"
    rate_limit: RateLimitConfig = RateLimitConfig()
    # Containment (agents/runners/containment.py): the user the program runs as (the worker must be
    # root to switch), the bubblewrap sandbox, and whether the sandbox keeps the network.
    run_as: UserName = None
    sandbox: Literal["none", "bubblewrap"] = "none"
    sandbox_network: bool = True
    # What a program other than Claude Code (whose total_cost_usd is always read) says it spent, in
    # USD: the last value of a JSON field (dotted for nested ones) among the JSON objects it prints,
    # or the last match of a regular expression's one group (agents.runners.cost.cost_from_output).
    cost_field: NonEmpty | None = None
    cost_pattern: NonEmpty | None = None

    @field_validator("argv")
    @classmethod
    def _known_placeholders(cls, argv: list[str]) -> list[str]:
        for arg in argv:
            for name in _PLACEHOLDER.findall(arg):
                if not _ALLOWED_PLACEHOLDER.match(name):
                    raise ValueError(
                        f"placeholders among {{prompt}}, {{task_id}}, {{workspace}}, {{attempt}}, "
                        f"{{payload.<field>}}, {{steps.<name>.result|output}} (not {{{name}}})"
                    )
        return argv

    @field_validator("cost_field")
    @classmethod
    def _field_name(cls, field: str | None) -> str | None:
        if field is not None and not _COST_FIELD.match(field):
            raise ValueError("a JSON field name such as total_cost or usage.cost_usd (dotted for nested fields)")
        return field

    @field_validator("cost_pattern")
    @classmethod
    def _one_group(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            groups = re.compile(pattern).groups
        except re.error as exc:
            raise ValueError(f"a regular expression ({exc})") from None
        if groups != 1:
            raise ValueError(f"a regular expression with exactly one group, the amount (it has {groups})")
        return pattern

    @model_validator(mode="after")
    def _complete(self) -> RunnerConfig:
        if self.cost_field and self.cost_pattern:
            raise _field_error("cost_pattern", self.cost_pattern, "not both cost_field and cost_pattern", "cost_field")
        if self.kind == "command" and self.output_format == "claude-json":
            for name in ("cost_field", "cost_pattern"):
                if getattr(self, name):
                    raise _field_error(
                        name,
                        getattr(self, name),
                        "only with output_format text or kind python "
                        "(Claude Code's total_cost_usd is read for claude-json)",
                        "output_format",
                    )
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
    # hive: flow control across all the pool's workers (None: no limit)
    max_concurrent: Annotated[int, BeforeValidator(_not_bool), Field(ge=1)] | None = None
    max_starts_per_minute: Annotated[int, BeforeValidator(_not_bool), Field(ge=1)] | None = None
    # hive: USD the pool's prompt tasks may spend in a UTC day (coordination.budgets); None: no limit
    budget_usd_per_day: Budget = None
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
