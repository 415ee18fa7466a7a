"""Input that is what it says, or a 400 naming the field: no coercion, no unknown fields.

DRF's fields coerce by default (`"prompt": 123` becomes "123", `"timeout": true` becomes 1.0, a
UUID field takes an integer) and serializers drop fields they do not know. Every request body and
every query string of the API goes through the classes here instead, so a mistake is refused on
every route alike rather than silently turned into something else.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from django.utils.functional import cached_property
from rest_framework import serializers
from rest_framework.request import Request

from coordination.json_limits import problem

# DRF reads `?format=` itself to pick a renderer (URL_FORMAT_OVERRIDE); it is never a filter.
FRAMEWORK_PARAMETERS = frozenset({"format"})


class StrictCharField(serializers.CharField):
    """A JSON string, never a number or a boolean turned into one."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictChoiceField(serializers.ChoiceField):
    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class StrictRegexField(serializers.RegexField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: not a boolean, not 2.0, not "2"."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A JSON number (integer or not): not a boolean, not a string."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictUUIDField(serializers.UUIDField):
    """A UUID written as a string (DRF would also take an integer)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid", value=type(data).__name__)
        return super().to_internal_value(data)


class JsonObjectField(serializers.DictField):
    """A JSON object the hive can store: bounded nesting, finite numbers, no NUL (json_limits)."""

    def to_internal_value(self, data: Any) -> dict:
        value = super().to_internal_value(data)
        why = problem(value)
        if why:
            raise serializers.ValidationError(f"this object {why}")
        return value


class StrictSerializer(serializers.Serializer):
    """Refuses keys that are not writable fields, each named: "status: this field is read-only",
    "colour: unknown field; the fields are …". Base of every request body and query serializer."""

    # A query serializer whose validated answer depends on the query string alone (no clock, no
    # settings, no database) may say so: `query` then validates each distinct string once.
    same_answer_for_same_query = False
    # A body serializer on a hot route whose fields keep nothing of a request (no context, no
    # nested serializers) may reuse them: see `fields`.
    reuse_fields = False

    @cached_property
    def fields(self) -> Any:
        """DRF deep-copies every declared field for each serializer instance: on `POST
        /api/v1/tasks/` that copy was a tenth of the request. With `reuse_fields`, each thread
        copies them once per class and hands the same field objects to its later instances, pointed
        at the new instance (`parent`). A thread serves one request at a time and validates a body
        to the end before the next, so no two live instances of one class share them."""
        if not self.reuse_fields:
            return super().fields
        kept: dict[type, Any] = _reused.__dict__.setdefault("fields", {})
        fields = kept.get(type(self))
        if fields is None:
            fields = kept[type(self)] = super().fields
            return fields
        fields.serializer = self
        for field in fields.values():
            field.parent = self
        return fields

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            refused = unknown_fields(self, data)
            if refused:
                raise serializers.ValidationError(refused)
        return super().to_internal_value(data)


class StrictModelSerializer(serializers.ModelSerializer):
    """StrictSerializer's refusal of unknown and read-only keys, for model serializers that write."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            refused = unknown_fields(self, data)
            if refused:
                raise serializers.ValidationError(refused)
        return super().to_internal_value(data)


def unknown_fields(serializer: serializers.Serializer, data: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each key of `data` the serializer will not write, with why."""
    fields = serializer.fields
    writable = sorted(name for name, field in fields.items() if not field.read_only)
    refused: dict[str, list[str]] = {}
    for key in data:
        name = str(key)
        if name in fields and not fields[name].read_only:
            continue
        if name in fields:
            refused[name] = ["this field is read-only"]
        else:
            refused[name] = [f"unknown field; the fields are {', '.join(writable) or 'none'}"]
    return refused


def query(request: Request, serializer_class: type[StrictSerializer]) -> dict[str, Any]:
    """The validated query parameters of a list endpoint, or a 400 naming each bad one.

    Every parameter must be one the endpoint knows (a misspelt filter would otherwise list
    everything), appear once, and hold a valid value. An empty value means "not given".
    """
    given = {key: values for key, values in request.query_params.lists() if key not in FRAMEWORK_PARAMETERS}
    if not serializer_class.same_answer_for_same_query:
        return _validated(serializer_class, given)
    memo = (serializer_class, tuple((key, tuple(values)) for key, values in given.items()))
    found = _validated_queries.get(memo)
    if found is None:
        found = _validated(serializer_class, given)  # a 400 raises: only valid queries are kept
        with _memo_lock:
            if len(_validated_queries) >= MAX_VALIDATED_QUERIES:
                _validated_queries.clear()
            _validated_queries[memo] = found
    return dict(found)  # the caller's own copy


_reused = threading.local()  # StrictSerializer.fields with reuse_fields: {class: this thread's fields}

# Valid query strings of the serializers whose answer depends on the string alone
# (`same_answer_for_same_query`): a client polling one URL is validated once per process.
MAX_VALIDATED_QUERIES = 1024
_validated_queries: dict[tuple, dict[str, Any]] = {}
_memo_lock = threading.Lock()


def _validated(serializer_class: type[StrictSerializer], given: dict[str, list[str]]) -> dict[str, Any]:
    # one serializer for both checks: building its fields (a deep copy of each) is most of the cost
    serializer = serializer_class(data={key: values[0] for key, values in given.items() if values[0] != ""})
    refused = unknown_fields(serializer, given)
    refused.update({key: ["give this parameter once"] for key, values in given.items() if len(values) > 1})
    if refused:
        raise serializers.ValidationError(refused)
    serializer.is_valid(raise_exception=True)
    return {k: v for k, v in serializer.validated_data.items() if v is not None}
