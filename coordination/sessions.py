"""Coordination sessions: several tasks, one goal, driven from the database.

A session's steps become tasks through `task_submit`. When a step's task ends, `_task_ended` in
coordination/services.py calls `session_step_advance` after commit; beat's `session_reconcile`
advances every active session too, so a lost hook (a worker killed between its commit and the
hook) only delays a step by one beat. Every move is a conditional UPDATE on the current status —
a step is queued by the one caller that moves it from `waiting`, a session ends once — so running
the advance twice, or from two processes at once, changes nothing.

- dag: a step is queued when its dependencies have succeeded (or, with continue_on_failure, have
  ended); their answers reach it in its prompt (`{steps.<name>.result}` filled in here) and in its
  task's payload (`payload.steps`), from which the runner fills argv placeholders and writes
  `steps/<name>.json` into the workspace. A failed step cancels its dependents, with the reason.
- fan_out: copies of one step run at once (one per target pool, or N); their answers are collected.
- consensus: every participant answers; the decision is the answer whose share of participants
  reaches the threshold (coordination.consensus), else the session ends `no_consensus`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from coordination.consensus import answer_text, decide, vote_of
from coordination.errors import HiveError, InvalidSession, InvalidTransition, SessionNotFound
from coordination.events import publish
from coordination.metrics import COORDINATION_LATENCY
from coordination.models import CoordinationSession, SessionStep, Source, Task, Team
from coordination.plans import STEP_FIELDS, STEP_PLACEHOLDER, read_plan
from coordination.services import task_cancel, task_submit, team_default

log = logging.getLogger(__name__)

Status = CoordinationSession.Status
StepStatus = SessionStep.Status
OUTPUT_MAX = 4000  # characters of a dependency's output tail handed to its dependents


# --- create ---------------------------------------------------------------------------------------
def session_create(*, plan: Any, team: Team | None = None, source: str = Source.PYTHON) -> CoordinationSession:
    """Check a plan, store the session and its steps, and queue the steps that wait for nothing.

    One transaction: a plan that cannot run (coordination.plans.read_plan: a cycle, an unknown
    dependency, more than max_participants steps, a step no pool can run, a bad step spec) raises
    InvalidSession and stores nothing — no session, no step, no task, no event.
    """
    conf = settings.HIVE_CONFIG.external_api.agent_coordination
    if not conf.enabled:
        raise InvalidSession(
            "coordination sessions are switched off (external_api.agent_coordination.enabled)", code="sessions_disabled"
        )
    if source not in Source.values or source == Source.SESSION:
        raise InvalidSession(f"source must be one of {', '.join(s for s in Source.values if s != Source.SESSION)}")
    checked = read_plan(plan)
    team = team or team_default()
    now = timezone.now()
    with transaction.atomic():
        session = CoordinationSession.objects.create(
            name=checked.name,
            mode=checked.mode,
            team=team,
            source=source,
            plan=checked.as_json(),
            continue_on_failure=checked.continue_on_failure,
            consensus_threshold=checked.consensus_threshold,
            timeout=checked.timeout,
            deadline=now + timedelta(seconds=checked.timeout),
        )
        SessionStep.objects.bulk_create(
            SessionStep(session=session, name=s.name, position=s.position, spec=s.spec, depends_on=list(s.depends_on))
            for s in checked.steps
        )
        publish(
            "session.created",
            team_id=team.id,
            session=str(session.id),
            name=session.name,
            mode=session.mode,
            steps=[s.name for s in checked.steps],
            source=source,
        )
        CoordinationSession.objects.filter(id=session.id, status=Status.PENDING).update(
            status=Status.RUNNING, started_at=now
        )
        session.refresh_from_db()
        _queue_ready(session, _dag(session), strict=True)
    return session


# --- advance ----------------------------------------------------------------------------------------
def session_step_advance(*, task: Task) -> None:
    """The hook for a task that ended: advance its session, if it is a session's step."""
    _advance(Q(steps__task_id=task.id))


def session_advance(*, session_id: UUID | str) -> CoordinationSession | None:
    """Move a session on from what its steps' tasks did. Idempotent; safe beside another advance.

    Records steps whose task ended; times the session out past its deadline (cancelling what
    still runs); cancels the dependents of a failed step or queues steps whose dependencies are
    done; ends the session when every step has ended.

    One transaction holding the session's row lock (PostgreSQL; SQLite serialises writers
    anyway): two advances of one session — two dependencies ending at once, the hook beside beat
    — run one after the other, and the second sees all the first did. Readiness comes from the
    steps' tasks, committed before their hook runs, so whichever advance runs last sees every
    dependency that has ended. It reads a few columns of every step and whole rows only of the
    steps it moves, so a hand-off costs about the same in a 200-step session as in a 3-step one.
    """
    return _advance(Q(id=session_id))


def _advance(which: Q) -> CoordinationSession | None:
    with transaction.atomic():
        # of=("self",): PostgreSQL refuses FOR UPDATE on the nullable side of the join (team)
        session = (
            CoordinationSession.objects.select_for_update(of=("self",))
            .select_related("team")
            .defer("plan")  # every step's spec: the steps' rows hold what is needed
            .filter(which)
            .first()
        )
        if session is None:
            return None
        ended = session.steps.filter(status__in=SessionStep.ACTIVE_STATUSES, task__status__in=Task.TERMINAL_STATUSES)
        for step in ended.select_related("task__pool"):
            _record_end(session, step)
        if not session.is_active:
            return session
        if timezone.now() >= session.deadline:
            _stop(session, status=Status.TIMED_OUT, reason=f"the session ran past its timeout of {session.timeout:g}s")
            return session
        steps = _dag(session)
        _queue_ready(session, steps)
        if all(s.is_terminal for s in steps):
            _finish(session)
    return session


@dataclass
class DagNode:
    """What the advance reads of every step: enough to decide what moves, no JSON beyond the edges.
    The rest (spec, result, output) is read only for the steps it moves."""

    id: int
    name: str
    status: str
    depends_on: list[str]

    @property
    def is_terminal(self) -> bool:
        return self.status in SessionStep.TERMINAL_STATUSES


def _dag(session: CoordinationSession) -> list[DagNode]:
    return [
        DagNode(*row) for row in session.steps.order_by("position").values_list("id", "name", "status", "depends_on")
    ]


def _record_end(session: CoordinationSession, step: SessionStep) -> None:
    task = step.task
    if task is None:  # callers pass steps whose task has ended
        raise ValueError(f"step {step.name} has no task")
    ends: dict[str, str] = {Task.Status.SUCCEEDED: StepStatus.SUCCEEDED, Task.Status.CANCELLED: StepStatus.CANCELLED}
    status = ends.get(task.status, StepStatus.FAILED)
    tail = task.attempt_set.order_by("-number").values_list("output_tail", flat=True).first() or ""
    reason = "" if status == StepStatus.SUCCEEDED else (task.error or f"its task is {task.status}")[:2000]
    finished = task.finished_at or timezone.now()
    with transaction.atomic(savepoint=False):  # nothing in here is caught and carried on from
        won = SessionStep.objects.filter(id=step.id, status__in=SessionStep.ACTIVE_STATUSES).update(
            status=status, result=task.result, output_tail=tail[-OUTPUT_MAX:], reason=reason, finished_at=finished
        )
        if won:
            publish(
                "session.step_finished",
                task=task,
                session=str(session.id),
                step=step.name,
                status=status,
                reason=reason[:500],
            )


def _queue_ready(session: CoordinationSession, steps: Sequence[DagNode], *, strict: bool = False) -> None:
    """Queue every waiting step whose dependencies have ended well; cancel those whose did not.

    Repeats until nothing changes: a cancelled step cancels its own dependents in turn, and a step
    refused at queue time fails its own. The steps that become ready together are queued in one
    transaction from one read of their rows, so the tenth dependent of a step does not wait for
    nine commits and nine broker messages before its own.
    """
    by_name = {s.name: s for s in steps}
    tried: set[str] = set()
    progress = True
    while progress:
        progress = False
        ready: list[DagNode] = []
        for step in steps:
            if step.status != StepStatus.WAITING or step.name in tried:
                continue
            deps = [by_name[d] for d in step.depends_on]
            if not all(d.is_terminal for d in deps):
                continue
            tried.add(step.name)
            progress = True
            broken = next((d for d in deps if d.status != StepStatus.SUCCEEDED), None)
            if broken is not None and not session.continue_on_failure:
                verb = "failed" if broken.status == StepStatus.FAILED else "was cancelled"
                _cancel_waiting(session, step, reason=f"dependency {broken.name} {verb}")
            else:
                ready.append(step)
        if ready:
            names = {s.name for s in ready} | {d for s in ready for d in s.depends_on}
            rows = {r.name: r for r in SessionStep.objects.filter(session_id=session.id, name__in=names)}
            with transaction.atomic(savepoint=False):  # _queue lets no refusal escape (but strict's)
                for step in ready:
                    step.status = _queue(session, rows[step.name], [rows[d] for d in step.depends_on], strict=strict)


