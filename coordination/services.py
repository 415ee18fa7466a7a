"""Task lifecycle: submit, claim, heartbeat, finish, cancel, retry, redrive.

Every transition is a conditional UPDATE on the current status (and, for a running task, on the
attempt number, which fences off a worker that lost its claim), so concurrent or repeated calls
change a task at most once. Every transition publishes one event; messages to the broker are sent
only after commit.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Model
from django.utils import timezone

from agents.models import Agent, AgentPool
from agents.profiles import profile_record
from coordination import dispatch as broker
from coordination import submission
from coordination.claims import RUNNING_EVENT, claim_row, claim_running, writes_rows_with_claim
from coordination.decisions import decision_close, decision_record, decision_row
from coordination.errors import HiveError, InvalidTransition, TaskNotFound
from coordination.events import announce_after_commit, event_row, publish, published
from coordination.finishes import ProfileFold, close_succeeded, folds_finish
from coordination.metrics import (
    AGENT_FAILURES,
    COORDINATION_LATENCY,
    COST_USD,
    DECISIONS_TOTAL,
    TASK_DURATION,
    TASKS_COMPLETED,
    TASKS_TOTAL,
)
from coordination.models import (
    DEFAULT_TEAM,
    Event,
    Priority,
    SessionStep,
    Source,
    Task,
    TaskAttempt,
    TaskQuerySet,
    Team,
)
from coordination.results import AttemptResult
from coordination.routing import Choice, TaskSpec, route
from coordination.rows import row_insert, rows_insert_together
from coordination.snapshot import Snapshot, cached_snapshot, routing_snapshot, token_guard

log = logging.getLogger(__name__)

MAX_TIMEOUT = submission.MAX_TIMEOUT
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
    pool: str | None = None,
) -> Task:
    """Validate, route and store a task, then send it to its pool's queue after commit.

    Raises InvalidTask (coordination.submission: types, bounds, JSON safety, and the payload
    fields the chosen pool's agent argv names) or NoEligiblePool, and stores nothing, when the task
    cannot run. With an idempotency key, a repeat of the same submission (every field alike)
    returns the first task; the same key with different content is an IdempotencyConflict. `pool`
    names the pool to use instead of letting the allocation strategy choose (a session's fan-out
    target); it must be eligible. The routing decision is stored with the task.
    """
    spec = task_submission(
        capabilities=capabilities,
        prompt=prompt,
        command=command,
        payload=payload,
        task_type=task_type,
        priority=priority,
        complexity=complexity,
        timeout=timeout,
        max_attempts=max_attempts,
        idempotency_key=idempotency_key,
        source=source,
        external_ref=external_ref,
    )
    quick = task_submit_in_one_statement(spec, team=team, pool=pool)
    if quick is not None:
        return quick
    snapshot = routing_snapshot()
    team = team or snapshot.default_team() or team_default()
    if idempotency_key:
        existing = Task.objects.select_related("pool").filter(team=team, idempotency_key=idempotency_key).first()
        if existing is not None:
            return submission.same_submission(existing, spec)
    choice = _route(spec, pool=pool, snapshot=snapshot)
    task = _task_row(spec, choice=choice, team=team)
    try:
        with transaction.atomic():
            row_insert(task)
            decision_record(task=task, choice=choice)
            publish("task.queued", task=task, pool=task.pool, **_queued_payload(task))
            transaction.on_commit(lambda: task_send(task))
    except IntegrityError:
        if not idempotency_key:
            raise
        # Two submits with one key raced; the other one stored first.
        first = Task.objects.select_related("pool").get(team=team, idempotency_key=idempotency_key)
        return submission.same_submission(first, spec)
    _count_submitted(task, choice)
    return task


def task_submission(
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
) -> dict[str, Any]:
    """task_submit's keywords (its defaults filled in) validated and normalised, or InvalidTask."""
    return submission.validated(
        capabilities=capabilities,
        prompt=prompt,
        command=command,
        payload=payload,
        task_type=task_type,
        priority=priority,
        complexity=complexity,
        timeout=timeout,
        max_attempts=max_attempts,
        idempotency_key=idempotency_key,
        source=source,
        external_ref=external_ref,
    )


def task_submit_in_one_statement(
    spec: dict[str, Any],
    *,
    team: Team | None,
    pool: str | None = None,
    along: Callable[[Task], Model] | None = None,
    guard: str = "",
    guard_params: tuple[Any, ...] = (),
    reread: bool = True,
) -> Task | None:
    """`task_submit`'s new task, its routing decision and its task.queued event (and the row
    `along(task)` makes, if given) in ONE autocommitted statement, or None when this way does not
    apply and nothing was stored; the caller then takes the general path, which says why (a key
    already used, no eligible pool, a changed pool set, ...).

    `spec` is submission.validated's. Only on PostgreSQL, outside a transaction, and with this
    process's routing snapshot: the statement inserts only while the routing token is still the
    snapshot's (coordination.snapshot.token_guard) and `guard` holds, and a unique key taken (an
    idempotency key used before, a raced duplicate) stores nothing. Routing on the cached
    snapshot costs no round trip; the general path costs six (token, BEGIN, three INSERTs, COMMIT).
    The message is sent once the statement has committed, as on the general path. When nothing
    was stored, the routing snapshot is read again and, if it had changed, the statement tried once
    more on the new one; `reread=False` leaves that to the caller (who may first look for a
    cheaper answer).
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return None
    snapshot = cached_snapshot() or routing_snapshot()
    stored = _insert_routed(
        spec, snapshot=snapshot, team=team, pool=pool, along=along, guard=guard, guard_params=guard_params
    )
    if stored is None and reread:
        # The token changed since the snapshot (or a key is taken): read the snapshot again, which
        # also keeps it fresh in a process that otherwise submits only inside transactions.
        fresh = routing_snapshot()
        if fresh.token != snapshot.token:
            stored = _insert_routed(
                spec, snapshot=fresh, team=team, pool=pool, along=along, guard=guard, guard_params=guard_params
            )
    if stored is None:
        return None
    task, choice, event = stored
    announce_after_commit(event)
    transaction.on_commit(lambda: task_send(task))  # committed already: sends now
    _count_submitted(task, choice)
    return task


def _insert_routed(
    spec: dict[str, Any],
    *,
    snapshot: Snapshot,
    team: Team | None,
    pool: str | None,
    along: Callable[[Task], Model] | None,
    guard: str,
    guard_params: tuple[Any, ...],
) -> tuple[Task, Choice, Event] | None:
    """The rows of task_submit_in_one_statement stored while `snapshot` is current, or None."""
    team = team or snapshot.default_team()
    if team is None or snapshot.token is None:
        return None
    try:
        choice = _route(spec, pool=pool, snapshot=snapshot)
    except HiveError:  # perhaps only on a stale snapshot: the general path reads it again and says
        return None
    task = _task_row(spec, choice=choice, team=team)
    event = event_row("task.queued", task=task, pool=task.pool, **_queued_payload(task))
    rows: list[Model] = [task, decision_row(task=task, choice=choice), event]
    if along is not None:
        rows.append(along(task))
    token_sql, token_params = token_guard(snapshot)
    condition = f"{token_sql} AND {guard}" if guard else token_sql
    if not rows_insert_together(rows, guard=condition, guard_params=(*token_params, *guard_params)):
        return None
    return task, choice, event


def _route(spec: dict[str, Any], *, pool: str | None, snapshot: Snapshot) -> Choice:
    """The Choice for a validated spec, checked against the chosen pool's agent argv."""
    choice = route(
        TaskSpec(
            task_type=spec["task_type"],
            capabilities=tuple(spec["capabilities"]),
            priority=spec["priority"],
            complexity=spec["complexity"],
            prompt_length=len(spec["prompt"]),
            source=spec["source"],
        ),
        needs_commands=bool(spec["command"]),
        only=pool,
        snapshot=snapshot,
    )
    submission.payload_fields_check(pool=choice.pool, command=spec["command"], payload=spec["payload"])
    return choice


def _task_row(spec: dict[str, Any], *, choice: Choice, team: Team) -> Task:
    """The unsaved queued Task for a validated spec routed by `choice`."""
    routed = choice.pool
    now = timezone.now()
    # `spec` stays whole: a raced idempotency key compares every field of it
    budget = spec["max_attempts"] or routed.max_attempts
    timeout = spec["timeout"] or routed.timeout
    fields = {k: v for k, v in spec.items() if k not in ("max_attempts", "timeout")}
    return Task(
        **fields,
        pool=routed,
        team=team,
        status=Task.Status.QUEUED,
        timeout=timeout,
        attempt_budget=budget,
        max_attempts=budget,
        queued_at=now,
        available_at=now,
        dispatched_at=now,
    )


def _queued_payload(task: Task) -> dict[str, Any]:
    return {
        "priority": task.priority,
        "source": task.source,
        "title": task.title(),
        "capabilities": task.capabilities,
    }


def _count_submitted(task: Task, choice: Choice) -> None:
    TASKS_TOTAL.labels(status=Task.Status.QUEUED, pool=task.routed_pool.name).inc()
    DECISIONS_TOTAL.labels(strategy=choice.strategy, fallback=choice.fallback or "none").inc()


def team_default() -> Team:
    """The team of tasks submitted from this machine (CLI, Python, demo) without one."""
    team = routing_snapshot().default_team()
    if team is None:
        team, _ = Team.objects.get_or_create(name=DEFAULT_TEAM)
    return team


def task_spec_check(
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
) -> dict[str, Any]:
    """The checks of task_submit without storing anything: the normalised spec, or InvalidTask.

    Sessions check every step with it before they store a row.
    """
    spec = submission.validated(
        capabilities=capabilities,
        prompt=prompt,
        command=command,
        payload=payload,
        task_type=task_type,
        priority=priority,
        complexity=complexity,
        timeout=timeout,
        max_attempts=max_attempts,
        idempotency_key=None,
        source=Source.SESSION,
        external_ref="",
    )
    for submission_only in ("idempotency_key", "source", "external_ref"):
        del spec[submission_only]
    return spec


def task_send(task: Task, *, countdown: float = 0.0) -> bool:
    """Send the task's message to its pool's queue (after commit; False if the broker refused)."""
    return broker.dispatch(
        task_id=str(task.id),
        queue=task.routed_pool.queue,
        priority=task.broker_priority,
        timeout=task.timeout,
        countdown=countdown,
    )


# --- claim and run ------------------------------------------------------------------------------
def task_claim(*, task_id: str, agent: Agent, pid: int, host: str, budget_free: bool = False) -> TaskAttempt | None:
    """Take a queued task for this agent: one conditional UPDATE, so only one claimer wins.

    Returns the new attempt, or None when the message is stale (the task is running elsewhere,
    finished, cancelled or gone). A task still marked running whose worker process on this host
    has died is recovered as a lost attempt, which queues it again. With `budget_free` it claims
    only a task that no daily budget can hold (coordination.claims), and None says nothing more:
    the caller asks the budgets (coordination.budgets), then claims again without it.
    """
    now = timezone.now()
    if writes_rows_with_claim():
        # PostgreSQL: the claim, its attempt, its event and a session step's move are one statement
        # (coordination.claims), atomic by itself: no transaction around it, whose BEGIN and COMMIT
        # were two more round trips.
        claimed = claim_running(task_id=task_id, agent=agent, now=now, budget_free=budget_free, host=host, pid=pid)
        if claimed is None:
            if not budget_free:
                _recover_if_orphaned(task_id=task_id, host=host)
            return None
        task, attempt, event = claimed
        published(event)
    else:
        with transaction.atomic():
            found = claim_row(task_id=task_id, agent_id=agent.id, now=now, budget_free=budget_free)
            if found is None:
                if not budget_free:
                    _recover_if_orphaned(task_id=task_id, host=host)
                return None
            task = found
            task.agent = agent
            attempt = TaskAttempt.objects.create(
                task=task, number=task.attempts, agent=agent, host=host, pid=pid, started_at=now, heartbeat_at=now
            )
            publish(RUNNING_EVENT, task=task, agent=agent, pool=task.pool, attempt=attempt.number)
            if task.source == Source.SESSION:
                SessionStep.objects.filter(task_id=task.id, status=SessionStep.Status.QUEUED).update(
                    status=SessionStep.Status.RUNNING
                )
    TASKS_TOTAL.labels(status=Task.Status.RUNNING, pool=task.routed_pool.name).inc()
    COORDINATION_LATENCY.labels(stage="claim").observe(ready_to_claim_seconds(task, claimed_at=now))
    return attempt


def ready_to_claim_seconds(task: Task, *, claimed_at: datetime) -> float:
    """Seconds from the task becoming ready (queued and its available_at reached) to its claim.

    A retry's backoff is not waiting: the clock starts when available_at passes, not when the
    task was queued. Never negative (a message may be delivered a moment before available_at).
    """
    ready = task.available_at or task.queued_at or claimed_at
    return max(0.0, (claimed_at - ready).total_seconds())


def count_terminal(*, status: str, pool: str) -> None:
    """Count a task reaching a terminal status for the guide's metric, once the change commits."""
    transaction.on_commit(lambda: TASKS_COMPLETED.labels(agent_type=pool, status=status).inc())


def count_agent_failure(*, pool: str) -> None:
    """Count a failed, timed-out, crashed or lost attempt, or an agent gone silent, after commit."""
    transaction.on_commit(lambda: AGENT_FAILURES.labels(agent_type=pool).inc())


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


def attempt_finish(*, attempt_id: int, result: AttemptResult, claimed: TaskAttempt | None = None) -> Task:
    """Record an attempt's end and move the task on: succeeded, queued again, dead or failed.

    Idempotent: an attempt already closed (e.g. recovered as lost) is left as it is. `claimed` is
    the attempt as its claim returned it (the worker's copy, task and pool attached): its row is
    then closed by one conditional UPDATE on its outcome instead of a locked read and a write. The
    task's own changes are conditional on its status and attempt number either way, so a task
    cancelled or recovered meanwhile is not moved.
    """
    if claimed is not None and result.outcome == TaskAttempt.Outcome.SUCCEEDED and folds_finish():
        finished = _finish_succeeded_folded(claimed, result)
        if finished is not None:
            return finished
    now = timezone.now()
    fresh = False  # whether `task` already holds what this transaction wrote to its row
    with transaction.atomic():
        if claimed is None:
            # of=("self",): PostgreSQL refuses FOR UPDATE on the nullable side of the joins (agent, pool)
            attempt = (
                TaskAttempt.objects.select_for_update(of=("self",))
                .select_related("task__pool", "task__team", "agent")
                .get(id=attempt_id)
            )
            if attempt.outcome != TaskAttempt.Outcome.RUNNING:
                return attempt.task
        else:
            attempt = claimed
        task = attempt.task
        ended = _ended(attempt, result, now=now, claimed=claimed is not None)
        closed = TaskAttempt.objects.filter(id=attempt.id, outcome=TaskAttempt.Outcome.RUNNING).update(**ended)
        if not closed:  # recovered as lost meanwhile (the locked read above rules this out)
            task.refresh_from_db()
            return task
        for name, value in ended.items():
            setattr(attempt, name, value)
        TASK_DURATION.labels(pool=task.routed_pool.name).observe((now - attempt.started_at).total_seconds())
        if result.cost_usd:
            team = task.team.name if task.team_id and task.team else ""
            spent = float(result.cost_usd)
            transaction.on_commit(lambda: COST_USD.labels(pool=task.routed_pool.name, team=team).inc(spent))
        if result.outcome != TaskAttempt.Outcome.CANCELLED:
            _profile(task, attempt, seconds=attempt.duration)
        if result.outcome == TaskAttempt.Outcome.SUCCEEDED:
            done = _running(task, attempt.number).update(
                status=Task.Status.SUCCEEDED, finished_at=now, result=result.result, error="", updated_at=now
            )
            if done:
                # The row holds what this conditional UPDATE wrote over what was read with the attempt
                # (re-reading it cost two statements: the task and, its cache cleared, the pool).
                _succeeded_fields(task, result, now=now)
                fresh = True
                event = _succeeded_event(task, attempt, result, duration=attempt.duration)
                row_insert(event)
                published(event)
                TASKS_TOTAL.labels(status=Task.Status.SUCCEEDED, pool=task.routed_pool.name).inc()
                count_terminal(status=Task.Status.SUCCEEDED, pool=task.routed_pool.name)
                decision_close(task=task, attempt=attempt)
                _task_ended(task)
        elif result.outcome != TaskAttempt.Outcome.CANCELLED and result.requeue_after is not None:
            _attempt_requeued(task, attempt, reason=result.error or "rate limited", delay=result.requeue_after)
        elif result.outcome != TaskAttempt.Outcome.CANCELLED:
            count_agent_failure(pool=task.routed_pool.name)
            _attempt_failed(task, attempt, reason=result.error or result.outcome, permanent=result.permanent)
    if not fresh:
        task.refresh_from_db()
    return task


def _finish_succeeded_folded(attempt: TaskAttempt, result: AttemptResult) -> Task | None:
    """`attempt_finish` of a claimed attempt that succeeded, on PostgreSQL: the attempt, the task,
    its event, its decision and the agent's profile in one statement (coordination.finishes), each
    written only if the attempt was still running (and the task's three only if it still ran this
    attempt). Atomic by itself, so no transaction around it (BEGIN and COMMIT were two more round
    trips); what the other path does after commit happens once it returns. None when it does not
    apply (a duration that is no duration: the profile then keeps it out, which only Python does)."""
    now = timezone.now()
    task = attempt.task
    seconds = (now - attempt.started_at).total_seconds()
    key = _profile_key(task, attempt)
    if key is not None and not (math.isfinite(seconds) and seconds >= 0):
        return None
    ended = _ended(attempt, result, now=now, claimed=True)
    event = _succeeded_event(task, attempt, result, duration=seconds)
    profile = None
    if key is not None:
        profile = ProfileFold(
            pool_id=key[0],
            agent_id=key[1],
            task_type=key[2],
            seconds=seconds,
            cost_usd=float(result.cost_usd) if result.cost_usd is not None else None,
            learning_rate=settings.HIVE_CONFIG.external_api.intelligence_framework.learning_rate,
        )
    closing = close_succeeded(attempt=attempt, ended=ended, result=result.result, now=now, event=event, profile=profile)
    if not closing.closed:  # recovered as lost meanwhile
        task.refresh_from_db()
        return task
    for name, value in ended.items():
        setattr(attempt, name, value)
    TASK_DURATION.labels(pool=task.routed_pool.name).observe(seconds)
    if result.cost_usd:
        team = task.team.name if task.team_id and task.team else ""
        transaction.on_commit(
            lambda: COST_USD.labels(pool=task.routed_pool.name, team=team).inc(float(result.cost_usd or 0))
        )
    if not closing.done:  # cancelled or recovered meanwhile: the attempt is closed, the task not moved
        task.refresh_from_db()
        return task
    _succeeded_fields(task, result, now=now)
    published(event)
    TASKS_TOTAL.labels(status=Task.Status.SUCCEEDED, pool=task.routed_pool.name).inc()
    count_terminal(status=Task.Status.SUCCEEDED, pool=task.routed_pool.name)
    _task_ended(task)
    return task


def _ended(attempt: TaskAttempt, result: AttemptResult, *, now: datetime, claimed: bool) -> dict[str, Any]:
    """The attempt's columns its end writes."""
    ended = {
        "outcome": result.outcome,
        "finished_at": now,
        "exit_code": result.exit_code,
        "is_error": result.is_error,
        "error": result.error[:10_000],
        "session_id": result.session_id[:200],
        "cost_usd": result.cost_usd,
        "num_turns": result.num_turns,
        "output_tail": result.output_tail[-20_000:],
    }
    if claimed:  # what the worker may not have written yet (workers.attempt.Monitor.started)
        ended.update(pgid=attempt.pgid, workspace=attempt.workspace, log_path=attempt.log_path)
    return ended


def _succeeded_fields(task: Task, result: AttemptResult, *, now: datetime) -> None:
    """What the success's conditional UPDATE wrote to the task's row, on the caller's copy."""
    task.status, task.finished_at, task.result, task.error, task.updated_at = (
        Task.Status.SUCCEEDED,
        now,
        result.result,
        "",
        now,
    )


def _succeeded_event(task: Task, attempt: TaskAttempt, result: AttemptResult, *, duration: float | None) -> Event:
    """The `task.succeeded` event (unsaved), as `publish` would write it."""
    return Event(
        type="task.succeeded",
        task=task,
        agent=attempt.agent,
        pool=task.pool if task.pool_id else None,
        team_id=task.team_id,
        payload={
            "attempt": attempt.number,
            "exit_code": result.exit_code,
            "duration": duration,
            "output_tail": result.output_tail[-2000:],
        },
    )


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
        count_agent_failure(pool=attempt.task.routed_pool.name)
        # The duration of a lost attempt measures the crash, not the work: it counts for success only.
        _profile(attempt.task, attempt, seconds=None)
        _attempt_failed(attempt.task, attempt, reason=reason, permanent=False)


def _profile_key(task: Task, attempt: TaskAttempt) -> tuple[int, int, str] | None:
    """(pool id, agent id, task type) of the profile a finished attempt is folded into, or None
    when none is (no agent, or performance tracking is off)."""
    api = settings.HIVE_CONFIG.external_api
    tracking = api.intelligent_task_allocation.performance_tracking_enabled
    if attempt.agent_id is None or not (tracking and api.intelligence_framework.performance_tracking_enabled):
        return None
    return task.routed_pool.id, attempt.agent_id, task.task_type


def _profile(task: Task, attempt: TaskAttempt, *, seconds: float | None) -> None:
    """Fold a finished attempt into its agent's performance profile (what allocation reads)."""
    key = _profile_key(task, attempt)
    if key is None:
        return
    api = settings.HIVE_CONFIG.external_api
    profile_record(
        pool_id=key[0],
        agent_id=key[1],
        task_type=key[2],
        succeeded=attempt.outcome == TaskAttempt.Outcome.SUCCEEDED,
        seconds=seconds,
        cost_usd=float(attempt.cost_usd) if attempt.cost_usd is not None else None,
        learning_rate=api.intelligence_framework.learning_rate,
    )


def _running(task: Task, number: int) -> TaskQuerySet:
    return Task.objects.filter(id=task.id, status=Task.Status.RUNNING, attempts=number)


def _attempt_failed(task: Task, attempt: TaskAttempt, *, reason: str, permanent: bool) -> None:
    now = timezone.now()
    pool = task.routed_pool
    if permanent:
        status = Task.Status.FAILED
    elif attempt.number >= task.max_attempts:
        status = Task.Status.DEAD
    else:
        status = Task.Status.QUEUED
    if status == Task.Status.QUEUED:
        delay = backoff_delay(attempt.number)
        moved = _running(task, attempt.number).update(
            status=status,
            agent=None,
            available_at=now + timedelta(seconds=delay),
            dispatched_at=now,
            error=reason[:10_000],
            updated_at=now,
        )
        if moved:
            task.refresh_from_db()
            publish(
                "task.retrying",
                task=task,
                agent=attempt.agent,
                attempt=attempt.number,
                error=reason[:2000],
                delay=round(delay, 3),
            )
            transaction.on_commit(lambda: task_send(task, countdown=delay))
        return
    moved = _running(task, attempt.number).update(status=status, finished_at=now, error=reason[:10_000], updated_at=now)
    if moved:
        task.refresh_from_db()
        publish(f"task.{status}", task=task, agent=attempt.agent, attempt=attempt.number, error=reason[:2000])
        TASKS_TOTAL.labels(status=status, pool=pool.name).inc()
        count_terminal(status=status, pool=pool.name)
        decision_close(task=task, attempt=attempt)
        _task_ended(task)


def _attempt_requeued(task: Task, attempt: TaskAttempt, *, reason: str, delay: float) -> None:
    """Queue the task again after `delay` without spending the attempt: the budget grows by one."""
    now = timezone.now()
    delay = max(0.0, delay)
    moved = _running(task, attempt.number).update(
        status=Task.Status.QUEUED,
        agent=None,
        max_attempts=F("max_attempts") + 1,
        available_at=now + timedelta(seconds=delay),
        dispatched_at=now,
        error=reason[:10_000],
        updated_at=now,
    )
    if moved:
        task.refresh_from_db()
        publish(
            "task.requeued",
            task=task,
            agent=attempt.agent,
            attempt=attempt.number,
            error=reason[:2000],
            delay=round(delay, 3),
            attempt_spent=False,
        )
        transaction.on_commit(lambda: task_send(task, countdown=delay))


def _task_ended(task: Task) -> None:
    """A session step's task has ended: move its session on once this transaction commits.

    Free for other tasks (no query). After commit, because the session reads its steps' tasks
    afresh: when two dependencies end at once, whichever commits last sees both. `robust`: the
    task's own end is recorded whatever happens to the session; beat's reconciler catches up.
    """
    if task.source != Source.SESSION:
        return
    from coordination.sessions import session_step_advance  # sessions build on this module

    transaction.on_commit(lambda: session_step_advance(task=task), robust=True)


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
        count_terminal(status=Task.Status.CANCELLED, pool=task.routed_pool.name if task.pool else "")
        decision_close(task=task, attempt=None)
        _task_ended(task)
    TASKS_TOTAL.labels(status=Task.Status.CANCELLED, pool=task.routed_pool.name if task.pool else "").inc()
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
            status=Task.Status.QUEUED,
            agent=None,
            max_attempts=F("attempts") + F("attempt_budget"),
            finished_at=None,
            result=None,
            error="",
            available_at=now,
            dispatched_at=now,
            queued_at=now,
            updated_at=now,
        )
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
