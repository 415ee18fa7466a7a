"""Run one claimed attempt with its pool's runner and report the result.

The pool's `command` runner starts the configured agent program with the task's prompt; a task
that carries its own argv runs that instead (where the pool allows commands). The `python`
runner runs a dotted callable in a child process, so every attempt is killable, time-limited and
logged the same way.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import time
import traceback
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection

from agents.runners import claude, containment, workspace
from agents.runners.cost import cost_from_output
from agents.runners.process import ProcessOutcome, run_process
from agents.runners.pycall import RESULT_PREFIX
from agents.runners.ratelimit import RateLimitSignal, detect
from coordination import budgets, flow
from coordination.events import publish
from coordination.models import Task, TaskAttempt
from coordination.results import AttemptResult
from coordination.services import attempt_finish, attempt_heartbeat, attempt_started, attempt_still_current
from hive_project.paths import BASE_DIR, private_paths, task_log_dir

log = logging.getLogger(__name__)

# {steps.<name>.result|output}: a session step's dependency, from payload.steps (coordination.sessions)
PLACEHOLDER = re.compile(
    r"\{(prompt|task_id|workspace|attempt|payload\.[A-Za-z0-9_]+|steps\.[A-Za-z][A-Za-z0-9_-]{0,63}\.(?:result|output))\}"
)
STEP_FILE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
PROGRESS_MAX_LINES = 50
PROGRESS_READ_MAX_LINES = 2000  # of one batch of output, for progress text
# A run at least this long closes the connection it may have outlived before recording its end (a
# short one keeps it: reconnecting cost more than the rest of the bookkeeping; finish_durably still
# reconnects when the database went away meanwhile).
RECONNECT_AFTER = 5.0
FINISH_RETRY_FOR = 120.0  # seconds to keep trying to record an attempt's end while the database is away
# The agent program must not inherit the hive's own secrets.
SECRET_ENV = re.compile(r"^(DJANGO_SECRET|LEANVIBE_(SECURITY_|DATABASE_|REDIS_|.*(SECRET|TOKEN|PASSWORD|_KEY)))")


class Refusal(Exception):
    """The attempt cannot run at all; another attempt would not help."""


def attempt_run(*, attempt: TaskAttempt, lease: str | None = None) -> Task:
    """Run one claimed attempt and record its end. `lease` is its flow-control slot, kept alive
    by the attempt's heartbeat."""
    began = time.monotonic()
    task = attempt.task
    pool = task.routed_pool
    try:
        argv, output_format = plan(task, attempt.number, pool.runner, pool.allow_commands)
    except Refusal as refusal:
        return attempt_finish(
            attempt_id=attempt.id,
            result=AttemptResult(outcome=TaskAttempt.Outcome.FAILED, error=str(refusal), permanent=True, is_error=True),
            claimed=attempt,
        )
    path: Path | None = None
    try:
        path = workspace.prepare(pool.workspace, str(task.id), attempt.number)
        contained = containment.plan(
            pool.runner,
            pool=pool.name,
            default_user=settings.HIVE_CONFIG.system.runner_user,
            # what the sandbox covers: only looked up (a few stat calls) for a sandboxed pool
            hidden=[*private_paths(settings.DATABASES), workspace.root(pool.workspace)]
            if containment.sandboxed(pool.runner)
            else (),
        )
        (path / "task.json").write_text(json.dumps(task_document(task, attempt.number, path)))
        write_step_inputs(path, task.payload)
        argv = [expand(arg, task, attempt.number, path) for arg in argv]
        log_path = task_log_dir() / str(task.id) / f"{attempt.number}.log"
        monitor = Monitor(attempt, lease=lease)
        outcome = run_process(
            argv,
            cwd=path,
            env=environment(pool.runner, task, attempt.number, path),
            timeout=task.timeout,
            log_path=log_path,
            keep_going=monitor.keep_going,
            on_start=lambda pgid: monitor.started(pgid=pgid, workspace=str(path), log_path=str(log_path)),
            on_output=monitor.progress,
            containment=contained,
        )
        result = interpret(outcome, output_format, task.timeout)
        result = with_cost(result, outcome, output_format, task)
        result = with_rate_limit(result, outcome, output_format, task)
        if outcome.stopped and attempt_still_current(attempt=attempt):
            result = AttemptResult(outcome=TaskAttempt.Outcome.ERROR, error="runner stopped unexpectedly")
    except (Refusal, containment.ContainmentError) as refusal:
        result = AttemptResult(outcome=TaskAttempt.Outcome.FAILED, error=str(refusal), permanent=True, is_error=True)
    except Exception as exc:  # a runner crash fails this attempt; the task may retry
        log.exception("runner crashed on task %s", task.id)
        result = AttemptResult(
            outcome=TaskAttempt.Outcome.ERROR, error=f"runner crashed: {exc!r}", output_tail=traceback.format_exc()
        )
    finally:
        if path is not None:
            workspace.release(pool.workspace, path)
    if time.monotonic() - began >= RECONNECT_AFTER:
        close_old_connections()  # a long run may have outlived its connection (server restart, max age)
    finished = finish_durably(attempt=attempt, result=result)
    if result.cost_usd:  # budgets sum today's spend again at their next check
        budgets.spend_changed(pool_id=task.pool_id, team_id=task.team_id, started_at=attempt.started_at)
    return finished


