"""The trace pages: the list, the form and one trace's progress and result.

The pages are thin shells.  Everything they show or do goes through the JSON
API (``/api/traces``, ``/api/hosts/...``) from static/traces*.js, so the
browser sees exactly what an API client sees and there is one place that
validates, authorises and audits.  The server renders only what the page
needs before its first request: the kinds and limits for the form, whether
the user may start traces (and who can grant that), and the trace's id.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from ..core.tracespec import MAX_MIN_BLOCK_US, TRACE_KINDS
from .models import START_PERMISSION, Trace

# Duration presets of the form, in seconds (a custom value is allowed too).
DURATION_PRESETS = [(1, "1 s"), (5, "5 s"), (10, "10 s"), (30, "30 s"), (60, "1 min"),
                    (300, "5 min"), (600, "10 min"), (1800, "30 min"), (3600, "1 h")]
MAX_GRANTERS_NAMED = 5


def limits() -> dict[str, int]:
    """The server's ceilings, for the form's input ranges and hints."""
    return {"max_duration_s": settings.WEBPROF_TRACE_MAX_DURATION_S,
            "max_frequency_hz": settings.WEBPROF_TRACE_MAX_FREQUENCY_HZ,
            "max_functions": settings.WEBPROF_TRACE_MAX_FUNCTIONS,
            "max_per_host": settings.WEBPROF_TRACE_MAX_PER_HOST,
            "max_min_block_us": MAX_MIN_BLOCK_US}


def granters() -> list[str]:
    """Who can grant the permission: active superusers, by name (a few)."""
    users = get_user_model().objects.filter(is_superuser=True, is_active=True)
    return [u.get_username() for u in users.order_by("pk")[:MAX_GRANTERS_NAMED]]


@login_required
@require_GET
def trace_list(request: HttpRequest) -> HttpResponse:
    return render(request, "traces/list.html",
                  {"can_start": request.user.has_perm(START_PERMISSION)})


@login_required
@require_GET
def trace_new(request: HttpRequest) -> HttpResponse:
    lim = limits()
    context: dict[str, Any] = {
        "can_start": request.user.has_perm(START_PERMISSION),
        "permission": START_PERMISSION,
        "granters": granters(),
        "kinds": [(k, label) for k, (label, _) in TRACE_KINDS.items()],
        "kind_fields": {k: list(fields) for k, (_, fields) in TRACE_KINDS.items()},
        "limits": lim,
        "presets": [(s, label) for s, label in DURATION_PRESETS if s <= lim["max_duration_s"]],
        # The form may be opened from a host page or a link: /traces/new/?host=box1
        "initial_host": request.GET.get("host", "")[:255],
    }
    return render(request, "traces/new.html", context)


@login_required
@require_GET
def trace_detail(request: HttpRequest, trace_id: int) -> HttpResponse:
    trace = get_object_or_404(Trace, pk=trace_id)
    return render(request, "traces/detail.html", {
        "trace": trace, "can_start": request.user.has_perm(START_PERMISSION)})
