"""Reading `config/hive.yaml`, applying `LEANVIBE_*` variables and validating the result."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hive_project.config.environment import _apply_environment
from hive_project.config.errors import ConfigError, _dotted, _from_pydantic, _show
from hive_project.config.schema import ENVIRONMENTS, HiveConfig
from hive_project.config.sections import DEFAULT_POOLS

BASE_DIR = Path(__file__).resolve().parent.parent.parent


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
    file_keys = frozenset(_leaf_keys(raw))
    if "agents" not in raw:
        raw["agents"] = {name: _copy(spec) for name, spec in DEFAULT_POOLS.items()}
    sources = _apply_environment(raw, env)
    _check_environment(raw, sources)

    try:
        config = HiveConfig.model_validate(raw)
    except ValidationError as exc:
        raise _from_pydantic(exc.errors()[0], sources, str(file) if file else None) from None
    config._source_path = file
    config._env_overrides = {".".join(p): var for p, var in sources.items()}
    config._file_keys = file_keys
    return config


def _check_environment(raw: dict[str, Any], sources: Mapping[tuple[str, ...], str]) -> None:
    """LEANVIBE_ENV is refused in the variable's own name: `prod` must not run as development."""
    var = sources.get(("environment",))
    value = raw.get("environment")
    if var is None or (isinstance(value, str) and value.strip().lower() in ENVIRONMENTS):
        return
    expected = f"one of {', '.join(ENVIRONMENTS)}"
    raise ConfigError(
        f"{var} = {_show(value, var)}: expected {expected}", key="environment", expected=expected, source=var
    )


def _leaf_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys of a mapping's leaves; list items that are mappings as `key[0].field`."""
    if isinstance(node, dict):
        return [k for key, value in node.items() for k in _leaf_keys(value, f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(node, list) and node and all(isinstance(item, dict) for item in node):
        return [prefix] + [k for i, item in enumerate(node) for k in _leaf_keys(item, f"{prefix}[{i}]")]
    return [prefix] if prefix else []


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
