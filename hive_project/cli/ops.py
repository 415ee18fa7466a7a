"""Operator commands: backup, restore, verify, events, costs."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from hive_project.cli import fail, main, setup_django
from hive_project.cli.output import table


@main.command()
@click.option("--to", "to", type=click.Path(file_okay=False, path_type=Path), help="Directory (default: var/backups).")
def backup(to: Path | None) -> None:
    """Back up the database, the effective configuration and the model artifacts into one archive."""
    setup_django()
    from hive_project.operations.backup import BackupError, backup_create

    try:
        report = backup_create(to=to)
    except BackupError as exc:
        fail(f"backup failed: {exc}", code=1)
    click.echo(f"backup {report.path} ({report.engine}, {report.files} files, {report.size / 2**20:.1f} MiB)")


@main.command()
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Write over a hive that is running.")
@click.option("--check", "check_only", is_flag=True, help="Only verify the archive's checksums.")
def restore(archive: Path, force: bool, check_only: bool) -> None:
    """Restore a backup made by `hive backup`, after checking every checksum."""
    setup_django()
    from hive_project.operations.backup import BackupError, backup_check, backup_restore

    try:
        manifest = backup_check(archive) if check_only else backup_restore(archive=archive, force=force)
    except BackupError as exc:
        fail(f"restore refused: {exc}", code=1)
    verb = "checked" if check_only else "restored"
    click.echo(
        f"{verb} {archive} (made {manifest['created_at']}, {manifest['engine']}, "
        f"{len(manifest['files'])} files, every checksum matches)"
    )


@main.command()
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The hive's web address.")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(1, 3600))
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def verify(url: str, timeout: float, as_json: bool) -> None:
    """Health verification: database, Redis, agents, a canary task round trip, the event stream."""
    setup_django()
    from hive_project.operations.verify import hive_verify

    checks = hive_verify(url=url, timeout=timeout)
    if as_json:
        click.echo(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        rows = [
            (c.name, click.style("pass", fg="green") if c.ok else click.style("FAIL", fg="red"), c.detail)
            for c in checks
        ]
        click.echo(table(["CHECK", "RESULT", "DETAIL"], rows))
    sys.exit(0 if all(c.ok for c in checks) else 1)


@main.command()
@click.option("--task", "task_id", help="Only this task's events (id or prefix).")
@click.option("--type", "types", multiple=True, help="Only these event types; `task.*` matches a family (repeat).")
@click.option("--limit", "-n", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def events(task_id: str | None, types: tuple[str, ...], limit: int, follow: bool, as_json: bool) -> None:
    """The hive's event stream from the terminal, oldest first."""
    setup_django()
    from django.db import close_old_connections
    from django.db.models import Q

    from coordination.errors import HiveError
    from coordination.models import Event
    from coordination.services import task_get

    query = Event.objects.select_related("agent", "pool")
    if task_id:
        try:
            query = query.filter(task_id=task_get(task_id).id)
        except HiveError as exc:
            fail(f"{exc.code}: {exc.detail}")
    if types:
        match = Q()
        for kind in types:
            match |= Q(type__startswith=kind[:-1]) if kind.endswith("*") else Q(type=kind)
        query = query.filter(match)
    recent = list(query.order_by("-id")[:limit])[::-1]
    last = recent[-1].id if recent else (query.order_by("-id").values_list("id", flat=True).first() or 0)
    for event in recent:
        click.echo(_event_line(event, as_json=as_json))
    if not follow:
        return
    try:
        while True:
            time.sleep(0.5)
            close_old_connections()
            for event in query.filter(id__gt=last).order_by("id")[:1000]:
                last = event.id
                click.echo(_event_line(event, as_json=as_json))
    except KeyboardInterrupt:
        pass


def _event_line(event, *, as_json: bool) -> str:
    from hive_project.cli.output import clean

    message = event.as_message()
    if as_json:
        return json.dumps(message, default=str)
    who = " ".join(x for x in (message["pool"], message["agent"]) if x)
    task = (message["task"] or "")[:8]
    payload = ", ".join(f"{k}={v}" for k, v in event.payload.items() if k not in ("lines", "output_tail"))
    if "lines" in event.payload:
        payload = " | ".join(str(line) for line in event.payload["lines"][-3:])
    return clean(f"{event.created_at:%Y-%m-%d %H:%M:%S} #{event.id} {event.type} {task} {who} {payload}"[:400])


@main.command()
@click.option(
    "--by",
    "group_by",
    default="pool",
    show_default=True,
    type=click.Choice(["pool", "team", "task_type", "day", "task"]),
)
@click.option("--since", help="ISO date or time, or a number of days back (default: 30).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def costs(group_by: str, since: str | None, as_json: bool) -> None:
    """What the agents spent (as their programs reported it), grouped."""
    setup_django()
    from django.utils import timezone

    from coordination.costs import spend

    start = _since(since, now=timezone.now())
    rows = spend(group_by=group_by, since=start)
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    total = sum(r["cost_usd"] for r in rows)
    click.echo(
        table(
            [group_by.upper(), "COST (USD)", "ATTEMPTS", "PRICED"],
            [(r["group"], f"{r['cost_usd']:.4f}", r["attempts"], r["priced_attempts"]) for r in rows],
        )
    )
    click.echo(f"total {total:.4f} USD since {start:%Y-%m-%d %H:%M} UTC")


def _since(text: str | None, *, now: datetime) -> datetime:
    if not text:
        return now - timedelta(days=30)
    if text.isdigit():
        return now - timedelta(days=int(text))
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        fail(f"invalid: --since {text!r} is not an ISO date, time or number of days")
    return when if when.tzinfo else when.replace(tzinfo=UTC)
