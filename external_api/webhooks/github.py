"""GitHub webhooks: `/webhooks/github/` (the source "github") and `/webhooks/github/<slug>/`.

A delivery is verified by `X-Hub-Signature-256` over the raw body and identified by
`X-GitHub-Delivery`. `ping` answers pong; an issue opened or labelled with one of the task labels,
and a comment starting with the command prefix ("/hive fix the login bug"), become tasks; any
other event is recorded and ignored.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from coordination import json_limits
from coordination.errors import HiveError
from external_api.errors import json_error
from external_api.models import WebhookSource
from external_api.services import DeliveryIdentity, Invalid, Outcome, WebhookIntent
from external_api.webhooks import intake
from external_api.webhooks.rules import GithubRules, RulesError, rate_limit_for, rules_for
from external_api.webhooks.signatures import github_verify

KIND = WebhookSource.Kind.GITHUB


@csrf_exempt
def github_webhook(request: HttpRequest, slug: str = KIND.value) -> HttpResponse:
    opened = intake.open_signed(
        request,
        kind=KIND,
        slug=slug,
        verify=lambda body, source: github_verify(
            body=body, signature=request.headers.get("X-Hub-Signature-256"), secrets=source.secrets()
        ),
    )
    if isinstance(opened, HttpResponse):
        return opened
    body, source = opened
    delivery_id = request.headers.get("X-GitHub-Delivery", "").strip()
    event = request.headers.get("X-GitHub-Event", "").strip()
    if not delivery_id or len(delivery_id) > 200 or not event:
        return json_error(
            "bad_request", "X-GitHub-Delivery (up to 200 characters) and X-GitHub-Event are required", 400
        )
    try:
        rules = rules_for(source)
    except RulesError as exc:
        intent = WebhookIntent(delivery_id=delivery_id, event=event, error=exc)
        return intake.delivery_response(intake.receive(source=source, intent=intent))
    limited = intake.throttled(request, source=source, limit=rate_limit_for(kind=KIND, path=request.path, rules=rules))
    if limited:
        return limited
    intent = github_intent(
        delivery_id=delivery_id, event=event, body=body, content_type=request.content_type, rules=rules
    )
    return intake.delivery_response(intake.receive(source=source, intent=intent))


def github_intent(
    *, delivery_id: str, event: str, body: bytes, content_type: str | None, rules: GithubRules
) -> WebhookIntent:
    """What a verified GitHub delivery asks for (no database access)."""
    try:
        payload = _payload(body, content_type)
    except HiveError as exc:
        if event == "ping":  # a signed ping is answered whatever it carries
            return WebhookIntent(delivery_id=delivery_id, event=event, outcome=Outcome.PING, detail="pong")
        return WebhookIntent(delivery_id=delivery_id, event=event, error=exc)
    said = payload.get("action")
    action = said if isinstance(said, str) else ""
    label = f"{event}.{action}" if action else event
    intent: DeliveryIdentity = {"delivery_id": delivery_id, "event": label}
    if event == "ping":
        return WebhookIntent(**intent, outcome=Outcome.PING, detail=str(payload.get("zen") or "pong")[:500])
    try:
        if event == "issues":
            return _issue(intent, payload, action, rules)
        if event == "issue_comment":
            return _comment(intent, payload, action, rules)
    except (KeyError, TypeError, AttributeError):
        return WebhookIntent(**intent, error=Invalid(f"the {event} payload lacks the fields GitHub sends"))
    return WebhookIntent(**intent, detail=f"{label} events do not become tasks")


def _payload(body: bytes, content_type: str | None) -> dict[str, Any]:
    try:
        if (content_type or "").lower() == "application/x-www-form-urlencoded":
            body = parse_qs(body.decode(), strict_parsing=True)["payload"][0].encode()
        payload = json_limits.loads(body)
    except json_limits.UnsafeJson as exc:
        raise Invalid(f"the body is not a GitHub payload ({exc})") from None
    except (ValueError, KeyError, IndexError):
        raise Invalid("the body is not a GitHub payload (JSON, or a form with a payload field)") from None
    if not isinstance(payload, dict):
        raise Invalid("the payload is not a JSON object")
    return payload


def _issue(intent: DeliveryIdentity, payload: dict, action: str, rules: GithubRules) -> WebhookIntent:
    issue = payload["issue"]
    wanted = {label.lower() for label in rules.task_labels}
    labels = {str(label["name"]).lower() for label in issue.get("labels") or []}
    if action == "labeled":
        if str(payload["label"]["name"]).lower() not in wanted:
            return WebhookIntent(**intent, detail=f"label {payload['label']['name']!r} is not a task label")
    elif action == "opened":
        if not labels & wanted:
            return WebhookIntent(**intent, detail="the issue has no task label")
        # Labels set at opening may come from an issue template anyone can use.
        association = issue.get("author_association") or "NONE"
        if association not in rules.author_associations:
            return WebhookIntent(
                **intent, detail=f"issue opened by {association}, not one of {', '.join(rules.author_associations)}"
            )
    else:
        return WebhookIntent(**intent, detail=f"issues.{action} does not become a task")
    title, text = str(issue.get("title") or "").strip(), str(issue.get("body") or "").strip()
    task = _task(
        rules,
        payload,
        prompt=f"{title}\n\n{text}".strip(),
        external_ref=str(issue["html_url"]),
        key=f"github:issue:{issue['id']}",
    )
    # A new issue with a task label sends `opened` and `labeled`: one task, whichever comes first.
    return WebhookIntent(**intent, task=task, conflict_is_duplicate=True)


def _comment(intent: DeliveryIdentity, payload: dict, action: str, rules: GithubRules) -> WebhookIntent:
    if action != "created":
        return WebhookIntent(**intent, detail=f"issue_comment.{action} does not become a task")
    comment, issue = payload["comment"], payload["issue"]
    text = str(comment.get("body") or "").strip()
    prefix = rules.command_prefix
    if not (text.startswith(prefix) and (len(text) == len(prefix) or text[len(prefix)].isspace())):
        return WebhookIntent(**intent, detail=f"the comment does not start with {prefix}")
    association = comment.get("author_association") or "NONE"
    if association not in rules.author_associations:
        trusted = ", ".join(rules.author_associations)
        return WebhookIntent(**intent, detail=f"comment by {association}, not one of {trusted}")
    prompt = text[len(prefix) :].strip()
    if not prompt:
        return WebhookIntent(**intent, detail=f"nothing to do after {prefix}")
    task = _task(
        rules,
        payload,
        prompt=prompt,
        external_ref=str(comment["html_url"]),
        key=f"github:comment:{comment['id']}",
        issue_title=str(issue.get("title") or ""),
        issue_url=str(issue.get("html_url") or ""),
    )
    return WebhookIntent(**intent, task=task, conflict_is_duplicate=True)


def _task(rules: GithubRules, payload: dict, *, prompt: str, external_ref: str, key: str, **context: str) -> dict:
    repository = payload.get("repository") or {}
    sender = payload.get("sender") or {}
    return {
        "prompt": prompt,
        "capabilities": list(rules.capabilities),
        "priority": rules.priority,
        "task_type": rules.task_type,
        "source": "github",
        "external_ref": external_ref[:300],
        "idempotency_key": key,
        "payload": {
            "github": {
                "repository": repository.get("full_name"),
                "sender": sender.get("login"),
                "url": external_ref,
                **context,
            }
        },
    }
