"""`hive check-config --explain`, and the "has no effect" lines of `hive check-config`.

Every leaf key of a loaded configuration with its value (secrets masked), where the value came
from (the file, a `LEANVIBE_*` variable, or the default) and what reads it, or why it has no
effect (`effects.REGISTRY`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from hive_project.config.effects import BY_KEY, Effect
from hive_project.config.errors import _mask_url
from hive_project.config.introspect import _dict_value_type, _is_model, _unwrap
from hive_project.config.schema import HiveConfig

COMPATIBLE = "accepted for compatibility with the guide, has no effect"
# The last part of a key that holds a secret (a Slack webhook URL is one: its path is the credential).
_SECRET = re.compile(r"(^|_)(secrets?|secret_key|api_key|signing_key|client_id|password|webhook_url)(_previous)?$")


@dataclass(frozen=True)
class Leaf:
    key: str  # agents.backend.capabilities, external_api.api_gateway.routes[0].path
    pattern: str  # the registry's key: agents.<pool>.capabilities, ...routes[].path
    value: Any


def schema_keys(model: type[BaseModel] = HiveConfig, prefix: str = "") -> Iterator[str]:
    """Every leaf key of the schema in registry form (pools once as `<pool>`, list items as `[]`)."""
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        node = _unwrap(field.annotation)
        item = _list_item_model(node)
        if _is_model(node):
            yield from schema_keys(node, key)
        elif (value_type := _dict_value_type(node)) is not None and _is_model(_unwrap(value_type)):
            yield from schema_keys(_unwrap(value_type), f"{key}.<pool>")
        elif item is not None:
            yield from schema_keys(item, f"{key}[]")
        else:
            yield key


def _list_item_model(node: Any) -> type[BaseModel] | None:
    if getattr(node, "__origin__", None) is list:
        item = _unwrap(node.__args__[0])
        return item if _is_model(item) else None
    return None


def leaves(config: BaseModel, prefix: str = "", pattern: str = "") -> Iterator[Leaf]:
    """The leaves of a loaded configuration, in schema order."""
    for name in type(config).model_fields:
        value = getattr(config, name)
        key = f"{prefix}.{name}" if prefix else name
        pat = f"{pattern}.{name}" if pattern else name
        if isinstance(value, BaseModel):
            yield from leaves(value, key, pat)
        elif isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            for pool, child in value.items():
                yield from leaves(child, f"{key}.{pool}", f"{pat}.<pool>")
        elif _list_item_model(_unwrap(type(config).model_fields[name].annotation)) is not None:
            for index, child in enumerate(value):
                yield from leaves(child, f"{key}[{index}]", f"{pat}[]")
            if not value:  # an empty list still shows, with what its items would do
                yield Leaf(key, f"{pat}[]", value)
        else:
            yield Leaf(key, pat, value)


def source_of(config: HiveConfig, key: str) -> str:
    """`LEANVIBE_X` (the variable that set it or its section), `file`, or `default`."""
    parts = key.split(".")
    for length in range(len(parts), 0, -1):
        var = config.env_overrides.get(".".join(parts[:length]))
        if var:
            return var
    base = key.split("[", 1)[0]
    return "file" if key in config.file_keys or base in config.file_keys else "default"


def shown(key: str, value: Any) -> str:
    """The value as --explain prints it: secrets as *** (or 'not set'), passwords cut out of URLs."""
    if _SECRET.search(key.rsplit(".", 1)[-1]) or ".runner.env" in key:
        if isinstance(value, dict):
            return repr({name: "***" for name in value})
        if isinstance(value, list):
            return repr(["***" for _ in value])
        return "***" if value else "not set"
    if isinstance(value, str) and "://" in value:
        value = _mask_url(value)
    return repr(value) if not isinstance(value, tuple) else repr(list(value))


def _effect(pattern: str) -> Effect:
    """The registry's entry; for an empty list of mappings, the entry of its items' first key."""
    return BY_KEY.get(pattern) or next(e for k, e in BY_KEY.items() if k.startswith(pattern + "."))


def effect_of(leaf: Leaf, config: HiveConfig) -> str:
    effect = _effect(leaf.pattern)
    why = effect.no_effect(config)
    if why:
        return f"no effect: {why}"
    return f"read by {effect.reader}"


def explain(config: HiveConfig) -> str:
    """One line per leaf key: `key = value [source] -> what reads it`."""
    return "\n".join(
        f"{leaf.key} = {shown(leaf.key, leaf.value)} [{source_of(config, leaf.key)}] -> {effect_of(leaf, config)}"
        for leaf in leaves(config)
    )


def _set_by_user(config: HiveConfig) -> Iterator[tuple[Leaf, Effect]]:
    seen: set[str] = set()
    for leaf in leaves(config):
        if source_of(config, leaf.key) == "default":
            continue
        # one line per registry key (a pool's keys once, the items of a list once)
        if leaf.pattern in seen:
            continue
        seen.add(leaf.pattern)
        yield leaf, _effect(leaf.pattern)


def no_effect_lines(config: HiveConfig) -> list[str]:
    """For `hive check-config`: one line per key the file or a variable set that has no effect here."""
    lines: list[str] = []
    for leaf, effect in _set_by_user(config):
        if effect.inert:
            lines.append(f"{COMPATIBLE}: {leaf.pattern} ({effect.inert})")
        elif why := effect.no_effect(config):
            lines.append(f"has no effect here: {leaf.pattern} ({why})")
    return lines
