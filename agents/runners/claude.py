"""Reading Claude Code's JSON output (`--output-format json` or `stream-json`)."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any


def find_result(lines: list[str]) -> dict[str, Any] | None:
    """The last `{"type": "result", ...}` object in the output, if any."""
    for line in reversed(lines):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and (obj.get("type") == "result" or "is_error" in obj and "result" in obj):
            return obj
    return None


def cost(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


def readable(line: str) -> str:
    """A stream-json line as a person would want it in a progress view: the assistant's text."""
    if not line.startswith("{"):
        return line
    try:
        obj = json.loads(line)
    except ValueError:
        return line
    if not isinstance(obj, dict):
        return line
    message = obj.get("message") if isinstance(obj.get("message"), dict) else None
    if message and isinstance(message.get("content"), list):
        texts = [c.get("text", "") for c in message["content"] if isinstance(c, dict) and c.get("type") == "text"]
        tools = [
            f"[tool {c.get('name')}]" for c in message["content"] if isinstance(c, dict) and c.get("type") == "tool_use"
        ]
        joined = " ".join(t for t in texts + tools if t)
        if joined:
            return joined
    if obj.get("type") == "result":
        return f"[result] {str(obj.get('result', ''))[:500]}"
    return line
