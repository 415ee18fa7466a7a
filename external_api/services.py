"""Teams, users, API keys and webhook sources, and what a verified webhook delivery does.

`webhook_delivery_receive` is the one place a delivery is stored and turned into a task. It is safe
to call twice, or twice at once, with the same delivery: the unique (source, delivery_id) row lets
one caller through; task_submit's idempotency key covers different deliveries asking for the same
work (GitHub sends `opened` and `labeled` for a new labelled issue).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from coordination.errors import Conflict, HiveError, IdempotencyConflict, Invalid, NotFound
from coordination.models import DEFAULT_TEAM, Membership, Task, Team
from coordination.services import task_submission, task_submit, task_submit_in_one_statement, team_default
from coordination.snapshot import routing_snapshot_changed
from external_api import keycache
from external_api.delivery_rows import delivery_seen
from external_api.models import KEY_PREFIX, ApiKey, WebhookDelivery, WebhookSource
from external_api.webhooks.metrics import DELIVERIES

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from hive_project.config import HiveConfig

log = logging.getLogger(__name__)

Outcome = WebhookDelivery.Outcome
Kind = WebhookSource.Kind


# --- teams and users ------------------------------------------------------------------------------
def team_create(*, name: str) -> Team:
    name = name.strip()
    if not name or len(name) > 100:
        raise Invalid("a team name is 1 to 100 characters")
    try:
        with transaction.atomic():
            return Team.objects.create(name=name)
    except IntegrityError:
        raise Conflict(f"team {name!r} exists") from None


def team_get(*, name: str) -> Team:
    if name == DEFAULT_TEAM:
        return team_default()
    team = Team.objects.filter(name=name).first()
    if team is None:
        raise NotFound(f"no team {name!r} (create it with `hive team create {name}`)")
    return team


def user_create(*, username: str, team: Team, staff: bool = False, password: str | None = None) -> tuple[Any, str]:
    """A user in `team`, with a generated password unless one is given. Returns (user, password)."""
    User = get_user_model()
    username = username.strip()
    if not username:
        raise Invalid("a username is required")
    password = password or secrets.token_urlsafe(16)
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, password=password, is_staff=staff)
            Membership.objects.create(user=user, team=team)
    except IntegrityError:
        raise Conflict(f"user {username!r} exists") from None
    return user, password


# --- API keys --------------------------------------------------------------------------------------
def apikey_create(
    *,
    name: str,
    scopes: Sequence[str],
    team: Team | None = None,
    created_by: User | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key (its digest only) and return it with the raw key, which is never shown again."""
    name = name.strip()
    if not name or len(name) > 100:
        raise Invalid("a key name is 1 to 100 characters")
    wanted = sorted({s.strip().lower() for s in scopes if s.strip()})
    unknown = [s for s in wanted if s not in ApiKey.Scope.values]
    if not wanted or unknown:
        raise Invalid(
            f"scopes are one or more of {', '.join(ApiKey.Scope.values)}"
            + (f" (not {', '.join(unknown)})" if unknown else "")
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise Invalid("the expiry must be in the future")
    prefix, raw = ApiKey.generate()
    key = ApiKey.objects.create(
        team=team or team_default(),
        name=name,
        prefix=prefix,
        digest=ApiKey.digest_of(raw),
        scopes=wanted,
        created_by=created_by,
        expires_at=expires_at,
    )
    return key, raw


def apikey_revoke(*, prefix: str) -> ApiKey:
    """Revoke the key with this prefix (the full key is accepted too). Revoking twice changes nothing."""
    prefix = prefix.strip()
    if prefix.startswith(KEY_PREFIX):
        prefix = prefix[len(KEY_PREFIX) :].split("_", 1)[0]
    key = ApiKey.objects.select_related("team").filter(prefix=prefix).first()
    if key is None:
        raise NotFound(f"no API key with prefix {prefix!r}")
    if key.revoked_at is None:
        ApiKey.objects.filter(id=key.id, revoked_at__isnull=True).update(revoked_at=timezone.now())
        key.refresh_from_db()
    keycache.forget(key)  # at once in this process; other gateway processes within RECHECK_SECONDS
    return key


# --- webhook sources -------------------------------------------------------------------------------
def webhook_sources_sync(config: HiveConfig | None = None) -> list[WebhookSource]:
    """Make the sources the configuration defines exist: `github` and `slack` in team "default",
    signed with the configured secret and the first of the previous ones (no expiry: accepted while
    the configuration lists it). Only secrets are written; rules and `enabled` stay as operators set
    them. A slug already taken by a source of another kind is left alone, with a warning.
    """
    config = config or settings.HIVE_CONFIG
    server = config.external_api.webhook_server
    wanted = [
        (Kind.GITHUB, server.github.secret, server.github.secrets_previous),
        (Kind.SLACK, server.slack.signing_secret, server.slack.signing_secrets_previous),
    ]
    synced = []
    for kind, secret, previous in wanted:
        if not secret:
            continue
        if len(previous) > 1:
            log.warning("webhook source %s: only the first previous secret is kept (%d listed)", kind, len(previous))
        values = {
            "secret": secret,
            "previous_secret": previous[0] if previous else "",
            "previous_secret_expires_at": None,
        }
        source, created = WebhookSource.objects.get_or_create(
            slug=str(kind), defaults={"kind": kind, "team": team_default(), **values}
        )
        if source.kind != kind:
            log.warning(
                "webhook source %r is a %s source; the configured %s secret is not applied",
                source.slug,
                source.kind,
                kind,
            )
            continue
        if not created and any(getattr(source, f) != v for f, v in values.items()):
            WebhookSource.objects.filter(id=source.id).update(**values)
            source.refresh_from_db()
        synced.append(source)
    return synced


def webhook_source_managed_by_config(source: WebhookSource, config: HiveConfig | None = None) -> str | None:
    """The configuration key that holds this source's secret, if the configuration owns it."""
    server = (config or settings.HIVE_CONFIG).external_api.webhook_server
    if source.kind == Kind.GITHUB and source.slug == "github" and server.github.secret:
        return "external_api.webhook_server.github.secret"
    if source.kind == Kind.SLACK and source.slug == "slack" and server.slack.signing_secret:
        return "external_api.webhook_server.slack.signing_secret"
    return None


def webhook_source_create(
    *, kind: str, slug: str, team: Team, secret: str = "", rules: dict[str, Any] | None = None
) -> WebhookSource:
    """A new source. GitHub and Slack sources need a secret (the caller generates one for GitHub)."""
    from external_api.webhooks.rules import RulesError, rules_validate

    if kind not in Kind.values:
        raise Invalid(f"kind is one of {', '.join(Kind.values)}, not {kind!r}")
    if not slug or slugify(slug) != slug or len(slug) > 60:
        raise Invalid(f"slug {slug!r} must be 1 to 60 lowercase letters, digits, '-' or '_'")
    if kind in (Kind.GITHUB, Kind.SLACK) and not secret:
        raise Invalid(f"a {kind} source needs a secret")
    try:
        rules_validate(kind=kind, rules=rules or {})
    except RulesError as exc:
        raise Invalid(exc.detail) from None
    try:
        with transaction.atomic():
            return WebhookSource.objects.create(kind=kind, slug=slug, team=team, secret=secret, rules=rules or {})
    except IntegrityError:
        raise Conflict(f"a webhook source {slug!r} exists") from None


def webhook_source_rotate(*, slug: str, secret: str, overlap: timedelta = timedelta(hours=24)) -> WebhookSource:
    """Sign with `secret` from now on; the current secret stays valid for `overlap` (zero: not at all)."""
    if not secret:
        raise Invalid("the new secret is empty")
    with transaction.atomic():
        source = WebhookSource.objects.select_for_update().filter(slug=slug).first()
        if source is None:
            raise NotFound(f"no webhook source {slug!r}")
        key = webhook_source_managed_by_config(source)
        if key:
            raise Conflict(
                f"the secret of {slug!r} comes from {key}: change it there, and list the old one in "
                f"{key.rsplit('.', 1)[0]}.{'secrets_previous' if source.kind == Kind.GITHUB else 'signing_secrets_previous'}"
            )
        if secret == source.secret:
            raise Invalid("the new secret is the current one")
        keep_old = bool(source.secret) and overlap > timedelta(0)
        source.previous_secret = source.secret if keep_old else ""
        source.previous_secret_expires_at = timezone.now() + overlap if keep_old else None
        source.secret = secret
        source.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return source


def webhook_source_for_team(*, team: Team) -> WebhookSource:
    """The custom source a team's API-key deliveries are recorded under (made on first use)."""
    source = WebhookSource.objects.filter(kind=Kind.CUSTOM, team=team).order_by("id").first()
    if source is not None:
        return source
    base = f"custom-{slugify(team.name)}"[:50] or "custom"
    for slug in (base, f"{base}-{team.id}"):
        try:
            with transaction.atomic():
                return WebhookSource.objects.create(kind=Kind.CUSTOM, slug=slug, team=team)
        except IntegrityError:
            existing = WebhookSource.objects.filter(kind=Kind.CUSTOM, team=team).order_by("id").first()
            if existing is not None:  # another request made it first
                return existing
    raise Conflict(f"no free slug for the custom webhook source of team {team.name!r}")


# --- deliveries ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebhookIntent:
    """What a verified delivery asks for: a task (task_submit's keywords, without team), or nothing
    (`outcome` ignored or ping), or nothing because it is unusable (`error` set: rejected)."""

    delivery_id: str
    event: str
    task: dict[str, Any] | None = None
    outcome: str = Outcome.IGNORED
    detail: str = ""
    error: HiveError | None = None
    conflict_is_duplicate: bool = False  # same idempotency key, other content: the same work, edited


class DeliveryIdentity(TypedDict):
    """The fields every WebhookIntent an adapter may return for one delivery shares."""

    delivery_id: str
    event: str


@dataclass(frozen=True)
class DeliveryResult:
    delivery: WebhookDelivery
    outcome: str  # what this request did: accepted, duplicate, ignored, ping or rejected
    task: Task | None
    error: HiveError | None = None


def webhook_delivery_receive(*, source: WebhookSource, intent: WebhookIntent) -> DeliveryResult:
    """Record a verified delivery once and do what it asks.

    Idempotent: a delivery id seen before (also by a request running at the same moment: the unique
    row makes one wait for the other) is a duplicate answered with the first one's task. A delivery
    that was rejected is processed again when it is retried, since nothing came of it. A task that
    no pool can run stores nothing but the rejected delivery row. The broker message is sent by
    task_submit after commit.
    """
    quick = _delivery_quick(source=source, intent=intent)
    if quick is not None:
        DELIVERIES.labels(source=source.slug, outcome=quick.outcome).inc()
        return quick
    with transaction.atomic():
        delivery = _delivery_claim(source=source, intent=intent)
        if delivery is None:
            first = WebhookDelivery.objects.select_related("task__pool").get(
                source=source, delivery_id=intent.delivery_id
            )
            result = _duplicate(source=source, first=first, intent=intent)
        else:
            result = _delivery_process(source=source, delivery=delivery, intent=intent)
        transaction.on_commit(lambda: DELIVERIES.labels(source=source.slug, outcome=result.outcome).inc())
    return result


def _delivery_quick(*, source: WebhookSource, intent: WebhookIntent) -> DeliveryResult | None:
    """The common cases in one statement each, outside a transaction; None for the general path.

    A new delivery asking for a task: the task, its decision and event, and the accepted delivery
    row in one INSERT statement (task_submit_in_one_statement), made only if no row for this
    delivery id exists yet and the task's idempotency key is free; a raced twin that stores first
    makes this one's statement store nothing (or fail on the delivery's unique key), and the general
    path answers. A repeat of a delivery that was not rejected: one read of its row, which is never
    changed once it is not rejected, and the answer the general path would give.
    """
    if connection.in_atomic_block:
        return None
    # The one-statement insert is PostgreSQL's; elsewhere only the read of a repeat is quicker.
    wants_task = intent.task is not None and intent.error is None and connection.vendor == "postgresql"
    if wants_task:
        stored = _delivery_new_task(source=source, intent=intent)
        if stored is not None:
            return DeliveryResult(delivery=stored[1], outcome=Outcome.ACCEPTED, task=stored[0])
    first = delivery_seen(source_id=source.id, delivery_id=intent.delivery_id)
    if first is None or first.outcome == Outcome.REJECTED:
        if wants_task and first is None and routing_snapshot_changed():
            # The pools changed since this process last read them: once more on the new ones.
            stored = _delivery_new_task(source=source, intent=intent)
            if stored is not None:
                return DeliveryResult(delivery=stored[1], outcome=Outcome.ACCEPTED, task=stored[0])
        return None
    key = (intent.task or {}).get("idempotency_key")
    if key and first.task is not None and first.task.idempotency_key == key and not intent.conflict_is_duplicate:
        return None  # the sender chose the id: the general path compares the content
    return DeliveryResult(delivery=first, outcome=Outcome.DUPLICATE, task=first.task)


def _delivery_new_task(*, source: WebhookSource, intent: WebhookIntent) -> tuple[Task, WebhookDelivery] | None:
    try:
        spec = task_submission(**(intent.task or {}))
    except HiveError:
        return None  # the general path records the rejection
    stored: list[WebhookDelivery] = []

    def delivery_row(task: Task) -> WebhookDelivery:
        row = WebhookDelivery(
            source=source,
            delivery_id=intent.delivery_id,
            event=intent.event[:100],
            outcome=Outcome.ACCEPTED,
            detail=f"task {task.id} on pool {task.routed_pool.name}"[:5000],
            task=task,
        )
        stored.append(row)
        return row

    table = connection.ops.quote_name(WebhookDelivery._meta.db_table)
    try:
        task = task_submit_in_one_statement(
            spec,
            team=source.team,
            along=delivery_row,
            guard=f"NOT EXISTS (SELECT 1 FROM {table} WHERE source_id = %s AND delivery_id = %s)",
            guard_params=(source.id, intent.delivery_id),
            reread=False,  # the caller looks for the delivery first, then rereads the snapshot
        )
    except IntegrityError:  # a twin stored this delivery id between our check and our insert
        return None
    return (task, stored[0]) if task is not None else None


def _delivery_claim(*, source: WebhookSource, intent: WebhookIntent) -> WebhookDelivery | None:
    """The new row for this delivery, the rejected row to process again, or None for a duplicate."""
    try:
        with transaction.atomic():
            return WebhookDelivery.objects.create(
                source=source, delivery_id=intent.delivery_id, event=intent.event[:100], outcome=Outcome.REJECTED
            )
    except IntegrityError:
        pass  # recorded before, or by a concurrent request that has now committed
    first = WebhookDelivery.objects.select_for_update().get(source=source, delivery_id=intent.delivery_id)
    if first.outcome != Outcome.REJECTED:
        return None
    first.event = intent.event[:100]
    return first


def _duplicate(*, source: WebhookSource, first: WebhookDelivery, intent: WebhookIntent) -> DeliveryResult:
    """A delivery id seen before. Where the sender chose the id (custom), the same id with other
    content is a mistake worth an IdempotencyConflict, as on the API, not a silent duplicate."""
    spec = intent.task or {}
    key = spec.get("idempotency_key")
    if key and first.task is not None and first.task.idempotency_key == key and not intent.conflict_is_duplicate:
        try:
            task_submit(**spec, team=source.team)  # returns the first task, or raises on other content
        except HiveError as exc:  # IdempotencyConflict, or content that is invalid anyway
            return DeliveryResult(delivery=first, outcome=Outcome.REJECTED, task=first.task, error=exc)
    return DeliveryResult(delivery=first, outcome=Outcome.DUPLICATE, task=first.task)


def _delivery_process(*, source: WebhookSource, delivery: WebhookDelivery, intent: WebhookIntent) -> DeliveryResult:
    task, error, outcome, detail = None, intent.error, intent.outcome, intent.detail
    if error is not None:
        outcome, detail = Outcome.REJECTED, f"{error.code}: {error.detail}"
    elif intent.task is not None:
        try:
            with transaction.atomic():
                task = task_submit(**intent.task, team=source.team)
        except IdempotencyConflict as exc:
            if not intent.conflict_is_duplicate:
                error = exc
            else:
                task = Task.objects.select_related("pool").get(
                    team=source.team, idempotency_key=intent.task["idempotency_key"]
                )
        except HiveError as exc:
            error = exc
        if error is not None:
            outcome, detail = Outcome.REJECTED, f"{error.code}: {error.detail}"
        elif task is not None:  # submitted now, or the first task of the same work
            before = _submitted_before(task, delivery)
            outcome = Outcome.DUPLICATE if before else Outcome.ACCEPTED
            detail = f"task {task.id} on pool {task.routed_pool.name}{' (submitted before)' if before else ''}"
    delivery.outcome, delivery.detail, delivery.task = outcome, detail[:5000], task
    delivery.save()
    return DeliveryResult(delivery=delivery, outcome=outcome, task=task, error=error)


def _submitted_before(task: Task, delivery: WebhookDelivery) -> bool:
    """Whether task_submit returned an earlier task for this idempotency key."""
    return task.created_at < delivery.received_at or (
        WebhookDelivery.objects.filter(task=task).exclude(id=delivery.id).exists()
    )
