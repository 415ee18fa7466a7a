"""Failed authentication is throttled per client address and per account.

Password logins (the JWT token endpoint, the dashboard's `/login/` and the admin's login) lock the
account out for `security.authentication_throttling.lockout_duration` seconds after
`max_login_attempts` failures within `failure_window`; failed logins and unknown API keys from
one address lock that address out after `max_failures_per_address`. A locked-out request is
answered 429 with `Retry-After` before any password is checked, so a lockout also stops the right
password until it ends. A revoked or expired key is a real key, not a guess: it is refused but
not counted.

Counters live in Redis (the Django cache), so every web process shares them. When Redis does not
answer, nothing is counted and nobody is locked out: authentication itself still works (fail
open), and a warning is logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse

from external_api import rediscache
from external_api.access import client_ip

log = logging.getLogger(__name__)

TOKEN_PATH = "/api/v1/auth/token/"
LOGIN_PATHS = frozenset({TOKEN_PATH, "/login/", "/admin/login/"})
KEY_PREFIX = "authfail"  # cache keys: authfail:<count|lock>:<addr|acct>:<digest>


def _conf() -> Any:
    return settings.HIVE_CONFIG.security.authentication_throttling


def _digest(value: str) -> str:
    # usernames and addresses may hold characters a cache key should not; equal inputs, equal keys
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _subjects(address: str | None, username: str | None) -> list[tuple[str, str, int]]:
    """(kind, cache suffix, failure limit) for each subject given."""
    conf = _conf()
    found = []
    if address:
        found.append(("addr", _digest(address), conf.max_failures_per_address))
    if username:
        found.append(("acct", _digest(username), conf.max_login_attempts))
    return found


def lockout_remaining(*, address: str | None = None, username: str | None = None) -> int | None:
    """Seconds until the address or the account (whichever ends later) may try again; None when
    neither is locked out, when throttling is off, or when Redis does not answer."""
    if not _conf().enabled:
        return None
    keys = [f"{KEY_PREFIX}:lock:{kind}:{suffix}" for kind, suffix, _ in _subjects(address, username)]
    if not keys:
        return None
    try:
        backend = rediscache.redis_cache()
        found = rediscache.get_many(backend, keys) if backend is not None else cache.get_many(keys)
        until = [value for value in found.values() if value is not None]
    except Exception as exc:
        log.warning("authentication throttle unavailable (%s); not limiting", exc)
        return None
    remaining = max([float(value) - time.time() for value in until], default=0.0)
    return math.ceil(remaining) if remaining > 0 else None


def failure_record(*, address: str | None = None, username: str | None = None) -> None:
    """Count one failed authentication against the address and/or the account; the one that
    reaches its limit is locked out for `lockout_duration` and its count starts again."""
    conf = _conf()
    if not conf.enabled:
        return
    for kind, suffix, limit in _subjects(address, username):
        counter = f"{KEY_PREFIX}:count:{kind}:{suffix}"
        try:
            # add() starts the window with the first failure; incr() is atomic across processes
            count = 1 if cache.add(counter, 1, timeout=conf.failure_window) else cache.incr(counter)
            if count >= limit:
                until = time.time() + conf.lockout_duration
                cache.set(f"{KEY_PREFIX}:lock:{kind}:{suffix}", until, timeout=conf.lockout_duration)
                cache.delete(counter)
                who = "address " + str(address) if kind == "addr" else "an account"
                log.warning(
                    "authentication: %s locked out for %ds after %d failures", who, conf.lockout_duration, count
                )
        except ValueError:  # the counter expired between add() and incr(): this failure starts anew
            cache.add(counter, 1, timeout=conf.failure_window)
        except Exception as exc:
            log.warning("authentication throttle unavailable (%s); failure not counted", exc)
            return


def account_clear(*, username: str) -> None:
    """A successful password login: the account's failures so far no longer count."""
    try:
        cache.delete(f"{KEY_PREFIX}:count:acct:{_digest(username)}")
    except Exception as exc:
        log.warning("authentication throttle unavailable (%s)", exc)


def too_many(request: HttpRequest, wait: int) -> HttpResponse:
    """429 with Retry-After: JSON under /api/ and /webhooks/, a short page for the sign-in forms."""
    detail = f"too many failed sign-ins; try again in {wait} s"
    if request.path.startswith(("/api/", "/webhooks/")):
        response: HttpResponse = JsonResponse({"code": "throttled", "detail": detail}, status=429)
    else:
        response = HttpResponse(
            f"<!doctype html><title>Too many attempts</title><p>{detail}.</p>",
            status=429,
            content_type="text/html; charset=utf-8",
        )
    response["Retry-After"] = str(wait)
    return response


def _username_of(request: HttpRequest) -> str | None:
    try:
        if request.content_type == "application/json":
            data = json.loads(request.body or b"{}")
            value = data.get("username") if isinstance(data, dict) else None
        else:
            value = request.POST.get("username")
    except Exception:  # unreadable or oversized body: the view refuses it on its own terms
        return None
    return value.strip()[:150] if isinstance(value, str) and value.strip() else None


class AuthThrottleMiddleware:
    """Refuses a password login from a locked-out address or for a locked-out account (429), and
    forgets an account's failures when its token request succeeds. Failures themselves are counted
    by the `user_login_failed` signal below, which every password check sends."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path not in LOGIN_PATHS:
            return self.get_response(request)
        username = _username_of(request)
        wait = lockout_remaining(address=client_ip(request), username=username)
        if wait is not None:
            return too_many(request, wait)
        response = self.get_response(request)
        if request.path == TOKEN_PATH and response.status_code == 200 and username:
            account_clear(username=username)  # the token view calls authenticate(), never login()
        return response


@receiver(user_login_failed, dispatch_uid="hive-auth-throttle-failed")
def _on_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    if request is None:  # a check made by a program on this machine, not a client
        return
    username = credentials.get("username")
    failure_record(address=client_ip(request), username=username if isinstance(username, str) else None)


@receiver(user_logged_in, dispatch_uid="hive-auth-throttle-logged-in")
def _on_logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    account_clear(username=user.get_username())
