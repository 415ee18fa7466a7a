"""`hive scale POOL N` (an operator's target) and `hive scaling` (the decisions, newest first)."""

from __future__ import annotations

import json

import click

from hive_project.cli import fail, main, setup_django
from hive_project.cli.output import clean, table


@main.command(context_settings={"ignore_unknown_options": True})  # so "-1" reaches the check below
@click.argument("pool")
@click.argument("desired")
@click.option("--reason", default="", help="Why, recorded with the decision.")
def scale(pool: str, desired: str, reason: str) -> None:
    """Set POOL's desired instance count to DESIRED (within its min..max instances), at once.

    Recorded as a scaling decision (actuator `manual`); `hive up` starts or drains workers to
    follow it, KEDA reads it on Kubernetes. With auto-scaling on, beat may move the pool again once
    the cooldown (scaling.cooldown_minutes) has passed.
    """
    try:
        count = int(desired.strip())
    except ValueError:
        fail(f"invalid: desired = {desired!r}: expected a whole number of instances")
    setup_django()
    from coordination.errors import HiveError
    from coordination.scaling.services import scaling_set

    try:
        decision = scaling_set(pool=pool, desired=count, reason=reason)
    except HiveError as exc:
        fail(f"{exc.code}: {exc.detail}")
    click.echo(
        f"pool {decision.pool.name}: desired {decision.previous} -> {decision.desired} ({clean(decision.reason)})"
    )


@main.command()
@click.option("--pool", help="Only this pool's decisions.")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print the decisions as JSON.")
def scaling(pool: str | None, limit: int, as_json: bool) -> None:
    """List recent scaling decisions: beat's (applied, or recommended when auto_scale is off) and
    operators' manual targets."""
    setup_django()
    from agents.models import AgentPool
    from coordination.selectors import scaling_decisions_recent

    if pool and not AgentPool.objects.filter(name=pool).exists():
        fail(f"not_found: no pool {pool!r}")
    decisions = list(scaling_decisions_recent(pool=pool)[:limit])
    if as_json:
        records = [
            {
                "id": d.id,
                "time": d.created_at.isoformat(),
                "pool": d.pool.name,
                "previous": d.previous,
                "desired": d.desired,
                "actuator": d.actuator,
                "applied": d.applied,
                "reason": d.reason,
            }
            for d in decisions
        ]
        click.echo(json.dumps(records, indent=2))
        return
    rows = [
        (
            d.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            d.pool.name,
            f"{d.previous} -> {d.desired}",
            d.actuator,
            "applied" if d.applied else "recommended",
            d.reason,
        )
        for d in decisions
    ]
    click.echo(table(["TIME", "POOL", "CHANGE", "ACTUATOR", "APPLIED", "REASON"], rows))
