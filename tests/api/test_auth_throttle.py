"""Failed authentication is throttled per account and per address, in Redis: the JWT token
endpoint, the dashboard's and the admin's sign-in forms, and unknown API keys."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from coordination.models import Membership, Team
from external_api.auth_throttle import _digest
from tests.api.conftest import api_key

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


@pytest.fixture
def throttling(settings):
    """`throttling(max_login_attempts=3, ...)` changes security.authentication_throttling."""

    def change(**values: Any) -> None:
        config = settings.HIVE_CONFIG
        security = config.security
        changed = security.authentication_throttling.model_copy(update=values)
        settings.HIVE_CONFIG = config.model_copy(
            update={"security": security.model_copy(update={"authentication_throttling": changed})}
        )

    return change


@pytest.fixture
def olivia(pools) -> User:
    user = User.objects.create_user("olivia", password=PASSWORD)
    Membership.objects.create(user=user, team=Team.objects.create(name="acme"))
    return user


def token(client: APIClient, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(
        "/api/v1/auth/token/", {"username": username, "password": password}, format="json", REMOTE_ADDR=address
    )


def test_token_endpoint_locks_the_account_after_max_login_attempts_then_lets_it_in_again(olivia, throttling):
    throttling(max_login_attempts=3, lockout_duration=2)
    client = APIClient()
    failures = [token(client, "olivia", f"guess {i}", address=f"10.0.0.{i}").status_code for i in range(3)]
    locked = token(client, "olivia", PASSWORD, address="10.0.0.9")  # the right password, another address
    assert failures == [401, 401, 401]
    assert locked.status_code == 429
    assert locked.json()["code"] == "throttled" and 1 <= int(locked["Retry-After"]) <= 2
    time.sleep(2.1)
    assert token(client, "olivia", PASSWORD).status_code == 200


def test_token_endpoint_locks_an_address_that_tries_many_accounts(olivia, throttling):
    throttling(max_login_attempts=100, max_failures_per_address=4, lockout_duration=60)
    client = APIClient()
    failures = [token(client, f"user{i}", "guess", address="10.9.9.9").status_code for i in range(4)]
    from_there = token(client, "olivia", PASSWORD, address="10.9.9.9")
    from_elsewhere = token(client, "olivia", PASSWORD, address="10.1.1.1")
    assert failures == [401, 401, 401, 401]
    assert from_there.status_code == 429 and int(from_there["Retry-After"]) > 50
    assert from_elsewhere.status_code == 200


def test_a_successful_login_forgets_the_accounts_earlier_failures(olivia, throttling):
    throttling(max_login_attempts=3)
    client = APIClient()
    for _ in range(2):
        assert token(client, "olivia", "guess").status_code == 401
    assert token(client, "olivia", PASSWORD).status_code == 200
    for _ in range(2):
        assert token(client, "olivia", "guess").status_code == 401
    assert token(client, "olivia", PASSWORD).status_code == 200  # 4 failures in all, never 3 in a row


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_sign_in_forms_lock_the_account_out_with_429(path, olivia, throttling):
    throttling(max_login_attempts=2, lockout_duration=60)
    browser = Client()
    for _ in range(2):
        assert browser.post(path, {"username": "olivia", "password": "guess"}).status_code == 200  # form again
    locked = browser.post(path, {"username": "olivia", "password": PASSWORD})
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 50
    assert "too many failed sign-ins" in locked.content.decode()
    assert "_auth_user_id" not in browser.session


def test_unknown_api_keys_lock_the_address_out_even_for_a_valid_key(pools, throttling):
    throttling(max_failures_per_address=3, lockout_duration=60)
    valid = api_key(Team.objects.create(name="acme"), ["read"])
    client = APIClient()
    codes = [
        client.get("/api/v1/tasks/", HTTP_X_API_KEY=f"hive_guess{i}_x", REMOTE_ADDR="10.2.2.2").status_code
        for i in range(3)
    ]
    locked = client.get("/api/v1/tasks/", HTTP_X_API_KEY=valid, REMOTE_ADDR="10.2.2.2")
    elsewhere = client.get("/api/v1/tasks/", HTTP_X_API_KEY=valid, REMOTE_ADDR="10.3.3.3")
    webhook = client.post("/webhooks/custom/", {}, format="json", HTTP_X_API_KEY=valid, REMOTE_ADDR="10.2.2.2")
    assert codes == [401, 401, 401]
    assert locked.status_code == 429 and locked.json()["code"] == "throttled" and int(locked["Retry-After"]) > 50
    assert elsewhere.status_code == 200
    assert webhook.status_code == 429 and webhook.json()["code"] == "throttled" and webhook["Retry-After"]


def test_a_revoked_key_is_refused_but_not_counted_as_a_guess(pools, throttling):
    from external_api.services import apikey_revoke

    throttling(max_failures_per_address=2)
    team = Team.objects.create(name="acme")
    revoked, valid = api_key(team, ["read"]), api_key(team, ["read"])
    apikey_revoke(prefix=revoked)
    client = APIClient()
    for _ in range(3):
        assert client.get("/api/v1/tasks/", HTTP_X_API_KEY=revoked, REMOTE_ADDR="10.4.4.4").status_code == 401
    assert client.get("/api/v1/tasks/", HTTP_X_API_KEY=valid, REMOTE_ADDR="10.4.4.4").status_code == 200


def test_throttling_fails_open_when_redis_is_away(olivia, throttling, settings):
    """Without Redis nothing is counted: wrong passwords stay 401 and the right one works."""
    throttling(max_login_attempts=2)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.5},
        }
    }
    client = APIClient()
    assert [token(client, "olivia", "guess").status_code for _ in range(4)] == [401] * 4
    assert token(client, "olivia", PASSWORD).status_code == 200


def test_the_cache_client_is_shared_and_reads_what_the_cache_wrote(throttling):
    """external_api.rediscache: one redis client per pool (not one per operation), reading the
    values Django's cache stored (a lock's time, pickled by the cache) as the cache reads them."""
    from django.core.cache import cache

    from external_api import rediscache
    from external_api.auth_throttle import lockout_remaining

    backend = rediscache.redis_cache()
    assert backend is not None  # the tests' cache is Redis
    assert rediscache.client_of(backend, write=True) is rediscache.client_of(backend, write=True)
    cache.set("authfail:lock:addr:x", 1.5, timeout=60)
    assert rediscache.get_many(backend, ["authfail:lock:addr:x", "absent"]) == {"authfail:lock:addr:x": 1.5}
    assert lockout_remaining(address="10.9.8.7") is None
    cache.set(f"authfail:lock:addr:{_digest('10.9.8.7')}", time.time() + 30, timeout=60)
    assert 29 <= lockout_remaining(address="10.9.8.7") <= 30
