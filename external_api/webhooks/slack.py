"""Slack: `/webhooks/slack/` (the source "slack") and `/webhooks/slack/<slug>/`.

Every request is verified with the v0 signing secret over `v0:{timestamp}:{raw body}`, the
timestamp within five minutes. A slash command (`/hive fix the login bug`, a form post) becomes a
task and is answered with an ephemeral message; Slack shows a non-200 answer as a bare failure, so
refusals are messages too. Events API requests: `url_verification` is answered with its challenge,
event callbacks are recorded by `event_id` and ignored. Slack's retries (`X-Slack-Retry-Num`) carry
the same trigger_id or event_id, so they are duplicates.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any
from urllib.parse import parse_qs

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from coordination import json_limits
from external_api.models import WebhookSource
from external_api.services import (
    DeliveryIdentity,
    DeliveryResult,
    Invalid,
    Outcome,
    WebhookIntent,
)
from external_api.webhooks import intake
from external_api.webhooks.rules import RulesError, SlackRules, rate_limit_for, rules_for
from external_api.webhooks.signatures import slack_verify

KIND = WebhookSource.Kind.SLACK
SLASH_COMMAND = "slash_command"


@csrf_exempt
def slack_webhook(request: HttpRequest, slug: str = KIND.value) -> HttpResponse:
    opened = intake.open_signed(
        request,
        kind=KIND,
        slug=slug,
        verify=lambda body, source: slack_verify(
            body=body,
            timestamp=request.headers.get("X-Slack-Request-Timestamp"),
            signature=request.headers.get("X-Slack-Signature"),
            secrets=source.secrets(),
            now=time.time(),
        ),
    )
    if isinstance(opened, HttpResponse):
        return opened
    body, source = opened
    fields = _fields(body, request.content_type)
    try:
        rules = rules_for(source)
    except RulesError as exc:
        intent = WebhookIntent(delivery_id=_delivery_id(fields, body), event=_event(fields), error=exc)
        return _respond(intake.receive(source=source, intent=intent), fields)
    limited = intake.throttled(request, source=source, limit=rate_limit_for(kind=KIND, path=request.path, rules=rules))
    if limited:
        return limited
    intent = slack_intent(fields=fields, body=body, rules=rules)
    return _respond(intake.receive(source=source, intent=intent), fields)


def _fields(body: bytes, content_type: str | None) -> dict[str, Any] | None:
    """The form fields of a slash command or interaction, or the JSON object of an Events API
    request; None if the body is neither."""
    try:
        if (content_type or "").lower() == "application/x-www-form-urlencoded":
            return {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        data = json_limits.loads(body)
    except ValueError:  # json_limits.UnsafeJson too: deep, NaN, not JSON
        return None
    return data if isinstance(data, dict) else None


def _delivery_id(fields: dict | None, body: bytes) -> str:
    fields = fields or {}
    if fields.get("command") is not None and fields.get("trigger_id"):
        return f"slash:{fields['trigger_id']}"[:200]
    if isinstance(fields.get("event_id"), str) and fields["event_id"]:
        return f"event:{fields['event_id']}"[:200]
    # A retry sends the same body (url_verification, interactions, a command without trigger_id).
    return f"body:{hashlib.sha256(body).hexdigest()}"


def _event(fields: dict | None) -> str:
    fields = fields or {}
    if fields.get("command") is not None:
        return SLASH_COMMAND
    said = fields.get("type")
    kind = said if isinstance(said, str) else "unknown"
    event = fields.get("event")
    if kind == "event_callback" and isinstance(event, dict) and isinstance(event.get("type"), str):
        return f"event_callback.{event['type']}"
    return kind


def slack_intent(*, fields: dict | None, body: bytes, rules: SlackRules) -> WebhookIntent:
    """What a verified Slack request asks for (no database access)."""
    intent: DeliveryIdentity = {"delivery_id": _delivery_id(fields, body), "event": _event(fields)}
    if fields is None:
        return WebhookIntent(**intent, error=Invalid("the body is neither a Slack form post nor a JSON object"))
    if intent["event"] == "url_verification":
        return WebhookIntent(**intent, outcome=Outcome.PING, detail="url_verification")
    if intent["event"] != SLASH_COMMAND:
        return WebhookIntent(**intent, detail=f"{intent['event']} requests do not become tasks")
    command, text = str(fields.get("command", "")).strip(), str(fields.get("text", "")).strip()
    if command != rules.command:
        return WebhookIntent(**intent, detail=f"this hive answers {rules.command}, not {command or 'nothing'}")
    if not text:
        return WebhookIntent(**intent, detail=f"say what to do: {rules.command} fix the flaky login test")
    where = {
        k: str(fields.get(k, ""))
        for k in ("team_id", "team_domain", "channel_id", "channel_name", "user_id", "user_name", "response_url")
    }
    task = {
        "prompt": text,
        "capabilities": list(rules.capabilities),
        "priority": rules.priority,
        "task_type": rules.task_type,
        "source": "slack",
        "payload": {"slack": {"command": command, **where}},
        "external_ref": f"slack:{where['team_id']}/{where['channel_id']}/{where['user_id']}"[:300],
        "idempotency_key": f"slack:{intent['delivery_id']}"[:200],
    }
    # A retry is the same command, whatever else changed in the form.
    return WebhookIntent(**intent, task=task, conflict_is_duplicate=True)


def _respond(result: DeliveryResult | HttpResponse, fields: dict | None) -> HttpResponse:
    if isinstance(result, HttpResponse):
        return result
    if result.delivery.event == "url_verification" and result.outcome in (Outcome.PING, Outcome.DUPLICATE):
        return JsonResponse({"challenge": str((fields or {}).get("challenge", ""))})
    if result.delivery.event != SLASH_COMMAND:
        return intake.delivery_response(result)
    task = result.task
    if result.outcome == Outcome.ACCEPTED and task is not None:
        text = f"task {task.id} queued on pool {task.routed_pool.name}"
    elif result.outcome == Outcome.DUPLICATE and task is not None:
        text = f"task {task.id} queued on pool {task.routed_pool.name} ({task.status})"
    elif result.outcome == Outcome.REJECTED and result.error is not None:
        text = f"could not queue the task: {result.error.detail}"
    else:
        text = result.delivery.detail or "nothing to do"
    return JsonResponse({"response_type": "ephemeral", "text": text})
