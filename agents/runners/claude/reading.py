"""What one run of Claude Code did, what it cost, and whether another attempt can help."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from agents.runners.claude.messages import as_int, as_text, content_of, cost, kind_of, messages, texts_of

OK = "ok"
PERMANENT = "permanent"  # another attempt cannot help: bad model, authentication, turn limit, configuration
TRANSIENT = "transient"  # overload, 5xx, network: try again after a backoff
RATE_LIMITED = "rate_limited"  # 429 or a usage limit: wait for the reset, then try again

# A loop that ended so did not finish its work, whatever the subtype says (hook_stopped, aborted_* did).
FAILURE_REASONS = {"max_turns", "api_error"}
ERROR_DETAIL_LIMIT = 500  # characters of Claude's own words kept in an error

STATUS_LABELS = {
    400: "invalid request",
    401: "authentication failed",
    402: "billing error",
    403: "permission denied",
    404: "model not found or not available",
    408: "request timed out",
    413: "request too large",
    429: "rate limited",
    500: "API server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
    529: "API overloaded",
}
# The `error` on an assistant message that Claude Code made out of an API failure.
ASSISTANT_ERROR_STATUS = {
    "authentication_failed": 401,
    "billing_error": 402,
    "rate_limit": 429,
    "invalid_request": 400,
    "server_error": 500,
}

API_ERROR_STATUS = re.compile(r"API Error:?\s*(\d{3})\b")
USAGE_LIMIT_RESET = re.compile(r"usage limit reached\|(\d{9,11})")  # "Claude AI usage limit reached|1755615600"
RETRY_AFTER = re.compile(r"retry[- ]after\W{0,3}(\d+(?:\.\d+)?)", re.IGNORECASE)
# (pattern, classification, headline, also trusted in plain text). The first match wins:
# "You've hit your limit … /login to switch to an API usage-billed account" is a limit, not a login.
TEXT_CAUSES: list[tuple[re.Pattern[str], str, str, bool]] = [
    (
        re.compile(
            r"rate[ _-]?limit(?:ed|_error| reached| exceeded)|usage limit|hit your limit|too many requests", re.I
        ),
        RATE_LIMITED,
        "claude is rate limited",
        True,
    ),
    (
        re.compile(
            r"invalid api key|authentication[_ ](?:error|failed)|could not resolve authentication|run /login|"
            r"oauth token|not logged in|x-api-key|\bunauthori[sz]ed\b",
            re.I,
        ),
        PERMANENT,
        "claude could not authenticate",
        True,
    ),
    (re.compile(r"credit balance is too low|billing_error", re.I), PERMANENT, "claude's account cannot pay", True),
    (
        re.compile(
            r"issue with the selected model|not_found_error|model\W.{0,80}(?:not (?:be )?found|may not exist)|"
            r"invalid model",
            re.I,
        ),
        PERMANENT,
        "claude's model is not available",
        True,
    ),
    (
        re.compile(r"prompt is too long|context (?:window|length) exceeded", re.I),
        PERMANENT,
        "the prompt is too long for the model",
        True,
    ),
    (
        re.compile(r"requires --verbose|--verbose must be used|unknown option|error: option|allowed choices are", re.I),
        PERMANENT,
        "claude was started with a wrong configuration",
        True,
    ),
    (re.compile(r"overloaded", re.I), TRANSIENT, "the API is overloaded", False),
    (
        re.compile(r"internal server error|server_error|service unavailable|bad gateway", re.I),
        TRANSIENT,
        "the API failed",
        False,
    ),
    (
        re.compile(
            r"connection error|econnreset|econnrefused|etimedout|enotfound|eai_again|socket hang up|"
            r"fetch failed|network error|stream idle timeout|request timed out",
            re.I,
        ),
        TRANSIENT,
        "claude lost its connection to the API",
        False,
    ),
]


@dataclass(frozen=True)
class RateLimit:
    """What Claude Code last said about its rate limit: `rejected` means the limit is hit."""

    status: str  # allowed | allowed_warning | rejected
    resets_at: datetime | None = None
    limit_type: str = ""  # five_hour, seven_day, seven_day_opus, overage, ...
    utilization: float | None = None


@dataclass
class ClaudeReading:
    """One run of Claude Code as its output tells it; `classification` says what to do next."""

    session_id: str = ""
    model: str = ""
    cost_usd: Decimal | None = None
    num_turns: int | None = None
    duration_ms: int | None = None
    duration_api_ms: int | None = None
    is_error: bool = False
    subtype: str = ""
    result: str | None = None
    error: str = ""  # why it failed, in words that name the cause; empty when it did not fail
    classification: str = OK
    api_error_status: int | None = None
    terminal_reason: str = ""
    errors: tuple[str, ...] = ()
    permission_denials: tuple[str, ...] = ()  # names of the tools Claude was refused
    rate_limit: RateLimit | None = None
    retry_after: float | None = None  # seconds until a hit limit resets, when known
    finished: bool = False  # a result message was read

    @property
    def failed(self) -> bool:
        return self.classification != OK

    def extra(self) -> dict[str, Any]:
        """The classification and what a rate-limit pause needs, JSON-ready."""
        extra: dict[str, Any] = {"classification": self.classification}
        if self.api_error_status is not None:
            extra["api_error_status"] = self.api_error_status
        if self.retry_after is not None:
            extra["retry_after"] = self.retry_after
        if self.terminal_reason:
            extra["terminal_reason"] = self.terminal_reason
        if self.rate_limit is not None:
            resets_at = self.rate_limit.resets_at
            extra["rate_limit"] = {
                "status": self.rate_limit.status,
                "type": self.rate_limit.limit_type,
                "resets_at": resets_at.isoformat() if resets_at else None,
            }
        return extra


def read_output(lines: list[str], *, now: float | None = None) -> ClaudeReading | None:
    """What Claude Code's output says about the run, or None when it is not Claude Code's output.

    `lines` are stream-json lines or the document `--output-format json` prints (an object, or with
    `--verbose` an array, on one line or pretty-printed). Plain text is read only for Claude Code's
    own failure lines (a wrong flag, an invalid API key, a usage limit, `API Error: 529`). `now`
    (epoch seconds, default the clock) turns a hit limit's reset time into `retry_after`.
    """
    now = time.time() if now is None else now
    found = messages(lines)
    if not found:
        return _read_plain_text(lines, now=now)
    reading = ClaudeReading()
    assistant_error: tuple[str, str] | None = None  # the last assistant message's (error kind, text)
    result: dict[str, Any] | None = None
    for message in found:
        kind = kind_of(message)
        reading.session_id = as_text(message.get("session_id")) or reading.session_id
        if kind == "system" and message.get("subtype") == "init":
            reading.model = as_text(message.get("model")) or reading.model
        elif kind == "assistant":
            inner = message["message"] if isinstance(message.get("message"), dict) else message
            model = as_text(inner.get("model"))
            if model and not model.startswith("<") and not reading.model:  # "<synthetic>": an error turned to text
                reading.model = model
            if message.get("error"):
                assistant_error = (str(message["error"]), " ".join(texts_of(content_of(message))))
        elif kind == "rate_limit_event":
            reading.rate_limit = rate_limit_of(message.get("rate_limit_info")) or reading.rate_limit
        elif kind == "result":
            result = message
    if result is not None:
        _read_result(reading, result)
    _judge(reading, assistant_error)
    _wait_for_limit(reading, now=now)
    return reading


def read_result(message: dict[str, Any]) -> ClaudeReading:
    """A result message alone, judged: for showing one in progress."""
    reading = ClaudeReading()
    _read_result(reading, message)
    _judge(reading, None)
    return reading


def _read_result(reading: ClaudeReading, result: dict[str, Any]) -> None:
    reading.finished = True
    reading.session_id = as_text(result.get("session_id")) or reading.session_id
    reading.subtype = as_text(result.get("subtype"))
    reading.is_error = result.get("is_error") is True
    reading.result = result["result"] if isinstance(result.get("result"), str) else None
    # total_cost_usd since 1.0.22; cost_usd in the CLI's JSON and total_cost in the SDK before
    costs = (cost(result.get(key)) for key in ("total_cost_usd", "cost_usd", "total_cost"))
    reading.cost_usd = next((c for c in costs if c is not None), None)
    reading.num_turns = as_int(result.get("num_turns"))
    reading.duration_ms = as_int(result.get("duration_ms"))
    reading.duration_api_ms = as_int(result.get("duration_api_ms"))
    reading.api_error_status = as_int(result.get("api_error_status"))
    reading.terminal_reason = as_text(result.get("terminal_reason"))
    reading.errors = tuple(str(e) for e in result.get("errors") or [] if str(e).strip())
    denials = result.get("permission_denials") or []
    reading.permission_denials = tuple(str(d.get("tool_name")) for d in denials if isinstance(d, dict))
    if not reading.model and isinstance(result.get("modelUsage"), dict) and result["modelUsage"]:
        reading.model = str(next(iter(result["modelUsage"])))


def _judge(reading: ClaudeReading, assistant_error: tuple[str, str] | None) -> None:
    """Set the classification and the error: why the run failed, naming the cause and Claude's words."""
    subtype, reason = reading.subtype, reading.terminal_reason
    failed = reading.is_error or subtype not in ("", "success") or reason in FAILURE_REASONS
    if reading.finished and not failed:
        reading.classification = OK
        return
    detail = "; ".join(reading.errors) or (reading.result or "").strip()
    if not detail and assistant_error:
        detail = assistant_error[1].strip()
    status = reading.api_error_status or _status_in(detail)
    if status is None and assistant_error:
        status = ASSISTANT_ERROR_STATUS.get(assistant_error[0])
    reading.api_error_status = status
    limit = reading.rate_limit
    if subtype == "error_max_turns" or reason == "max_turns":
        turns = "" if reading.num_turns is None else f" after {reading.num_turns} turn{'s' * (reading.num_turns != 1)}"
        classification, headline = PERMANENT, f"claude stopped at its turn limit{turns}"
    elif subtype == "error_max_budget_usd":
        classification, headline = PERMANENT, "claude stopped at its spending limit (--max-budget-usd)"
    elif subtype == "error_max_structured_output_retries":
        classification, headline = PERMANENT, "claude could not produce the requested structured output"
    elif status is not None:
        classification, headline = _status_class(status), _status_headline(status)
    elif (cause := _text_cause(detail, plain=False)) is not None:
        classification, headline = cause
    elif limit is not None and limit.status == "rejected":
        classification, headline = RATE_LIMITED, "claude is rate limited"
    elif reading.permission_denials:
        tools = ", ".join(dict.fromkeys(reading.permission_denials))
        classification, headline = PERMANENT, f"claude was refused permission for {tools}"
    elif not reading.finished:
        classification, headline = TRANSIENT, "claude ended without a result"
    elif subtype not in ("", "success"):
        classification, headline = TRANSIENT, f"claude reported {subtype}"
    else:
        classification, headline = TRANSIENT, "claude reported an error"
    if classification == RATE_LIMITED and (limit is None or limit.status != "rejected"):
        reading.rate_limit = RateLimit("rejected", _usage_limit_reset(detail), limit.limit_type if limit else "")
    reading.classification = classification
    if reason and reason != "completed" and not (reason == "api_error" and status is not None):
        headline += f" [terminal_reason: {reason}]"  # the API error's status says it already
    reading.error = f"{headline}: {detail[:ERROR_DETAIL_LIMIT]}" if detail else headline


