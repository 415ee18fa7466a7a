"""Finding Claude Code's JSON messages in a program's output, whatever shape the output has."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

MESSAGE_TYPES = {
    "system",
    "assistant",
    "user",
    "result",
    "rate_limit_event",
    "stream_event",
    "control_request",
    "control_response",
    "control_cancel_request",
    "keep_alive",
    "tool_progress",
    "auth_status",
    "conversation_reset",
}


def json_objects(lines: list[str]) -> list[dict[str, Any]]:
    """Every JSON object in the output, in order: stream-json lines, one-line arrays, or one document
    spread over many lines (pretty-printed, possibly cut at the front by the runner's tail)."""
    found: list[dict[str, Any]] = []
    for line in lines:
        found.extend(_objects_in_line(line))
    if found:
        return found
    text = "\n".join(lines)
    if "{" not in text:
        return []
    return list(_scan_objects(text))


def messages(lines: list[str]) -> list[dict[str, Any]]:
    """Claude Code's messages in the output, in order; other JSON and plain text left out."""
    return [obj for obj in json_objects(lines) if kind_of(obj)]


def _objects_in_line(line: str) -> list[dict[str, Any]]:
    line = line.strip()
    if not line or line[0] not in "[{":
        return []
    try:
        value = json.loads(line)
    except ValueError:
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


def _scan_objects(text: str) -> Iterator[dict[str, Any]]:
    """Complete JSON objects in `text`, outermost first, skipping what does not parse.

    A pretty-printed array cut at the front leaves half an element; decoding from each `{` finds the
    whole elements after it (and, at worst, objects nested in the cut one, which are not messages).
    """
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            yield value
        start = text.find("{", end)


def kind_of(message: dict[str, Any]) -> str:
    """The message's type ("" when it is not Claude Code's), also for early versions' shapes: the
    role-keyed messages of 0.2.x `--json --verbose` and a result object without "type"."""
    kind = message.get("type")
    if kind in MESSAGE_TYPES:
        return str(kind)
    if kind == "message" or (kind is None and message.get("role") in ("assistant", "user", "system")):
        return str(message.get("role") or "")
    if kind is None and "is_error" in message and ("result" in message or "subtype" in message):
        return "result"
    return ""


def content_of(message: dict[str, Any]) -> Any:
    """An assistant or user message's content: a string or a list of blocks."""
    inner = message.get("message")
    if isinstance(inner, dict):
        return inner.get("content")
    return message.get("content") if message.get("type") != "result" else None


def texts_of(content: Any) -> list[str]:
    """The text of a content: the string, or the `text` of its text blocks."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    return [b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)]


def find_result(lines: list[str]) -> dict[str, Any] | None:
    """The last result message in the output, if any."""
    for message in reversed(messages(lines)):
        if kind_of(message) == "result":
            return message
    return None


def cost(value: Any) -> Decimal | None:
    """A cost as a Decimal ("$1,234.5" too), or None when it is missing, not a number, negative or
    not finite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value).strip().lstrip("$").replace(",", ""))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else ""
