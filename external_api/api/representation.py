"""A serializer's output without DRF's per-field indirections, for lists of many rows.

DRF's `Serializer.to_representation` walks `_readable_fields` (a generator) and, for every field
of every row, calls `field.get_attribute` (two calls deep, with try/except) before the field's own
`to_representation`. On a 50-task page that is 1,250 such walks, a third of the request. This
mixin compiles each serializer instance's readable fields once into (name, attribute path,
to_representation) and applies the plan to each row, with DRF's rules for what it covers: a
dotted source through a missing relation (`pool.name` of a task without a pool) gives None, a
None value is output as None without calling the field, `source="*"` hands the field the row.
Serializers whose fields need more (callable sources, mappings, `PKOnlyObject`) must not use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Plan = list[tuple[str, tuple[str, ...], Callable[[Any], Any]]]


class FlatRepresentation:
    """Mix in before `serializers.ModelSerializer`."""

    _readable_fields: Any  # provided by the serializer this is mixed into

    def _representation_plan(self) -> Plan:
        plan = self.__dict__.get("_plan")
        if plan is None:
            plan = [(f.field_name, tuple(f.source_attrs), f.to_representation) for f in self._readable_fields]
            self.__dict__["_plan"] = plan
        return plan

    def to_representation(self, instance: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, path, represent in self._representation_plan():
            value = instance
            for attr in path:
                value = getattr(value, attr)
                if value is None:
                    break
            out[name] = None if value is None else represent(value)
        return out
