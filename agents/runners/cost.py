"""What an agent program says it spent, for programs other than Claude Code (whose cost the Claude
reader takes from `total_cost_usd`): a JSON field or a regular expression over its output."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from agents.runners.claude.messages import cost, json_objects


def cost_from_output(lines: list[str], *, field: str | None = None, pattern: str | None = None) -> Decimal | None:
    """The last value of a JSON `field` (dotted for nested ones: "usage.cost_usd") among the JSON
    objects in the output, or the last match of `pattern`, a regular expression with one group.

    Exactly one of `field` and `pattern`; otherwise, or for a pattern that does not compile or has
    not exactly one group, a ValueError naming the argument. Values that are not non-negative
    numbers ("n/a", -1) are passed over ("$1,234.50" is read). None when nothing is found.
    """
    if (field is None) == (pattern is None):
        raise ValueError("cost_from_output: give exactly one of field or pattern")
    if field is not None:
        path = field.split(".")
        if not all(path):
            raise ValueError(f"field: {field!r} is not a JSON field name (dotted for nested fields)")
        for obj in reversed(json_objects(lines)):
            if (amount := cost(_dig(obj, path))) is not None:
                return amount
        return None
    assert pattern is not None
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"pattern: {pattern!r} is not a regular expression ({exc})") from None
    if regex.groups != 1:
        raise ValueError(f"pattern: {pattern!r} must have exactly one group, it has {regex.groups}")
    for line in reversed(lines):
        for match in reversed(list(regex.finditer(line))):
            if (amount := cost(match.group(1))) is not None:
                return amount
    return None


def _dig(obj: Any, path: list[str]) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj
