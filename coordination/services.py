"""Task lifecycle: submit, claim, heartbeat, finish, cancel, retry, redrive.

Every transition is a conditional UPDATE on the current status (and, for a running task, on the
attempt number, which fences off a worker that lost its claim), so concurrent or repeated calls
change a task at most once. Every transition publishes one event; messages to the broker are sent
only after commit.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from agents.models import Agent, AgentPool
from agents.profiles import profile_record
from coordination import dispatch as broker
from coordination.decisions import decision_close, decision_record
from coordination.errors import IdempotencyConflict, InvalidTask, InvalidTransition, TaskNotFound
from coordination.events import publish
from coordination.metrics import DECISIONS_TOTAL, TASK_DURATION, TASKS_TOTAL
from coordination.models import DEFAULT_TEAM, Priority, Source, Task, TaskAttempt, Team
from coordination.results import AttemptResult
from coordination.routing import TaskSpec, route

log = logging.getLogger(__name__)

MAX_TIMEOUT = 24 * 3600.0
BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
_jitter = secrets.SystemRandom()


# --- submit -------------------------------------------------------------------------------------
def task_submit(
    *,
    capabilities: Sequence[str],
    prompt: str = "",
    command: Sequence[str] | None = None,
    payload: dict[str, Any] | None = None,
    task_type: str = "general",
    priority: str = Priority.NORMAL,
    complexity: int | None = None,
    timeout: float | None = None,
    max_attempts: int | None = None,
    idempotency_key: str | None = None,
    source: str = Source.PYTHON,
    external_ref: str = "",
    team: Team | None = None,
) -> Task:
    """Validate, route and store a task, then send it to its pool's queue after commit.

    Raises InvalidTask or NoEligiblePool and stores nothing when the task cannot run. With an
    idempotency key, a repeat of the same submission returns the first task; the same key with
    different content is an IdempotencyConflict. The routing decision is stored with the task.
    """
    spec = _validated(
        capabilities=capabilities, prompt=prompt, command=command, payload=payload, task_type=task_type,
        priority=priority, complexity=complexity, timeout=timeout, max_attempts=max_attempts,
        idempotency_key=idempotency_key, source=source, external_ref=external_ref,
    )  # fmt: skip
    team = team or team_default()
    if idempotency_key:
        existing = Task.objects.filter(team=team, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _same_submission(existing, spec)
    choice = route(
        TaskSpec(task_type=spec["task_type"], capabilities=tuple(spec["capabilities"]), priority=spec["priority"],
                 complexity=spec["complexity"], prompt_length=len(spec["prompt"]), source=spec["source"]),
        needs_commands=bool(spec["command"]),
    )  # fmt: skip
    pool = choice.pool
    now = timezone.now()
    budget = spec.pop("max_attempts") or pool.max_attempts
    timeout = spec.pop("timeout") or pool.timeout
    task = Task(
        **spec,
        pool=pool,
        team=team,
        status=Task.Status.QUEUED,
        timeout=timeout,
        attempt_budget=budget,
        max_attempts=budget,
        queued_at=now,
        available_at=now,
        dispatched_at=now,
    )
    try:
        with transaction.atomic():
            task.save(force_insert=True)
            decision_record(task=task, choice=choice)
            publish("task.queued", task=task, pool=pool, priority=task.priority, source=task.source,
                    title=task.title(), capabilities=task.capabilities)  # fmt: skip
            transaction.on_commit(lambda: task_send(task))
    except IntegrityError:
        if not idempotency_key:
            raise
        # Two submits with one key raced; the other one stored first.
        return _same_submission(Task.objects.get(team=team, idempotency_key=idempotency_key), spec)
    TASKS_TOTAL.labels(status=Task.Status.QUEUED, pool=pool.name).inc()
    DECISIONS_TOTAL.labels(strategy=choice.strategy, fallback=choice.fallback or "none").inc()
    return task


def team_default() -> Team:
    """The team of tasks submitted from this machine (CLI, Python, demo) without one."""
    team, _ = Team.objects.get_or_create(name=DEFAULT_TEAM)
    return team


def contains_nul(value: Any) -> bool:
    """PostgreSQL stores no NUL character in text or JSON; refuse it at the door, not with a 500."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(v) for v in value)
    return False


def _validated(**spec: Any) -> dict[str, Any]:
    for field in ("prompt", "command", "payload", "capabilities", "task_type", "idempotency_key", "external_ref"):
        if contains_nul(spec[field]):
            raise InvalidTask(f"{field} must not contain NUL characters")
    caps = spec["capabilities"]
    if isinstance(caps, str) or not isinstance(caps, Sequence) or not caps:
        raise InvalidTask("capabilities must be a non-empty list of strings")
    if not all(isinstance(c, str) and c.strip() for c in caps):
        raise InvalidTask("capabilities must be a non-empty list of strings")
    spec["capabilities"] = sorted({c.strip().lower() for c in caps})
    command = spec["command"]
    if command is not None:
        if isinstance(command, str) or not isinstance(command, Sequence) or not command:
            raise InvalidTask("command must be a non-empty list of strings (an argv)")
        if not all(isinstance(a, str) for a in command) or not command[0].strip():
            raise InvalidTask("command must be a non-empty list of strings (an argv)")
        spec["command"] = list(command)
    prompt = spec["prompt"]
    if not isinstance(prompt, str):
        raise InvalidTask("prompt must be a string")
    if not prompt.strip() and not command:
        raise InvalidTask("a task needs a prompt or a command")
    payload = spec["payload"] if spec["payload"] is not None else {}
    if not isinstance(payload, dict):
        raise InvalidTask("payload must be a JSON object")
    spec["payload"] = payload
    if spec["priority"] not in Priority.values:
        raise InvalidTask(f"priority must be one of {', '.join(Priority.values)}, not {spec['priority']!r}")
    task_type = spec["task_type"]
    if not isinstance(task_type, str) or not task_type or len(task_type) > 64:
        raise InvalidTask("task_type must be a string of 1 to 64 characters")
    complexity = spec["complexity"]
    if complexity is not None and (
        isinstance(complexity, bool) or not isinstance(complexity, int) or not 1 <= complexity <= 10
    ):
        raise InvalidTask("complexity must be an integer from 1 to 10")
    timeout = spec["timeout"]
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT:
            raise InvalidTask(f"timeout must be a number of seconds above 0 and at most {int(MAX_TIMEOUT)}")
        spec["timeout"] = float(timeout)
    attempts = spec["max_attempts"]
    if attempts is not None and (
        isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 20
    ):
        raise InvalidTask("max_attempts must be an integer from 1 to 20")
    key = spec["idempotency_key"]
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 200):
        raise InvalidTask("idempotency key must be 1 to 200 characters")
    if spec["source"] not in Source.values:
        raise InvalidTask(f"source must be one of {', '.join(Source.values)}")
    return spec


def _same_submission(existing: Task, spec: dict[str, Any]) -> Task:
    fields = ("prompt", "command", "payload", "task_type", "capabilities", "priority")
    if any(getattr(existing, f) != spec[f] for f in fields):
        raise IdempotencyConflict(
            f"idempotency key {existing.idempotency_key!r} was used for task {existing.id} with other content"
        )
    return existing


def task_send(task: Task, *, countdown: float = 0.0) -> bool:
    """Send the task's message to its pool's queue (after commit; False if the broker refused)."""
    return broker.dispatch(
        task_id=str(task.id),
        queue=task.pool.queue,
        priority=task.broker_priority,
        timeout=task.timeout,
        countdown=countdown,
    )


# --- claim and run ------------------------------------------------------------------------------
def task_claim(*, task_id: str, agent: Agent, pid: int, host: str) -> TaskAttempt | None:
    """Take a queued task for this agent: one conditional UPDATE, so only one claimer wins.

    Returns the new attempt, or None when the message is stale (the task is running elsewhere,
    finished, cancelled or gone). A task still marked running whose worker process on this host
    has died is recovered as a lost attempt, which queues it again.
    """
    now = timezone.now()
    with transaction.atomic():
        won = Task.objects.filter(id=task_id, status=Task.Status.QUEUED).update(
            status=Task.Status.RUNNING, agent=agent, attempts=F("attempts") + 1, started_at=now, updated_at=now
        )
        if not won:
            _recover_if_orphaned(task_id=task_id, host=host)
            return None
        task = Task.objects.select_related("pool").get(id=task_id)
        attempt = TaskAttempt.objects.create(
            task=task, number=task.attempts, agent=agent, host=host, pid=pid, started_at=now, heartbeat_at=now
        )
        publish("task.running", task=task, agent=agent, pool=task.pool, attempt=attempt.number)
    TASKS_TOTAL.labels(status=Task.Status.RUNNING, pool=task.pool.name).inc()
    return attempt


def _recover_if_orphaned(*, task_id: str, host: str) -> None:
    from coordination.processes import process_alive  # local: psutil only where claims run

    attempt = (
        TaskAttempt.objects.filter(task_id=task_id, outcome=TaskAttempt.Outcome.RUNNING, host=host)
        .order_by("-number")
        .first()
    )
    if attempt is not None and attempt.pid and not process_alive(attempt.pid, since=attempt.started_at):
        attempt_lost(attempt_id=attempt.id, reason=f"worker process {attempt.pid} died")


