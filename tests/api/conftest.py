"""Personas for the gateway: an owner and a teammate in team "acme", an outsider in "globex",
staff, and API keys with different scopes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from coordination.models import Membership, Team
from external_api.models import ApiKey


@dataclass
class Persona:
    name: str
    client: APIClient
    team: Team | None


def api_key(team: Team, scopes: list[str]) -> str:
    prefix, raw = ApiKey.generate()
    ApiKey.objects.create(
        team=team, name=f"{'-'.join(scopes)} key", prefix=prefix, digest=ApiKey.digest_of(raw), scopes=scopes
    )
    return raw


def user_client(username: str, team: Team | None, *, staff: bool = False) -> APIClient:
    user = User.objects.create_user(username, password="correct horse battery", is_staff=staff)
    if team is not None:
        Membership.objects.create(user=user, team=team)
    client = APIClient()
    response = client.post(
        "/api/v1/auth/token/", {"username": username, "password": "correct horse battery"}, format="json"
    )
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    return client


def key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Each test starts with no rate-limit counters: they live in Redis for a minute, and the
    persona logins of many tests in a row would otherwise throttle the next test's."""
    from coordination.dispatch import redis_client

    client = redis_client()
    keys = list(client.scan_iter("*:rl:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def teams(pools):
    return Team.objects.create(name="acme"), Team.objects.create(name="globex")


@pytest.fixture
def personas(teams) -> dict[str, Persona]:
    acme, globex = teams
    return {
        "owner": Persona("owner", user_client("olivia", acme), acme),
        "teammate": Persona("teammate", user_client("tom", acme), acme),
        "outsider": Persona("outsider", user_client("oscar", globex), globex),
        "staff": Persona("staff", user_client("sam", None, staff=True), None),
        "reader": Persona("reader", key_client(api_key(acme, ["read"])), acme),
        "writer": Persona("writer", key_client(api_key(acme, ["read", "write"])), acme),
        "admin_key": Persona("admin_key", key_client(api_key(acme, ["admin"])), acme),
        "anonymous": Persona("anonymous", APIClient(), None),
    }


@pytest.fixture
def acme_task(personas):
    response = personas["owner"].client.post(
        "/api/v1/tasks/", {"capabilities": ["python"], "prompt": "acme work"}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()
