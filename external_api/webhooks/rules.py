"""What a webhook source turns into tasks: the configuration's defaults for its kind
(`external_api.webhook_server.github|slack`), overridden key by key by the source's `rules` JSON."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from coordination.errors import HiveError
from external_api.models import WebhookSource
from hive_project.config import Capabilities, NonEmpty

Kind = WebhookSource.Kind
# Who may start work by commenting on (or opening) an issue; anyone can comment on a public repository.
TRUSTED_ASSOCIATIONS = ["OWNER", "MEMBER", "COLLABORATOR"]


class RulesError(HiveError):
    code = "invalid_rules"
    http_status = 500  # the operator's configuration is wrong, not the sender's delivery


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    capabilities: Capabilities | None = None  # required by GitHub and Slack sources (their classes say so)
    priority: Literal["low", "normal", "high", "critical"] = "normal"
    task_type: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "general"
    rate_limit_per_minute: int | None = Field(None, gt=0)


class GithubRules(_Rules):
    capabilities: Capabilities
    task_labels: list[NonEmpty]
    command_prefix: NonEmpty
    author_associations: list[NonEmpty] = TRUSTED_ASSOCIATIONS


class SlackRules(_Rules):
    capabilities: Capabilities
    command: NonEmpty


class CustomRules(_Rules):
    """`capabilities`: the default when a delivery names none."""


MODELS: dict[str, type[_Rules]] = {Kind.GITHUB: GithubRules, Kind.SLACK: SlackRules, Kind.CUSTOM: CustomRules}


def config_defaults(kind: str, config=None) -> dict[str, Any]:
    server = (config or settings.HIVE_CONFIG).external_api.webhook_server
    if kind == Kind.GITHUB:
        github = server.github
        return {
            "task_labels": github.task_labels,
            "command_prefix": github.command_prefix,
            "capabilities": github.capabilities,
        }
    if kind == Kind.SLACK:
        return {"command": server.slack.command, "capabilities": server.slack.capabilities}
    return {}


def rules_validate(*, kind: str, rules: Any, config=None) -> _Rules:
    """The effective rules of a source of `kind` with these overrides, or RulesError naming the key."""
    if not isinstance(rules, dict):
        raise RulesError("webhook source rules must be a JSON object")
    try:
        return MODELS[kind].model_validate({**config_defaults(kind, config), **rules})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'rules'}: {e['msg']}" for e in exc.errors())
        raise RulesError(f"webhook source rules: {problems}") from None


def rules_for(source: WebhookSource, config=None) -> Any:
    return rules_validate(kind=source.kind, rules=source.rules, config=config)


def rate_limit_for(*, kind: str, path: str, rules: _Rules, config=None) -> int:
    """Deliveries per minute for a source: its rules, else the configured endpoint for the path or kind
    (the guide's `/github/webhook` names the GitHub endpoint), else `rate_limit_per_minute`."""
    if rules.rate_limit_per_minute:
        return rules.rate_limit_per_minute
    server = (config or settings.HIVE_CONFIG).external_api.webhook_server
    aliases = {f"{kind}/webhook", f"webhooks/{kind}", kind}
    for endpoint in server.endpoints:
        if endpoint.rate_limit and (path.startswith(endpoint.path) or endpoint.path.strip("/") in aliases):
            return endpoint.rate_limit
    return server.rate_limit_per_minute
