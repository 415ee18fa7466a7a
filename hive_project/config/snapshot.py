"""The validated configuration as plain read-only objects, for Celery workers.

pydantic costs a process about 12 MB (its Rust core, its modules, the schema's validators), and a
pool worker is a main process plus every prefork child forked from it, each holding its own
copy in RSS. A worker only reads the configuration, so it validates in a forked child that
imports pydantic, reads the file and the variables exactly as every other process does
(`load_config`), and sends back a `ConfigView` tree: the same fields and properties as plain
attributes, `model_dump(mode="json")` as pydantic gave it. The worker never imports pydantic.

This module must not import pydantic or the schema at module level (a test checks that a worker
process has neither loaded).
"""

from __future__ import annotations

import os
import pickle
import sys
import traceback
from typing import Any

from hive_project.config.errors import ConfigError


class ConfigView:
    """One validated section: its fields and its properties as read-only attributes."""

    __slots__ = ("_name", "_values", "_json")

    def __init__(self, name: str, values: dict[str, Any], json: dict[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_json", json)

    def __getattr__(self, attr: str) -> Any:
        try:
            return self._values[attr]
        except KeyError:
            raise AttributeError(f"{self._name} has no attribute {attr!r}") from None

    def __setattr__(self, attr: str, value: object) -> None:
        raise AttributeError(f"{self._name} is read-only in a worker process")

    def __reduce__(self) -> tuple[Any, ...]:  # __getattr__ must not run on a half-built instance
        return (ConfigView, (self._name, self._values, self._json))

    def __repr__(self) -> str:
        return f"{self._name}({', '.join(f'{k}={v!r}' for k, v in self._values.items())})"

    def model_dump(self, *, mode: str = "json") -> dict[str, Any]:
        if mode != "json":
            raise ValueError(f"{self._name}: a worker keeps only the JSON form of its configuration")
        return pickle.loads(pickle.dumps(self._json))  # a copy the caller may change


def freeze(model: Any) -> ConfigView:
    """A ConfigView of a validated pydantic model: every field, and every property its classes
    define (evaluated once: they compute from the fields and never change)."""
    from pydantic import BaseModel

    def plain(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return freeze(value)
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list):
            return [plain(item) for item in value]
        return value

    cls = type(model)
    values = {name: plain(getattr(model, name)) for name in cls.model_fields}
    for klass in cls.__mro__:
        if klass.__module__.startswith("pydantic") or klass is object:
            continue
        for name, attr in vars(klass).items():
            if isinstance(attr, property) and name not in values:
                values[name] = plain(getattr(model, name))
    return ConfigView(cls.__name__, values, model.model_dump(mode="json"))


def load_in_child() -> ConfigView:
    """`load_config()` run in a forked child; its result as a ConfigView, or its ConfigError."""
    sys.stdout.flush()
    sys.stderr.flush()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its result is what the tests check
        os.close(read)
        status = 0
        try:
            from hive_project.config.loader import load_config

            try:
                payload: tuple[str, Any] = ("config", freeze(load_config()))
            except ConfigError as err:
                payload = ("error", (str(err), err.key, err.expected, err.source))
            with os.fdopen(write, "wb") as out:
                out.write(pickle.dumps(payload))
        except BaseException:
            traceback.print_exc()
            status = 1
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise RuntimeError(f"reading the configuration failed in its child process (wait status {status})")
    kind, value = pickle.loads(data)  # noqa: S301 - our own child's bytes, over a pipe
    if kind == "error":
        message, key, expected, source = value
        raise ConfigError(message, key=key, expected=expected, source=source)
    return value
