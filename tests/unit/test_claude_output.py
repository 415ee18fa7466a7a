"""Reading an agent program's output (Claude Code's JSON in every documented shape, plain text, the python
runner's result line), and how the runner expands argv placeholders and builds the program's environment."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from agents.runners import claude
from agents.runners.process import ProcessOutcome
from agents.runners.pycall import RESULT_PREFIX
from coordination.models import Task, TaskAttempt
from tests import claude_fixtures as fixtures
from workers.attempt import Refusal, environment, expand, interpret

Outcome = TaskAttempt.Outcome
WORKSPACE = Path("/var/hive/workspaces/t/2")


def line(**obj) -> str:
    return json.dumps(obj)


def result_line(*, is_error: bool = False, text: str = "done", **extra) -> str:
    return line(
        type="result",
        subtype="error_during_execution" if is_error else "success",
        is_error=is_error,
        result=text,
        session_id="sess-1",
        total_cost_usd=0.0123,
        num_turns=4,
        **extra,
    )


def ended(*tail: str, exit_code: int | None = 0, timed_out=False, stopped=False, start_error="") -> ProcessOutcome:
    return ProcessOutcome(exit_code, timed_out, stopped, 1.0, list(tail), start_error=start_error)


def make_task(**fields) -> Task:
    defaults = {
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "prompt": "fix the login page",
        "payload": {"branch": "main", "issue": 42},
        "timeout": 60,
    }
    return Task(**(defaults | fields))


# --- find_result / readable / cost ----------------------------------------------------------------


def test_find_result_stream_returns_the_last_result_object():
    lines = [
        line(type="system", subtype="init", session_id="sess-1"),
        result_line(text="first"),
        line(type="assistant", message={"content": [{"type": "text", "text": "more"}]}),
        result_line(text="second"),
        "trailing noise",
    ]

    assert claude.find_result(lines)["result"] == "second"


def test_find_result_single_json_object_without_type_is_found():
    found = claude.find_result(['  {"is_error": false, "result": "ok", "session_id": "s"}  '])

    assert found == {"is_error": False, "result": "ok", "session_id": "s"}


@pytest.mark.parametrize(
    "lines",
    [[], ["plain text", "{not json"], [line(type="assistant", message={"content": []})], ["[1, 2]", '{"result": 1}']],
    ids=["empty", "not-json", "no-result", "not-result-shaped"],
)
def test_find_result_without_result_returns_none(lines):
    assert claude.find_result(lines) is None


def test_readable_assistant_message_shows_its_text_and_tools():
    message = line(
        type="assistant",
        message={
            "content": [
                {"type": "text", "text": "Reading the tests."},
                {"type": "tool_use", "name": "Bash", "input": {"command": "pytest"}},
                {"type": "text", "text": "Done."},
            ]
        },
    )

    assert claude.readable(message) == "Reading the tests. [tool Bash] pytest Done."


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (result_line(text="All 12 tests pass"), "[result] All 12 tests pass"),
        (result_line(text="x" * 600), "[result] " + "x" * 500),
        ("plain progress line", "plain progress line"),
        ("{broken json", "{broken json"),
        (line(type="system", subtype="init"), "[init] session ? started, model ?, 0 tools"),
        (line(type="assistant", message="just a string"), None),
    ],
    ids=["result", "long-result", "text", "broken-json", "system", "odd-message"],
)
def test_readable_other_lines(raw, shown):
    assert claude.readable(raw) == shown


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0123, Decimal("0.0123")), ("1.5", Decimal("1.5")), (2, Decimal("2")), (None, None), ("n/a", None)],
)
def test_cost_values(value, expected):
    assert claude.cost(value) == expected


# --- interpret ------------------------------------------------------------------------------------


def test_interpret_text_exit_zero_succeeds_with_output():
    result = interpret(ended("building", "ok"), "text", 60)

    assert (result.outcome, result.exit_code, result.is_error, result.error) == (Outcome.SUCCEEDED, 0, False, "")
    assert result.result == {"exit_code": 0, "output": "building\nok"}
    assert result.output_tail == "building\nok"


def test_interpret_text_nonzero_exit_fails_with_status():
    result = interpret(ended("E   assert 1 == 2", exit_code=2), "text", 60)

    assert (result.outcome, result.is_error, result.error) == (Outcome.FAILED, True, "exited with status 2")
    assert result.permanent is False


def test_interpret_start_error_fails_permanently():
    result = interpret(ended("cannot start 'x'", exit_code=None, start_error="cannot start 'x'"), "text", 60)

    assert (result.outcome, result.permanent, result.error) == (Outcome.FAILED, True, "cannot start 'x'")


def test_interpret_timeout_reports_the_limit():
    result = interpret(ended("still going", exit_code=-9, timed_out=True), "text", 90)

    assert (result.outcome, result.is_error, result.error) == (Outcome.TIMEOUT, True, "timed out after 90s")


def test_interpret_stopped_is_cancelled():
    assert interpret(ended(exit_code=-15, stopped=True), "text", 60).outcome == Outcome.CANCELLED


def test_interpret_claude_json_success_reads_session_cost_and_turns():
    result = interpret(ended(line(type="system"), result_line(text="Fixed it")), "claude-json", 60)

    assert result.outcome == Outcome.SUCCEEDED
    assert (result.session_id, result.cost_usd, result.num_turns) == ("sess-1", Decimal("0.0123"), 4)
    assert result.result == {"exit_code": 0, "result": "Fixed it", "subtype": "success"}


def test_interpret_claude_json_is_error_fails_even_with_exit_zero():
    result = interpret(ended(result_line(is_error=True, text="ran out of turns")), "claude-json", 60)

    assert (result.outcome, result.is_error) == (Outcome.FAILED, True)
    assert result.result["subtype"] == "error_during_execution"


def test_interpret_claude_json_is_error_explains_what_claude_reported():
    result = interpret(ended(result_line(is_error=True, text="ran out of turns")), "claude-json", 60)

    assert "ran out of turns" in result.error


def test_interpret_python_result_line_becomes_the_value():
    result = interpret(ended("log", RESULT_PREFIX + json.dumps({"files": 3})), "python", 60)

    assert result.result == {"exit_code": 0, "value": {"files": 3}}


# --- expand ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expanded"),
    [
        ("{prompt}", "fix the login page"),
        ("--task={task_id}", "--task=12345678-1234-5678-1234-567812345678"),
        ("{workspace}/out", "/var/hive/workspaces/t/2/out"),
        ("attempt-{attempt}", "attempt-2"),
        ("{payload.branch}#{payload.issue}", "main#42"),
        ("{unknown} {payload} {{prompt}}", "{unknown} {payload} {fix the login page}"),
    ],
)
def test_expand_placeholders(template, expanded):
    assert expand(template, make_task(), 2, WORKSPACE) == expanded


def test_expand_prompt_containing_placeholders_is_not_expanded_again():
    task = make_task(prompt="print {payload.branch} and {task_id}")

    assert expand("-p {prompt}", task, 1, WORKSPACE) == "-p print {payload.branch} and {task_id}"


def test_expand_missing_payload_field_raises_refusal_naming_it():
    with pytest.raises(Refusal, match="needs payload field 'repo', which the task does not have"):
        expand("--repo={payload.repo}", make_task(), 1, WORKSPACE)


# --- environment ----------------------------------------------------------------------------------

STRIPPED = [  # the configuration's secrets, by the variable names the loader reads
    "LEANVIBE_SECURITY_SECRET_KEY",
    "LEANVIBE_SECURITY_SECRET_KEY_FILE",
    "LEANVIBE_SECURITY_API_KEY",
    "LEANVIBE_SECURITY_API_GATEWAY_AUTHENTICATION_OAUTH2_CLIENT_ID",
    "LEANVIBE_DATABASE_URL",
    "LEANVIBE_REDIS_URL",
    "LEANVIBE_EXTERNAL_API_WEBHOOK_SERVER_GITHUB_SECRET",
    "LEANVIBE_EXTERNAL_API_WEBHOOK_SERVER_GITHUB_SECRETS_PREVIOUS",
    "LEANVIBE_EXTERNAL_API_WEBHOOK_SERVER_SLACK_SIGNING_SECRET",
    "LEANVIBE_GITHUB_TOKEN",
    "LEANVIBE_SMTP_PASSWORD",
    "LEANVIBE_OPENAI_API_KEY",
    "DJANGO_SECRET_KEY",
]
KEPT = ["PATH", "HOME", "LEANVIBE_LOG_LEVEL", "LEANVIBE_MULTI_AGENT_MAX_AGENTS", "ANTHROPIC_API_KEY"]


@pytest.fixture
def hive_env(monkeypatch):
    for name in STRIPPED + KEPT:
        monkeypatch.setenv(name, f"value-of-{name}")


def test_environment_strips_hive_secrets_and_keeps_the_rest(hive_env):
    env = environment({}, make_task(), 1, WORKSPACE)

    assert [name for name in STRIPPED if name in env] == []
    assert {name: env.get(name) for name in KEPT} == {name: f"value-of-{name}" for name in KEPT}


def test_environment_adds_the_task_and_the_runner_env(hive_env):
    env = environment({"env": {"MODEL": "opus", "RETRIES": 2}}, make_task(), 3, WORKSPACE)

    assert env["HIVE_TASK_ID"] == "12345678-1234-5678-1234-567812345678"
    assert (env["HIVE_ATTEMPT"], env["HIVE_WORKSPACE"], env["HIVE_PROMPT"]) == (
        "3",
        str(WORKSPACE),
        "fix the login page",
    )
    assert (env["MODEL"], env["RETRIES"]) == ("opus", "2")


# --- read_output: every documented shape (tests/claude_fixtures.py says where each comes from) ----

NOW = 1_774_440_000.0  # 2026-03-25 12:00 UTC, two hours before fixtures.RESET_AT
S, M = fixtures.SESSION, fixtures.MODEL
D = Decimal

READINGS = {  # fixture: (classification, session, model, cost, turns, what the error must say)
    "SUCCESS_STREAM": (claude.OK, S, M, D("0.4128"), 7, ""),
    "EMPTY_RESULT_STREAM": (claude.OK, S, "claude-opus-4-6[1m]", D("0.024"), 1, ""),
    "HOOK_STOPPED": (claude.OK, S, M, D("0.4128"), 4, ""),
    "JSON_RESULT": (claude.OK, S, M, D("0.4128"), 7, ""),
    "JSON_RESULT_OLD": (claude.OK, "abc-123-def", "", D("0.003"), 1, ""),
    "VERBOSE_JSON_ARRAY": (claude.OK, S, "claude-opus-4-5-20251101", D("0.0215"), 1, ""),
    "ROLE_KEYED_ARRAY": (claude.OK, S, "claude-3-7-sonnet-20250219", D("0.0029"), 1, ""),
    "MAX_TURNS_STREAM": (
        claude.PERMANENT,
        S,
        M,
        D("0.4128"),
        3,
        "claude stopped at its turn limit after 3 turns [terminal_reason: max_turns]: "
        "Reached maximum number of turns (3)",
    ),
    "MAX_TURNS_BARE": (claude.PERMANENT, S, M, D("0.4128"), 2, "claude stopped at its turn limit after 2 turns"),
    "VERBOSE_JSON_PRETTY": (
        claude.PERMANENT,
        S,
        M,
        D("0.4128"),
        1,
        "claude stopped at its turn limit after 1 turn [terminal_reason: max_turns]: "
        "Reached maximum number of turns (1)",
    ),
    "BAD_MODEL": (
        claude.PERMANENT,
        S,
        "claude-nonexistent-model",
        D("0"),
        1,
        "claude API error 404 (model not found or not available): There's an issue with the selected "
        "model (claude-nonexistent-model).",
    ),
    "BAD_MODEL_BEFORE_STATUS": (
        claude.PERMANENT,
        S,
        M,
        D("0"),
        1,
        "claude API error 404 (model not found or not available): API Error: 404 ",
    ),
    "AUTH_FAILED": (
        claude.PERMANENT,
        S,
        M,
        D("0"),
        1,
        "claude API error 401 (authentication failed): Invalid API key · Fix external API key",
    ),
    "AUTH_FAILED_ASSISTANT_ONLY": (
        claude.PERMANENT,
        S,
        M,
        None,
        None,
        "claude API error 401 (authentication failed): Invalid API key · Please run /login",
    ),
    "PERMISSION_DENIED": (claude.PERMANENT, S, M, D("0.4128"), 2, "claude was refused permission for Bash, Write"),
    "RATE_LIMITED_429": (
        claude.RATE_LIMITED,
        S,
        M,
        D("0"),
        1,
        "claude API error 429 (rate limited): API Error: Rate limit reached",
    ),
    "RATE_LIMITED_BEFORE_STATUS": (
        claude.RATE_LIMITED,
        S,
        M,
        D("0"),
        1,
        "claude is rate limited [terminal_reason: api_error]: API Error: Rate limit reached",
    ),
    "OVERLOADED_529": (claude.TRANSIENT, S, M, D("0"), 1, "claude API error 529 (API overloaded)"),
    "OVERLOADED_PROSE": (claude.TRANSIENT, S, M, D("0"), 1, "claude API error 529 (API overloaded): API Error: 529 "),
    "SERVER_ERROR_500": (claude.TRANSIENT, S, M, D("0"), 1, "claude API error 500 (API server error): API Error: 500"),
    "NETWORK_IDLE": (
        claude.TRANSIENT,
        S,
        M,
        D("0"),
        1,
        "claude lost its connection to the API [terminal_reason: api_error]: API Error: Stream idle "
        "timeout - no chunks received",
    ),
    "ERROR_DURING_EXECUTION": (
        claude.TRANSIENT,
        S,
        M,
        D("0.4128"),
        3,
        "claude lost its connection to the API: Tool execution failed: connection error; Unable to write to /etc/hosts",
    ),
    "ERROR_DURING_EXECUTION_BARE": (
        claude.TRANSIENT,
        S,
        M,
        D("0.6571631500000001"),
        0,
        "claude reported error_during_execution",
    ),
    "USAGE_LIMIT_TEXT": (
        claude.RATE_LIMITED,
        "",
        "",
        None,
        None,
        "claude is rate limited: Claude AI usage limit reached|1755615600",
    ),
    "WRONG_FLAGS_TEXT": (
        claude.PERMANENT,
        "",
        "",
        None,
        None,
        "claude was started with a wrong configuration: Error: When using --print, "
        "--output-format=stream-json requires --verbose",
    ),
    "INVALID_KEY_TEXT": (
        claude.PERMANENT,
        "",
        "",
        None,
        None,
        "claude could not authenticate: Invalid API key · Please run /login",
    ),
}


@pytest.mark.parametrize("name", READINGS)
def test_read_output_fixture_is_read_and_classified(name):
    classification, session, model, cost, turns, error = READINGS[name]

    reading = claude.read_output(getattr(fixtures, name), now=NOW)

    assert (reading.classification, reading.session_id, reading.model) == (classification, session, model)
    assert (reading.cost_usd, reading.num_turns) == (cost, turns)
    assert reading.error.startswith(error) if error else reading.error == ""
    assert reading.failed is (classification != claude.OK)


@pytest.mark.parametrize("name", [n for n, expected in READINGS.items() if expected[0] != claude.OK])
def test_read_output_failure_never_calls_itself_success(name):
    reading = claude.read_output(getattr(fixtures, name), now=NOW)

    assert "success" not in reading.error
    assert reading.error.startswith("claude")


def test_read_output_max_turns_reads_the_reason_from_errors_and_terminal_reason():
    reading = claude.read_output(fixtures.MAX_TURNS_STREAM, now=NOW)

    assert (reading.subtype, reading.result, reading.is_error) == ("error_max_turns", None, True)
    assert reading.errors == ("Reached maximum number of turns (3)",)
    assert reading.terminal_reason == "max_turns"
    assert reading.extra() == {"classification": "permanent", "terminal_reason": "max_turns"}


def test_read_output_success_reads_durations_and_result():
    reading = claude.read_output(fixtures.SUCCESS_STREAM, now=NOW)

    assert (reading.duration_ms, reading.duration_api_ms, reading.finished) == (48_213, 41_007, True)
    assert reading.result == "Fixed the inverted comparison in login.py; all 12 tests pass."
    assert reading.rate_limit == claude.RateLimit(
        "allowed_warning", datetime(2026, 3, 25, 14, tzinfo=UTC), "five_hour", 0.91
    )
    assert reading.retry_after is None  # not limited: nothing to wait for
    assert reading.extra() == {
        "classification": "ok",
        "rate_limit": {"status": "allowed_warning", "type": "five_hour", "resets_at": "2026-03-25T14:00:00+00:00"},
    }


def test_read_output_429_waits_until_the_rate_limit_event_says_it_resets():
    reading = claude.read_output(fixtures.RATE_LIMITED_429, now=NOW)

    assert reading.api_error_status == 429
    assert reading.rate_limit.status == "rejected" and reading.rate_limit.limit_type == "five_hour"
    assert reading.retry_after == 7200.0
    assert reading.extra() == {
        "classification": "rate_limited",
        "api_error_status": 429,
        "retry_after": 7200.0,
        "terminal_reason": "api_error",
        "rate_limit": {"status": "rejected", "type": "five_hour", "resets_at": "2026-03-25T14:00:00+00:00"},
    }


def test_read_output_429_without_a_reset_time_leaves_retry_after_unknown():
    reading = claude.read_output(fixtures.RATE_LIMITED_BEFORE_STATUS, now=NOW)

    assert (reading.rate_limit, reading.retry_after) == (claude.RateLimit("rejected"), None)


def test_read_output_429_with_a_retry_after_in_the_text_uses_it():
    lines = fixtures.dump(fixtures.api_error(429, "API Error: 429 rate_limit_error (retry-after: 30)"))

    assert claude.read_output(lines, now=NOW).retry_after == 30.0


def test_read_output_reset_in_the_past_means_no_wait():
    assert claude.read_output(fixtures.RATE_LIMITED_429, now=fixtures.RESET_AT + 60).retry_after == 0.0


def test_read_output_usage_limit_text_reads_its_reset_time():
    reading = claude.read_output(fixtures.USAGE_LIMIT_TEXT, now=1_755_612_000)

    assert reading.rate_limit.resets_at == datetime(2025, 8, 19, 15, tzinfo=UTC)
    assert reading.retry_after == 3600.0


def test_read_output_rejected_limit_event_classifies_an_unexplained_error_as_rate_limited():
    lines = fixtures.dump(
        fixtures.rate_limit_event("rejected"), fixtures.result("error_during_execution", is_error=True, errors=[])
    )
    reading = claude.read_output(lines, now=NOW)

    assert (reading.classification, reading.retry_after) == (claude.RATE_LIMITED, 7200.0)


def test_read_output_rejected_limit_event_on_a_success_is_still_ok():
    lines = fixtures.dump(fixtures.rate_limit_event("rejected", isUsingOverage=True), fixtures.result(result="done"))

    assert claude.read_output(lines, now=NOW).classification == claude.OK


@pytest.mark.parametrize(
    ("status", "classification", "label"),
    [
        (400, "permanent", "invalid request"),
        (401, "permanent", "authentication failed"),
        (402, "permanent", "billing error"),
        (403, "permanent", "permission denied"),
        (404, "permanent", "model not found or not available"),
        (413, "permanent", "request too large"),
        (418, "permanent", "request refused"),
        (408, "transient", "request timed out"),
        (429, "rate_limited", "rate limited"),
        (500, "transient", "API server error"),
        (502, "transient", "bad gateway"),
        (503, "transient", "service unavailable"),
        (529, "transient", "API overloaded"),
        (599, "transient", "API server error"),
    ],
)
def test_read_output_api_error_status_decides_the_classification(status, classification, label):
    reading = claude.read_output(fixtures.dump(fixtures.api_error(status, "")), now=NOW)

    assert (reading.classification, reading.error) == (classification, f"claude API error {status} ({label})")


@pytest.mark.parametrize(
    ("prose", "classification"),
    [
        ("Credit balance is too low", "permanent"),
        ("Prompt is too long", "permanent"),
        ("API Error: Repeated 529 Overloaded errors", "transient"),
        ("Overloaded", "transient"),
        ("API Error: Connection error.", "transient"),
        ("You've hit your limit · resets 1pm (Europe/Lisbon)", "rate_limited"),
        ("OAuth token has expired. Please obtain a new token or refresh your existing token.", "permanent"),
        ("Something odd happened", "transient"),
    ],
)
def test_read_output_api_error_prose_without_status_is_classified_by_its_words(prose, classification):
    assert claude.read_output(fixtures.dump(fixtures.api_error(None, prose)), now=NOW).classification == classification


def test_read_output_stream_cut_before_the_result_is_a_transient_failure():
    reading = claude.read_output(fixtures.SUCCESS_STREAM[:-1], now=NOW)

    assert (reading.finished, reading.classification) == (False, claude.TRANSIENT)
    assert reading.error == "claude ended without a result"
    assert (reading.session_id, reading.model, reading.cost_usd) == (S, M, None)


def test_read_output_pretty_document_cut_at_the_front_still_finds_the_result():
    tail = fixtures.VERBOSE_JSON_PRETTY[9:]  # the runner keeps only the last lines of output

    reading = claude.read_output(tail, now=NOW)

    assert (reading.classification, reading.num_turns, reading.terminal_reason) == (claude.PERMANENT, 1, "max_turns")


def test_read_output_ignores_noise_around_the_messages():
    lines = ["[claude-code:unrecognized_model] claude-x", *fixtures.JSON_RESULT, "", "Warning: model deprecated"]

    reading = claude.read_output(lines, now=NOW)

    assert (reading.classification, reading.result) == (claude.OK, "Done: 3 files changed.")


def test_read_output_several_results_takes_the_last():
    lines = fixtures.dump(
        fixtures.result(result="first", total_cost_usd=0.1), fixtures.result(result="second", total_cost_usd=0.25)
    )

    reading = claude.read_output(lines, now=NOW)

    assert (reading.result, reading.cost_usd) == ("second", Decimal("0.25"))


def test_read_output_success_with_refused_tools_is_ok_and_names_them():
    denied = [{"tool_name": "Bash", "tool_use_id": "t1", "tool_input": {"command": "rm -rf /"}}]

    reading = claude.read_output(fixtures.dump(fixtures.result(result="done", permission_denials=denied)), now=NOW)

    assert (reading.classification, reading.permission_denials) == (claude.OK, ("Bash",))


def test_read_output_model_comes_from_model_usage_when_init_was_cut_off():
    lines = fixtures.dump(fixtures.result(result="ok", modelUsage={"claude-haiku-4-5": {"costUSD": 0.01}}))

    assert claude.read_output(lines, now=NOW).model == "claude-haiku-4-5"


@pytest.mark.parametrize(
    ("fields", "turns"),
    [
        ({"total_cost_usd": "n/a", "num_turns": True}, None),
        ({"total_cost_usd": -1, "num_turns": "4"}, None),
        ({"total_cost_usd": None}, 7),
    ],
)
def test_read_output_odd_values_are_left_unknown(fields, turns):
    reading = claude.read_output(fixtures.dump(fixtures.result(result="ok") | fields), now=NOW)

    assert (reading.cost_usd, reading.num_turns, reading.classification) == (None, turns, claude.OK)


@pytest.mark.parametrize(
    "lines",
    [
        [],
        ["plain output", "all done"],
        ['{"level": "info", "msg": "started"}', '{"type": "log", "text": "x"}'],
        ["[1, 2, 3]"],
        ["{not json"],
    ],
    ids=["empty", "text", "other-json", "array-of-numbers", "broken"],
)
def test_read_output_not_claude_code_returns_none(lines):
    assert claude.read_output(lines, now=NOW) is None


# --- interpret: the reading fills the attempt's result ---------------------------------------------


def test_interpret_max_turns_fails_permanently_with_the_reason():
    result = interpret(ended(*fixtures.MAX_TURNS_STREAM, exit_code=1), "claude-json", 60)

    assert (result.outcome, result.permanent, result.is_error) == (Outcome.FAILED, True, True)
    assert result.error == (
        "claude stopped at its turn limit after 3 turns [terminal_reason: max_turns]: "
        "Reached maximum number of turns (3)"
    )
    assert (result.session_id, result.num_turns, result.cost_usd) == (S, 3, Decimal("0.4128"))
    assert result.extra["classification"] == "permanent"
    assert result.result == {"exit_code": 1, "result": None, "subtype": "error_max_turns"}


@pytest.mark.parametrize("name", ["BAD_MODEL", "AUTH_FAILED", "WRONG_FLAGS_TEXT", "PERMISSION_DENIED"])
def test_interpret_permanent_failures_are_not_retried(name):
    result = interpret(ended(*getattr(fixtures, name), exit_code=1), "claude-json", 60)

    assert (result.outcome, result.permanent) == (Outcome.FAILED, True)
    assert result.error == claude.read_output(getattr(fixtures, name), now=NOW).error


@pytest.mark.parametrize("name", ["OVERLOADED_529", "SERVER_ERROR_500", "NETWORK_IDLE"])
def test_interpret_transient_failures_may_be_retried(name):
    result = interpret(ended(*getattr(fixtures, name), exit_code=1), "claude-json", 60)

    assert (result.outcome, result.permanent, result.extra["classification"]) == (Outcome.FAILED, False, "transient")


def test_interpret_rate_limit_carries_the_pause_for_the_scaler():
    resets = int(time.time()) + 600
    lines = fixtures.dump(fixtures.rate_limit_event("rejected", resets_at=resets), fixtures.api_error(429, ""))

    result = interpret(ended(*lines, exit_code=1), "claude-json", 60)

    assert (result.outcome, result.permanent) == (Outcome.FAILED, False)
    assert result.extra["classification"] == "rate_limited" and result.extra["api_error_status"] == 429
    assert 590 < result.extra["retry_after"] <= 600


def test_interpret_api_error_with_exit_zero_still_fails():
    result = interpret(ended(*fixtures.RATE_LIMITED_BEFORE_STATUS, exit_code=0), "claude-json", 60)

    assert (result.outcome, result.exit_code) == (Outcome.FAILED, 0)
    assert result.error.startswith("claude is rate limited")


def test_interpret_verbose_json_array_reads_session_cost_and_turns():
    result = interpret(ended(*fixtures.VERBOSE_JSON_ARRAY), "claude-json", 60)

    assert result.outcome == Outcome.SUCCEEDED
    assert (result.session_id, result.cost_usd, result.num_turns) == (S, Decimal("0.0215"), 1)
    assert result.result == {"exit_code": 0, "result": "Hi!", "subtype": "success"}
    assert result.extra == {"classification": "ok"}


def test_interpret_success_reported_but_nonzero_exit_fails_on_the_exit_status():
    result = interpret(ended(*fixtures.JSON_RESULT, exit_code=3), "claude-json", 60)

    assert (result.outcome, result.permanent, result.error) == (Outcome.FAILED, False, "exited with status 3")
    assert result.cost_usd == Decimal("0.4128")  # what it spent is still counted


def test_interpret_claude_json_pool_with_plain_output_falls_back_to_the_exit_status():
    result = interpret(ended("Traceback (most recent call last):", "KeyError: 'x'", exit_code=1), "claude-json", 60)

    assert (result.outcome, result.permanent, result.error, result.extra) == (
        Outcome.FAILED,
        False,
        "exited with status 1",
        {},
    )
