"""API key authentication: `X-API-Key: hive_<prefix>_<secret>` or `Authorization: Api-Key <key>`."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions

from external_api import keycache
from external_api.access import ApiKeyUser, client_ip
from external_api.auth_throttle import failure_record, lockout_remaining
from external_api.models import KEY_PREFIX, ApiKey


class InvalidApiKey(exceptions.AuthenticationFailed):
    """No key has this secret: a guess, or a typo. Counted against the client's address."""


def key_from_headers(meta) -> str | None:
    key = meta.get("HTTP_X_API_KEY")
    if key:
        return key.strip()
    header = meta.get("HTTP_AUTHORIZATION", "")
    if header.lower().startswith("api-key "):
        return header[8:].strip()
    return None


def api_key_lookup(raw: str) -> ApiKey:
    """The active key for this secret, or AuthenticationFailed (InvalidApiKey when no key has this
    secret). Constant-time digest comparison. Counts nothing: see `api_key_check`."""
    if not raw.startswith(KEY_PREFIX) or raw.count("_") < 2:
        raise InvalidApiKey("malformed API key")
    prefix = raw[len(KEY_PREFIX) :].split("_", 1)[0]
    key = ApiKey.objects.select_related("team").filter(prefix=prefix).first()
    if key is None or not key.matches(raw):
        raise InvalidApiKey("invalid API key")
    if not key.active:
        raise exceptions.AuthenticationFailed("API key revoked or expired")
    if key.last_used_at is None or (timezone.now() - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(id=key.id).update(last_used_at=timezone.now())
    return key


def api_key_check(raw: str, *, address: str, recent: bool = False) -> ApiKey:
    """`api_key_lookup` for a client at `address`: Throttled while the address is locked out
    (external_api.auth_throttle), and an invalid key counts as one failure of that address.

    `recent`: a key this process read at most keycache.RECHECK_SECONDS ago answers from memory
    (its expiry still checked now); the gateway's requests use it, the stream's rechecks do not."""
    wait = lockout_remaining(address=address)
    if wait is not None:
        raise exceptions.Throttled(
            wait=wait, detail=f"too many failed authentications from this address; try again in {wait} s"
        )
    known = keycache.recall(raw) if recent else None
    if known is not None:
        if not known.active:  # expired since it was read
            keycache.forget(known)
            raise exceptions.AuthenticationFailed("API key revoked or expired")
        return known
    try:
        key = api_key_lookup(raw)
    except InvalidApiKey:
        failure_record(address=address)
        raise
    if recent:
        keycache.remember(raw, key)
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request) -> tuple[ApiKeyUser, ApiKey] | None:
        raw = key_from_headers(request.META)
        if raw is None:
            return None
        key = api_key_check(raw, address=client_ip(request), recent=True)
        return ApiKeyUser(key), key

    def authenticate_header(self, request: Any) -> str:
        return 'Api-Key realm="hive"'
