"""API key authentication: `X-API-Key: hive_<prefix>_<secret>` or `Authorization: Api-Key <key>`."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions

from external_api.access import ApiKeyUser
from external_api.models import KEY_PREFIX, ApiKey


def key_from_headers(meta) -> str | None:
    key = meta.get("HTTP_X_API_KEY")
    if key:
        return key.strip()
    header = meta.get("HTTP_AUTHORIZATION", "")
    if header.lower().startswith("api-key "):
        return header[8:].strip()
    return None


def api_key_lookup(raw: str) -> ApiKey:
    """The active key for this secret, or AuthenticationFailed. Constant-time digest comparison."""
    if not raw.startswith(KEY_PREFIX) or raw.count("_") < 2:
        raise exceptions.AuthenticationFailed("malformed API key")
    prefix = raw[len(KEY_PREFIX) :].split("_", 1)[0]
    key = ApiKey.objects.select_related("team").filter(prefix=prefix).first()
    if key is None or not key.matches(raw):
        raise exceptions.AuthenticationFailed("invalid API key")
    if not key.active:
        raise exceptions.AuthenticationFailed("API key revoked or expired")
    if key.last_used_at is None or (timezone.now() - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(id=key.id).update(last_used_at=timezone.now())
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        raw = key_from_headers(request.META)
        if raw is None:
            return None
        key = api_key_lookup(raw)
        return ApiKeyUser(key), key

    def authenticate_header(self, request) -> str:
        return 'Api-Key realm="hive"'
