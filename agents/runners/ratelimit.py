"""Did the agent program stop because its provider refused it for rate? Pure: output in, signal out.

Claude Code (output format `claude-json`) says so itself: a `rate_limit_event` whose status is
not allowed (with `resetsAt`), a result with `api_error_status: 429`, or an error result naming
`rate_limit_error` or "usage limit reached|<epoch>". Other programs are described by the pool's
`runner.rate_limit`: exit codes, and a regular expression searched in the output whose named
group `reset` (epoch seconds, or an ISO 8601 time) or `retry_after` (seconds) says when to try again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ALLOWED_STATUSES = {"allowed", "allowed_warning"}
_CLAUDE_TEXT = re.compile(r"rate_limit_error|rate limit(ed)?\b|\b429\b|usage limit reached", re.IGNORECASE)
_CLAUDE_RESET = re.compile(r"limit reached\|(\d{9,13})")
_EPOCH_MS = 10**12  # an epoch this large is in milliseconds


@dataclass(frozen=True)
class RateLimitSignal:
    reason: str
    reset_at: float | None = None  # epoch seconds when the provider takes requests again, if it said


def detect(
    *, lines: Sequence[str], exit_code: int | None, output_format: str, rule: Mapping[str, Any] | None, now: float
) -> RateLimitSignal | None:
    """The rate limit the program reported in `lines` (its output's tail) or by `exit_code`, or None.

    `rule` is the pool's `runner.rate_limit` (exit_codes, output_pattern); `now` is epoch seconds,
    for a `retry_after` group.
    """
    if output_format == "claude-json":
        found = _claude(lines)
        if found is not None:
            return found
    rule = rule or {}
    pattern = rule.get("output_pattern")
    match = _search(re.compile(pattern), lines) if pattern else None
    if match is not None:
        return RateLimitSignal(f"output matched {pattern!r}: {match.group(0)[:200]}", _reset_of(match, now))
    if exit_code is not None and exit_code in (rule.get("exit_codes") or ()):
        return RateLimitSignal(f"exit status {exit_code} means a rate limit (runner.rate_limit.exit_codes)")
    return None


def _claude(lines: Sequence[str]) -> RateLimitSignal | None:
    for line in reversed(lines):
        obj = _json(line)
        if obj is None:
            continue
        if obj.get("type") == "rate_limit_event":
            raw = obj.get("rate_limit_info")
            info = raw if isinstance(raw, dict) else {}
            status = str(info.get("status", ""))
            if status and status not in ALLOWED_STATUSES:
                kind = info.get("rateLimitType") or "rate"
                return RateLimitSignal(f"claude {kind} limit {status}", _epoch(info.get("resetsAt")))
        elif obj.get("type") == "result" or ("is_error" in obj and "result" in obj):
            text = str(obj.get("result") or "")
            reset = _CLAUDE_RESET.search(text)
            if obj.get("api_error_status") == 429:
                return RateLimitSignal("claude reported API status 429", _epoch(reset.group(1)) if reset else None)
            if obj.get("is_error") and _CLAUDE_TEXT.search(text):
                return RateLimitSignal(f"claude reported: {text[:200]}", _epoch(reset.group(1)) if reset else None)
    return None


def _json(line: str) -> dict | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _search(pattern: re.Pattern, lines: Sequence[str]) -> re.Match | None:
    for line in reversed(lines):
        match = pattern.search(line)
        if match is not None:
            return match
    return None


def _reset_of(match: re.Match, now: float) -> float | None:
    groups = match.groupdict()
    if groups.get("retry_after"):
        try:
            return now + max(0.0, float(groups["retry_after"]))
        except ValueError:
            return None
    if groups.get("reset"):
        return _epoch(groups["reset"])
    return None


def _epoch(value: Any) -> float | None:
    """Epoch seconds from seconds, milliseconds or an ISO 8601 time; None when unreadable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        try:
            parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.timestamp() if parsed.tzinfo else None
    if number <= 0:
        return None
    return number / 1000 if number >= _EPOCH_MS else number