def _wait_for_limit(reading: ClaudeReading, *, now: float) -> None:
    if reading.classification != RATE_LIMITED:
        return
    limit = reading.rate_limit
    if limit is not None and limit.status == "rejected" and limit.resets_at is not None:
        reading.retry_after = max(0.0, round(limit.resets_at.timestamp() - now, 3))
        return
    match = RETRY_AFTER.search(" ".join([reading.error, *reading.errors]))
    if match:
        reading.retry_after = float(match.group(1))


def _read_plain_text(lines: list[str], *, now: float) -> ClaudeReading | None:
    text = "\n".join(line.strip() for line in lines if line.strip())
    status = _status_in(text)
    cause = (_status_class(status), _status_headline(status)) if status is not None else _text_cause(text, plain=True)
    if cause is None:
        return None
    last = next(line.strip() for line in reversed(lines) if line.strip())
    reading = ClaudeReading(is_error=True, api_error_status=status, classification=cause[0])
    reading.error = f"{cause[1]}: {last[:ERROR_DETAIL_LIMIT]}"
    if reading.classification == RATE_LIMITED:
        reading.rate_limit = RateLimit("rejected", _usage_limit_reset(text))
    _wait_for_limit(reading, now=now)
    return reading


def _status_class(status: int) -> str:
    if status == 429:
        return RATE_LIMITED
    if status in (408, 409) or status >= 500:
        return TRANSIENT
    if 400 <= status < 500:
        return PERMANENT  # bad model, authentication, billing, a request refused: the same request fails again
    return TRANSIENT