def step_inputs(deps: Sequence[SessionStep]) -> dict[str, dict[str, Any]]:
    """What a dependent receives of each dependency (payload.steps, steps/<name>.json)."""
    return {
        d.name: {
            "status": d.status,
            "result": answer_text(d.result).replace("\x00", ""),
            "output": d.output_tail[-OUTPUT_MAX:].replace("\x00", ""),
            "task": str(d.task_id) if d.task_id else None,
        }
        for d in deps
    }


def fill_prompt(prompt: str, inputs: dict[str, dict[str, Any]]) -> str:
    """`{steps.<name>.result}` and `.output` in a prompt, replaced in one pass (a filled-in answer
    that itself holds a placeholder is left as it is)."""

    def value(match: Any) -> str:
        name, field = match.group(1), match.group(2)
        if name in inputs and field in STEP_FIELDS:
            return str(inputs[name][field])
        return match.group(0)

    return STEP_PLACEHOLDER.sub(value, prompt)


def _queue(session: CoordinationSession, step: SessionStep, deps: Sequence[SessionStep], *, strict: bool) -> str:
    """Submit the step's task, its dependencies' answers in its payload and prompt; its new status.

    Runs inside the caller's transaction. No savepoint: task_submit refuses before it writes.
    """
    spec = dict(step.spec)
    pool = spec.pop("pool", None)
    if deps:
        inputs = step_inputs(deps)
        spec["payload"] = {**spec.get("payload", {}), "steps": inputs}
        spec["prompt"] = fill_prompt(spec.get("prompt", ""), inputs)
    ended = max((d.finished_at for d in deps if d.finished_at), default=None)
    if not SessionStep.objects.filter(id=step.id, status=StepStatus.WAITING).update(status=StepStatus.QUEUED):
        return SessionStep.objects.values_list("status", flat=True).get(id=step.id)  # another advance was first
    try:
        task = task_submit(**spec, pool=pool, team=session.team, source=Source.SESSION)
    except HiveError as exc:
        if strict:  # at creation: refuse the whole plan, store nothing
            raise InvalidSession(f"step {step.name}: {exc.detail}") from None
        # Checked at creation, refused now: a pool disabled since, or an answer task_submit refuses.
        reason = f"could not be queued: {exc.detail}"
        SessionStep.objects.filter(id=step.id).update(
            status=StepStatus.FAILED, reason=reason, finished_at=timezone.now()
        )
        publish(
            "session.step_finished",
            team_id=session.team_id,
            session=str(session.id),
            step=step.name,
            status=StepStatus.FAILED,
            reason=reason,
        )
        return StepStatus.FAILED
    latency = max(0.0, (task.queued_at - ended).total_seconds()) if ended and task.queued_at else None
    SessionStep.objects.filter(id=step.id).update(task=task, queued_at=task.queued_at, latency=latency)
    publish("session.step_queued", task=task, session=str(session.id), step=step.name, latency=latency)
    if latency is not None:
        transaction.on_commit(lambda: COORDINATION_LATENCY.labels(stage="dependency").observe(latency))
    return StepStatus.QUEUED


def _cancel_waiting(session: CoordinationSession, step: SessionStep | DagNode, *, reason: str) -> None:
    step.status = _end_unqueued(session, step, status=StepStatus.CANCELLED, reason=reason)


def _end_unqueued(session: CoordinationSession, step: SessionStep | DagNode, *, status: str, reason: str) -> str:
    """End a step that never got a task; its status afterwards (another advance may have moved it)."""
    with transaction.atomic(savepoint=False):
        won = SessionStep.objects.filter(id=step.id, status=StepStatus.WAITING).update(
            status=status, reason=reason, finished_at=timezone.now()
        )
        if won:
            publish(
                "session.step_finished",
                team_id=session.team_id,
                session=str(session.id),
                step=step.name,
                status=status,
                reason=reason,
            )
            return status
    return SessionStep.objects.values_list("status", flat=True).get(id=step.id)


