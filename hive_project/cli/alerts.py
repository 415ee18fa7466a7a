"""`hive alerts`: the fleet's alerts (hosts over their resource thresholds, pools over their queue
length), active and recent, as the monitoring beat raised and resolved them."""

from __future__ import annotations

import json

import click

from hive_project.cli import main, setup_django
from hive_project.cli.output import ago, clean, status, table


@main.command()
@click.option("--active", "active_only", is_flag=True, help="Only alerts not resolved yet.")
@click.option("--level", type=click.Choice(["warning", "critical"]))
@click.option("--resource", type=click.Choice(["cpu", "memory", "disk", "queue"]))
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of the alerts.")
def alerts(active_only: bool, level: str | None, resource: str | None, limit: int, as_json: bool) -> None:
    """List alerts, newest first: what crossed which threshold, and what to do about it."""
    setup_django()
    from coordination.selectors import alerts_filtered

    found = list(alerts_filtered(status="active" if active_only else None, level=level, resource=resource)[:limit])
    if as_json:
        click.echo(json.dumps([alert_dict(a) for a in found], indent=2))
        return
    rows = [
        (
            a.id,
            status(a.status),
            status(a.level),
            a.subject,
            _value(a.resource, a.value),
            _value(a.resource, a.threshold),
            ago(a.raised_at),
            ago(a.resolved_at) if a.resolved_at else "-",
            clean(a.resolution if a.resolved_at else a.recommendation or a.message)[:100],
        )
        for a in found
    ]
    click.echo(table(["ID", "STATUS", "LEVEL", "SUBJECT", "VALUE", "THRESHOLD", "RAISED", "RESOLVED", "NOTE"], rows))


def _value(resource: str, value: float) -> str:
    return f"{value:g}" if resource == "queue" else f"{value:.1f}%"


def alert_dict(alert) -> dict:
    """An alert for scripts: the same keys as GET /api/v1/alerts/."""
    return {
        "id": alert.id,
        "status": alert.status,
        "subject": alert.subject,
        "resource": alert.resource,
        "level": alert.level,
        "value": alert.value,
        "peak": alert.peak,
        "threshold": alert.threshold,
        "source": alert.source,
        "message": alert.message,
        "recommendation": alert.recommendation,
        "host": alert.host,
        "pool": alert.pool.name if alert.pool else None,
        "agents": alert.agents,
        "raised_at": alert.raised_at.isoformat(),
        "updated_at": alert.updated_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "resolution": alert.resolution,
    }
