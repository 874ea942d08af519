from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from .accounts import ApiToken, AuditEntry
from .models import Host
from .traces.models import Trace


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ("name", "connected", "last_seen", "kernel", "frequency_hz", "interval_ms")
    list_filter = ("connected",)
    search_fields = ("name", "kernel")
    readonly_fields = ("first_seen", "last_seen")


# ---- Targeted traces: the audit log (read-only), API tokens, traces ----


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the server only: admins look, nobody edits."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("time", "username", "token_prefix", "action", "host", "trace", "detail",
                    "remote_addr")
    list_filter = ("action", "host", "time", "username")
    search_fields = ("username", "host", "detail", "token_prefix")
    date_hierarchy = "time"


@admin.register(Trace)
class TraceAdmin(ReadOnlyAdmin):
    list_display = ("id", "name", "host", "kind", "state", "created_by", "cancelled_by",
                    "created", "session")
    list_filter = ("state", "kind", "host")
    search_fields = ("name", "host", "description")


@admin.action(description="Revoke the selected tokens")
def revoke_tokens(modeladmin: admin.ModelAdmin, request: HttpRequest,
                  queryset: QuerySet[ApiToken]) -> None:
    user: AbstractBaseUser = request.user
    for token in queryset.filter(revoked__isnull=True):
        token.revoked = timezone.now()
        token.save(update_fields=["revoked"])
        AuditEntry.record("token_revoke", user=user,
                          detail=f"token {token.prefix} of {token.user} (admin)")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created with `webprof token create` (the only place the
    secret is shown); here they can be listed and revoked."""

    list_display = ("prefix", "user", "name", "created", "last_used", "revoked")
    list_filter = ("revoked",)
    search_fields = ("prefix", "user__username", "name")
    readonly_fields = ("user", "prefix", "digest", "created", "last_used", "revoked")
    fields = ("user", "name", "prefix", "created", "last_used", "revoked")
    actions = [revoke_tokens]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
