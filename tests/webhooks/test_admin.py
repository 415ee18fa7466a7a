"""The admin pages for keys, sources and deliveries: no secret is ever on a page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from external_api.models import ApiKey, WebhookSource
from external_api.services import apikey_create, webhook_source_create
from tests.webhooks.conftest import post_github

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, pools):
    User.objects.create_superuser("root", password="admin password 1")
    client.login(username="root", password="admin password 1")
    return client


def test_api_keys_are_listed_without_their_secret_and_can_be_revoked(admin_client):
    key, raw = apikey_create(name="ci", scopes=["write"])
    page = admin_client.get("/admin/external_api/apikey/").content.decode()
    assert key.prefix in page and "active" in page
    detail = admin_client.get(f"/admin/external_api/apikey/{key.id}/change/").content.decode()
    secret = raw.removeprefix(f"hive_{key.prefix}_")  # the secret itself may contain "_"
    assert secret not in detail and key.digest not in detail
    assert admin_client.get("/admin/external_api/apikey/add/").status_code == 403
    response = admin_client.post(
        "/admin/external_api/apikey/", {"action": "revoke", "_selected_action": [key.id]}, follow=True
    )
    assert "Revoked 1 API key(s)" in response.content.decode()
    assert ApiKey.objects.get().revoked_at is not None


def test_webhook_sources_show_the_secrets_state_never_the_secret_and_rules_are_validated(admin_client, client):
    source = webhook_source_create(
        kind="github", slug="github", team=apikey_create(name="x", scopes=["read"])[0].team, secret="very secret value"
    )
    page = admin_client.get(f"/admin/external_api/webhooksource/{source.id}/change/").content.decode()
    assert "very secret value" not in page and "current" in page
    response = admin_client.post(
        f"/admin/external_api/webhooksource/{source.id}/change/",
        {"team": source.team_id, "enabled": "on", "rules": '{"capabilities": "python"}'},
    )
    assert response.status_code == 200 and "webhook source rules: capabilities" in response.content.decode()
    assert WebhookSource.objects.get().rules == {}
    response = admin_client.post(
        f"/admin/external_api/webhooksource/{source.id}/change/",
        {"team": source.team_id, "enabled": "on", "rules": '{"priority": "high"}'},
    )
    assert response.status_code == 302 and WebhookSource.objects.get().rules == {"priority": "high"}


def test_deliveries_are_listed_read_only(admin_client, client):
    webhook_source_create(
        kind="github",
        slug="github",
        team=apikey_create(name="x", scopes=["read"])[0].team,
        secret="github secret for the tests",
    )
    post_github(client, {"zen": "z"}, event="ping", delivery="d-admin")
    page = admin_client.get("/admin/external_api/webhookdelivery/?outcome__exact=ping").content.decode()
    assert "d-admin" in page
