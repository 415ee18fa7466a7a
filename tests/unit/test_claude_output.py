"""Reading an agent program's output (Claude Code's JSON, plain text, the python runner's result line),
and how the runner expands argv placeholders and builds the program's environment."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from agents.runners import claude
from agents.runners.process import ProcessOutcome
from agents.runners.pycall import RESULT_PREFIX
from coordination.models import Task, TaskAttempt
from workers.attempt import Refusal, environment, expand, interpret

Outcome = TaskAttempt.Outcome
WORKSPACE = Path("/var/hive/workspaces/t/2")


def line(**obj) -> str:
    return json.dumps(obj)


def result_line(*, is_error: bool = False, text: str = "done", **extra) -> str:
    return line(type="result", subtype="error_during_execution" if is_error else "success", is_error=is_error,
                result=text, session_id="sess-1", total_cost_usd=0.0123, num_turns=4, **extra)  # fmt: skip


def ended(*tail: str, exit_code: int | None = 0, timed_out=False, stopped=False, start_error="") -> ProcessOutcome:
    return ProcessOutcome(exit_code, timed_out, stopped, 1.0, list(tail), start_error=start_error)


def make_task(**fields) -> Task:
    defaults = {"id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "prompt": "fix the login page",
                "payload": {"branch": "main", "issue": 42}, "timeout": 60}  # fmt: skip
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
    message = line(type="assistant", message={"content": [
        {"type": "text", "text": "Reading the tests."},
        {"type": "tool_use", "name": "Bash", "input": {"command": "pytest"}},
        {"type": "text", "text": "Done."},
    ]})  # fmt: skip

    assert claude.readable(message) == "Reading the tests. Done. [tool Bash]"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (result_line(text="All 12 tests pass"), "[result] All 12 tests pass"),
        (result_line(text="x" * 600), "[result] " + "x" * 500),
        ("plain progress line", "plain progress line"),
        ("{broken json", "{broken json"),
        (line(type="system", subtype="init"), line(type="system", subtype="init")),
        (line(type="assistant", message="just a string"), line(type="assistant", message="just a string")),
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
