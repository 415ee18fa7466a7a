"""Rate limits reported by agent programs: detection (pure), the configuration keys, and a
rate-limited attempt that goes back to the queue without spending the task's budget."""

from __future__ import annotations

import json
import os

import pytest

from agents.models import Agent
from agents.runners.ratelimit import RateLimitSignal, detect
from coordination.fleet import pool_sync
from coordination.models import Event, Task, TaskAttempt
from coordination.processes import HOSTNAME
from coordination.results import AttemptResult
from coordination.services import attempt_finish, task_claim, task_submit
from hive_project.config import ConfigError, load_config

NOW = 1_767_000_000.0


def claude(obj: dict) -> str:
    return json.dumps(obj)


RESULT_429 = claude(
    {"type": "result", "subtype": "error", "is_error": True, "api_error_status": 429, "result": "API Error: 429"}
)
USAGE = claude({"type": "result", "is_error": True, "result": "Claude AI usage limit reached|1767003600"})
REJECTED = claude(
    {
        "type": "rate_limit_event",
        "rate_limit_info": {"status": "rejected", "resetsAt": 1767001800, "rateLimitType": "five_hour"},
    }
)
WARNING = claude({"type": "rate_limit_event", "rate_limit_info": {"status": "allowed_warning", "resetsAt": 1}})
SUCCESS = claude({"type": "result", "is_error": False, "result": "I fixed the rate limit bug (429 handling)"})
ERROR_TEXT = claude(
    {
        "type": "result",
        "is_error": True,
        "result": 'API Error (429 {"type":"error","error":{"type":"rate_limit_error"}})',
    }
)
RULE = {"exit_codes": [75], "output_pattern": r"quota exceeded(, retry in (?P<retry_after>\d+)s)?"}

CASES = [
    pytest.param(
        [RESULT_429],
        None,
        "claude-json",
        None,
        RateLimitSignal("claude reported API status 429"),
        id="claude-api-status-429",
    ),
    pytest.param(
        [USAGE],
        1,
        "claude-json",
        None,
        RateLimitSignal("claude reported: Claude AI usage limit reached|1767003600", 1767003600.0),
        id="claude-usage-limit-reset",
    ),
    pytest.param(
        [REJECTED, SUCCESS],
        0,
        "claude-json",
        None,
        RateLimitSignal("claude five_hour limit rejected", 1767001800.0),
        id="claude-rate-limit-event-rejected",
    ),
    pytest.param(
        [ERROR_TEXT],
        1,
        "claude-json",
        None,
        RateLimitSignal('claude reported: API Error (429 {"type":"error","error":{"type":"rate_limit_error"}})'),
        id="claude-error-text",
    ),
    pytest.param([WARNING, SUCCESS], 0, "claude-json", None, None, id="claude-warning-is-not-a-limit"),
    pytest.param([SUCCESS], 0, "claude-json", None, None, id="claude-success-mentioning-429"),
    pytest.param(["assistant says rate_limit_error"], 1, "claude-json", None, None, id="claude-plain-text-ignored"),
    pytest.param([RESULT_429], 1, "text", None, None, id="text-format-reads-no-claude-json"),
    pytest.param(
        ["work", "quota exceeded, retry in 40s"],
        1,
        "text",
        RULE,
        RateLimitSignal(
            "output matched 'quota exceeded(, retry in (?P<retry_after>\\\\d+)s)?': quota exceeded, retry in 40s",
            NOW + 40,
        ),
        id="pattern-with-retry-after",
    ),
    pytest.param(
        ["quota exceeded"],
        1,
        "text",
        RULE,
        RateLimitSignal("output matched 'quota exceeded(, retry in (?P<retry_after>\\\\d+)s)?': quota exceeded"),
        id="pattern-without-time",
    ),
    pytest.param(
        ["limit; reset=2026-01-01T00:00:00Z"],
        1,
        "text",
        {"output_pattern": r"reset=(?P<reset>\S+)"},
        RateLimitSignal("output matched 'reset=(?P<reset>\\\\S+)': reset=2026-01-01T00:00:00Z", 1767225600.0),
        id="pattern-with-iso-reset",
    ),
    pytest.param(
        ["limited until 1767001800000"],
        1,
        "text",
        {"output_pattern": r"until (?P<reset>\d+)"},
        RateLimitSignal("output matched 'until (?P<reset>\\\\d+)': until 1767001800000", 1767001800.0),
        id="pattern-with-epoch-milliseconds",
    ),
    pytest.param(
        ["busy"],
        75,
        "text",
        RULE,
        RateLimitSignal("exit status 75 means a rate limit (runner.rate_limit.exit_codes)"),
        id="exit-code",
    ),
    pytest.param(["busy"], 1, "text", RULE, None, id="other-exit-code"),
    pytest.param(["quota exceeded"], 1, "text", None, None, id="no-rule-no-limit"),
]


