"""Claude Code's output, as captured from several versions, for the reader's tests and tests/fake_claude.py.

Each shape follows a published capture or type definition; the values (ids, costs, texts) are ours.
Where each comes from:

[P]   hrntknr/claude-code-protocol, protocol.go and docs/98_error.md: messages captured from
      `claude -p --output-format stream-json --verbose` 2.1.x against a stub API: system/init (cwd,
      session_id, tools, mcp_servers, model, permissionMode, apiKeySource, claude_code_version,
      fast_mode_state), assistant text / tool_use / thinking blocks, user tool_result blocks,
      result/success (permission_denials always present), result/error_during_execution and
      result/error_max_turns, both with `is_error: false` and `errors: []`.
[SDK] anthropics/claude-agent-sdk-python: src/claude_agent_sdk/types.py (ResultMessage.errors,
      api_error_status "emitted by the CLI since v2.1.110" when is_error and subtype success,
      terminal_reason completed|max_turns|aborted_*; AssistantMessage.error authentication_failed|
      billing_error|rate_limit|invalid_request|server_error|unknown; RateLimitInfo status allowed|
      allowed_warning|rejected, resetsAt, rateLimitType), tests/test_query.py (error_max_turns with
      errors ["Reached maximum number of turns (60)"] and is_error true; an API failure as subtype
      success, errors [], result "API Error: Stream idle timeout - no chunks received",
      terminal_reason api_error; api_error_status 529 with result ""), tests/test_message_parser.py
      (assistant error authentication_failed with text "Invalid API key · Fix external API key" and
      model "<synthetic>"; error "unknown" with 'API Error: 500 {...api_error...}'),
      tests/test_rate_limit_event_repro.py (rate_limit_event, CLI 2.1.45+), e2e-tests/
      test_error_results.py (a bad model: subtype success, is_error true, errors [], the API's
      prose in result, terminal_reason api_error).
[CC]  anthropics/claude-code issues: #38673 (2.1.83 stream with init, rate_limit_event allowed
      five_hour, result success), #79500 (2.1.49: "API Error: Rate limit reached" as subtype success
      + is_error true, exit 0), #84784 and open-horizon-labs/superego#20 (`--output-format json`
      with verbose on prints one JSON array: system hook_response messages, init, ..., result),
      #733 (0.2.x `--verbose --json --print`: a pretty-printed array of role-keyed messages),
      #41120 and #50229 (a bad model: 404 not_found_error "model '…' not found"; "There's an issue
      with the selected model (…). It may not exist or you may not have access to it."), #6119
      (1.0.x: "Claude AI usage limit reached|1755615600"), #35540 (401 auth failures, 500s).
[ACT] anthropics/claude-code-action #366 (mid-2025 result: error_during_execution, is_error false,
      num_turns 0, total_cost_usd 0.657…) and #823 (error_max_turns with empty `errors`).
[OLD] Before 1.0.22 the result's cost was `cost_usd` ({"type":"result","subtype":"success",
      "cost_usd":0.003,"is_error":false,"duration_ms":…,"duration_api_ms":…,"num_turns":1,
      "result":"…","session_id":"…"}); claude-code CHANGELOG 1.0.22 "Renamed total_cost to
      total_cost_usd", claude-agent-sdk-python PR #41.
[CLI] Claude Code's own refusals, printed as plain text before any JSON: "Error: When using
      --print, --output-format=stream-json requires --verbose" (2.1.x, nullclaw/nullclaw#125).
[HK]  openclaw/openclaw#136498: result success with terminal_reason hook_stopped and result "".
"""

from __future__ import annotations

import json
from typing import Any

SESSION = "6f1c2a8e-93b4-4d0a-9c1e-2b7d5e4f8a10"
MODEL = "claude-sonnet-4-5-20250929"
RESET_AT = 1_774_447_200  # 2026-03-25 14:00:00 UTC


def dump(*messages: dict[str, Any]) -> list[str]:
    """Stream-json: one compact JSON message per line."""
    return [json.dumps(m, separators=(",", ":"), ensure_ascii=False) for m in messages]