def _status_headline(status: int) -> str:
    label = STATUS_LABELS.get(status) or ("API server error" if status >= 500 else "request refused")
    return f"claude API error {status} ({label})"


def _status_in(text: str) -> int | None:
    match = API_ERROR_STATUS.search(text)
    return int(match.group(1)) if match else None


def _text_cause(text: str, *, plain: bool) -> tuple[str, str] | None:
    for pattern, classification, headline, in_plain_text in TEXT_CAUSES:
        if (in_plain_text or not plain) and pattern.search(text):
            return classification, headline
    return None


def _usage_limit_reset(text: str) -> datetime | None:
    match = USAGE_LIMIT_RESET.search(text)
    return datetime.fromtimestamp(int(match.group(1)), tz=UTC) if match else None


def rate_limit_of(info: Any) -> RateLimit | None:
    """A `rate_limit_event`'s `rate_limit_info`, or None when it has no status."""
    if not isinstance(info, dict) or not isinstance(info.get("status"), str):
        return None
    resets = as_int(info.get("resetsAt"))
    utilization = info.get("utilization")
    return RateLimit(
        status=info["status"],
        resets_at=datetime.fromtimestamp(resets, tz=UTC) if resets and resets > 0 else None,
        limit_type=as_text(info.get("rateLimitType")),
        utilization=float(utilization) if isinstance(utilization, int | float) else None,
    )
