"""Pages: the hosts list, a host's overview, and its live views.  All need a login.

``/hosts/<name>/`` is the host overview (status, links to every view, the
form that chooses which collectors run); ``/hosts/<name>/cpu/``,
``/offcpu/`` and ``/offwake/`` are flame graphs, ``/latency/<kind>/`` a
heatmap page.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from .consumers import config_event
from .core.protocol import LATENCY_KINDS, PROFILE_KINDS
from .hub import MAX_HOST_NAME, get_hub, group_name
from .models import COLLECTOR_KINDS, Host, can_configure

# What each view shows, in the order the host page lists them.
VIEWS = {
    "cpu": ("CPU flame graph", "where CPU time is spent (samples)"),
    "offcpu": ("Off-CPU flame graph", "where threads block, in time blocked"),
    "offwake": ("Off-wake flame graph", "blocked stacks with the stack that woke them"),
    "runqlat": ("Run-queue latency", "wakeup to running, heatmap"),
    "biolat": ("Block I/O latency", "issue to completion per device, heatmap"),
    "syscall": ("Syscall latency", "per syscall name, heatmap"),
}
PROFILE_TITLES = {"cpu": "live CPU profile", "offcpu": "live off-CPU time",
                  "offwake": "live off-wake time"}


def host_rows() -> list[dict[str, Any]]:
    """Known hosts, with ``connected`` from the live hub (the database row can
    be stale after a crash; the hub is what this process actually serves)."""
    hub = get_hub()
    return [
        {
            "name": h.name,
            "connected": hub.is_connected(h.name),
            "last_seen": h.last_seen.isoformat(),
            "kernel": h.kernel,
            "collectors": h.collectors,
            "frequency_hz": h.frequency_hz,
            "interval_ms": h.interval_ms,
            "url": reverse("host", args=[h.name]),
        }
        for h in Host.objects.all()
    ]


def get_host(name: str) -> Host:
    """The host's row, or an unsaved one: its collector may connect later."""
    if len(name) > MAX_HOST_NAME:
        raise Http404("no such host")
    return Host.objects.filter(name=name).first() or Host(name=name)


@login_required
def hosts(request: HttpRequest) -> HttpResponse:
    return render(request, "hosts.html", {"hosts": host_rows()})


@login_required
def hosts_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"hosts": host_rows()})


@login_required
@require_http_methods(["GET", "POST"])
def host(request: HttpRequest, name: str) -> HttpResponse:
    row = get_host(name)
    if request.method == "POST":
        return choose_collectors(request, row)
    hub = get_hub()
    running = hub.running(name)
    wanted = row.wanted_collectors if row.pk else ["cpu"]
    views = [
        {"kind": k, "title": t, "about": a, "running": running is not None and k in running,
         "url": reverse("profile", args=[name, k]) if k in PROFILE_KINDS
         else reverse("latency", args=[name, k])}
        for k, (t, a) in VIEWS.items()
    ]
    choices = [{"kind": k, "title": VIEWS[k][0], "wanted": k in wanted,
                "running": running is not None and k in running} for k in COLLECTOR_KINDS]
    context = {
        "host": row, "connected": hub.is_connected(name), "running": running,
        "views": views, "choices": choices, "can_configure": can_configure(request.user),
        "errors": hub.errors(name), "known": bool(row.pk),
    }
    return render(request, "host.html", context)


def choose_collectors(request: HttpRequest, row: Host) -> HttpResponse:
    """Store the selection and send it to the host's collectors as collector.config."""
    if not can_configure(request.user):
        return HttpResponse(
            "You may not choose which collectors run on a host: ask an administrator "
            "for the permission \"Can choose which collectors run on a host\".",
            status=403, content_type="text/plain; charset=utf-8")
    if not row.pk:
        return HttpResponse(f"No collector has connected as {row.name!r} yet.",
                            status=404, content_type="text/plain; charset=utf-8")
    chosen = request.POST.getlist("collectors")
    unknown = [c for c in chosen if c not in COLLECTOR_KINDS]
    if unknown or len(chosen) > len(COLLECTOR_KINDS):
        return HttpResponse(f"Unknown collectors: {', '.join(unknown)[:200]}.",
                            status=400, content_type="text/plain; charset=utf-8")
    row.wanted_collectors = [k for k in COLLECTOR_KINDS if k in chosen]
    row.save(update_fields=["wanted_collectors"])
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(group_name(row.name, "collector"),
                                    config_event(row.collector_config()))
    shown = ", ".join(row.wanted_collectors) or "none"
    messages.success(request, f"Sent to the collector: run {shown}.")
    return redirect("host", row.name)


@login_required
def profile(request: HttpRequest, name: str, kind: str) -> HttpResponse:
    if kind not in PROFILE_KINDS:
        raise Http404("no such view")
    context = {
        "host": get_host(name), "ws_path": "/ws/live/", "max_nodes": settings.WEBPROF_MAX_NODES,
        "kind": kind, "unit": PROFILE_KINDS[kind], "title": PROFILE_TITLES[kind],
    }
    return render(request, "live.html", context)


@login_required
def latency(request: HttpRequest, name: str, kind: str) -> HttpResponse:
    if kind not in LATENCY_KINDS:
        raise Http404("no such view")
    context = {"host": get_host(name), "ws_path": "/ws/live/", "kind": kind,
               "title": VIEWS[kind][0], "about": VIEWS[kind][1]}
    return render(request, "latency.html", context)
