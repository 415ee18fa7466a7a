"""Configuration errors: one line each, `<key> = <value>: expected <what>`, and where the value came from."""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

# pydantic and the schema are imported where a validation error is explained, not here: a worker
# process catches ConfigError without loading pydantic (hive_project/config/snapshot.py).


class ConfigError(Exception):
    """A bad configuration. `str(err)` is one line: `<key> = <value>: expected <what> (<source>)`."""

    def __init__(
        self, message: str, *, key: str | None = None, expected: str | None = None, source: str | None = None
    ) -> None:
        message = " ".join(str(message).split())
        super().__init__(message)
        self.key = key
        self.expected = expected
        self.source = source  # "LEANVIBE_X", a file path, or None

    @classmethod
    def at(cls, key: str, shown: str, expected: str, *, var: str | None = None, file: str | None = None) -> ConfigError:
        where = f" (from {var})" if var else f" (in {file})" if file else ""
        return cls(f"{key} = {shown}: expected {expected}{where}", key=key, expected=expected, source=var or file)


_SECRET_KEY_NAME = re.compile(r"(secret|password|token|api_key|signing_key|client_id)", re.IGNORECASE)
_NUMERIC_ERRORS = {
    "int_parsing",
    "int_type",
    "int_from_float",
    "float_parsing",
    "float_type",
    "finite_number",
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "hive_not_bool",
}
_PLAIN_EXPECTATIONS = {
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list such as [a, b]",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "missing": "a value (this key is required)",
    "string_too_short": "a non-empty string",
}


def _dotted(loc: tuple | list) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _show(value: Any, key: str, var: str | None = None) -> str:
    if _SECRET_KEY_NAME.search(key) or (var and _SECRET_KEY_NAME.search(var)):
        return "'***'" if value not in (None, "") else repr(value)
    if isinstance(value, str) and "://" in value:
        value = _mask_url(value)
    shown = repr(value)
    return shown if len(shown) <= 100 else shown[:97] + "..."


def _mask_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.password:
            return url.replace(f":{parts.password}@", ":***@", 1)
    except ValueError:
        pass
    return url


def _bounds(field: FieldInfo | None) -> str | None:
    from pydantic.fields import FieldInfo

    from hive_project.config.introspect import _unwrap

    if field is None:
        return None
    limits: dict[str, Any] = {}

    def visit(items: Any) -> None:
        for item in items:
            for name in ("gt", "ge", "lt", "le"):
                if getattr(item, name, None) is not None:
                    limits.setdefault(name, getattr(item, name))
            if isinstance(item, FieldInfo):
                visit(item.metadata)

    visit(field.metadata)
    for member in (field.annotation, *typing.get_args(field.annotation)):
        if typing.get_origin(member) is Annotated:
            visit(typing.get_args(member)[1:])
    kind = "an integer" if _unwrap(field.annotation) is int else "a number"
    fmt = "{:g}".format
    low = ("ge", limits["ge"]) if "ge" in limits else ("gt", limits["gt"]) if "gt" in limits else None
    high = ("le", limits["le"]) if "le" in limits else ("lt", limits["lt"]) if "lt" in limits else None
    if low and high and low[0] == "ge" and high[0] == "le":
        return f"{kind} from {fmt(low[1])} to {fmt(high[1])}"
    signs = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    parts = [f"{signs[bound[0]]} {fmt(bound[1])}" for bound in (low, high) if bound]
    return f"{kind} {' and '.join(parts)}" if parts else kind


def _from_pydantic(error: Mapping[str, Any], sources: Mapping[tuple[str, ...], str], file: str | None) -> ConfigError:
    from hive_project.config.introspect import _field_at

    loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    related: tuple[str, ...] = ()
    message = str(error.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")

    if kind == "hive_field":
        base = loc
        loc = (*loc, *ctx["field"].split("."))
        value, expected = ctx["value"], ctx["expected"]
        related = tuple(_dotted((*base, *name.split("."))) for name in ctx.get("related", ()))
    elif loc and loc[-1] == "[key]":  # a bad mapping key: a pool name
        loc, value = loc[:-2], loc[-2]
        expected = "pool names of lowercase letters, digits, '_' or '-', starting with a letter, at most 40 characters"
    elif kind == "extra_forbidden":
        parent, _ = _field_at(loc)
        names = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), names, n=1)
        word = "sections" if len(loc) == 1 else "keys"
        expected = f"one of the {word} {', '.join(names)}" + (f" (did you mean {close[0]}?)" if close else "")
    elif kind in _NUMERIC_ERRORS:
        expected = _bounds(_field_at(loc)[1]) or message
    elif kind == "literal_error":
        expected = "one of " + re.sub(r"'([^']*)'", r"\1", str(ctx.get("expected", ""))).replace(" or ", ", ")
    elif kind == "too_short":
        expected = f"at least {ctx.get('min_length')} item(s)"
    elif kind == "string_pattern_mismatch":
        expected = f"a string matching {ctx.get('pattern')}"
    else:
        expected = _PLAIN_EXPECTATIONS.get(kind) or message

    key = _dotted(loc)
    shown = "<missing>" if kind == "missing" else _show(value, key)
    var = _source_variable(loc, sources) or next(
        (var for r in related for path, var in sources.items() if path[: len(r.split("."))] == tuple(r.split("."))),
        None,
    )
    return ConfigError.at(key, shown, expected, var=var, file=None if var else file)


def _source_variable(loc: tuple, sources: Mapping[tuple[str, ...], str]) -> str | None:
    parts = tuple(str(p) for p in loc)
    for length in range(len(parts), 0, -1):
        if parts[:length] in sources:
            return sources[parts[:length]]
    return None
