"""Webhook senders as they really post: raw bytes, signed the way GitHub and Slack sign them."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import urlencode

import pytest

from coordination.models import Team
from external_api.services import webhook_source_create
from external_api.webhooks import intake
from external_api.webhooks.signatures import github_signature, slack_signature

GITHUB_SECRET = "github secret for the tests"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture(autouse=True)
def fresh_webhook_state():
    """Each test starts with no rate-limit counters and re-reads the configured sources."""
    from coordination.dispatch import redis_client

    client = redis_client()
    keys = list(client.scan_iter("*rl:webhook:*"))
    if keys:
        client.delete(*keys)
    intake._synced_fingerprint = None
    yield
    intake._synced_fingerprint = None


@pytest.fixture
def acme(pools) -> Team:
    return Team.objects.create(name="acme")


@pytest.fixture
def github(acme):
    return webhook_source_create(kind="github", slug="github", team=acme, secret=GITHUB_SECRET)


@pytest.fixture
def slack(acme):
    return webhook_source_create(kind="slack", slug="slack", team=acme, secret=SLACK_SECRET)


def raw(body: bytes | dict) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def post_github(
    client,
    body: bytes | dict,
    *,
    event: str = "issues",
    delivery: str | None = None,
    secret: str = GITHUB_SECRET,
    signature: str | None = None,
    path: str = "/webhooks/github/",
    content_type: str = "application/json",
):
    data = raw(body)
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature if signature is not None else github_signature(secret, data),
    }
    return client.post(path, data=data, content_type=content_type, headers=headers)


def issue_event(
    *,
    action: str = "opened",
    labels=("hive",),
    number: int = 7,
    association: str = "MEMBER",
    label: str | None = None,
    title: str = "Login fails on Safari",
    body: str | None = "Steps: open /login in Safari 17.",
) -> dict:
    event = {
        "action": action,
        "issue": {
            "id": 1000 + number,
            "number": number,
            "title": title,
            "body": body,
            "html_url": f"https://github.com/acme/web/issues/{number}",
            "author_association": association,
            "labels": [{"name": name} for name in labels],
        },
        "repository": {"full_name": "acme/web"},
        "sender": {"login": "octocat"},
    }
    if label is not None:
        event["label"] = {"name": label}
    return event


def comment_event(text: str, *, action: str = "created", association: str = "OWNER", comment_id: int = 55) -> dict:
    return {
        "action": action,
        "issue": {"id": 1007, "number": 7, "title": "Login fails", "html_url": "https://github.com/acme/web/issues/7"},
        "comment": {
            "id": comment_id,
            "body": text,
            "author_association": association,
            "html_url": f"https://github.com/acme/web/issues/7#issuecomment-{comment_id}",
        },
        "repository": {"full_name": "acme/web"},
        "sender": {"login": "octocat"},
    }


def slack_headers(
    body: bytes, *, secret: str = SLACK_SECRET, timestamp: str | None = None, extra: dict | None = None
) -> dict:
    timestamp = timestamp if timestamp is not None else str(int(time.time()))
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": slack_signature(secret, timestamp, body),
        **(extra or {}),
    }


def slash_command(text: str, *, command: str = "/hive", trigger_id: str = "398738663015.47445629121.803a0bc8") -> bytes:
    return urlencode(
        {
            "token": "legacy",
            "team_id": "T1DC2JH3J",
            "team_domain": "acme",
            "channel_id": "G8PSS9T3V",
            "channel_name": "eng",
            "user_id": "U2CERLKJA",
            "user_name": "roadrunner",
            "command": command,
            "text": text,
            "response_url": "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN",
            "trigger_id": trigger_id,
        }
    ).encode()


def post_slack(
    client,
    body: bytes,
    *,
    content_type: str = "application/x-www-form-urlencoded",
    path: str = "/webhooks/slack/",
    headers: dict | None = None,
    **signing,
):
    """Post signed (override `secret`/`timestamp`), or with exactly `headers` when given."""
    headers = headers if headers is not None else slack_headers(body, **signing)
    return client.post(path, data=body, content_type=content_type, headers=headers)
