"""Alert notifications: each raise and resolve POSTed to `monitoring.alerts.webhook_url`.

The body is Slack-compatible (an incoming webhook shows `text`) and carries the alert's fields
for any other receiver: `{"text": "...", "event": "alert.raised", "alert": {...}}`. It is built
from the `alert.raised`/`alert.resolved` event, so a delivery retried later still tells what
happened then, not the alert's state at the retry.

`alert_notify` makes one delivery attempt and raises `DeliveryFailed` saying whether another
attempt can help (a network error, a timeout, 408, 429 or 5xx) or not (any other answer, a
redirect included: the URL or the receiver's configuration is wrong). The URL is never logged
(a Slack webhook's URL is its secret). The retries, with backoff, are the caller's: the control
worker's `hive.alert_notify` task, so a slow receiver never holds up the monitoring round.
"""

from __future__ import annotations

import json
import logging
import random
import urllib.error
import urllib.request

from django.conf import settings

from coordination.metrics import ALERT_NOTIFICATIONS
from coordination.models import Event

log = logging.getLogger(__name__)

TIMEOUT = 5.0  # seconds per delivery attempt
RETRIES = 4  # after the first attempt
BACKOFF_FIRST, BACKOFF_MAX = 2.0, 60.0
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
ICONS = {"warning": ":warning:", "critical": ":rotating_light:", "resolved": ":white_check_mark:"}
USER_AGENT = "agent-hive-alerts/1"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a delivery: urllib would turn the POST into a GET without its body."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201  (urllib's signature)
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


class DeliveryFailed(Exception):
    def __init__(self, detail: str, *, retryable: bool) -> None:
        super().__init__(detail)
        self.retryable = retryable


def alerts_webhook_url() -> str | None:
    """Where notifications go: `monitoring.alerts.webhook_url` when `monitoring.alerts.enabled`, else None."""
    conf = settings.HIVE_CONFIG.monitoring.alerts
    return conf.webhook_url if conf.enabled and conf.webhook_url else None


def webhook_body(message: dict) -> dict:
    """The JSON a receiver gets for an alert event (`Event.as_message()` of alert.raised/resolved)."""
    p = message.get("payload") or {}
    resolved = message["type"] == "alert.resolved"
    icon = ICONS["resolved" if resolved else p.get("level", "warning")]
    if resolved:
        text = f"{icon} resolved: {p.get('subject')}: {p.get('resolution') or 'under its thresholds again'}"
    else:
        escalated = f" (was {p['escalated_from']})" if p.get("escalated_from") else ""
        text = f"{icon} [{p.get('level')}]{escalated} {p.get('message')}"
        if p.get("recommendation"):
            text += f"\nrecommended: {p['recommendation']}"
    return {
        "text": text,
        "event": message["type"],
        "event_id": message["id"],
        "at": message["at"],
        "alert": {**p, "pool": message.get("pool")},
    }


def backoff(retries: int) -> float:
    """Seconds before retry number `retries + 1`: doubling from 2 s, capped at 60 s, half of it jittered."""
    delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2**retries)
    return delay / 2 + random.uniform(0, delay / 2)


def alert_notify(*, event_id: int, url: str | None = None) -> str:
    """Deliver the alert event `event_id` once. Returns "sent", or "skipped: <why>" when there is
    nothing to do (notifications off, the event gone or not an alert's); raises DeliveryFailed."""
    url = url or alerts_webhook_url()
    if url is None:
        return "skipped: monitoring.alerts is off or has no webhook_url"
    event = Event.objects.select_related("pool").filter(id=event_id).first()
    if event is None or not event.type.startswith("alert."):
        return f"skipped: no alert event {event_id}"
    body = json.dumps(webhook_body(event.as_message())).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", USER_AGENT)
    try:
        with _OPENER.open(request, timeout=TIMEOUT) as response:
            response.read(1024)
    except urllib.error.HTTPError as exc:
        retryable = exc.code in RETRYABLE_STATUS
        ALERT_NOTIFICATIONS.labels(outcome="retryable" if retryable else "refused").inc()
        raise DeliveryFailed(f"the webhook answered {exc.code} {exc.reason}", retryable=retryable) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        ALERT_NOTIFICATIONS.labels(outcome="retryable").inc()
        reason = getattr(exc, "reason", exc)
        raise DeliveryFailed(f"the webhook could not be reached: {reason}", retryable=True) from None
    ALERT_NOTIFICATIONS.labels(outcome="sent").inc()
    return "sent"
