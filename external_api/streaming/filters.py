"""What a subscriber wants: event types, pools, agents, tasks, task priorities.

Each dimension is a list; empty (or `*`) means "any". An event passes when it passes every
dimension. Event types match exactly or by prefix (`task.*`). Priorities are those of the event's
task, so an event without a task never passes a priority filter; likewise for a task filter.

A subscriber that names no filter at all gets the defaults of the configuration
(`external_api.event_streaming.event_types` and `.filters`); naming any filter replaces them.
The guide's event names (`task_completed`, ...) are understood as the hive's own.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db.models import Q

from coordination.models import Priority

log = logging.getLogger(__name__)

MAX_VALUES = 200

# The deployment guide's event names, in the hive's vocabulary.
GUIDE_EVENT_TYPES: Mapping[str, tuple[str, ...]] = {
    "task_completed": ("task.succeeded",),
    "task_failed": ("task.failed", "task.dead"),
    "agent_status_changed": ("agent.*",),
}

# The names a configured filter's `type` may have, per dimension.
CONFIG_FILTER_TYPES: Mapping[str, str] = {
    "event_type": "event_types",
    "event_types": "event_types",
    "type": "event_types",
    "pool": "pools",
    "pools": "pools",
    "pool_name": "pools",
    "agent_type": "pools",
    "agent": "agents",
    "agents": "agents",
    "agent_id": "agents",
    "agent_name": "agents",
    "task": "tasks",
    "tasks": "tasks",
    "task_id": "tasks",
    "priority": "priorities",
    "priorities": "priorities",
}


class FilterError(ValueError):
    """A filter the client sent is malformed; the message says which and why."""


@dataclass(frozen=True)
class Filters:
    event_types: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()

    NAMES = ("event_types", "pools", "agents", "tasks", "priorities")

    @classmethod
    def named_in(cls, data: Mapping[str, Any]) -> bool:
        return any(name in data for name in cls.NAMES)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Filters:
        """From a subscribe message (lists) or query parameters (lists of comma-separated strings)."""
        values = {name: _values(name, data.get(name)) for name in cls.NAMES}
        for name in ("tasks",):
            values[name] = tuple(_task_id(v) for v in values[name])
        bad = [p for p in values["priorities"] if p not in Priority.values]
        if bad:
            raise FilterError(f"priorities: unknown {', '.join(bad)}; expected some of {', '.join(Priority.values)}")
        return cls(**values)

    @classmethod
    def configured(cls) -> Filters:
        """The defaults of the configuration."""
        conf = settings.HIVE_CONFIG.external_api.event_streaming
        values: dict[str, list[str]] = {name: [] for name in cls.NAMES}
        values["event_types"] = list(conf.event_types)
        for item in conf.filters:
            name = CONFIG_FILTER_TYPES.get(item.type.lower())
            if name is None:
                log.warning("event_streaming.filters: unknown filter type %r ignored", item.type)
                continue
            values[name].extend(item.values)
        try:
            return cls.parse(values)
        except FilterError as err:
            log.warning("event_streaming.filters ignored: %s", err)
            return cls()

    def as_dict(self) -> dict[str, list[str]]:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    def __bool__(self) -> bool:
        return any(asdict(self).values())

    # --- matching -----------------------------------------------------------------------------
    @cached_property
    def _type_patterns(self) -> tuple[set[str], tuple[str, ...]]:
        """The event types as exact names and prefixes; computed once (matches runs per event
        per stream)."""
        exact: set[str] = set()
        prefixes: list[str] = []
        for name in self.event_types:
            for pattern in GUIDE_EVENT_TYPES.get(name, (name,)):
                if pattern.endswith("*"):
                    prefixes.append(pattern[:-1])
                else:
                    exact.add(pattern)
        return exact, tuple(prefixes)

    def matches(self, event: Mapping[str, Any], priority: str | None = None) -> bool:
        """Whether a live event passes; `priority` is its task's (looked up by the caller)."""
        if self.event_types:
            exact, prefixes = self._type_patterns
            if event["type"] not in exact and not event["type"].startswith(prefixes):
                return False
        if self.pools and event.get("pool") not in self.pools:
            return False
        if self.agents and event.get("agent") not in self.agents:
            return False
        if self.tasks and event.get("task") not in self.tasks:
            return False
        return not self.priorities or priority in self.priorities

    def q(self) -> Q:
        """The same test as a query on Event, for replay."""
        q = Q()
        if self.event_types:
            exact, prefixes = self._type_patterns
            types = Q(type__in=sorted(exact))
            for prefix in prefixes:
                types |= Q(type__startswith=prefix)
            q &= types
        if self.pools:
            q &= Q(pool__name__in=self.pools)
        if self.agents:
            q &= Q(agent__name__in=self.agents)
        if self.tasks:
            q &= Q(task_id__in=self.tasks)
        if self.priorities:
            q &= Q(task__priority__in=self.priorities)
        return q


def _values(name: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not all(isinstance(v, str) for v in raw):
        raise FilterError(f"{name}: expected a list of strings")
    values = [part.strip() for item in raw for part in item.split(",") if part.strip()]
    if "*" in values:
        return ()
    if len(values) > MAX_VALUES:
        raise FilterError(f"{name}: at most {MAX_VALUES} values")
    if any(len(v) > 200 for v in values):
        raise FilterError(f"{name}: a value is longer than 200 characters")
    return tuple(dict.fromkeys(values))


def _task_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise FilterError(f"tasks: {value[:60]!r} is not a task id (a UUID)") from None