def with_cost(result: AttemptResult, outcome: ProcessOutcome, output_format: str, task: Task) -> AttemptResult:
    """What a program other than Claude Code spent, read from its output by the pool's
    `runner.cost_field` (a JSON field) or `runner.cost_pattern` (a regex's one group).

    Claude Code's own `total_cost_usd` is read by `interpret`. A task's own command is not the
    pool's agent program, so the pool's rule is not applied to its output.
    """
    runner = task.routed_pool.runner or {}
    field, pattern = runner.get("cost_field"), runner.get("cost_pattern")
    if output_format == "claude-json" or task.command or not (field or pattern) or outcome.start_error:
        return result
    if result.cost_usd is not None:
        return result
    try:
        result.cost_usd = cost_from_output(outcome.tail, field=field or None, pattern=None if field else pattern)
    except ValueError as exc:  # a rule stored before validation said no: the attempt still counts
        log.warning("pool %s: cannot read the cost (%s)", task.routed_pool.name, exc)
    return result


def with_rate_limit(result: AttemptResult, outcome: ProcessOutcome, output_format: str, task: Task) -> AttemptResult:
    """A provider rate limit pauses the pool and sends the task back without spending an attempt.

    Claude Code says so in its output (read by `interpret`); other programs by the pool's
    `runner.rate_limit` exit codes or output pattern. A success ends the pool's run of reports,
    so the next limit starts again from the shortest backoff.
    """
    pool = task.routed_pool
    rule = (pool.runner or {}).get("rate_limit") or {}
    watched = output_format == "claude-json" or rule.get("exit_codes") or rule.get("output_pattern")
    if not watched or outcome.stopped or outcome.start_error:
        return result
    if result.outcome == TaskAttempt.Outcome.SUCCEEDED:
        flow.rate_limit_cleared(pool=pool.name)
        return result
    now = time.time()
    signal: RateLimitSignal | None = None
    if result.extra.get("classification") == "rate_limited":
        retry_after = result.extra.get("retry_after")
        signal = RateLimitSignal(result.error or "rate limited", now + retry_after if retry_after else None)
    elif output_format != "claude-json":
        signal = detect(
            lines=outcome.tail, exit_code=outcome.exit_code, output_format=output_format, rule=rule, now=now
        )
    if signal is None:
        return result
    pause = flow.pool_rate_limited(pool=pool, reason=signal.reason, reset_at=signal.reset_at, task_id=str(task.id))
    result.requeue_after = pause.seconds if pause is not None else float(rule.get("backoff_initial", 30.0))
    result.permanent = False
    result.error = f"rate limited by the provider ({signal.reason[:300]}); the pool pauses, no attempt spent"
    return result


def finish_durably(*, attempt: TaskAttempt, result: AttemptResult) -> Task:
    """attempt_finish, tried again while the database is unreachable (a restart, a failover).

    The program has done its work; giving up here would leave the attempt running until the
    reconciler calls it lost, and the task would run a second time. attempt_finish is one
    transaction and idempotent, so trying again is safe. Short pauses, so that when the database
    returns this records the result before the reconciler sees a stale attempt.
    """
    deadline = time.monotonic() + FINISH_RETRY_FOR
    pause = 0.05
    while True:
        try:
            return attempt_finish(attempt_id=attempt.id, result=result, claimed=attempt)
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("cannot record the end of attempt %s (%s); trying again", attempt.id, exc)
            try:
                connection.close()  # the next try opens a fresh one
            except DatabaseError:
                pass
            time.sleep(pause)
            pause = min(0.5, pause * 2)


