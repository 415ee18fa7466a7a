"""Custom senders: `POST /webhooks/custom/` (or `/webhooks/custom/<slug>/`) with a team's API key.

`X-API-Key` (scope write; a task with a `command` also needs scope commands) says which team the
task is for. The JSON body is a task: `prompt` or
`command`, `capabilities` (default: the source's rules), `priority`, `payload`, `task_type`, and
optionally `delivery_id` — or the `X-Delivery-Id` / `Idempotency-Key` header — which makes a
repeated delivery return the first task. A source with a secret also needs `X-Hub-Signature-256`
(GitHub's scheme) over the raw body.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import AuthenticationFailed, Throttled

from coordination import json_limits
from external_api.access import COMMANDS, COMMANDS_REQUIRED, client_ip
from external_api.authentication import api_key_check, key_from_headers
from external_api.errors import json_error
from external_api.models import ApiKey, WebhookSource
from external_api.services import (
    DeliveryIdentity,
    Invalid,
    WebhookIntent,
    webhook_source_for_team,
)
from external_api.webhooks import intake
from external_api.webhooks.rules import CustomRules, RulesError, rate_limit_for, rules_for
from external_api.webhooks.signatures import SignatureError, github_verify

KIND = WebhookSource.Kind.CUSTOM
TASK_FIELDS = {
    "prompt",
    "command",
    "capabilities",
    "priority",
    "payload",
    "task_type",
    "complexity",
    "timeout",
    "max_attempts",
    "external_ref",
}


@csrf_exempt
def custom_webhook(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    body = intake.accept(request, kind=KIND, methods=("POST", "PUT"))
    if isinstance(body, HttpResponse):
        return body
    raw_key = key_from_headers(request.META)
    if not raw_key:
        return json_error("not_authenticated", "send the team's API key in X-API-Key", 401)
    try:
        key = api_key_check(raw_key, address=client_ip(request))
    except Throttled as exc:  # too many unknown keys from this address
        response = json_error("throttled", str(exc.detail), 429)
        # DRF's Throttled sets `wait`; its stubs omit the attribute
        response["Retry-After"] = str(math.ceil(exc.wait or 1))  # type: ignore[attr-defined]
        return response
    except AuthenticationFailed as exc:
        return json_error("authentication_failed", str(exc.detail), 401)
    if not key.allows(ApiKey.Scope.WRITE):
        return json_error("permission_denied", "this API key lacks the write scope", 403)
    source: WebhookSource | None
    if slug is None:
        source = webhook_source_for_team(team=key.team)
    else:
        source = intake.source_for(kind=KIND, slug=slug)
        if source is None or source.team_id != key.team_id:
            return intake.unknown_source(KIND, slug)
    if not source.enabled:
        return json_error("not_found", f"the webhook source {source.slug!r} is disabled", 404)
    if source.secrets():
        try:
            github_verify(body=body, signature=request.headers.get("X-Hub-Signature-256"), secrets=source.secrets())
        except SignatureError as exc:
            return intake.signature_refused(source, exc)
    data = _json(body)
    if isinstance(data, dict) and data.get("command") and not key.allows(COMMANDS):
        return json_error("scope_required", COMMANDS_REQUIRED, 403)  # refused before any delivery is recorded
    given_id = request.headers.get("X-Delivery-Id") or (data.get("delivery_id") if isinstance(data, dict) else None)
    given_id = given_id or request.headers.get("Idempotency-Key")
    if given_id is not None and (not isinstance(given_id, str) or not 0 < len(given_id.strip()) <= 200):
        return json_error("bad_request", "a delivery id is a string of 1 to 200 characters", 400)
    delivery_id = given_id.strip() if given_id else f"auto:{uuid.uuid4()}"
    try:
        rules = rules_for(source)
    except RulesError as exc:
        intent = WebhookIntent(delivery_id=delivery_id, event="task", error=exc)
        return intake.delivery_response(intake.receive(source=source, intent=intent))
    limited = intake.throttled(request, source=source, limit=rate_limit_for(kind=KIND, path=request.path, rules=rules))
    if limited:
        return limited
    intent = custom_intent(delivery_id=delivery_id, idempotent=bool(given_id), data=data, rules=rules)
    return intake.delivery_response(intake.receive(source=source, intent=intent))


def _json(body: bytes) -> dict[str, Any] | Invalid:
    """The body's JSON object, or why it is not one (NaN and Infinity are refused, as the API does)."""
    try:
        data = json_limits.loads(body)
    except json_limits.UnsafeJson as exc:
        return Invalid(f"the body must be a JSON object describing the task ({exc})")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return Invalid("the body must be a JSON object describing the task")
    return data


def custom_intent(*, delivery_id: str, idempotent: bool, data: dict | Invalid, rules: CustomRules) -> WebhookIntent:
    intent: DeliveryIdentity = {"delivery_id": delivery_id, "event": "task"}
    if isinstance(data, Invalid):
        return WebhookIntent(**intent, error=data)
    unknown = sorted(set(data) - TASK_FIELDS - {"delivery_id"})
    if unknown:
        return WebhookIntent(
            **intent,
            error=Invalid(f"unknown field(s): {', '.join(unknown)}; a task has {', '.join(sorted(TASK_FIELDS))}"),
        )
    task = {k: v for k, v in data.items() if k in TASK_FIELDS}
    task.setdefault("capabilities", list(rules.capabilities or []))
    task.setdefault("priority", rules.priority)
    task.setdefault("task_type", rules.task_type)
    # Types and bounds (external_ref a string of at most 300 characters, …) are task_submit's checks.
    return WebhookIntent(
        **intent, task={**task, "source": "webhook", "idempotency_key": delivery_id if idempotent else None}
    )
