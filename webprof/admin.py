from __future__ import annotations

from django.contrib import admin

from .models import Host


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ("name", "connected", "last_seen", "kernel", "frequency_hz", "interval_ms")
    list_filter = ("connected",)
    search_fields = ("name", "kernel")
    readonly_fields = ("first_seen", "last_seen")