def plan(task: Task, attempt: int, runner: dict, allow_commands: bool) -> tuple[list[str], str]:
    """The argv template and output format for this attempt, or a Refusal saying why it cannot run."""
    if task.command:
        if not allow_commands:
            raise Refusal(f"pool {task.routed_pool.name} does not run commands")
        return list(task.command), "text"
    if runner.get("kind") == "python":
        return [sys.executable, "-m", "agents.runners.pycall", runner["callable"]], "python"
    argv = list(runner.get("argv") or [])
    if not argv:
        raise Refusal(f"pool {task.routed_pool.name} has no agent program configured")
    if shutil.which(argv[0]) is None:
        raise Refusal(f"agent program {argv[0]!r} is not installed on this machine (pool {task.routed_pool.name})")
    return argv, runner.get("output_format", "text")


def expand(arg: str, task: Task, attempt: int, path: Path) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name.startswith("payload."):
            field = name.removeprefix("payload.")
            if field not in task.payload:
                raise Refusal(f"the runner's argv needs payload field {field!r}, which the task does not have")
            return str(task.payload[field])
        if name.startswith("steps."):
            return step_input(task, *name.removeprefix("steps.").rsplit(".", 1))
        return {"prompt": task.prompt, "task_id": str(task.id), "workspace": str(path), "attempt": str(attempt)}[name]

    return PLACEHOLDER.sub(value, arg)


def step_input(task: Task, step: str, field: str) -> str:
    """A dependency's result or output, as the session put it in the task's payload."""
    inputs = task.payload.get("steps")
    entry = inputs.get(step) if isinstance(inputs, dict) else None
    if not isinstance(entry, dict) or field not in entry:
        raise Refusal(f"the argv needs {{steps.{step}.{field}}}, and the task carries no result of step {step!r}")
    return "" if entry[field] is None else str(entry[field])


def write_step_inputs(path: Path, payload: dict) -> None:
    """A session step's dependencies as `steps/<name>.json` in its workspace (status, result, output, task)."""
    inputs = payload.get("steps") if isinstance(payload, dict) else None
    if not isinstance(inputs, dict) or not inputs:
        return
    folder = path / "steps"
    folder.mkdir(exist_ok=True)
    for name, entry in inputs.items():
        if isinstance(name, str) and STEP_FILE_NAME.match(name):  # a file name, never a path
            (folder / f"{name}.json").write_text(json.dumps(entry))


def environment(runner: dict, task: Task, attempt: int, path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not SECRET_ENV.match(k)}
    env.update({str(k): str(v) for k, v in (runner.get("env") or {}).items()})
    env.update(
        HIVE_TASK_ID=str(task.id),
        HIVE_ATTEMPT=str(attempt),
        HIVE_WORKSPACE=str(path),
        HIVE_PROMPT=task.prompt,
        PYTHONPATH=os.pathsep.join(filter(None, [str(BASE_DIR), env.get("PYTHONPATH", "")])),
    )
    return env


def task_document(task: Task, attempt: int, path: Path) -> dict:
    return {
        "id": str(task.id),
        "prompt": task.prompt,
        "command": task.command,
        "payload": task.payload,
        "task_type": task.task_type,
        "capabilities": task.capabilities,
        "priority": task.priority,
        "attempt": attempt,
        "workspace": str(path),
    }


