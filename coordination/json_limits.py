"""JSON the hive accepts: bounded nesting, finite numbers, no NUL characters, string keys.

Every door that reads JSON from outside (the API's parser, the webhooks, the CLI's --payload) and
`task_submit` itself use these checks, so a hostile document is refused with a clear error before
anything walks it recursively. The checks are iterative: a document nested a million levels deep
costs a scan of its bytes, never a RecursionError.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_JSON_DEPTH = 32  # a whole request body counts as one level; real payloads use a handful

# A JSON string (escapes included) or one bracket; strings are skipped whole, so brackets inside
# them do not count. Bytes: UTF-8 never puts an ASCII byte inside a multi-byte character.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")


class UnsafeJson(ValueError):
    """JSON the hive refuses although it parses: too deep, or NaN/Infinity. `str()` says why."""


def raw_depth_exceeds(raw: bytes | str, *, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text opens more than `limit` arrays/objects inside one another.

    Scans the text without parsing it (malformed text is left for the parser to refuse).
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # cannot be deeper than it has brackets: the common case costs two counts
    depth = 0
    for match in _TOKENS.finditer(data):
        token = match.group()
        if len(token) != 1:
            continue  # a string
        if token[0] in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _no_constants(name: str) -> Any:
    raise UnsafeJson(f"{name} is not a JSON number")


def loads(raw: bytes | str, *, limit: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON text. UnsafeJson for nesting deeper than `limit` or NaN/Infinity; the ValueError
    json raises (JSONDecodeError, UnicodeDecodeError) for text that is not JSON at all."""
    if raw_depth_exceeds(raw, limit=limit):
        raise UnsafeJson(f"JSON nested deeper than {limit} levels")
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except RecursionError:  # not reachable within the depth limit; a last fence all the same
        raise UnsafeJson(f"JSON nested deeper than {limit} levels") from None


def problem(value: Any, *, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why `value` cannot be stored as the hive's JSON, or None when it can.

    Walks the value with an explicit stack (no recursion): nesting deeper than `limit` (the value
    itself is level 1), NUL characters (PostgreSQL stores none), NaN or Infinity (not JSON, and
    SQLite's JSON check refuses them), keys that are not strings, values JSON has no type for.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "contains a NUL character"
        elif isinstance(item, bool) or item is None or isinstance(item, int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "contains NaN or Infinity, which JSON has no number for"
        elif isinstance(item, dict | list | tuple):
            if depth > limit:
                return f"is nested deeper than {limit} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return "has a key that is not a string"
                    if "\x00" in key:
                        return "contains a NUL character"
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        else:
            return f"holds a {type(item).__name__}, which is not a JSON value"
    return None


def contains_nul(value: Any) -> bool:
    """Whether a string, or any string or key inside a JSON value, holds a NUL character."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False
