"""The services behind the webhooks and the account commands."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.utils import timezone

from coordination.errors import HiveError
from coordination.models import Team
from external_api.models import ApiKey, WebhookSource
from external_api.services import (
    apikey_create,
    apikey_revoke,
    team_create,
    user_create,
    webhook_source_create,
    webhook_source_rotate,
    webhook_sources_sync,
)

pytestmark = pytest.mark.django_db


def config_with(**github) -> object:
    config = settings.HIVE_CONFIG.model_copy(deep=True)
    for name, value in github.items():
        setattr(config.external_api.webhook_server.github, name, value)
    return config


def test_sync_makes_the_configured_sources_once_and_follows_secret_changes(db):
    assert webhook_sources_sync(config_with()) == []
    (source,) = webhook_sources_sync(config_with(secret="s1", secrets_previous=["s0"]))
    assert (source.slug, source.kind, source.team.name, source.secrets()) == (
        "github",
        "github",
        "default",
        ["s1", "s0"],
    )
    WebhookSource.objects.filter(id=source.id).update(rules={"priority": "high"}, enabled=False)
    webhook_sources_sync(config_with(secret="s1", secrets_previous=["s0"]))
    webhook_sources_sync(config_with(secret="s2"))
    source = WebhookSource.objects.get()
    assert source.secrets() == ["s2"]
    assert source.rules == {"priority": "high"} and source.enabled is False  # operators' choices are kept


def test_sync_leaves_a_slug_taken_by_another_kind_alone(db):
    webhook_source_create(kind="custom", slug="github", team=Team.objects.create(name="acme"))
    assert webhook_sources_sync(config_with(secret="s1")) == []
    assert WebhookSource.objects.get().secret == ""


def test_rotating_a_source_whose_secret_is_configured_is_refused_with_where_to_change_it(db, monkeypatch):
    monkeypatch.setattr(settings.HIVE_CONFIG.external_api.webhook_server.github, "secret", "s1")
    webhook_sources_sync()
    with pytest.raises(HiveError, match="external_api.webhook_server.github.secret"):
        webhook_source_rotate(slug="github", secret="s2")
    assert WebhookSource.objects.get().secrets() == ["s1"]


def test_rotation_keeps_the_old_secret_for_the_overlap(db):
    webhook_source_create(kind="github", slug="web", team=Team.objects.create(name="acme"), secret="old")
    source = webhook_source_rotate(slug="web", secret="new", overlap=timedelta(hours=2))
    assert source.secrets() == ["new", "old"]
    assert timedelta(hours=1.9) < source.previous_secret_expires_at - timezone.now() <= timedelta(hours=2)
    with pytest.raises(HiveError, match="the current one"):
        webhook_source_rotate(slug="web", secret="new")
    with pytest.raises(HiveError, match="no webhook source"):
        webhook_source_rotate(slug="nope", secret="x")


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"kind": "gitlab", "slug": "x", "secret": "s"}, "kind is one of"),
        ({"kind": "github", "slug": "Not A Slug", "secret": "s"}, "must be 1 to 60"),
        ({"kind": "slack", "slug": "x"}, "needs a secret"),
        ({"kind": "github", "slug": "x", "secret": "s", "rules": {"capabilities": "python"}}, "capabilities"),
        ({"kind": "github", "slug": "x", "secret": "s", "rules": {"labels": ["x"]}}, "labels"),
    ],
    ids=["kind", "slug", "no-secret", "bad-rule", "unknown-rule"],
)
def test_webhook_source_create_refuses_bad_input(db, kwargs, says):
    with pytest.raises(HiveError, match=says):
        webhook_source_create(team=Team.objects.create(name="acme"), **kwargs)
    assert WebhookSource.objects.count() == 0


def test_apikey_create_stores_only_a_digest_and_validates_scopes(db):
    key, raw = apikey_create(name="ci", scopes=["write", "read", "write"])
    assert raw.startswith(f"hive_{key.prefix}_") and raw not in key.digest and key.matches(raw)
    assert key.scopes == ["read", "write"] and key.team.name == "default"
    for scopes in ([], ["root"]):
        with pytest.raises(HiveError, match="scopes are one or more of read, write, admin"):
            apikey_create(name="ci", scopes=scopes)
    assert ApiKey.objects.count() == 1


def test_apikey_revoke_by_prefix_or_key_is_idempotent(db):
    key, raw = apikey_create(name="ci", scopes=["read"])
    assert apikey_revoke(prefix=raw).revoked_at is not None
    first = ApiKey.objects.get().revoked_at
    assert apikey_revoke(prefix=key.prefix).revoked_at == first
    with pytest.raises(HiveError, match="no API key"):
        apikey_revoke(prefix="ffffff")


def test_team_and_user_create(db):
    acme = team_create(name="acme")
    with pytest.raises(HiveError, match="exists"):
        team_create(name="acme")
    user, password = user_create(username="olivia", team=acme)
    assert authenticate(username="olivia", password=password) == user and user.membership.team == acme
    with pytest.raises(HiveError, match="exists"):
        user_create(username="olivia", team=acme)
