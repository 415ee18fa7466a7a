"""Claude Code's output as readable progress text, and a program's cost read from a field or a pattern."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from agents.runners import claude
from agents.runners.cost import cost_from_output
from tests import claude_fixtures as fixtures
from tests.claude_fixtures import assistant, dump, text, thinking, tool_result, tool_use

ALL_RUNS = [name for name in dir(fixtures) if name.isupper() and isinstance(getattr(fixtures, name), list)]


def shown(message: dict) -> str | None:
    return claude.readable(json.dumps(message))


# --- readable: one per message kind ---------------------------------------------------------------


def test_readable_init_names_session_model_and_tools():
    assert shown(fixtures.init()) == (
        f"[init] session {fixtures.SESSION} started, model {fixtures.MODEL}, 6 tools (Claude Code 2.1.37); "
        "MCP servers failed: atlassian"
    )


def test_readable_assistant_text_is_the_text():
    assert shown(assistant(text("  I'll run the tests.\n"))) == "I'll run the tests."


def test_readable_thinking_is_shortened_to_one_line():
    line = shown(assistant(thinking("Step one.\nStep two. " + "more " * 100)))

    assert line.startswith("[thinking] Step one. Step two. more more")
    assert len(line) == len("[thinking] ") + 200 and line.endswith("…") and "\n" not in line


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (tool_use("Bash", command="ls -la", description="List files"), "[tool Bash] ls -la"),
        (tool_use("Read", file_path="/work/repo/README.md"), "[tool Read] /work/repo/README.md"),
        (tool_use("Grep", pattern="def login", path="app"), "[tool Grep] def login"),
        (tool_use("WebFetch", url="https://example.com", prompt="summarise"), "[tool WebFetch] https://example.com"),
        (tool_use("TodoWrite", todos=[{"content": "a"}, {"content": "b"}]), "[tool TodoWrite] 2 todos"),
        (
            tool_use("mcp__github__create_issue", title="Bug", labels=["p1"]),
            '[tool mcp__github__create_issue] title=Bug, labels=["p1"]',
        ),
        (tool_use("ExitPlanMode"), "[tool ExitPlanMode]"),
    ],
)
def test_readable_tool_use_names_the_tool_and_what_it_does(block, expected):
    assert shown(assistant(block)) == expected


def test_readable_tool_result_is_shortened():
    line = shown(tool_result("line\n" * 100))

    assert line.startswith("[tool result] line line") and len(line) == len("[tool result] ") + 200


def test_readable_tool_result_blocks_and_errors():
    assert shown(tool_result([{"type": "text", "text": "updated"}, {"type": "image"}])) == "[tool result] updated"
    assert shown(tool_result("Exit code 2", is_error=True)) == "[tool error] Exit code 2"
    assert shown(tool_result("")) == "[tool result]"


def test_readable_assistant_error_says_so():
    line = shown(
        assistant(text("Invalid API key · Please run /login"), model="<synthetic>", error="authentication_failed")
    )

    assert line == "[error authentication_failed] Invalid API key · Please run /login"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (fixtures.result(result="All 12 tests pass"), "[result] All 12 tests pass"),
        (fixtures.result(result=""), "[result]"),
        (
            fixtures.result(
                "error_max_turns",
                is_error=True,
                num_turns=3,
                terminal_reason="max_turns",
                errors=["Reached maximum number of turns (3)"],
            ),
            "[result] claude stopped at its turn limit after 3 turns [terminal_reason: max_turns]: "
            "Reached maximum number of turns (3)",
        ),
        (fixtures.api_error(529, ""), "[result] claude API error 529 (API overloaded)"),
    ],
)
def test_readable_result_says_how_the_run_ended(message, expected):
    assert shown(message) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            fixtures.rate_limit_event("allowed_warning", utilization=0.85),
            "[rate limit] allowed_warning (five_hour), 85% used, resets 2026-03-25 14:00 UTC",
        ),
        (fixtures.rate_limit_event("rejected", resets_at=None, kind="seven_day"), "[rate limit] rejected (seven_day)"),
        ({"type": "rate_limit_event", "rate_limit_info": {}}, "[rate limit]"),
    ],
)
def test_readable_rate_limit_event(message, expected):
    assert shown(message) == expected


@pytest.mark.parametrize(
    "message",
    [
        {"type": "stream_event", "event": {"type": "content_block_delta", "delta": {"text": "Hel"}}},
        {"type": "control_request", "request_id": "r1", "request": {"subtype": "can_use_tool"}},
        {"type": "system", "subtype": "hook_started", "hook_name": "SessionStart:Callback"},
        {"type": "system", "subtype": "hook_response", "hook_name": "SessionStart:Callback", "exit_code": 0},
        {"type": "system", "subtype": "status", "status": None, "permissionMode": "plan"},
        assistant(),
        {"type": "assistant", "message": "just a string"},
    ],
    ids=["stream-delta", "control", "hook-started", "hook-ok", "status-null", "empty-assistant", "odd-assistant"],
)
def test_readable_messages_with_nothing_to_show_are_none(message):
    assert shown(message) is None


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            {
                "type": "system",
                "subtype": "hook_response",
                "hook_name": "PreToolUse:Bash",
                "exit_code": 2,
                "outcome": "error",
                "stderr": "blocked by policy\n",
            },
            "[hook PreToolUse:Bash] failed: blocked by policy",
        ),
        ({"type": "system", "subtype": "compact_boundary"}, "[compacted the conversation]"),
        (
            {"type": "system", "subtype": "api_retry", "attempt": 2, "max_retries": 10, "error_status": 529},
            "[retry] API error 529, attempt 2 of 10",
        ),
        ({"type": "system", "subtype": "mirror_error"}, "[system mirror_error]"),
        ({"type": "user", "message": {"role": "user", "content": "fix the login page"}}, "[prompt] fix the login page"),
        ({"type": "tool_progress", "tool_name": "Bash", "elapsed_time_seconds": 12}, "[tool Bash] running for 12s"),
        ({"type": "conversation_reset", "new_conversation_id": "c2"}, "[conversation_reset]"),
    ],
)
def test_readable_other_message_kinds(message, expected):
    assert shown(message) == expected


@pytest.mark.parametrize(
    "line",
    [
        "plain progress line",
        "",
        "{broken json",
        '{"level": "info", "msg": "started"}',
        "[1, 2]",
        "[]",
        '[{"type": "result", "is_error": false, "result": "x"}, 3]',
    ],
)
def test_readable_lines_that_are_not_claude_messages_pass_through(line):
    assert claude.readable(line) == line


def test_readable_one_line_array_shows_each_message_on_its_own_line():
    assert claude.readable(fixtures.VERBOSE_JSON_ARRAY[0]) == "\n".join(
        [
            f"[init] session {fixtures.SESSION} started, model claude-opus-4-5-20251101, 6 tools (Claude Code 2.0.76); "
            "MCP servers failed: atlassian",
            "Hi!",
            "[result] Hi!",
        ]
    )


@pytest.mark.parametrize("name", ALL_RUNS)
def test_readable_never_shows_raw_json_of_a_claude_message(name):
    for line in getattr(fixtures, name):
        if not claude.messages([line]):
            continue
        text = claude.readable(line)
        assert text is None or not text.lstrip().startswith(("{", "[{")), (name, line, text)
        assert text != line


# --- progress_lines: a batch of output ------------------------------------------------------------


def test_progress_lines_reads_a_pretty_printed_document_whole():
    assert claude.progress_lines(fixtures.VERBOSE_JSON_PRETTY) == [
        f"[init] session {fixtures.SESSION} started, model {fixtures.MODEL}, 6 tools (Claude Code 2.1.37); "
        "MCP servers failed: atlassian",
        "[tool Bash] make test",
        "[tool error] make: *** [test] Error 2",
        "[result] claude stopped at its turn limit after 1 turn [terminal_reason: max_turns]: "
        "Reached maximum number of turns (1)",
    ]


def test_progress_lines_reads_the_role_keyed_array_of_early_versions():
    assert claude.progress_lines(fixtures.ROLE_KEYED_ARRAY) == [
        "[prompt] say hello!",
        "Hello!",
        "[system] Total cost: $0.0029",
        "[result] Hello!",
    ]


def test_progress_lines_drops_the_silent_and_keeps_plain_text():
    lines = ["starting", *dump({"type": "stream_event", "event": {}}, assistant(text("Done."))), "bye"]

    assert claude.progress_lines(lines) == ["starting", "Done.", "bye"]


def test_progress_lines_of_a_whole_stream():
    assert claude.progress_lines(fixtures.SUCCESS_STREAM)[1:] == [
        "[thinking] The failing test is in test_login.py; read it first.",
        "I'll look at the failing test.",
        "[tool Bash] pytest tests/test_login.py -q",
        "[tool result] 1 failed, 11 passed in 0.42s",
        "[tool Edit] /work/repo/app/login.py",
        "[tool result] The file /work/repo/app/login.py has been updated.",
        "[rate limit] allowed_warning (five_hour), 91% used, resets 2026-03-25 14:00 UTC",
        "[result] Fixed the inverted comparison in login.py; all 12 tests pass.",
    ]


def test_progress_lines_of_another_programs_pretty_json_is_shown_as_it_is():
    lines = json.dumps({"files": 3, "ok": True}, indent=2).splitlines()

    assert claude.progress_lines(lines) == lines


# --- cost_from_output -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "field", "expected"),
    [
        (['{"cost": 0.5}', "noise", '{"cost": 1.25}'], "cost", Decimal("1.25")),
        (['{"usage": {"cost_usd": "0.031"}}'], "usage.cost_usd", Decimal("0.031")),
        (['{"cost": 0.5}', '{"cost": "n/a"}', '{"cost": -2}'], "cost", Decimal("0.5")),
        (['[{"cost": 1}, {"cost": 2}]'], "cost", Decimal("2")),
        (json.dumps({"stats": {"cost": 0.75}}, indent=2).splitlines(), "stats.cost", Decimal("0.75")),
        (fixtures.SUCCESS_STREAM, "total_cost_usd", Decimal("0.4128")),
        (['{"usage": 3}', "plain"], "usage.cost_usd", None),
        ([], "cost", None),
    ],
    ids=["last-wins", "dotted", "odd-values-passed-over", "array", "pretty", "claude", "missing", "empty"],
)
def test_cost_from_output_field(lines, field, expected):
    assert cost_from_output(lines, field=field) == expected


@pytest.mark.parametrize(
    ("lines", "pattern", "expected"),
    [
        (["Tokens: 1200", "Cost: $0.12", "Cost: $0.37"], r"Cost: \$?([\d.,]+)", Decimal("0.37")),
        (["total $1,234.50 spent"], r"total (\S+) spent", Decimal("1234.50")),
        (["cost=0.1 cost=0.2 cost=n/a"], r"cost=(\S+)", Decimal("0.2")),
        (["nothing here"], r"cost=(\S+)", None),
    ],
)
def test_cost_from_output_pattern(lines, pattern, expected):
    assert cost_from_output(lines, pattern=pattern) == expected


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "cost_from_output: give exactly one of field or pattern"),
        ({"field": "cost", "pattern": "(x)"}, "cost_from_output: give exactly one of field or pattern"),
        ({"field": "usage..cost"}, "field: 'usage..cost' is not a JSON field name"),
        ({"field": ""}, "field: '' is not a JSON field name"),
        ({"pattern": "cost=([0-9"}, "pattern: 'cost=([0-9' is not a regular expression"),
        ({"pattern": r"cost=\d+"}, "pattern: 'cost=\\\\d+' must have exactly one group, it has 0"),
        ({"pattern": r"(a)(b)"}, "pattern: '(a)(b)' must have exactly one group, it has 2"),
    ],
)
def test_cost_from_output_bad_arguments_name_the_argument(arguments, message):
    with pytest.raises(ValueError) as raised:
        cost_from_output(["cost=1"], **arguments)

    assert str(raised.value).startswith(message)
