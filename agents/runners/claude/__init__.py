"""Reading Claude Code's output: what happened, what it cost, whether another attempt can help, and
readable progress text.

Claude Code (`claude -p PROMPT`) prints one of:
- `--output-format stream-json --verbose`: one JSON message per line. `system`/`init` (session_id,
  model, tools, cwd, apiKeySource, claude_code_version), `assistant` and `user` messages whose
  `message.content` holds `text`, `thinking`, `tool_use` and `tool_result` blocks, `rate_limit_event`
  lines (`rate_limit_info`: status allowed|allowed_warning|rejected, resetsAt, rateLimitType), and a
  last `result` message.
- `--output-format json`: the `result` message alone; with `--verbose` (or `viewMode: verbose` in the
  user's settings) one JSON array of every message instead, on one line or pretty-printed.

The `result` message: type, subtype (success, error_max_turns, error_during_execution,
error_max_budget_usd, error_max_structured_output_retries), is_error, result (absent on error
subtypes), session_id, total_cost_usd (`cost_usd` before 1.0.22), num_turns, duration_ms,
duration_api_ms, usage, modelUsage, permission_denials, errors, terminal_reason, api_error_status
(since 2.1.110). An API failure is reported as subtype `success` with `is_error: true`; an
`error_max_turns` result has no `result`, and older versions leave `errors` empty and `is_error`
false. tests/claude_fixtures.py holds examples of each shape and says where each comes from.

All of it is pure: no Django, no I/O, no clock unless asked.
"""

from __future__ import annotations

from agents.runners.claude.messages import cost, find_result, messages
from agents.runners.claude.progress import describe, progress_lines, readable
from agents.runners.claude.reading import (
    OK,
    PERMANENT,
    RATE_LIMITED,
    TRANSIENT,
    ClaudeReading,
    RateLimit,
    read_output,
)

__all__ = [
    "OK",
    "PERMANENT",
    "RATE_LIMITED",
    "TRANSIENT",
    "ClaudeReading",
    "RateLimit",
    "cost",
    "describe",
    "find_result",
    "messages",
    "progress_lines",
    "read_output",
    "readable",
]