@pytest.mark.parametrize(("lines", "exit_code", "output_format", "rule", "expected"), CASES)
def test_detect_table(lines, exit_code, output_format, rule, expected):
    assert detect(lines=lines, exit_code=exit_code, output_format=output_format, rule=rule, now=NOW) == expected


# --- configuration --------------------------------------------------------------------------------

POOL = "agents: {backend: {capabilities: [python], %s}}\n"


def config(tmp_path, text: str):
    path = tmp_path / "hive.yaml"
    path.write_text(text)
    return load_config(path, environ={})


def test_config_flow_keys_reach_the_pool(tmp_path):
    loaded = config(
        tmp_path,
        POOL
        % (
            "max_concurrent: 3, max_starts_per_minute: 20, runner: {rate_limit: {exit_codes: [75], "
            "output_pattern: 'quota (?P<retry_after>\\d+)', backoff_initial: 5, backoff_max: 60}}"
        ),
    )

    pool = loaded.agents["backend"]
    assert (pool.max_concurrent, pool.max_starts_per_minute) == (3, 20)
    assert pool.runner.rate_limit.model_dump() == {
        "exit_codes": [75],
        "output_pattern": "quota (?P<retry_after>\\d+)",
        "backoff_initial": 5.0,
        "backoff_max": 60.0,
    }


def test_config_flow_defaults_are_no_limits(tmp_path):
    pool = config(tmp_path, POOL % "concurrency: 1").agents["backend"]

    assert (pool.max_concurrent, pool.max_starts_per_minute) == (None, None)
    assert pool.runner.rate_limit.model_dump() == {
        "exit_codes": [],
        "output_pattern": None,
        "backoff_initial": 30.0,
        "backoff_max": 900.0,
    }


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("max_concurrent: 0", "agents.backend.max_concurrent = 0: expected an integer >= 1"),
        ("max_starts_per_minute: true", "agents.backend.max_starts_per_minute = True: expected an integer >= 1"),
        (
            "runner: {rate_limit: {output_pattern: 'quota ('}}",
            "agents.backend.runner.rate_limit.output_pattern = 'quota (': expected a regular expression",
        ),
        (
            "runner: {rate_limit: {exit_codes: [0]}}",
            "agents.backend.runner.rate_limit.exit_codes[0] = 0: expected a number from 1 to 255",
        ),
        (
            "runner: {rate_limit: {backoff_initial: 100, backoff_max: 10}}",
            "agents.backend.runner.rate_limit.backoff_initial = 100.0: expected at most backoff_max (10)",
        ),
        ("runner: {rate_limit: {backof_max: 10}}", "agents.backend.runner.rate_limit.backof_max = 10: expected one of"),
    ],
)
def test_config_bad_flow_key_names_it(tmp_path, fragment, message):
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, POOL % fragment)

    assert str(caught.value).startswith(message), str(caught.value)


def test_config_scaling_interval(tmp_path):
    assert config(tmp_path, "scaling: {interval_seconds: 2.5}\n").scaling.interval_seconds == 2.5
    with pytest.raises(ConfigError, match=r"^scaling.interval_seconds = 0: expected a number > 0"):
        config(tmp_path, "scaling: {interval_seconds: 0}\n")


def test_pool_sync_copies_flow_limits(tmp_path, db):
    [pool] = pool_sync(config=config(tmp_path, POOL % "max_concurrent: 2, max_starts_per_minute: 9"))

    assert (pool.max_concurrent, pool.max_starts_per_minute) == (2, 9)
    assert pool.runner["rate_limit"]["backoff_max"] == 900.0


# --- a rate-limited attempt spends nothing ----------------------------------------------------------


def test_attempt_requeued_keeps_budget(pools):
    agent = Agent.objects.create(name="backend@test", pool=pools["backend"], host=HOSTNAME, pid=os.getpid())
    task = task_submit(capabilities=["python"], command=["true"], max_attempts=2)
    attempt = task_claim(task_id=str(task.id), agent=agent, pid=os.getpid(), host=HOSTNAME)

    attempt_finish(
        attempt_id=attempt.id,
        result=AttemptResult(
            outcome=TaskAttempt.Outcome.FAILED, error="claude reported API status 429", requeue_after=12.5
        ),
    )

    task.refresh_from_db()
    assert (task.status, task.attempts, task.max_attempts) == (Task.Status.QUEUED, 1, 3)
    assert task.agent is None and task.error == "claude reported API status 429"
    event = Event.objects.get(task=task, type="task.requeued")
    assert event.payload | {"agent": None} == {
        "agent": None,
        "attempt": 1,
        "error": "claude reported API status 429",
        "delay": 12.5,
        "attempt_spent": False,
    }
    statuses = []
    for _ in range(2):  # both attempts of its budget are still there
        attempt = task_claim(task_id=str(task.id), agent=agent, pid=os.getpid(), host=HOSTNAME)
        failed = AttemptResult(outcome=TaskAttempt.Outcome.FAILED, error="boom")
        statuses.append(attempt_finish(attempt_id=attempt.id, result=failed).status)
    assert statuses == [Task.Status.QUEUED, Task.Status.DEAD]
