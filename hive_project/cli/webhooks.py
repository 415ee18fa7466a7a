"""Webhook sources: `hive webhook add`, `hive webhook rotate`, `hive webhook list`."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import click

from hive_project.cli import fail, main, setup_django
from hive_project.cli.output import ago, table


def _hive_error(exc) -> None:
    fail(f"{exc.code}: {exc.detail}")


@main.group()
def webhook() -> None:
    """Where webhooks come from (GitHub, Slack, custom senders) and what they may ask for."""


@webhook.command("add")
@click.argument("kind", type=click.Choice(["github", "slack", "custom"]))
@click.option("--slug", required=True, help="The URL is /webhooks/<kind>/<slug>/.")
@click.option("--team", "team_name", default="default", show_default=True, help="The team the tasks belong to.")
@click.option("--secret", help="The signing secret (Slack: the app's signing secret). GitHub: generated if omitted.")
@click.option("--capability", "-c", "capabilities", multiple=True, help="Capabilities of its tasks (repeat).")
@click.option("--label", "labels", multiple=True, help="GitHub: issue labels that make a task (repeat).")
@click.option("--rate-limit", type=click.IntRange(min=1), help="Deliveries per minute.")
@click.option("--rules", "rules_json", help='More rules as JSON, e.g. \'{"priority": "high"}\'.')
def webhook_add(kind, slug, team_name, secret, capabilities, labels, rate_limit, rules_json) -> None:
    """Add a webhook source of KIND."""
    setup_django()
    from coordination import json_limits
    from coordination.errors import HiveError
    from external_api.services import team_get, webhook_source_create

    try:
        rules = json_limits.loads(rules_json) if rules_json else {}
    except json_limits.UnsafeJson as exc:
        fail(f"invalid: --rules is refused: {exc}")
    except ValueError as exc:
        fail(f"invalid: --rules is not JSON: {exc}")
    if not isinstance(rules, dict):
        fail("invalid: --rules must be a JSON object")
    if capabilities:
        rules["capabilities"] = list(capabilities)
    if labels:
        rules["task_labels"] = list(labels)
    if rate_limit:
        rules["rate_limit_per_minute"] = rate_limit
    generated = kind == "github" and not secret
    if generated:
        secret = secrets.token_hex(32)
    try:
        source = webhook_source_create(
            kind=kind, slug=slug, team=team_get(name=team_name), secret=secret or "", rules=rules
        )
    except HiveError as exc:
        _hive_error(exc)
    click.echo(f"webhook source {source.slug} ({source.kind}, team {source.team.name}): POST /webhooks/{kind}/{slug}/")
    if generated:
        click.echo(f"secret: {secret}")
        click.echo("(shown once: paste it into the GitHub webhook's Secret field)", err=True)


@webhook.command("rotate")
@click.argument("slug")
@click.option("--secret", required=True, help="The new secret.")
@click.option(
    "--overlap-hours",
    type=click.FloatRange(min=0),
    default=24.0,
    show_default=True,
    help="How long the current secret stays valid (0: refused at once).",
)
def webhook_rotate(slug, secret, overlap_hours) -> None:
    """Sign SLUG's deliveries with a new secret; the old one is accepted during the overlap."""
    setup_django()
    from coordination.errors import HiveError
    from external_api.services import webhook_source_rotate

    try:
        source = webhook_source_rotate(slug=slug, secret=secret, overlap=timedelta(hours=overlap_hours))
    except HiveError as exc:
        _hive_error(exc)
    if source.previous_secret_expires_at:
        click.echo(
            f"webhook source {slug}: new secret in use; the previous one is accepted until "
            f"{source.previous_secret_expires_at:%Y-%m-%d %H:%M} UTC"
        )
    else:
        click.echo(f"webhook source {slug}: new secret in use; the previous one is refused")


@webhook.command("list")
def webhook_list() -> None:
    """List webhook sources, their secrets' state (never the secrets) and the last delivery."""
    setup_django()
    from django.db.models import Count, Max

    from external_api.models import WebhookSource
    from external_api.services import webhook_sources_sync

    webhook_sources_sync()
    sources = WebhookSource.objects.select_related("team").annotate(
        n=Count("deliveries"), last=Max("deliveries__received_at")
    )
    rows = [
        (
            s.slug,
            s.kind,
            s.team.name,
            "yes" if s.enabled else "no",
            _secrets(s),
            s.n,
            ago(s.last),
            json.dumps(s.rules, sort_keys=True) if s.rules else "-",
        )
        for s in sources
    ]
    click.echo(table(["SLUG", "KIND", "TEAM", "ENABLED", "SECRETS", "DELIVERIES", "LAST", "RULES"], rows))


def _secrets(source) -> str:
    valid = source.secrets()
    if not valid:
        return "none"
    if len(valid) == 1:
        return "1"
    until = source.previous_secret_expires_at
    return f"2 (previous until {until:%Y-%m-%d %H:%M})" if until else "2"
