"""What a task submission may contain: the bounds and checks `task_submit` makes for every caller.

The API, the webhooks, the CLI and Python callers all submit through `task_submit`, so these checks
are the one definition of a valid task; the API's serializers repeat the bounds (from these
constants) only to describe them in the OpenAPI schema and to name the field in a 400.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from agents.models import AgentPool
from coordination import json_limits
from coordination.errors import IdempotencyConflict, InvalidTask
from coordination.models import Priority, Source, Task

MAX_PROMPT_CHARS = 100_000
MAX_CAPABILITIES = 50
MAX_CAPABILITY_CHARS = 64
MAX_COMMAND_ARGS = 1000
MAX_COMMAND_ARG_CHARS = 10_000
MAX_TASK_TYPE_CHARS = 64
MAX_EXTERNAL_REF_CHARS = 300
MAX_IDEMPOTENCY_KEY_CHARS = 200
MAX_TIMEOUT = 24 * 3600.0
MIN_TIMEOUT = 0.001
MAX_ATTEMPTS = 20
MAX_COMPLEXITY = 10

# The placeholders a pool's argv may hold (hive_project.config checks the names when it loads).
ARGV_PAYLOAD_FIELD = re.compile(r"\{payload\.([A-Za-z0-9_]+)\}")


def validated(**spec: Any) -> dict[str, Any]:
    """The submission with its values normalised (capabilities sorted and lower-cased, payload a
    dict, timeout a float), or InvalidTask naming the first field that is wrong. Types are not
    coerced: `"prompt": 123` or `"timeout": true` is refused, not turned into "123" or 1 s."""
    _check_text(spec, "prompt", MAX_PROMPT_CHARS, blank=True)
    spec["capabilities"] = _capabilities(spec["capabilities"])
    spec["command"] = _command(spec["command"])
    if not spec["prompt"].strip() and not spec["command"]:
        raise InvalidTask("a task needs a prompt or a command")
    spec["payload"] = _payload(spec["payload"])
    priority = spec["priority"]
    if not isinstance(priority, str) or priority not in Priority.values:
        shown = repr(priority) if isinstance(priority, str) else f"a {type(priority).__name__}"
        raise InvalidTask(f"priority must be one of {', '.join(Priority.values)}, not {shown}")
    _check_text(
        spec,
        "task_type",
        MAX_TASK_TYPE_CHARS,
        wrong=f"task_type must be a string of 1 to {MAX_TASK_TYPE_CHARS} characters",
    )
    spec["complexity"] = _integer(spec["complexity"], "complexity", 1, MAX_COMPLEXITY)
    spec["max_attempts"] = _integer(spec["max_attempts"], "max_attempts", 1, MAX_ATTEMPTS)
    timeout = spec["timeout"]
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT:
            raise InvalidTask(f"timeout must be a number of seconds above 0 and at most {int(MAX_TIMEOUT)}")
        spec["timeout"] = float(timeout)
    if spec["idempotency_key"] is not None:
        _check_text(
            spec,
            "idempotency_key",
            MAX_IDEMPOTENCY_KEY_CHARS,
            wrong=f"idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters",
        )
    _check_text(spec, "external_ref", MAX_EXTERNAL_REF_CHARS, blank=True)
    if not isinstance(spec["source"], str) or spec["source"] not in Source.values:
        raise InvalidTask(f"source must be one of {', '.join(Source.values)}")
    return spec


def _check_text(spec: dict[str, Any], field: str, most: int, *, blank: bool = False, wrong: str = "") -> None:
    """A string of at most `most` characters, without NUL; non-empty unless `blank`. `wrong` is the
    message for a value of the wrong type, length or emptiness (default: one per case)."""
    value = spec[field]
    if not isinstance(value, str):
        raise InvalidTask(wrong or f"{field} must be a string")
    if "\x00" in value:
        raise InvalidTask(f"{field} must not contain NUL characters")
    if len(value) > most:
        raise InvalidTask(wrong or f"{field} must be at most {most} characters (it has {len(value)})")
    if not blank and not value:
        raise InvalidTask(wrong or f"{field} must not be empty")


def _capabilities(caps: Any) -> list[str]:
    wrong = "capabilities must be a non-empty list of strings"
    if isinstance(caps, str) or not isinstance(caps, Sequence) or not caps:
        raise InvalidTask(wrong)
    if not all(isinstance(c, str) and c.strip() for c in caps):
        raise InvalidTask(wrong)
    if len(caps) > MAX_CAPABILITIES:
        raise InvalidTask(f"capabilities must be at most {MAX_CAPABILITIES} (there are {len(caps)})")
    for cap in caps:
        if "\x00" in cap:
            raise InvalidTask("capabilities must not contain NUL characters")
        if len(cap.strip()) > MAX_CAPABILITY_CHARS:
            raise InvalidTask(f"a capability is at most {MAX_CAPABILITY_CHARS} characters")
    return sorted({c.strip().lower() for c in caps})


def _command(command: Any) -> list[str] | None:
    if command is None:
        return None
    wrong = "command must be a non-empty list of strings (an argv)"
    if isinstance(command, str) or not isinstance(command, Sequence) or not command:
        raise InvalidTask(wrong)
    if not all(isinstance(a, str) for a in command) or not command[0].strip():
        raise InvalidTask(wrong)
    if len(command) > MAX_COMMAND_ARGS:
        raise InvalidTask(f"command must have at most {MAX_COMMAND_ARGS} arguments (it has {len(command)})")
    if any(len(a) > MAX_COMMAND_ARG_CHARS for a in command):
        raise InvalidTask(f"a command argument is at most {MAX_COMMAND_ARG_CHARS} characters")
    if any("\x00" in a for a in command):
        raise InvalidTask("command must not contain NUL characters")
    return list(command)


def _payload(payload: Any) -> dict[str, Any]:
    payload = {} if payload is None else payload
    if not isinstance(payload, dict):
        raise InvalidTask("payload must be a JSON object")
    why = json_limits.problem(payload)
    if why:
        raise InvalidTask(f"payload {why}")
    return payload


def _integer(value: Any, field: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidTask(f"{field} must be an integer from {low} to {high}")
    return value


def payload_fields_check(*, pool: AgentPool, command: list[str] | None, payload: dict[str, Any]) -> None:
    """InvalidTask when the pool's agent argv names `{payload.<field>}` fields the task lacks.

    A task with its own command does not use the pool's argv, so it needs none of them.
    """
    if command or pool.runner.get("kind", "command") != "command":
        return
    wanted = sorted({m for arg in pool.runner.get("argv") or [] for m in ARGV_PAYLOAD_FIELD.findall(str(arg))})
    missing = [field for field in wanted if field not in payload]
    if missing:
        raise InvalidTask(
            f"pool {pool.name} runs its agent with payload field(s) {', '.join(missing)}, which the task's "
            f"payload does not have"
        )


def same_submission(existing: Task, spec: dict[str, Any]) -> Task:
    """The existing task when `spec` asks for exactly what it holds, else IdempotencyConflict.

    Every field of the submission counts. A timeout or attempt budget left out means the pool's,
    so it matches the task only if the task got the pool's.
    """
    pool = existing.pool
    timeout, budget = spec["timeout"], spec["max_attempts"]
    expected = {
        "timeout": timeout if timeout is not None else (pool.timeout if pool else None),
        "attempt_budget": budget if budget is not None else (pool.max_attempts if pool else None),
    }
    fields = ("prompt", "command", "payload", "task_type", "capabilities", "priority", "complexity", "external_ref")
    differs = [f for f in fields if getattr(existing, f) != spec[f]]
    differs += [f for f, value in expected.items() if getattr(existing, f) != value]
    if differs:
        shown = ", ".join("max_attempts" if f == "attempt_budget" else f for f in differs)
        raise IdempotencyConflict(
            f"idempotency key {existing.idempotency_key!r} was used for task {existing.id} with another {shown}"
        )
    return existing
