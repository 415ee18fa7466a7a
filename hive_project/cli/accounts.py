"""Teams, users and API keys: `hive team create|list|budget`, `hive user create`, `hive apikey create|list|revoke`.

Secrets (a user's generated password, an API key) are printed once, on stdout, and never stored in
clear: copy them when they are shown.
"""

from __future__ import annotations

from datetime import timedelta

import click

from hive_project.cli import fail, main, setup_django
from hive_project.cli.output import ago, table


def _hive_error(exc) -> None:
    fail(f"{exc.code}: {exc.detail}")


@main.group()
def team() -> None:
    """Teams own tasks, API keys and webhook sources."""


@team.command("create")
@click.argument("name")
def team_create_cmd(name) -> None:
    """Create the team NAME."""
    setup_django()
    from coordination.errors import HiveError
    from external_api.services import team_create

    try:
        created = team_create(name=name)
    except HiveError as exc:
        _hive_error(exc)
    click.echo(f"team {created.name} created")


@team.command("list")
def team_list_cmd() -> None:
    """List teams: members, daily budget and what their tasks spent today (UTC)."""
    setup_django()
    from django.db.models import Count

    from coordination.budgets import spent_today
    from coordination.models import Team

    rows = [
        (
            t.name,
            t.members,
            "-" if t.budget_usd_per_day is None else f"${t.budget_usd_per_day:.2f}",
            f"${spent_today(scope='team', ident=t.id):.4f}",
        )
        for t in Team.objects.annotate(members=Count("memberships"))
    ]
    click.echo(table(["TEAM", "MEMBERS", "BUDGET/DAY", "SPENT TODAY"], rows))


@team.command("budget")
@click.argument("name")
@click.argument("usd")
def team_budget_cmd(name, usd) -> None:
    """Set the team NAME's daily budget in USD, or `none` for no limit.

    Once the team's tasks have spent it in a UTC day, its new prompt tasks wait queued (command
    tasks are never held) until the day turns or the budget is raised; raising it releases them now.
    """
    setup_django()
    from coordination.budgets import budget_parse, spent_today, team_budget_set
    from coordination.errors import HiveError
    from external_api.services import team_get

    try:
        changed = team_budget_set(team=team_get(name=name), budget=budget_parse(usd))
    except HiveError as exc:
        _hive_error(exc)
    spent = spent_today(scope="team", ident=changed.id)
    if changed.budget_usd_per_day is None:
        click.echo(f"team {changed.name}: no daily budget (spent ${spent:.4f} today)")
    else:
        click.echo(f"team {changed.name}: budget ${changed.budget_usd_per_day:.2f} a day (spent ${spent:.4f} today)")


@main.group()
def user() -> None:
    """People who sign in to the dashboard, the admin and the API."""


@user.command("create")
@click.argument("username")
@click.option("--team", "team_name", required=True, help="The team the user belongs to.")
@click.option("--staff", is_flag=True, help="May use the admin console and see every team's tasks.")
def user_create_cmd(username, team_name, staff) -> None:
    """Create USERNAME in a team; the generated password is printed once."""
    setup_django()
    from coordination.errors import HiveError
    from external_api.services import team_get, user_create

    try:
        created, password = user_create(username=username, team=team_get(name=team_name), staff=staff)
    except HiveError as exc:
        _hive_error(exc)
    click.echo(f"user {created.username} created in team {team_name}{' (staff)' if staff else ''}")
    click.echo(f"password: {password}")
    click.echo("(shown once: store it now)", err=True)


@main.group()
def apikey() -> None:
    """API keys for scripts, CI and custom webhooks (X-API-Key)."""


@apikey.command("create")
@click.option("--name", required=True, help="What the key is for, e.g. ci.")
@click.option(
    "--scopes",
    default="read",
    show_default=True,
    help="Comma-separated: read, write, admin, commands (submit tasks that carry their own command).",
)
@click.option("--team", "team_name", default="default", show_default=True)
@click.option("--expires-days", type=click.IntRange(min=1), help="Expire the key after this many days.")
def apikey_create_cmd(name, scopes, team_name, expires_days) -> None:
    """Create a key; it is printed once, on stdout alone, so `KEY=$(hive apikey create …)` works."""
    setup_django()
    from django.utils import timezone

    from coordination.errors import HiveError
    from external_api.services import apikey_create, team_get

    expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
    try:
        key, raw = apikey_create(
            name=name, scopes=scopes.split(","), team=team_get(name=team_name), expires_at=expires_at
        )
    except HiveError as exc:
        _hive_error(exc)
    click.echo(
        f"API key {key.prefix} ({key.name}) for team {key.team.name}, scopes {','.join(key.scopes)}"
        + (f", expires {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else "")
        + " (shown once: store it now)",
        err=True,
    )
    click.echo(raw)


@apikey.command("list")
@click.option("--team", "team_name", help="Only this team's keys.")
def apikey_list_cmd(team_name) -> None:
    """List keys (prefix, never the secret)."""
    setup_django()
    from external_api.models import ApiKey

    keys = ApiKey.objects.select_related("team").order_by("team__name", "name", "created_at")
    if team_name:
        keys = keys.filter(team__name=team_name)
    rows = [
        (k.prefix, k.name, k.team.name, ",".join(k.scopes), _state(k), ago(k.created_at), ago(k.last_used_at))
        for k in keys
    ]
    click.echo(table(["PREFIX", "NAME", "TEAM", "SCOPES", "STATE", "CREATED", "LAST USED"], rows))


def _state(key) -> str:
    if key.revoked_at:
        return "revoked"
    if not key.active:
        return "expired"
    return f"active until {key.expires_at:%Y-%m-%d}" if key.expires_at else "active"


@apikey.command("revoke")
@click.argument("prefix")
def apikey_revoke_cmd(prefix) -> None:
    """Revoke the key with PREFIX (as `hive apikey list` shows it); it stops working at once."""
    setup_django()
    from coordination.errors import HiveError
    from external_api.services import apikey_revoke

    try:
        key = apikey_revoke(prefix=prefix)
    except HiveError as exc:
        _hive_error(exc)
    click.echo(f"API key {key.prefix} ({key.name}, team {key.team.name}) revoked {ago(key.revoked_at)}")
