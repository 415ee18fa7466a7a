"""Claude Code's messages as readable progress text: `[tool Bash] ls -la`, never raw JSON."""

from __future__ import annotations

import json
from typing import Any

from agents.runners.claude.messages import as_text, content_of, kind_of, texts_of
from agents.runners.claude.reading import rate_limit_of, read_result

RESULT_LIMIT = 500  # characters of a result shown
DETAIL_LIMIT = 200  # characters of thinking, a prompt, a tool's input or output shown
QUIET_TYPES = {"stream_event", "control_request", "control_response", "control_cancel_request", "keep_alive"}
# The argument that says what a tool call does: Bash's command, Read's file, Grep's pattern, Task's description.
TOOL_SUMMARY_KEYS = (
    "command",
    "file_path",
    "notebook_path",
    "pattern",
    "url",
    "query",
    "description",
    "prompt",
    "path",
    "skill",
)


def readable(line: str) -> str | None:
    """A line of output as a person wants it in a progress view; None when it carries nothing to show
    (stream deltas, control messages, hooks that went well, an empty assistant message).

    Claude Code's messages become text; a one-line array of messages becomes their texts on separate
    lines. Plain text, broken JSON and other programs' JSON pass through unchanged.
    """
    parts = _readable_parts(line)
    return "\n".join(parts) if parts else None


def progress_lines(lines: list[str]) -> list[str]:
    """`readable` over a batch of output lines, one entry per message, the silent ones left out. A
    JSON document printed over several lines of the batch (pretty-printed `--output-format json
    --verbose`) is read whole."""
    document = _whole_document(lines)
    if document is not None:
        return [text for message in document if (text := describe(message))]
    shown: list[str] = []
    for line in lines:
        shown.extend(_readable_parts(line))
    return shown


def _readable_parts(line: str) -> list[str]:
    stripped = line.strip()
    if not stripped or stripped[0] not in "[{":
        return [line]
    try:
        value = json.loads(stripped)
    except ValueError:
        return [line]
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, dict) and kind_of(item) for item in items):
        return [line]  # some other program's JSON: shown as it is
    return [text for item in items if (text := describe(item))]


def _whole_document(lines: list[str]) -> list[dict[str, Any]] | None:
    if len(lines) < 2:
        return None
    first = next((line.strip() for line in lines if line.strip()), "")
    if first not in ("[", "{") and not first.startswith(("[{", '{"')):
        return None
    try:
        value = json.loads("\n".join(lines))
    except ValueError:
        return None
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, dict) and kind_of(item) for item in items):
        return None
    return items


def describe(message: dict[str, Any]) -> str | None:
    """One Claude Code message in words, or None when it has nothing to show."""
    kind = kind_of(message)
    if kind == "system":
        return _describe_system(message)
    if kind == "assistant":
        prefix = f"[error {message['error']}] " if message.get("error") else ""
        return _describe_content(content_of(message), prefix=prefix)
    if kind == "user":
        content = content_of(message)
        if isinstance(content, str):
            return f"[prompt] {short(content, DETAIL_LIMIT)}" if content.strip() else None
        return _describe_content(content)
    if kind == "result":
        reading = read_result(message)
        return f"[result] {reading.error if reading.failed else (reading.result or '')[:RESULT_LIMIT]}".rstrip()
    if kind == "rate_limit_event":
        return _describe_rate_limit(message)
    if kind in QUIET_TYPES:
        return None
    if kind == "tool_progress":
        return f"[tool {message.get('tool_name') or '?'}] running for {message.get('elapsed_time_seconds', '?')}s"
    if kind == "auth_status":
        return f"[auth] {short(' '.join(str(o) for o in message.get('output') or []), DETAIL_LIMIT) or 'signing in'}"
    return f"[{kind}]"