# --- end ----------------------------------------------------------------------------------------------
def _finish(session: CoordinationSession) -> None:
    """Every step has ended: the session's outcome, and for consensus and fan-out its decision."""
    steps = list(session.steps.order_by("position"))
    bad = [s for s in steps if s.status != StepStatus.SUCCEEDED]
    reason = f"step {bad[0].name} {bad[0].status}: {bad[0].reason}" if bad else ""
    decision: dict[str, Any] | None = None
    status = Status.FAILED if bad else Status.SUCCEEDED
    if session.mode == CoordinationSession.Mode.FAN_OUT:
        decision = {
            "results": {s.name: answer_text(s.result) if s.status == StepStatus.SUCCEEDED else None for s in steps},
            "succeeded": len(steps) - len(bad),
            "failed": len(bad),
        }
    elif session.mode == CoordinationSession.Mode.CONSENSUS:
        if len(bad) == len(steps):
            reason = f"no participant answered; {reason}"
        else:
            votes = [vote_of(s.result) if s.status == StepStatus.SUCCEEDED else None for s in steps]
            decision = decide(votes, threshold=session.consensus_threshold or 1.0)
            if decision["answer"] is not None:
                status = Status.SUCCEEDED
                reason = f"{decision['answer']!r} with {decision['share']:.0%} of {len(steps)} participants"
            else:
                status = Status.NO_CONSENSUS
                reason = (
                    f"no answer reached {decision['threshold']:g} of {len(steps)} participants "
                    f"(best share {decision['share']:.2f}; tally {decision['tally']})"
                )
    with transaction.atomic(savepoint=False):
        won = CoordinationSession.objects.filter(id=session.id, status__in=CoordinationSession.ACTIVE_STATUSES).update(
            status=status, decision=decision, reason=reason[:5000], finished_at=timezone.now()
        )
        if won:
            ident = str(session.id)
            if session.mode == CoordinationSession.Mode.CONSENSUS and decision is not None:
                publish("session.decided", team_id=session.team_id, session=ident, status=status, **decision)
            publish(f"session.{status}", team_id=session.team_id, session=ident, status=status, reason=reason[:2000])
    session.refresh_from_db()


def _stop(session: CoordinationSession, *, status: str, reason: str) -> bool:
    """End an active session early (timed out, cancelled), cancelling what runs and what waits.

    One transaction: whoever sees the session ended sees its unfinished steps cancelled too.
    """
    with transaction.atomic(savepoint=False):
        won = CoordinationSession.objects.filter(id=session.id, status__in=CoordinationSession.ACTIVE_STATUSES).update(
            status=status, reason=reason, finished_at=timezone.now()
        )
        if won:
            publish(f"session.{status}", team_id=session.team_id, session=str(session.id), status=status, reason=reason)
            unfinished = session.steps.exclude(status__in=SessionStep.TERMINAL_STATUSES).select_related("task")
            for step in unfinished.order_by("position"):
                if step.status == StepStatus.WAITING:
                    _cancel_waiting(session, step, reason=reason)
                elif step.task is not None:
                    try:
                        task_cancel(task=step.task, reason=reason)
                    except InvalidTransition:  # it ended meanwhile; recorded below as it ended
                        step.task.refresh_from_db()
                    _record_end(session, step)
    session.refresh_from_db()
    return bool(won)


def session_cancel(*, session: CoordinationSession, reason: str = "cancelled") -> CoordinationSession:
    """Cancel an active session: its running tasks are cancelled (their process trees killed), its
    waiting steps never run. InvalidTransition for a session that has already ended."""
    if not _stop(session, status=Status.CANCELLED, reason=reason):
        raise InvalidTransition(
            f"session {session.id} is {session.status}: only pending or running sessions can be cancelled"
        )
    return session


def session_reconcile(*, limit: int = 500) -> dict[str, int]:
    """Beat's pass: advance every active session (steps ready, tasks ended, deadlines passed).

    Covers what the task hook could not: a worker killed between a task's commit and its hook,
    a deadline passing while nothing ends. Safe beside the hook and another beat.
    """
    ids = list(CoordinationSession.objects.active().order_by("deadline").values_list("id", flat=True)[:limit])
    report = {"sessions": len(ids), "ended": 0, "timed_out": 0}
    for session_id in ids:
        try:
            session = session_advance(session_id=session_id)
        except Exception:  # one broken session must not stop the others; the next beat tries again
            log.exception("could not advance session %s", session_id)
            continue
        if session is not None and not session.is_active:
            report["ended"] += 1
            report["timed_out"] += session.status == Status.TIMED_OUT
    return report


def session_get(ident: str) -> CoordinationSession:
    """A session by full id or by a unique prefix of at least 6 characters (as the CLI shows them)."""
    ident = ident.strip().lower()
    try:
        if len(ident) >= 32:
            return CoordinationSession.objects.get(id=ident)
        if len(ident) >= 6:
            matches = list(CoordinationSession.objects.filter(id__startswith=ident)[:2])
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise SessionNotFound(f"session id prefix {ident!r} is ambiguous; give more characters")
    except (CoordinationSession.DoesNotExist, ValueError):
        pass
    except HiveError:
        raise
    except Exception as exc:  # a malformed UUID on PostgreSQL
        if "uuid" not in str(exc).lower():
            raise
    raise SessionNotFound(f"no session {ident!r}")
