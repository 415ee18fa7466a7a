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
key (what reads it, why it has no effect, or which work under way will read it), and a test fails
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
from hive_project.config.external import ExternalApiConfig, SecurityConfig
from hive_project.config.loader import default_config_path, load_config
from hive_project.config.schema import HiveConfig
from hive_project.config.sections import DEFAULT_ARGV, DEFAULT_POOLS, PoolConfig, RunnerConfig, WorkspaceConfig
from hive_project.config.types import STRATEGIES, Capabilities, NonEmpty, parse_size

__all__ = [
    "DEFAULT_ARGV",
    "DEFAULT_POOLS",
    "ENV_ALIASES",
    "ENV_PREFIX",
    "ENV_PREFIX_ALIASES",
    "RESERVED_ENV_NAMES",
    "RESERVED_ENV_PREFIXES",
    "STRATEGIES",
    "Capabilities",
    "ConfigError",
    "ExternalApiConfig",
    "HiveConfig",
    "NonEmpty",
    "PoolConfig",
    "RunnerConfig",
    "SecurityConfig",
    "WorkspaceConfig",
    "default_config_path",
    "describe",
    "environment_variable_names",
    "load_config",
    "parse_size",
]
