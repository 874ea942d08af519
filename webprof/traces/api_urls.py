"""Routes of the trace API (JSON; docs/API.md).  The trace pages are in urls.py."""

from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("api/traces", api.traces, name="api-traces"),
    path("api/traces/<int:trace_id>", api.trace_detail, name="api-trace"),
    path("api/traces/<int:trace_id>/cancel", api.cancel, name="api-trace-cancel"),
    path("api/hosts", api.hosts, name="api-hosts"),
    path("api/hosts/<str:host>/<str:what>", api.host_query, name="api-host-query"),
    path("api/audit", api.audit_log, name="api-audit"),
]
