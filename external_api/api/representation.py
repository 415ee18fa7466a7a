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

from rest_framework.fields import SerializerMethodField

Plan = list[tuple[str, tuple[str, ...], Callable[[Any], Any] | None, str]]

_shared_plans: dict[type, Plan] = {}


class FlatRepresentation:
    """Mix in before `serializers.ModelSerializer`.

    `shared_plan = True` (a class whose fields hold no per-request state: no context, no request,
    no nested serializers) builds the plan once per process for the class instead of once per
    instance: building a ModelSerializer's fields (a deep copy of each, a field per model column)
    was a fifth of a single task's answer. Method fields then call the method of the instance at
    hand, never the one the plan was built with."""

    shared_plan = False
    _readable_fields: Any  # provided by the serializer this is mixed into

    def _representation_plan(self) -> Plan:
        if self.shared_plan:
            plan = _shared_plans.get(type(self))
            if plan is None:
                plan = _shared_plans[type(self)] = self._plan_of_fields()
            return plan
        plan = self.__dict__.get("_plan")
        if plan is None:
            plan = self.__dict__["_plan"] = self._plan_of_fields()
        return plan

    def _plan_of_fields(self) -> Plan:
        plan: Plan = []
        for f in self._readable_fields:
            method = getattr(f, "method_name", "") if isinstance(f, SerializerMethodField) else ""
            plan.append((f.field_name, tuple(f.source_attrs), None if method else f.to_representation, method))
        return plan

    def to_representation(self, instance: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, path, represent, method in self._representation_plan():
            if method:  # source "*": the row itself, to this instance's method
                out[name] = getattr(self, method)(instance)
                continue
            value = instance
            for attr in path:
                value = getattr(value, attr)
                if value is None:
                    break
            out[name] = None if value is None else represent(value)  # type: ignore[misc]
        return out
