"""The steps every webhook request goes through before its sender's own rules: the webhook server
is on, the method and content type are allowed, the body fits and is not nested too deep, the
source exists; and, once the delivery is verified, the source's rate limit. Each refusal is JSON
`{code, detail}`."""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import IntegrityError
from django.db.models.base import ModelState
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest, HttpResponse, JsonResponse

from coordination import json_limits
from coordination.errors import HiveError
from external_api.errors import http_status, json_error
from external_api.models import WebhookSource
from external_api.services import (
    DeliveryResult,
    Outcome,
    WebhookIntent,
    webhook_delivery_receive,
    webhook_sources_sync,
)
from external_api.throttling import hit
from external_api.webhooks.metrics import DELIVERIES
from external_api.webhooks.signatures import SignatureError

log = logging.getLogger(__name__)

_synced_fingerprint: str | None = None


def accept(request: HttpRequest, *, kind: str, methods: tuple[str, ...] = ("POST",)) -> bytes | HttpResponse:
    """The raw body of an acceptable request, or the response refusing it."""
    api = settings.HIVE_CONFIG.external_api
    if not (api.enabled and api.webhook_server.enabled):
        return json_error("not_found", "webhooks are turned off (external_api.webhook_server.enabled)", 404)
    if request.method not in methods:
        response = json_error(
            "method_not_allowed", f"{request.method} is not allowed here; use {', '.join(methods)}", 405
        )
        response["Allow"] = ", ".join(methods)
        return response
    validation = settings.HIVE_CONFIG.security.webhook_server.request_validation
    for header in validation.required_headers:
        if not request.headers.get(header):
            return json_error("bad_request", f"the {header} header is required", 400)
    media_type = (request.content_type or "").lower()
    if media_type not in validation.allowed_content_types:
        return json_error(
            "unsupported_media_type",
            f"Content-Type {media_type or '(none)'!r} is not accepted; send "
            f"{' or '.join(validation.allowed_content_types)}",
            415,
        )
    # The middleware refuses a declared Content-Length over the cap before the body is read; this
    # also covers a body sent without one, and the stricter of the two configured caps.
    limit = min(settings.WEBHOOK_MAX_BYTES, validation.max_payload_bytes)
    body = request.read(limit + 1)
    if len(body) > limit:
        return json_error("payload_too_large", f"the request body is larger than {limit} bytes", 413)
    # Before a source is looked up or a row written: nothing may walk a hostile document. (A form
    # post's JSON field is checked where it is decoded, by json_limits.loads.)
    if media_type.endswith("json") and json_limits.raw_depth_exceeds(body):
        return json_error("json_too_deep", f"JSON nested deeper than {json_limits.MAX_JSON_DEPTH} levels", 400)
    return body


def source_for(*, kind: str, slug: str, fresh: bool = False) -> WebhookSource | None:
    """The enabled source of this kind and slug. The configuration's sources are synced on first use
    and whenever the configured secrets change, and again when a default slug is not found.

    A source found is kept for settings.WEBHOOK_SOURCE_CACHE_SECONDS in this process (its SELECT
    was about a fifth of a delivery's CPU), so a change made elsewhere (a secret rotated or revoked,
    a source disabled, its rules edited, from the admin, the CLI or another process) acts within
    that bound; a change saved by this process acts at once (`_forget_sources`). `fresh` reads the
    database whatever is cached: open_signed does so before refusing a signature that the cached
    source's secrets do not verify, so a new secret is accepted at once everywhere.
    """
    _sync_if_config_changed()
    key = (str(kind), str(slug))
    ttl = settings.WEBHOOK_SOURCE_CACHE_SECONDS
    if not fresh and ttl > 0:
        cached = _sources.get(key)
        if cached is not None and _clock() - cached[0] < ttl:
            return _copy(cached[1])
    read_at = _clock()
    source = WebhookSource.objects.select_related("team").filter(kind=kind, slug=slug, enabled=True).first()
    if source is None and slug == kind:
        webhook_sources_sync()
        source = WebhookSource.objects.select_related("team").filter(kind=kind, slug=slug, enabled=True).first()
    with _sources_lock:
        if source is None or ttl <= 0:
            _sources.pop(key, None)
        else:
            _sources[key] = (read_at, _copy(source))
    return source


# (kind, slug) -> (when it was read, the source as read); replaced whole, so threads may read it
_sources: dict[tuple[str, str], tuple[float, WebhookSource]] = {}
_sources_lock = threading.Lock()
_clock = time.monotonic


def _copy(source: WebhookSource) -> WebhookSource:
    """A copy of a cached source for one request, with its team (select_related) still attached."""
    clone = WebhookSource.__new__(WebhookSource)
    clone.__dict__.update(source.__dict__)
    state = clone._state = ModelState()
    state.db, state.adding = source._state.db, source._state.adding
    state.fields_cache = dict(source._state.fields_cache)
    return clone


def _forget_sources(**_: object) -> None:
    """A source saved or deleted in this process: read every source again on its next delivery."""
    with _sources_lock:
        _sources.clear()


post_save.connect(_forget_sources, sender=WebhookSource, dispatch_uid="webhook-sources-cache")
post_delete.connect(_forget_sources, sender=WebhookSource, dispatch_uid="webhook-sources-cache-delete")