def attempt_started(*, attempt_id: int, pgid: int | None, workspace: str, log_path: str) -> None:
    TaskAttempt.objects.filter(id=attempt_id).update(pgid=pgid, workspace=workspace, log_path=log_path)


def attempt_heartbeat(*, attempt: TaskAttempt) -> bool:
    """Refresh the attempt's heartbeat. False when the attempt must stop (cancelled or superseded)."""
    TaskAttempt.objects.filter(id=attempt.id).update(heartbeat_at=timezone.now())
    return attempt_still_current(attempt=attempt)


def attempt_still_current(*, attempt: TaskAttempt) -> bool:
    return Task.objects.filter(id=attempt.task_id, status=Task.Status.RUNNING, attempts=attempt.number).exists()


def attempt_finish(*, attempt_id: int, result: AttemptResult) -> Task:
    """Record an attempt's end and move the task on: succeeded, queued again, dead or failed.

    Idempotent: an attempt already closed (e.g. recovered as lost) is left as it is.
    """
    now = timezone.now()
    with transaction.atomic():
        # of=("self",): PostgreSQL refuses FOR UPDATE on the nullable side of the joins (agent, pool)
        attempt = (
            TaskAttempt.objects.select_for_update(of=("self",)).select_related("task__pool", "agent").get(id=attempt_id)
        )
        task = attempt.task
        if attempt.outcome != TaskAttempt.Outcome.RUNNING:
            return task
        attempt.outcome = result.outcome
        attempt.finished_at = now
        attempt.exit_code = result.exit_code
        attempt.is_error = result.is_error
        attempt.error = result.error[:10_000]
        attempt.session_id = result.session_id[:200]
        attempt.cost_usd = result.cost_usd
        attempt.num_turns = result.num_turns
        attempt.output_tail = result.output_tail[-20_000:]
        attempt.save()
        TASK_DURATION.labels(pool=task.pool.name).observe((now - attempt.started_at).total_seconds())
        if result.outcome != TaskAttempt.Outcome.CANCELLED:
            _profile(task, attempt, seconds=attempt.duration)
        if result.outcome == TaskAttempt.Outcome.SUCCEEDED:
            done = _running(task, attempt.number).update(
                status=Task.Status.SUCCEEDED, finished_at=now, result=result.result, error="", updated_at=now
            )
            if done:
                task.refresh_from_db()
                publish("task.succeeded", task=task, agent=attempt.agent, attempt=attempt.number,
                        exit_code=result.exit_code, duration=attempt.duration, output_tail=result.output_tail[-2000:])  # fmt: skip
                TASKS_TOTAL.labels(status=Task.Status.SUCCEEDED, pool=task.pool.name).inc()
                decision_close(task=task, attempt=attempt)
        elif result.outcome != TaskAttempt.Outcome.CANCELLED:
            _attempt_failed(task, attempt, reason=result.error or result.outcome, permanent=result.permanent)
    task.refresh_from_db()
    return task


def attempt_lost(*, attempt_id: int, reason: str) -> None:
    """Close an attempt whose worker vanished, and queue the task again (or mark it dead)."""
    from coordination.processes import kill_attempt_processes

    with transaction.atomic():
        # of=("self",): PostgreSQL refuses FOR UPDATE on the nullable side of the joins (agent, pool)
        attempt = (
            TaskAttempt.objects.select_for_update(of=("self",)).select_related("task__pool", "agent").get(id=attempt_id)
        )
        if attempt.outcome != TaskAttempt.Outcome.RUNNING:
            return
        kill_attempt_processes(attempt)
        attempt.outcome = TaskAttempt.Outcome.LOST
        attempt.finished_at = timezone.now()
        attempt.error = reason
        attempt.save(update_fields=["outcome", "finished_at", "error"])
        # The duration of a lost attempt measures the crash, not the work: it counts for success only.
        _profile(attempt.task, attempt, seconds=None)
        _attempt_failed(attempt.task, attempt, reason=reason, permanent=False)


def _profile(task: Task, attempt: TaskAttempt, *, seconds: float | None) -> None:
    """Fold a finished attempt into its agent's performance profile (what allocation reads)."""
    api = settings.HIVE_CONFIG.external_api
    if attempt.agent_id is None or not api.intelligent_task_allocation.performance_tracking_enabled:
        return
    profile_record(
        pool_id=task.pool_id, agent_id=attempt.agent_id, task_type=task.task_type,
        succeeded=attempt.outcome == TaskAttempt.Outcome.SUCCEEDED, seconds=seconds,
        cost_usd=float(attempt.cost_usd) if attempt.cost_usd is not None else None,
        learning_rate=api.intelligence_framework.learning_rate,
    )  # fmt: skip


def _running(task: Task, number: int):
    return Task.objects.filter(id=task.id, status=Task.Status.RUNNING, attempts=number)


