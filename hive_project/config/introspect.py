"""Walking the schema's type annotations (for variables, error messages and `--explain`)."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from hive_project.config.schema import HiveConfig


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that matters."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _dict_value_type(annotation: Any) -> Any:
    return typing.get_args(annotation)[1] if typing.get_origin(annotation) is dict else None


def _is_optional(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Annotated:
        return _is_optional(typing.get_args(annotation)[0])
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in typing.get_args(
        annotation
    )


def _is_stringish(annotation: Any) -> bool:
    node = _unwrap(annotation)
    if node is str:
        return True
    return typing.get_origin(node) is Literal and all(isinstance(a, str) for a in typing.get_args(node))


def _annotation_at(path: tuple[str, ...]) -> Any:
    annotation: Any = HiveConfig
    for part in path:
        annotation = _unwrap(annotation).model_fields[part].annotation
    return annotation


def _raw_at(raw: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        raw = raw.get(part) if isinstance(raw, dict) else None
    return raw


def _field_at(loc: tuple) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model holding the last part of `loc`, and that part's field (None where not a model field)."""
    node: Any = HiveConfig
    parent: type[BaseModel] | None = None
    field: FieldInfo | None = None
    for part in loc:
        node = _unwrap(node)
        if _is_model(node):
            parent, field = node, node.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return parent, None
            node = field.annotation
        elif (value_type := _dict_value_type(node)) is not None:
            parent, field, node = None, None, value_type
        elif typing.get_origin(node) in (list, tuple) and isinstance(part, int):
            parent, node = None, typing.get_args(node)[0]
        else:
            return None, None
    return parent, field