def _sync_if_config_changed() -> None:
    global _synced_fingerprint
    server = settings.HIVE_CONFIG.external_api.webhook_server
    material = repr(
        (
            server.github.secret,
            server.github.secrets_previous,
            server.slack.signing_secret,
            server.slack.signing_secrets_previous,
        )
    )
    fingerprint = hashlib.sha256(material.encode()).hexdigest()
    if fingerprint != _synced_fingerprint:
        webhook_sources_sync()
        _forget_sources()  # the sync may have changed sources with an UPDATE, which sends no signal
        _synced_fingerprint = fingerprint


def unknown_source(kind: str, slug: str) -> JsonResponse:
    """404 naming the kind and slug in words (a TextChoices member's repr is WebhookSource.Kind.…)."""
    kind, slug = str(kind), str(slug)
    hint = ""
    if slug == kind and kind != WebhookSource.Kind.CUSTOM:
        key = "github.secret" if kind == WebhookSource.Kind.GITHUB else "slack.signing_secret"
        hint = f" (set external_api.webhook_server.{key}, or add one with `hive webhook add {kind} --slug {slug}`)"
    return json_error("not_found", f"no {kind} webhook source with the slug {slug}{hint}", 404)


def signature_refused(source: WebhookSource, exc: SignatureError) -> JsonResponse:
    DELIVERIES.labels(source=source.slug, outcome="invalid_signature").inc()
    log.warning("webhook %s: refused delivery: %s", source, exc.detail)
    return json_error("invalid_signature", exc.detail, 401)


def open_signed(
    request: HttpRequest, *, kind: str, slug: str, verify: Callable[[bytes, WebhookSource], None]
) -> tuple[bytes, WebhookSource] | HttpResponse:
    """The raw body and its source once `verify` accepted the signature, or the response refusing it.

    Nothing is recorded for a refused delivery: an unsigned request must not be able to write rows.
    """
    body = accept(request, kind=kind)
    if isinstance(body, HttpResponse):
        return body
    source = source_for(kind=kind, slug=slug)
    if source is None:
        return unknown_source(kind, slug)
    try:
        verify(body, source)
    except SignatureError as exc:
        if settings.WEBHOOK_SOURCE_CACHE_SECONDS <= 0:  # read just now
            return signature_refused(source, exc)
        # Perhaps signed with a secret set since this process cached the source: read it again.
        source = source_for(kind=kind, slug=slug, fresh=True)
        if source is None:
            return unknown_source(kind, slug)
        try:
            verify(body, source)
        except SignatureError:
            return signature_refused(source, exc)
    return body, source


def throttled(request: HttpRequest, *, source: WebhookSource, limit: int) -> JsonResponse | None:
    """None while the source is within its deliveries per minute, else a 429 with Retry-After."""
    wait = hit(f"webhook:{source.slug}", limit)
    if wait is None:
        return None
    DELIVERIES.labels(source=source.slug, outcome="throttled").inc()
    response = json_error("throttled", f"more than {limit} deliveries per minute from {source.slug}; retry later", 429)
    response["Retry-After"] = str(math.ceil(wait))
    return response


def receive(*, source: WebhookSource, intent: WebhookIntent) -> DeliveryResult | JsonResponse:
    """`webhook_delivery_receive`, or the unknown-source 404 when the source this process kept
    (source_for's bound) was deleted elsewhere meanwhile: its delivery row can no longer refer to it."""
    try:
        return webhook_delivery_receive(source=source, intent=intent)
    except IntegrityError:
        if WebhookSource.objects.filter(id=source.id).exists():
            raise
        _forget_sources()
        return unknown_source(source.kind, source.slug)


def delivery_response(result: DeliveryResult | HttpResponse) -> HttpResponse:
    """The answer to GitHub and custom senders: 201 for a new task, 200 for a duplicate or a ping,
    204 for an event that asks for nothing, the error's status for a rejected delivery (a response
    already made, such as receive's 404, as it is)."""
    if isinstance(result, HttpResponse):
        return result
    if result.outcome == Outcome.REJECTED:
        error = result.error or HiveError("the delivery was rejected", code="rejected")
        return json_error(error.code, error.detail, http_status(error))
    if result.outcome == Outcome.IGNORED:
        return HttpResponse(status=204)
    if result.outcome == Outcome.PING:
        return JsonResponse({"code": "pong", "detail": result.delivery.detail or "pong"})
    task, delivery_id = result.task, result.delivery.delivery_id
    if task is None:  # a repeat of a delivery that made no task
        detail = f"delivery {delivery_id} was received before ({result.delivery.outcome})"
    else:
        detail = f"task {task.id} {'queued' if result.outcome == Outcome.ACCEPTED else 'was queued'} on pool {task.routed_pool.name}"
    body = {
        "code": result.outcome,
        "detail": detail,
        "delivery_id": delivery_id,
        "task": str(task.id) if task else None,
        "pool": task.routed_pool.name if task else None,
        "status": task.status if task else None,
    }
    return JsonResponse(body, status=201 if result.outcome == Outcome.ACCEPTED else 200)
