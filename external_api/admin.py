"""Admin for API keys (no secret is ever shown; revoke action), webhook sources (secrets are set and
rotated with `hive webhook`, never displayed) and the read-only record of deliveries."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from external_api.models import ApiKey, WebhookDelivery, WebhookSource
from external_api.webhooks.rules import RulesError, rules_validate


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "team", "scopes", "state", "created_at", "last_used_at", "expires_at")
    list_filter = ("team",)
    search_fields = ("name", "prefix")
    list_select_related = ("team",)
    fields = (
        "name",
        "prefix",
        "team",
        "scopes",
        "created_by",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    readonly_fields = ("prefix", "team", "scopes", "created_by", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False  # a key is shown once where it is made: `hive apikey create`

    @admin.display(description="state")
    def state(self, key: ApiKey) -> str:
        if key.revoked_at:
            return "revoked"
        return "active" if key.active else "expired"

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset) -> None:
        done = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"revoked {done} API key(s)", messages.SUCCESS)


class WebhookSourceForm(forms.ModelForm):
    class Meta:
        model = WebhookSource
        fields = ("kind", "slug", "team", "enabled", "rules")

    def clean(self):
        data = super().clean() or {}  # a ModelForm's clean returns cleaned_data; the stubs allow None
        kind = data.get("kind") or self.instance.kind
        if kind and "rules" in data:
            try:
                rules_validate(kind=kind, rules=data["rules"])
            except RulesError as exc:
                self.add_error("rules", exc.detail)
        return data


@admin.register(WebhookSource)
class WebhookSourceAdmin(admin.ModelAdmin):
    form = WebhookSourceForm
    list_display = ("slug", "kind", "team", "enabled", "secret_state", "created_at")
    list_filter = ("kind", "enabled", "team")
    search_fields = ("slug",)
    list_select_related = ("team",)
    readonly_fields = ("secret_state", "created_at")

    def has_add_permission(self, request) -> bool:
        return False  # made with a secret by `hive webhook add` (or from the configuration)

    def get_readonly_fields(self, request, obj=None):
        return ("kind", "slug", *self.readonly_fields) if obj else self.readonly_fields

    @admin.display(description="secrets")
    def secret_state(self, source: WebhookSource) -> str:
        valid = source.secrets()
        if not valid:
            return "none (every delivery is refused)"
        if len(valid) == 2 and source.previous_secret_expires_at:
            return f"current + previous until {source.previous_secret_expires_at:%Y-%m-%d %H:%M} UTC"
        return "current + previous" if len(valid) == 2 else "current"


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("delivery_id", "source", "event", "outcome", "task", "received_at")
    list_filter = ("outcome", "source", "event")
    search_fields = ("delivery_id", "event", "detail")
    date_hierarchy = "received_at"
    list_select_related = ("source", "task")
    readonly_fields = ("source", "delivery_id", "event", "outcome", "detail", "task", "received_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