def init(*, session: str = SESSION, model: str = MODEL, version: str = "2.1.37") -> dict[str, Any]:  # [P]
    return {
        "type": "system",
        "subtype": "init",
        "cwd": "/work/repo",
        "session_id": session,
        "tools": ["Bash", "Read", "Write", "Edit", "Glob", "Grep"],
        "mcp_servers": [{"name": "github", "status": "connected"}, {"name": "atlassian", "status": "failed"}],
        "model": model,
        "permissionMode": "bypassPermissions",
        "slash_commands": [],
        "apiKeySource": "ANTHROPIC_API_KEY",
        "claude_code_version": version,
        "output_style": "default",
        "agents": [],
        "skills": [],
        "plugins": [],
        "uuid": "0b6a1f3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
        "fast_mode_state": "off",
    }


def assistant(*blocks: dict[str, Any], model: str = MODEL, error: str | None = None) -> dict[str, Any]:  # [P][SDK]
    message = {
        "type": "assistant",
        "message": {
            "content": list(blocks),
            "id": "msg_01",
            "model": model,
            "role": "assistant",
            "stop_reason": None,
            "stop_sequence": None,
            "type": "message",
            "usage": {"input_tokens": 10, "output_tokens": 1},
        },
        "parent_tool_use_id": None,
        "session_id": SESSION,
        "uuid": "9c1e2b7d-5e4f-4a10-8a9b-6f1c2a8e93b4",
    }
    if error is not None:
        message["error"] = error
    return message


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(name: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": "toolu_01", "name": name, "input": arguments}


def thinking(value: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": value, "signature": ""}


def tool_result(output: Any, *, is_error: bool = False) -> dict[str, Any]:  # [P]
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": "toolu_01", "content": output}
    if is_error:
        block["is_error"] = True
    return {
        "type": "user",
        "message": {"role": "user", "content": [block]},
        "parent_tool_use_id": None,
        "session_id": SESSION,
        "uuid": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
        "tool_use_result": {},
    }


def rate_limit_event(status: str, *, resets_at: int | None = RESET_AT, kind: str = "five_hour", **more: Any) -> dict:
    """[SDK][CC #38673]"""
    info: dict[str, Any] = {"status": status, "rateLimitType": kind, **more}
    if resets_at is not None:
        info["resetsAt"] = resets_at
    return {
        "type": "rate_limit_event",
        "rate_limit_info": info,
        "uuid": "76258cfb-0dc8-4d4b-8682-77082b59c03f",
        "session_id": SESSION,
    }


def result(subtype: str = "success", *, is_error: bool = False, **fields: Any) -> dict[str, Any]:  # [P][SDK]
    base = {
        "type": "result",
        "subtype": subtype,
        "is_error": is_error,
        "duration_ms": 48_213,
        "duration_api_ms": 41_007,
        "num_turns": 7,
        "session_id": SESSION,
        "total_cost_usd": 0.4128,
        "usage": {"input_tokens": 1_204, "output_tokens": 3_310},
        "modelUsage": {MODEL: {"costUSD": 0.4128}},
        "permission_denials": [],
        "uuid": "2b7d5e4f-8a10-4c1e-9a9b-6f1c2a8e93b4",
    }
    return base | fields


def api_error(status: int | None, prose: str, **fields: Any) -> dict[str, Any]:
    """An API failure as Claude Code reports it: subtype success, is_error true, the prose in `result`,
    `api_error_status` from 2.1.110 on (None before). [SDK][CC #79500]"""
    extra = {"api_error_status": status} if status is not None else {}
    return result(
        "success",
        is_error=True,
        result=prose,
        errors=[],
        terminal_reason="api_error",
        num_turns=1,
        total_cost_usd=0,
        duration_api_ms=0,
        stop_reason="stop_sequence",
        **extra | fields,
    )


# --- whole runs -----------------------------------------------------------------------------------

SUCCESS_STREAM = dump(  # a run with every block kind: [P]
    init(),
    assistant(thinking("The failing test is in test_login.py; read it first.")),
    assistant(text("I'll look at the failing test.")),
    assistant(tool_use("Bash", command="pytest tests/test_login.py -q", description="Run the login tests")),
    tool_result("1 failed, 11 passed in 0.42s"),
    assistant(tool_use("Edit", file_path="/work/repo/app/login.py", old_string="==", new_string="!=")),
    tool_result([{"type": "text", "text": "The file /work/repo/app/login.py has been updated."}]),
    rate_limit_event("allowed_warning", utilization=0.91),
    result(result="Fixed the inverted comparison in login.py; all 12 tests pass."),
)

# 2.1.83: init with a 1M-context model name, a rate_limit_event, and an empty `result`. [CC #38673]
EMPTY_RESULT_STREAM = dump(
    init(model="claude-opus-4-6[1m]", version="2.1.83"),
    assistant(text("\n\nHello."), model="claude-opus-4-6"),
    rate_limit_event(
        "allowed", overageStatus="rejected", overageDisabledReason="org_level_disabled", isUsingOverage=False
    ),
    {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 4086,
        "num_turns": 1,
        "result": "",
        "stop_reason": "end_turn",
        "session_id": SESSION,
        "total_cost_usd": 0.024,
        "usage": {"input_tokens": 3, "output_tokens": 6},
    },
)

# Newer CLI: is_error true, errors name the limit, terminal_reason max_turns, no `result`. [SDK]
MAX_TURNS_STREAM = dump(
    init(),
    assistant(tool_use("Bash", command="ls -la")),
    tool_result("total 0"),
    result(
        "error_max_turns",
        is_error=True,
        num_turns=3,
        terminal_reason="max_turns",
        errors=["Reached maximum number of turns (3)"],
    ),
)

# Older CLI: is_error false and errors empty; only the subtype says it. [P][ACT #823]
MAX_TURNS_BARE = dump(result("error_max_turns", is_error=False, num_turns=2, stop_reason=None, errors=[]))

ERROR_DURING_EXECUTION = dump(  # errors name what went wrong [SDK test_message_parser]
    result(
        "error_during_execution",
        is_error=True,
        num_turns=3,
        errors=["Tool execution failed: connection error", "Unable to write to /etc/hosts"],
    ),
)

ERROR_DURING_EXECUTION_BARE = dump(  # is_error false, nothing said [ACT #366][P]
    result("error_during_execution", is_error=False, num_turns=0, total_cost_usd=0.6571631500000001, errors=[]),
)

BAD_MODEL = dump(  # 404 [SDK e2e][CC #41120 #50229]
    init(model="claude-nonexistent-model"),
    assistant(
        text(
            "There's an issue with the selected model (claude-nonexistent-model). It may not exist or you "
            "may not have access to it. Run /model to pick a different model."
        ),
        model="<synthetic>",
        error="unknown",
    ),
    api_error(
        404,
        "There's an issue with the selected model (claude-nonexistent-model). It may not exist or you may "
        "not have access to it. Run /model to pick a different model.",
    ),
)

BAD_MODEL_BEFORE_STATUS = dump(  # before 2.1.110: no api_error_status, the status only in the prose [CC #41120]
    api_error(
        None,
        'API Error: 404 {"type":"error","error":{"type":"not_found_error","message":"model '
        '\'claude-haiku-4-5-20251001\' not found"},"request_id":"req_f8e3e09c9db9db59aa1f846a"}',
    ),
)

AUTH_FAILED = dump(  # 401 [SDK test_message_parser]
    init(),
    assistant(text("Invalid API key · Fix external API key"), model="<synthetic>", error="authentication_failed"),
    api_error(401, "Invalid API key · Fix external API key"),
)

AUTH_FAILED_ASSISTANT_ONLY = dump(  # the error only on the assistant message, no result yet [SDK]
    init(),
    assistant(text("Invalid API key · Please run /login"), model="<synthetic>", error="authentication_failed"),
)

RATE_LIMITED_429 = dump(  # 429 with the limit's reset from the rate_limit_event [SDK][CC #38673]
    init(),
    rate_limit_event(
        "rejected",
        resets_at=RESET_AT,
        kind="five_hour",
        overageStatus="rejected",
        overageDisabledReason="out_of_credits",
        isUsingOverage=False,
    ),
    api_error(429, "API Error: Rate limit reached"),
)

RATE_LIMITED_BEFORE_STATUS = dump(  # 2.1.49: no status, exit 0, "success" [CC #79500]
    api_error(None, "API Error: Rate limit reached"),
)

OVERLOADED_529 = dump(  # [SDK test_query: api_error_status 529, result ""]
    init(),
    api_error(529, ""),
)

OVERLOADED_PROSE = dump(  # the overload in words, before api_error_status [CC #35540]
    api_error(None, 'API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'),
)

SERVER_ERROR_500 = dump(  # [SDK test_message_parser: error "unknown", 'API Error: 500 {...}']
    assistant(
        text('API Error: 500 {"type":"error","error":{"type":"api_error","message":"Internal server error"}}'),
        model="<synthetic>",
        error="unknown",
    ),
    api_error(500, 'API Error: 500 {"type":"error","error":{"type":"api_error","message":"Internal server error"}}'),
)

NETWORK_IDLE = dump(api_error(None, "API Error: Stream idle timeout - no chunks received"))  # [SDK test_query]

PERMISSION_DENIED = dump(  # Claude was refused a tool and gave up [P permission_denials][SDK]
    result(
        "error_during_execution",
        is_error=True,
        num_turns=2,
        errors=[],
        permission_denials=[
            {"tool_name": "Bash", "tool_use_id": "toolu_01", "tool_input": {"command": "rm -rf /"}},
            {"tool_name": "Write", "tool_use_id": "toolu_02", "tool_input": {"file_path": "/x"}},
        ],
    ),
)

HOOK_STOPPED = dump(  # [HK] a success: a hook ended the loop
    result("success", result="", stop_reason="tool_use", terminal_reason="hook_stopped", num_turns=4),
)

# `--output-format json` without --verbose: the result object alone (2.x) [SDK][CC #38706]
JSON_RESULT = [json.dumps(result(result="Done: 3 files changed."), separators=(",", ":"))]

# Before 1.0.22: `cost_usd`, and no modelUsage [OLD]
JSON_RESULT_OLD = [
    '{"type":"result","subtype":"success","cost_usd":0.003,"is_error":false,"duration_ms":5443,'
    '"duration_api_ms":3709,"num_turns":1,"result":"ok","session_id":"abc-123-def"}'
]

# `--output-format json --verbose`: one array on one line, hook messages first [CC #84784][superego#20]
VERBOSE_JSON_ARRAY = [
    json.dumps(
        [
            {
                "type": "system",
                "subtype": "hook_response",
                "session_id": SESSION,
                "uuid": "34e3c90d",
                "hook_name": "SessionStart:Callback",
                "hook_event": "SessionStart",
                "stdout": "",
                "stderr": "",
            },
            init(model="claude-opus-4-5-20251101", version="2.0.76"),
            assistant(text("Hi!"), model="claude-opus-4-5-20251101"),
            result(result="Hi!", num_turns=1, total_cost_usd=0.0215),
        ],
        separators=(",", ":"),
    )
]

# The same pretty-printed over many lines, as a `--verbose` error run [CC #84784]
VERBOSE_JSON_PRETTY = json.dumps(
    [
        init(),
        assistant(tool_use("Bash", command="make test")),
        tool_result("make: *** [test] Error 2", is_error=True),
        result(
            "error_max_turns",
            is_error=True,
            num_turns=1,
            terminal_reason="max_turns",
            errors=["Reached maximum number of turns (1)"],
        ),
    ],
    indent=2,
).splitlines()

# 0.2.x `--verbose --json --print`: a pretty-printed array of role-keyed messages [CC #733]
ROLE_KEYED_ARRAY = json.dumps(
    [
        {"role": "user", "content": "say hello!"},
        {
            "id": "msg_01Xx",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-7-sonnet-20250219",
            "content": [{"type": "text", "text": "Hello!"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 4, "output_tokens": 5},
        },
        {"role": "system", "content": "Total cost: $0.0029"},
        {
            "type": "result",
            "subtype": "success",
            "cost_usd": 0.0029,
            "is_error": False,
            "duration_ms": 2100,
            "duration_api_ms": 1900,
            "num_turns": 1,
            "result": "Hello!",
            "session_id": SESSION,
        },
    ],
    indent=2,
).splitlines()

USAGE_LIMIT_TEXT = ["Claude AI usage limit reached|1755615600"]  # 1.0.x plain text [CC #6119]
WRONG_FLAGS_TEXT = ["Error: When using --print, --output-format=stream-json requires --verbose"]  # [CLI]
INVALID_KEY_TEXT = ["Invalid API key · Please run /login"]  # text mode [CC #1665]
