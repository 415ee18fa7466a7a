"""`hive session`: start a coordination session from a plan file, follow, list, show and cancel."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from hive_project.cli import fail, main, setup_django
from hive_project.cli.output import ago, status, table


def _hive_error(exc) -> None:
    fail(f"{exc.code}: {exc.detail}")


@main.group()
def session() -> None:
    """Coordination sessions: several tasks, one goal (a DAG, a fan-out or a consensus)."""


@session.command("create")
@click.argument("plan_file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--wait", "-w", is_flag=True, help="Follow the session until it ends; exit 0 only if it succeeded.")
def create(plan_file: str, wait: bool) -> None:
    """Start a session from PLAN_FILE (YAML or JSON; - reads standard input) and print its id."""
    import yaml

    try:
        text = sys.stdin.read() if plan_file == "-" else Path(plan_file).read_text()
    except OSError as exc:
        fail(f"invalid_session: cannot read {plan_file}: {exc.strerror or exc}")
    try:
        plan = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        fail(f"invalid_session: {plan_file} is not YAML or JSON: {str(exc).splitlines()[0]}")
    setup_django()
    from coordination.errors import HiveError
    from coordination.sessions import session_create

    try:
        created = session_create(plan=plan, source="cli")
    except HiveError as exc:
        _hive_error(exc)
    click.echo(str(created.id))
    if not wait:
        return
    final = follow_session(str(created.id))
    sys.exit(0 if final == "succeeded" else 1)


def follow_session(session_id: str, *, poll: float = 0.2) -> str:
    """Print the session's events as they are stored; return its final status."""
    from django.db import close_old_connections

    from coordination.models import CoordinationSession, Event

    # Start at the session's first event (the (type, id) index finds it), not at the log's start.
    created = Event.objects.filter(type="session.created", payload__session=session_id).values_list("id", flat=True)
    last_id = (created.first() or 1) - 1
    while True:
        close_old_connections()
        events = list(
            Event.objects.filter(id__gt=last_id, payload__session=session_id).select_related("pool").order_by("id")
        )
        for event in events:
            last_id = event.id
            line = _describe(event)
            if line:
                click.echo(f"{event.created_at:%H:%M:%S} {line}")
        current = CoordinationSession.objects.only("status", "reason").get(id=session_id)
        if not current.is_active and not Event.objects.filter(id__gt=last_id, payload__session=session_id).exists():
            click.echo(
                f"session {session_id} {status(current.status)}" + (f": {current.reason}" if current.reason else "")
            )
            return current.status
        time.sleep(poll)


def _describe(event) -> str:
    p = event.payload
    kind = event.type.removeprefix("session.")
    if kind == "created":
        return f"{p.get('mode')} session {p.get('name')!r}: steps {', '.join(p.get('steps', []))}"
    if kind == "step_queued":
        where = f" on pool {event.pool.name}" if event.pool else ""
        after = f" ({p['latency'] * 1000:.0f} ms after its dependencies)" if p.get("latency") is not None else ""
        return f"step {p.get('step')} queued{where}{after}"
    if kind == "step_finished":
        return f"step {p.get('step')} {status(p.get('status', ''))}" + (f": {p['reason']}" if p.get("reason") else "")
    if kind == "decided":
        tally = ", ".join(f"{answer} {n}" for answer, n in (p.get("tally") or {}).items()) or "no answers"
        return f"decision: {p.get('answer')!r} with share {p.get('share')} (threshold {p.get('threshold')}; {tally})"
    return ""