def interpret(outcome: ProcessOutcome, output_format: str, timeout: float) -> AttemptResult:
    tail = "\n".join(outcome.tail)
    if outcome.start_error:
        return AttemptResult(
            outcome=TaskAttempt.Outcome.FAILED,
            error=outcome.start_error,
            permanent=True,
            is_error=True,
            output_tail=tail,
        )
    if outcome.stopped:
        return AttemptResult(outcome=TaskAttempt.Outcome.CANCELLED, exit_code=outcome.exit_code, output_tail=tail)
    if outcome.timed_out:
        return AttemptResult(
            outcome=TaskAttempt.Outcome.TIMEOUT,
            exit_code=outcome.exit_code,
            is_error=True,
            error=f"timed out after {timeout:g}s",
            output_tail=tail,
        )
    result = AttemptResult(
        outcome=TaskAttempt.Outcome.SUCCEEDED if outcome.exit_code == 0 else TaskAttempt.Outcome.FAILED,
        exit_code=outcome.exit_code,
        output_tail=tail,
        result={"exit_code": outcome.exit_code, "output": tail[-4000:]},
    )
    if output_format == "claude-json":
        reading = claude.read_output(outcome.tail)
        if reading is not None:
            result.session_id, result.num_turns = reading.session_id, reading.num_turns
            result.cost_usd = reading.cost_usd
            result.result = {"exit_code": outcome.exit_code, "result": reading.result, "subtype": reading.subtype}
            result.extra = reading.extra()  # classification, api_error_status, retry_after: for the rate-limit pause
            if reading.failed:  # whatever the exit status: Claude Code exits 0 on some API errors
                result.outcome = TaskAttempt.Outcome.FAILED
                result.error = reading.error
                result.permanent = reading.classification == claude.PERMANENT
    elif output_format == "python":
        for line in reversed(outcome.tail):
            if line.startswith(RESULT_PREFIX):
                result.result = {"exit_code": outcome.exit_code, "value": json.loads(line[len(RESULT_PREFIX) :])}
                break
    if result.outcome != TaskAttempt.Outcome.SUCCEEDED:
        result.is_error = True
        result.error = result.error or f"exited with status {outcome.exit_code}"
    return result


class Monitor:
    """Heartbeats, the cancel check and rate-limited progress events for a running attempt."""

    def __init__(self, attempt: TaskAttempt, *, lease: str | None = None) -> None:
        self.attempt = attempt
        self.lease = lease
        self.heartbeat_every = settings.HIVE_CONFIG.multi_agent.effective_heartbeat_interval
        self.last_beat = time.monotonic()
        self.recorded = True  # nothing to record before the program starts

    def started(self, *, pgid: int | None, workspace: str, log_path: str) -> None:
        """The program runs: its process group, workspace and log, on the attempt's row at the first
        check (runner.process: one poll interval in) or, for a program that ended before it, with
        the attempt's end: one UPDATE less per short task. Until then the program's parent-death
        signal is what kills it should this worker die."""
        self.attempt.pgid, self.attempt.workspace, self.attempt.log_path = pgid, workspace, log_path
        self.recorded = False

    def keep_going(self) -> bool:
        try:
            if not self.recorded:
                attempt_started(
                    attempt_id=self.attempt.id,
                    pgid=self.attempt.pgid,
                    workspace=self.attempt.workspace,
                    log_path=self.attempt.log_path,
                )
                self.recorded = True
            now = time.monotonic()
            if now - self.last_beat >= self.heartbeat_every:
                self.last_beat = now
                flow.lease_refresh(pool=self.attempt.task.routed_pool.name, lease=self.lease)
                return attempt_heartbeat(attempt=self.attempt)
            return attempt_still_current(attempt=self.attempt)
        except Exception as exc:  # database unreachable for a moment: the program keeps running
            log.warning("cannot check attempt %s (%s); carrying on", self.attempt.id, exc)
            close_old_connections()
            from django.db import connection

            connection.close()
            return True

    def progress(self, lines: list[str]) -> None:
        try:
            self._progress(lines)
        except Exception as exc:  # progress is best effort; the log file has every line
            log.warning("cannot publish progress of attempt %s (%s)", self.attempt.id, exc)

    def _progress(self, lines: list[str]) -> None:
        # Readable text, not raw JSON; a batch may hold a whole pretty-printed document, so it is read
        # whole first (bounded, so a flood of output costs little) and the last lines are kept.
        read = lines[-PROGRESS_READ_MAX_LINES:]
        shown = [text[:1000] for text in claude.progress_lines(read)]
        if not shown:
            return  # only stream deltas or control messages: nothing to show
        publish(
            "task.progress",
            task=self.attempt.task,
            agent=self.attempt.agent,
            attempt=self.attempt.number,
            lines=shown[-PROGRESS_MAX_LINES:],
            skipped=len(lines) - len(read) + max(0, len(shown) - PROGRESS_MAX_LINES),
        )
