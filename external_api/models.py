"""API keys and webhook sources (each belongs to a team) and the record of every webhook delivery."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from coordination.models import Task, Team

KEY_PREFIX = "hive_"


class ApiKey(models.Model):
    """A key for scripts and CI. Shown once at creation; stored as a SHA-256 digest, found by prefix."""

    class Scope(models.TextChoices):
        READ = "read"
        WRITE = "write"
        ADMIN = "admin"
        COMMANDS = "commands"  # submit tasks that carry their own command (a privilege: it runs a program)

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["team__name", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def digest_of(secret: str) -> str:
        # The secret is 32 random bytes, so a plain hash cannot be brute-forced; no salt needed.
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def generate(cls) -> tuple[str, str]:
        """(prefix, full key). The key is `hive_<prefix>_<secret>`."""
        prefix = secrets.token_hex(6)
        return prefix, f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"

    def matches(self, key: str) -> bool:
        return hmac.compare_digest(self.digest, self.digest_of(key))

    @property
    def active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or self.Scope.ADMIN in self.scopes


class WebhookSource(models.Model):
    """Where webhooks come from (a GitHub repository or org, a Slack app, a custom sender).

    The secret signs deliveries; during a rotation the previous secret is accepted until
    `previous_secret_expires_at`. Rules say which events become tasks and with what capabilities.
    """

    class Kind(models.TextChoices):
        GITHUB = "github"
        SLACK = "slack"
        CUSTOM = "custom"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    slug = models.SlugField(max_length=60, unique=True, help_text="the URL is /webhooks/<kind>/<slug>/")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="webhook_sources")
    secret = models.CharField(max_length=200, blank=True)
    previous_secret = models.CharField(max_length=200, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    rules = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "slug"]

    def __str__(self) -> str:
        return f"{self.kind}/{self.slug}"

    def secrets(self) -> list[str]:
        """The secrets a delivery may be signed with right now."""
        valid = [self.secret] if self.secret else []
        if self.previous_secret and (
            self.previous_secret_expires_at is None or self.previous_secret_expires_at > timezone.now()
        ):
            valid.append(self.previous_secret)
        return valid


class WebhookDelivery(models.Model):
    """One received delivery: who sent it, what it was, and what the hive did with it."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted"  # a task was created
        DUPLICATE = "duplicate"  # a retry of a delivery already recorded
        IGNORED = "ignored"  # a valid event no rule turns into a task
        PING = "ping"
        REJECTED = "rejected"  # valid signature, unusable content (e.g. no pool can run it)

    source = models.ForeignKey(WebhookSource, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.CharField(max_length=200)
    event = models.CharField(max_length=100)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    detail = models.TextField(blank=True)
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["source", "delivery_id"], name="delivery_once_per_source")]

    def __str__(self) -> str:
        return f"{self.source} {self.delivery_id} {self.outcome}"
