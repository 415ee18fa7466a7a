"""Following a task's events from the database until it ends (`hive submit --wait`)."""

from __future__ import annotations

import time

import click

from hive_project.cli.output import clean, status


def follow(task_id: str, *, show_output: bool = True, wait_timeout: float | None = None) -> str:
    """Print the task's events as they are stored; return its terminal status (or '' on timeout)."""
    from django.db import close_old_connections

    from coordination.models import Event, Task

    last_id = 0
    deadline = time.monotonic() + wait_timeout if wait_timeout else None
    while True:
        close_old_connections()
        events = list(Event.objects.filter(task_id=task_id, id__gt=last_id).select_related("agent").order_by("id"))
        for event in events:
            last_id = event.id
            _print_event(event, show_output=show_output)
        task = Task.objects.only("status").get(id=task_id)
        if task.is_terminal and not Event.objects.filter(task_id=task_id, id__gt=last_id).exists():
            return task.status
        if deadline and time.monotonic() > deadline:
            return ""
        time.sleep(0.2)


def _print_event(event, *, show_output: bool) -> None:
    p = event.payload
    kind = event.type.removeprefix("task.")
    if kind == "progress":
        if show_output:
            for line in p.get("lines", []):
                click.echo(f"  | {clean(line)}")
        return
    detail = ""
    if kind == "queued":
        detail = f"routed to pool {event.pool.name if event.pool else '?'} (priority {p.get('priority')})"
    elif kind == "running":
        detail = f"attempt {p.get('attempt')} on {event.agent.name if event.agent else '?'}"
    elif kind == "retrying":
        detail = f"attempt {p.get('attempt')} failed: {p.get('error', '')[:200]}; again in {p.get('delay')}s"
    elif kind in ("failed", "dead", "cancelled"):
        detail = (p.get("error") or p.get("reason") or "")[:300]
    elif kind == "held":  # a spent daily budget (coordination.budgets): the task waits queued
        detail = str(p.get("detail") or p.get("reason") or "")[:300]
    elif kind == "succeeded":
        detail = f"exit {p.get('exit_code')} in {p.get('duration', 0) or 0:.2f}s"
    click.echo(f"{event.created_at:%H:%M:%S} {status(kind)} {clean(detail)}".rstrip())