def _describe_system(message: dict[str, Any]) -> str | None:
    subtype = as_text(message.get("subtype"))
    if subtype == "init":
        listed = message.get("tools")
        tools = listed if isinstance(listed, list) else []
        text = (
            f"[init] session {message.get('session_id') or '?'} started, model {message.get('model') or '?'}, "
            f"{len(tools)} tools"
        )
        if message.get("claude_code_version"):
            text += f" (Claude Code {message['claude_code_version']})"
        mcp = message.get("mcp_servers")
        servers = mcp if isinstance(mcp, list) else []
        failed = [str(s.get("name")) for s in servers if isinstance(s, dict) and s.get("status") == "failed"]
        if failed:
            text += f"; MCP servers failed: {', '.join(failed)}"
        return text
    if subtype in ("hook_started", "hook_progress", "hook_response"):
        went_wrong = message.get("outcome") == "error" or message.get("exit_code") not in (None, 0)
        if subtype != "hook_response" or not went_wrong:
            return None  # a hook that ran well is noise in a progress view
        stderr = short(as_text(message.get("stderr")), DETAIL_LIMIT)
        return f"[hook {message.get('hook_name') or '?'}] failed" + (f": {stderr}" if stderr else "")
    if subtype == "status":
        return f"[status] {message['status']}" if message.get("status") else None
    if subtype == "compact_boundary":
        return "[compacted the conversation]"
    if subtype == "api_retry":
        return (
            f"[retry] API error {message.get('error_status') or message.get('error') or '?'}, attempt "
            f"{message.get('attempt', '?')} of {message.get('max_retries', '?')}"
        )
    said = short(" ".join(texts_of(content_of(message))), DETAIL_LIMIT)  # 0.2.x: {"role": "system", "content": …}
    return f"[system{' ' + subtype if subtype else ''}]" + (f" {said}" if said else "")


def _describe_content(content: Any, *, prefix: str = "") -> str | None:
    if isinstance(content, str):
        return (prefix + content.strip()) if content.strip() else None
    if not isinstance(content, list):
        return None
    parts = [text for block in content if isinstance(block, dict) and (text := _describe_block(block))]
    return (prefix + " ".join(parts)) if parts else None


def _describe_block(block: dict[str, Any]) -> str | None:
    kind = block.get("type")
    if kind == "text":
        return as_text(block.get("text")).strip() or None
    if kind == "thinking":
        return f"[thinking] {short(as_text(block.get('thinking')), DETAIL_LIMIT)}"
    if kind == "redacted_thinking":
        return "[thinking]"
    if kind in ("tool_use", "server_tool_use"):
        summary = _tool_input(block.get("name"), block.get("input"))
        return f"[tool {block.get('name') or '?'}]" + (f" {summary}" if summary else "")
    if kind in ("tool_result", "advisor_tool_result", "web_search_tool_result"):
        label = "[tool error]" if block.get("is_error") else "[tool result]"
        output = short(" ".join(texts_of(block.get("content"))), DETAIL_LIMIT)
        return f"{label} {output}" if output else label
    if kind == "image":
        return "[image]"
    return None


def _tool_input(name: Any, data: Any) -> str:
    if not isinstance(data, dict):
        return ""
    if name == "TodoWrite" and isinstance(data.get("todos"), list):
        return f"{len(data['todos'])} todos"
    for key in TOOL_SUMMARY_KEYS:
        if isinstance(data.get(key), str) and data[key].strip():
            return short(data[key], DETAIL_LIMIT)
    pairs = [f"{k}={short(v if isinstance(v, str) else json.dumps(v), 40)}" for k, v in data.items()]
    return short(", ".join(pairs), DETAIL_LIMIT)


def _describe_rate_limit(message: dict[str, Any]) -> str:
    limit = rate_limit_of(message.get("rate_limit_info"))
    if limit is None:
        return "[rate limit]"
    text = f"[rate limit] {limit.status}"
    if limit.limit_type:
        text += f" ({limit.limit_type})"
    if limit.utilization is not None:
        text += f", {limit.utilization:.0%} used"
    if limit.resets_at is not None:
        text += f", resets {limit.resets_at:%Y-%m-%d %H:%M} UTC"
    return text


def short(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters, with an ellipsis where it was cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