def _attempt_failed(task: Task, attempt: TaskAttempt, *, reason: str, permanent: bool) -> None:
    now = timezone.now()
    pool = task.pool
    if permanent:
        status = Task.Status.FAILED
    elif attempt.number >= task.max_attempts:
        status = Task.Status.DEAD
    else:
        status = Task.Status.QUEUED
    if status == Task.Status.QUEUED:
        delay = backoff_delay(attempt.number)
        moved = _running(task, attempt.number).update(
            status=status, agent=None, available_at=now + timedelta(seconds=delay), dispatched_at=now,
            error=reason[:10_000], updated_at=now,
        )  # fmt: skip
        if moved:
            task.refresh_from_db()
            publish("task.retrying", task=task, agent=attempt.agent, attempt=attempt.number, error=reason[:2000],
                    delay=round(delay, 3))  # fmt: skip
            transaction.on_commit(lambda: task_send(task, countdown=delay))
        return
    moved = _running(task, attempt.number).update(status=status, finished_at=now, error=reason[:10_000], updated_at=now)
    if moved:
        task.refresh_from_db()
        publish(f"task.{status}", task=task, agent=attempt.agent, attempt=attempt.number, error=reason[:2000])
        TASKS_TOTAL.labels(status=status, pool=pool.name).inc()
        decision_close(task=task, attempt=attempt)


def backoff_delay(attempt_number: int) -> float:
    """Exponential backoff with jitter: up to BASE·2^(n-1), at least half of it, capped."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(max(0, attempt_number - 1), 32))
    return _jitter.uniform(ceiling / 2, ceiling)


# --- operator actions -----------------------------------------------------------------------------
def task_cancel(*, task: Task, reason: str = "cancelled") -> Task:
    """Cancel a pending, queued or running task. Durable: the status is the flag every runner and
    every redelivered message checks, so a cancelled task never runs again."""
    now = timezone.now()
    with transaction.atomic():
        done = Task.objects.filter(id=task.id, status__in=Task.ACTIVE_STATUSES).update(
            status=Task.Status.CANCELLED, finished_at=now, error=reason, updated_at=now
        )
        if not done:
            task.refresh_from_db()
            raise InvalidTransition(
                f"task {task.id} is {task.status}: only pending, queued or running tasks can be cancelled"
            )
        task.refresh_from_db()
        publish("task.cancelled", task=task, reason=reason)
        decision_close(task=task, attempt=None)
    TASKS_TOTAL.labels(status=Task.Status.CANCELLED, pool=task.pool.name if task.pool else "").inc()
    return task


def task_retry(*, task: Task) -> Task:
    """Run a failed, cancelled or dead task again, with a fresh budget of attempts."""
    return _run_again(task, allowed=(Task.Status.FAILED, Task.Status.CANCELLED, Task.Status.DEAD), event="task.retried")


def task_redrive(*, task: Task) -> Task:
    """Take a task out of the dead-letter state and queue it again with a fresh budget."""
    return _run_again(task, allowed=(Task.Status.DEAD,), event="task.redriven")


def _run_again(task: Task, *, allowed: tuple[str, ...], event: str) -> Task:
    now = timezone.now()
    with transaction.atomic():
        done = Task.objects.filter(id=task.id, status__in=allowed).update(
            status=Task.Status.QUEUED, agent=None, max_attempts=F("attempts") + F("attempt_budget"),
            finished_at=None, result=None, error="", available_at=now, dispatched_at=now, queued_at=now,
            updated_at=now,
        )  # fmt: skip
        task.refresh_from_db()
        if not done:
            raise InvalidTransition(
                f"task {task.id} is {task.status}: only {' or '.join(allowed)} tasks can be run again"
            )
        publish(event, task=task)
        transaction.on_commit(lambda: task_send(task))
    return task


def task_get(ident: str) -> Task:
    """A task by full id or by a unique prefix of at least 6 characters (as the CLI shows them)."""
    ident = ident.strip().lower()
    try:
        if len(ident) >= 32:
            return Task.objects.select_related("pool", "agent").get(id=ident)
        if len(ident) >= 6:
            matches = list(Task.objects.select_related("pool", "agent").filter(id__startswith=ident)[:2])
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise TaskNotFound(f"task id prefix {ident!r} is ambiguous; give more characters")
    except (Task.DoesNotExist, ValueError):
        pass
    except Exception as exc:  # a malformed UUID on PostgreSQL
        if "uuid" not in str(exc).lower():
            raise
    raise TaskNotFound(f"no task {ident!r}")


def pool_for(name: str) -> AgentPool:
    try:
        return AgentPool.objects.get(name=name)
    except AgentPool.DoesNotExist:
        raise TaskNotFound(f"no pool {name!r}") from None
