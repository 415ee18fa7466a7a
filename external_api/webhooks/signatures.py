"""Webhook signatures, as pure functions of the raw body, the headers' values and the secrets.

GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`.
Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{timestamp}:{raw body}">`, with the request's
`X-Slack-Request-Timestamp` no further than five minutes from now (a replayed request is refused).

Comparisons are constant-time and on bytes, so a header with unexpected characters is a refusal,
never an exception. Every secret in `secrets` is accepted (rotation: the old and the new one).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

SLACK_WINDOW = 300  # seconds a Slack request timestamp may differ from now
_MAX_TIMESTAMP_DIGITS = 12


class SignatureError(Exception):
    """The delivery is not proven to come from the sender; `detail` says why (safe to show)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def hmac_sha256_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def github_signature(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for this body."""
    return "sha256=" + hmac_sha256_hex(secret, body)


def github_verify(*, body: bytes, signature: str | None, secrets: Iterable[str]) -> None:
    """Raise SignatureError unless `signature` signs `body` with one of `secrets`."""
    if not signature:
        raise SignatureError("the X-Hub-Signature-256 header is missing")
    _match(signature, [github_signature(secret, body) for secret in secrets])


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Slack-Signature` value Slack sends for this timestamp and body."""
    return "v0=" + hmac_sha256_hex(secret, b"v0:" + timestamp.encode() + b":" + body)


def slack_verify(
    *,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    secrets: Iterable[str],
    now: float,
    window: int = SLACK_WINDOW,
) -> None:
    """Raise SignatureError unless the request is fresh and signed with one of `secrets`."""
    if not signature:
        raise SignatureError("the X-Slack-Signature header is missing")
    if not timestamp:
        raise SignatureError("the X-Slack-Request-Timestamp header is missing")
    timestamp = timestamp.strip()
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
        raise SignatureError("X-Slack-Request-Timestamp is not a number of seconds")
    if abs(now - int(timestamp)) > window:
        raise SignatureError(f"X-Slack-Request-Timestamp is more than {window} seconds from now (a replay?)")
    _match(signature, [slack_signature(secret, timestamp, body) for secret in secrets])


def _match(given: str, expected: list[str]) -> None:
    if not expected:
        raise SignatureError("this webhook source has no secret, so no delivery can be verified")
    given_bytes = given.strip().encode("utf-8", "surrogateescape")
    # Compare with every secret (no early exit): the time taken says nothing about which matched.
    matched = [hmac.compare_digest(given_bytes, e.encode()) for e in expected]
    if not any(matched):
        raise SignatureError("the signature does not match the body")