@session.command("list")
@click.option("--status", "status_filter", help="Only sessions with this status (running, succeeded, failed, …).")
@click.option("--mode", type=click.Choice(["dag", "fan_out", "consensus"]))
@click.option("--limit", "-n", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of the sessions.")
def list_sessions(status_filter: str | None, mode: str | None, limit: int, as_json: bool) -> None:
    """List recent sessions."""
    setup_django()
    from django.db.models import Count, Q

    from coordination.models import CoordinationSession, SessionStep

    qs = CoordinationSession.objects.annotate(
        total=Count("steps"), done=Count("steps", filter=Q(steps__status__in=SessionStep.TERMINAL_STATUSES))
    ).order_by("-created_at")
    if status_filter:
        qs = qs.filter(status=status_filter)
    if mode:
        qs = qs.filter(mode=mode)
    found = list(qs[:limit])
    if as_json:
        listed = [
            {
                "id": str(s.id),
                "name": s.name,
                "mode": s.mode,
                "status": s.status,
                "steps": s.total,
                "steps_done": s.done,
                "reason": s.reason,
                "created_at": s.created_at.isoformat(),
                "finished_at": s.finished_at.isoformat() if s.finished_at else None,
            }
            for s in found
        ]
        click.echo(json.dumps(listed, indent=2))
        return
    rows = [
        (s.short_id, status(s.status), s.mode, f"{s.done}/{s.total}", ago(s.created_at), s.name[:60]) for s in found
    ]
    click.echo(table(["ID", "STATUS", "MODE", "STEPS", "CREATED", "NAME"], rows))


@session.command("show")
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="Print the session and its steps as JSON.")
def show(session_id: str, as_json: bool) -> None:
    """Show one session: its steps, their tasks and results, and the decision."""
    setup_django()
    from coordination.consensus import answer_text
    from coordination.errors import HiveError
    from coordination.sessions import session_get

    try:
        found = session_get(session_id)
    except HiveError as exc:
        _hive_error(exc)
    steps = list(found.steps.select_related("task__pool").order_by("position"))
    if as_json:
        click.echo(json.dumps(_as_dict(found, steps), indent=2, default=str))
        return
    click.echo(f"session {found.id}  {status(found.status)}  {found.mode}  {found.name!r}")
    click.echo(
        f"  created {ago(found.created_at)}, timeout {found.timeout:g}s"
        + (f", threshold {found.consensus_threshold:g}" if found.consensus_threshold else "")
    )
    if found.reason:
        click.echo(f"  {found.reason}")
    rows = [
        (
            s.name,
            status(s.status),
            ", ".join(s.depends_on) or "-",
            str(s.task_id)[:8] if s.task_id else "-",
            s.task.pool.name if s.task and s.task.pool else "-",
            f"{s.latency * 1000:.0f} ms" if s.latency is not None else "-",
            (s.reason or answer_text(s.result)).replace("\n", " ")[:60],
        )
        for s in steps
    ]
    click.echo(table(["STEP", "STATUS", "AFTER", "TASK", "POOL", "LATENCY", "RESULT / REASON"], rows))
    if found.decision and "tally" in found.decision:
        d = found.decision
        click.echo(f"decision: {d['answer']!r}, share {d['share']} of {d['participants']} (threshold {d['threshold']})")
        click.echo("tally: " + ", ".join(f"{answer} {n}" for answer, n in d["tally"].items()))


def _as_dict(found, steps) -> dict:
    return {
        "id": str(found.id),
        "name": found.name,
        "mode": found.mode,
        "status": found.status,
        "reason": found.reason,
        "decision": found.decision,
        "created_at": found.created_at,
        "finished_at": found.finished_at,
        "steps": [
            {
                "name": s.name,
                "status": s.status,
                "depends_on": s.depends_on,
                "task": str(s.task_id) if s.task_id else None,
                "result": s.result,
                "reason": s.reason,
                "latency": s.latency,
            }
            for s in steps
        ],
    }


@session.command("cancel")
@click.argument("session_id")
def cancel(session_id: str) -> None:
    """Cancel a session: its running tasks are cancelled, its waiting steps never run."""
    setup_django()
    from coordination.errors import HiveError
    from coordination.sessions import session_cancel, session_get

    try:
        found = session_cancel(session=session_get(session_id), reason="cancelled from the command line")
    except HiveError as exc:
        _hive_error(exc)
    click.echo(f"session {found.id} {status(found.status)}")
