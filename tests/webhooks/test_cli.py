"""`hive apikey|team|user|webhook` as a user runs them: a real process, its output, its exit code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.contrib.auth import authenticate
from django.test import Client

from coordination.models import Task
from external_api.models import ApiKey, WebhookSource
from tests.conftest import ROOT, child_env
from tests.webhooks.conftest import post_github

pytestmark = pytest.mark.django_db(transaction=True)


def hive_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hive_project.cli", *args],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_apikey_create_list_revoke(live_pools):
    assert hive_cli("team", "create", "acme").returncode == 0
    created = hive_cli("apikey", "create", "--name", "ci", "--scopes", "read,write", "--team", "acme")
    assert created.returncode == 0, created.stderr
    raw = created.stdout.strip()  # the key alone on stdout, shown this once
    key = ApiKey.objects.get()
    assert raw.startswith(f"hive_{key.prefix}_") and key.matches(raw) and key.scopes == ["read", "write"]
    assert key.team.name == "acme" and "shown once" in created.stderr

    listing = hive_cli("apikey", "list")
    assert listing.returncode == 0 and key.prefix in listing.stdout and "active" in listing.stdout
    assert raw not in listing.stdout and raw.rsplit("_", 1)[-1] not in listing.stdout

    body = json.dumps({"prompt": "lint the repo", "capabilities": ["python"]})
    client = Client()
    assert (
        client.post(
            "/webhooks/custom/", data=body, content_type="application/json", headers={"X-API-Key": raw}
        ).status_code
        == 201
    )
    assert Task.objects.get().team.name == "acme"

    revoked = hive_cli("apikey", "revoke", key.prefix)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert (
        client.post(
            "/webhooks/custom/", data=body, content_type="application/json", headers={"X-API-Key": raw}
        ).status_code
        == 401
    )
    assert "revoked" in hive_cli("apikey", "list").stdout

    bad = hive_cli("apikey", "create", "--name", "x", "--scopes", "root")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("hive: invalid: scopes are one or more of")
    missing = hive_cli("apikey", "revoke", "ffffffffffff")
    assert missing.returncode == 2 and "no API key" in missing.stderr
    assert ApiKey.objects.count() == 1


def test_team_and_user_create(live_pools, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # what the command used
    assert hive_cli("team", "create", "acme").stdout.strip() == "team acme created"
    again = hive_cli("team", "create", "acme")
    assert again.returncode == 2 and again.stderr.strip() == "hive: conflict: team 'acme' exists"
    made = hive_cli("user", "create", "olivia", "--team", "acme", "--staff")
    assert made.returncode == 0, made.stderr
    password = made.stdout.split("password: ", 1)[1].strip()
    user = authenticate(username="olivia", password=password)
    assert user is not None and user.is_staff and user.membership.team.name == "acme"
    nowhere = hive_cli("user", "create", "tom", "--team", "nowhere")
    assert nowhere.returncode == 2 and "hive team create nowhere" in nowhere.stderr


def test_webhook_add_rotate_list(live_pools):
    added = hive_cli(
        "webhook", "add", "github", "--slug", "web", "--team", "default", "-c", "python", "--label", "agent"
    )
    assert added.returncode == 0, added.stderr
    assert "POST /webhooks/github/web/" in added.stdout
    secret = added.stdout.split("secret: ", 1)[1].strip()
    source = WebhookSource.objects.get()
    assert source.secret == secret and source.rules == {"capabilities": ["python"], "task_labels": ["agent"]}

    rotated = hive_cli("webhook", "rotate", "web", "--secret", "brand new", "--overlap-hours", "2")
    assert rotated.returncode == 0 and "previous one is accepted until" in rotated.stdout
    client = Client()
    path = "/webhooks/github/web/"
    assert post_github(client, {"zen": "old"}, event="ping", secret=secret, path=path).status_code == 200
    assert post_github(client, {"zen": "new"}, event="ping", secret="brand new", path=path).status_code == 200

    listing = hive_cli("webhook", "list")
    assert listing.returncode == 0
    assert "web" in listing.stdout and "2 (previous until" in listing.stdout
    assert secret not in listing.stdout and "brand new" not in listing.stdout

    slack = hive_cli("webhook", "add", "slack", "--slug", "team-slack")
    assert slack.returncode == 2 and "needs a secret" in slack.stderr
    taken = hive_cli("webhook", "add", "custom", "--slug", "web")
    assert taken.returncode == 2 and "exists" in taken.stderr
    cut = hive_cli("webhook", "rotate", "web", "--secret", "newest", "--overlap-hours", "0")
    assert cut.returncode == 0 and "previous one is refused" in cut.stdout
    assert WebhookSource.objects.get(slug="web").secrets() == ["newest"]


def test_webhook_rotate_of_a_configured_source_says_where_to_change_it(live_pools):
    env = {"LEANVIBE_EXTERNAL_API_WEBHOOK_SERVER_GITHUB_SECRET": "configured"}
    listing = hive_cli("webhook", "list", **env)
    assert listing.returncode == 0 and "github" in listing.stdout  # synced from the configuration
    refused = hive_cli("webhook", "rotate", "github", "--secret", "x", **env)
    assert refused.returncode == 2 and "external_api.webhook_server.github.secret" in refused.stderr
