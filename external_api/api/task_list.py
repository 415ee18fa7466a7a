"""The task list's query, compiled once per shape, and its body, rendered with orjson.

Building and compiling the list's QuerySet (filters, joins, `.values()`, ordering, slice) was a
fifth of each list request, and decoding its JSON columns (payload, command, capabilities, result)
only to encode them again another seventh. Here:

- `TaskRows` stands in for the QuerySet that `TaskCursor` pages: its SQL is compiled by Django,
  from the same QuerySet as before, once per *shape* (which filters are given, the caller's
  scope, the ordering, the cursor's position filter, the slice) with a distinct placeholder value
  per filter; each later request with that shape fills in its own values, each prepared by the
  filter's own model field as Django prepares it. A shape whose placeholders cannot all be found
  in the compiled parameters, exactly once each (`search`'s LIKE pattern, say), is compiled per
  request by Django as before.
- JSON columns come as the database's text and go into the body as it is (`orjson.Fragment`):
  the same JSON values, not decoded and encoded again. Every other column goes through the
  converters Django's compiler would apply.
- `RowsJSONRenderer` renders such a body with orjson. Asked for indentation (or by the browsable
  API), it decodes the fragments and renders as DRF's JSONRenderer does.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import connections, models
from django.db.models import Subquery
from rest_framework.renderers import JSONRenderer

from agents.models import Agent, AgentPool
from coordination.models import Task
from coordination.selectors import tasks_visible_to

# orjson's own datetime and dataclass output differs from DRF's encoder: those fall back to it
PASS_THROUGH = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
MAX_PLANS = 512  # shapes kept per process; (filters x scope x cursor x page size) in use is far fewer

# Query parameter -> the lookup it filters by (the values are validated by queries.TaskQuery).
TASK_FILTERS = {
    "status": "status",
    "pool": "pool__name",
    "agent": "agent__name",
    "priority": "priority",
    "type": "task_type",
    "created_after": "created_at__gte",
    "created_before": "created_at__lt",
    "search": "prompt__icontains",
}
SCOPE = "__scope"  # the slot of the caller's team in a plan (tasks_visible_to's team_id filter)
# Filters by a related row's unique name, compared as its id: `pool_id = (SELECT id FROM
# agents_agentpool WHERE name = %s)`. Compared through the join, PostgreSQL cannot tell how many
# tasks the name selects; at a million rows it read and sorted every queued task of the pool
# (20 ms, bench scenario 3) where walking the (team, status, created_at) index stops at the page.
BY_NAME: dict[str, tuple[str, type[models.Model]]] = {
    "pool__name": ("pool_id", AgentPool),
    "agent__name": ("agent_id", Agent),
}


def _condition(lookup: str, value: Any) -> dict[str, Any]:
    """The filter keyword for one list filter (see BY_NAME)."""
    if lookup in BY_NAME:
        column, model = BY_NAME[lookup]
        return {column: Subquery(model._default_manager.filter(name=value).values("id")[:1])}
    return {lookup: value}


class Plan:
    """One shape's SQL, its parameters with the placeholders' positions, and its column converters."""

    __slots__ = ("sql", "params", "slots", "names", "converters", "json_columns")

    def __init__(self, sql, params, slots, names, converters, json_columns) -> None:
        self.sql: str = sql
        self.params: list[Any] = params
        self.slots: list[tuple[int, str, Callable[[Any], Any]]] = slots  # (position, filter name, prepare)
        self.names: list[str] = names
        self.converters: list[tuple[int, list[Callable], Any]] = converters
        self.json_columns: frozenset[int] = json_columns


_plans: dict[tuple, Plan | None] = {}
_plans_lock = threading.Lock()


def _target_field(lookup: str) -> models.Field:
    """The model field a filter lookup compares (`pool__name` -> AgentPool.name)."""
    model: Any = Task
    field: Any = None
    for part in lookup.split("__"):
        try:
            field = model._meta.get_field(part)
        except Exception:  # a lookup name (gte, lt, icontains): the field before it
            break
        model = field.related_model or model
    assert field is not None
    return field


def _placeholder(field: models.Field, i: int) -> Any:
    """A value of the field's type that no real filter value equals, distinct per slot."""
    if isinstance(field, models.DateTimeField):
        return datetime(1901, 2, 3, 4, 5, 6, 700 + i, tzinfo=UTC)
    if isinstance(field, models.UUIDField):
        return uuid.UUID(int=0x5107 + i)
    if isinstance(field, models.IntegerField | models.AutoField | models.ForeignKey):
        return -987_654_321 - i
    return f"\x00hive-slot-{i}\x00"


def _preparer(field: models.Field, connection: Any) -> Callable[[Any], Any]:
    """A value as Django passes it to the database for an exact or range lookup on `field`."""
    if isinstance(field, models.ForeignKey):
        field = field.target_field

    def prepare(value: Any) -> Any:
        return field.get_db_prep_value(field.get_prep_value(value), connection, prepared=True)

    return prepare


class TaskRows:
    """The QuerySet TaskCursor pages, as far as it uses one: order_by, one position filter, a slice.

    Slicing runs the shape's cached SQL and answers `.values()`-shaped rows, JSON columns as text.
    """

    def __init__(self, *, team_id: int | None, staff: bool, given: dict[str, Any], columns: list[str]) -> None:
        self.team_id, self.staff, self.given, self.columns = team_id, staff, given, columns
        self.ordering: tuple[str, ...] = ()
        self.position: tuple[str, Any] | None = None

    def order_by(self, *ordering: str) -> TaskRows:
        clone = self._clone()
        clone.ordering = ordering
        return clone

    def filter(self, **kwargs: Any) -> TaskRows:
        ((lookup, value),) = kwargs.items()  # TaskCursor's position: created_at__lt or __gt
        clone = self._clone()
        clone.position = (lookup, value)
        return clone

    def _clone(self) -> TaskRows:
        clone = TaskRows(team_id=self.team_id, staff=self.staff, given=self.given, columns=self.columns)
        clone.ordering, clone.position = self.ordering, self.position
        return clone

    def _filters(self) -> dict[str, str]:
        """Slot name -> lookup, in a fixed order."""
        lookups = {name: TASK_FILTERS[name] for name in TASK_FILTERS if name in self.given}
        if self.position is not None:
            lookups["__position"] = self.position[0]
        return lookups

    def _values(self) -> dict[str, Any]:
        values = {name: self.given[name] for name in TASK_FILTERS if name in self.given}
        if self.position is not None:
            values["__position"] = self.position[1]
        if not self.staff:
            values[SCOPE] = self.team_id
        return values

    def queryset(self, values: dict[str, Any], key: slice) -> Any:
        """The Django QuerySet this stands for, with these filter values."""
        qs = tasks_visible_to(team_id=values.get(SCOPE), staff=self.staff)
        for name, lookup in self._filters().items():
            qs = qs.filter(**_condition(lookup, values[name]))
        return qs.order_by(*self.ordering).values(*self.columns)[key]

    def __getitem__(self, key: slice) -> list[dict[str, Any]]:
        assert isinstance(key, slice) and key.step is None
        connection = connections["default"]
        if not self.staff and not self.team_id:  # tasks_visible_to: nothing
            return []
        shape = (connection.vendor, self.staff, tuple(self._filters().items()), self.ordering, key.start, key.stop)
        if shape in _plans:
            plan = _plans[shape]
        else:
            plan = self._plan(key, connection)
            with _plans_lock:
                if len(_plans) >= MAX_PLANS:
                    _plans.clear()
                _plans[shape] = plan
        values = self._values()
        if plan is None:  # not a shape that compiles once: Django's rows, JSON decoded
            return list(self.queryset(values, key))
        params = list(plan.params)
        for position, name, prepare in plan.slots:
            params[position] = prepare(values[name])
        with connection.cursor() as cursor:
            cursor.execute(plan.sql, params)
            rows = cursor.fetchall()
        names, converters, json_columns = plan.names, plan.converters, plan.json_columns
        out = []
        for row in rows:
            values_of = list(row)
            for index, funcs, expression in converters:
                value = values_of[index]
                for func in funcs:
                    value = func(value, expression, connection)
                values_of[index] = value
            for index in json_columns:
                if values_of[index] is not None:
                    values_of[index] = orjson.Fragment(values_of[index])
            out.append(dict(zip(names, values_of, strict=True)))
        return out

    def _plan(self, key: slice, connection: Any) -> Plan | None:
        """Compile this shape once with a placeholder per filter and find each in the parameters."""
        fields = {name: _target_field(lookup) for name, lookup in self._filters().items()}
        if not self.staff:
            fields[SCOPE] = Task._meta.get_field("team")
        placeholders = {name: _placeholder(field, i) for i, (name, field) in enumerate(fields.items())}
        qs = self.queryset(placeholders, key)
        compiler = qs.query.get_compiler(using="default")
        sql, params = compiler.as_sql()
        params = list(params)
        slots = []
        for name, field in fields.items():
            prepare = _preparer(field, connection)
            wanted = prepare(placeholders[name])
            found = [i for i, p in enumerate(params) if type(p) is type(wanted) and p == wanted]
            if len(found) != 1:
                return None
            slots.append((found[0], name, prepare))
        query = qs.query
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        expressions = [column for column, _, _ in compiler.select]
        if len(names) != len(expressions):
            return None
        json_columns = frozenset(
            i for i, e in enumerate(expressions) if isinstance(getattr(e, "output_field", None), models.JSONField)
        )
        converters = [
            (index, funcs, expression)
            for index, (funcs, expression) in compiler.get_converters(expressions).items()
            if index not in json_columns
        ]
        return Plan(sql, params, slots, names, converters, json_columns)


def _decoded(data: Any) -> Any:
    """`data` with every orjson.Fragment decoded (for the stdlib renderer)."""
    if isinstance(data, orjson.Fragment):
        return json.loads(orjson.dumps(data))  # a Fragment keeps its text to itself: as written
    if isinstance(data, dict):
        return {k: _decoded(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_decoded(v) for v in data]
    return data


class RowsJSONRenderer(JSONRenderer):
    """DRF's JSONRenderer for bodies that may hold JSON columns as text (orjson.Fragment).

    Compact output (the API's default) is orjson's, with U+2028/U+2029 escaped as DRF does; an
    indented one, or a value orjson refuses, is DRF's own rendering of the decoded body."""

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if data is None:
            return b""
        indent = self.get_indent(accepted_media_type or "", renderer_context or {})
        if indent is None and self.compact and not self.ensure_ascii:
            try:
                body = orjson.dumps(data, option=PASS_THROUGH)
            except TypeError:  # a type only DRF's encoder knows, an integer beyond 64 bits
                pass
            else:
                if b"\xe2\x80\xa8" in body or b"\xe2\x80\xa9" in body:
                    body = body.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
                return body
        return super().render(_decoded(data), accepted_media_type, renderer_context)
